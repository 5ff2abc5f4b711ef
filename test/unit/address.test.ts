import t from 'tap';
import {
  addressFamily,
  canonicalAddress,
  cidrContains,
  cidrContainsBytes,
  formatAddress,
  formatCidr,
  ipv4ToString,
  ipv4ToUint32,
  ipv6ToString,
  netmaskToPrefix,
  parseAddress,
  parseCidr,
  parseIPv4,
  parseIPv6,
} from '../../src/packet/address.js';

t.test('IPv4 text both ways', async (t) => {
  t.equal(ipv4ToString(Uint8Array.from([192, 0, 2, 1])), '192.0.2.1');
  t.equal(ipv4ToString(Uint8Array.from([0, 0, 198, 51, 100, 255, 9]), 2), '198.51.100.255');
  t.equal(ipv4ToUint32('203.0.113.7'), (203 * 2 ** 24 + 113 * 256 + 7));
  t.same(parseIPv4('198.51.100.10'), Uint8Array.from([198, 51, 100, 10]));
  const out = new Uint8Array(6);
  t.equal(parseIPv4('192.0.2.200', out, 2), out, 'writes into the given buffer');
  t.same(out, Uint8Array.from([0, 0, 192, 0, 2, 200]));
  for (const bad of ['', '192.0.2', '192.0.2.1.5', '192.0.2.256', '192.0.02.1', '192..2.1', '192.0.2.1 ',
    ' 192.0.2.1', '192.0.2.', '.192.0.2', '192.0.2.x', '2001:db8::1', '1e2.0.2.1']) {
    t.equal(parseIPv4(bad), null, `refuses ${JSON.stringify(bad)}`);
    t.equal(ipv4ToUint32(bad), -1);
  }
  // Every octet value goes through the lookup table.
  for (let i = 0; i < 256; i++) {
    t.equal(ipv4ToString(Uint8Array.from([203, 0, 113, i])), `203.0.113.${i}`);
  }
});

const v6 = (text: string) => ipv6ToString(parseIPv6(text)!);

t.test('IPv6 canonical text (RFC 5952)', async (t) => {
  t.equal(v6('2001:0DB8:0000:0000:0000:0000:0002:0001'), '2001:db8::2:1', 'lowercase, no leading zeros, compressed');
  t.equal(v6('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1', 'a single zero group is not compressed');
  t.equal(v6('2001:db8:0:0:1:0:0:0'), '2001:db8:0:0:1::', 'the longest run wins');
  t.equal(v6('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1', 'the first of equal runs wins');
  t.equal(v6('2001:db8:0:0:0:0:0:0'), '2001:db8::', 'trailing run');
  t.equal(v6('2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff'), '2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff');
  t.equal(v6('2001:db8:a:b0:c00:d000::'), '2001:db8:a:b0:c00:d000::');
  t.equal(v6('::'), '::', 'the unspecified address');
  t.equal(v6('::ffff:192.0.2.1'), '::ffff:192.0.2.1', 'IPv4-mapped keeps the dotted quad');
  t.equal(v6('0:0:0:0:0:ffff:c633:640a'), '::ffff:198.51.100.10', 'IPv4-mapped written in hex');
  t.equal(v6('::ffff:0:c000:201'), '::ffff:0:c000:201', 'IPv4-translated is not IPv4-mapped');
  t.equal(v6('2001:db8::ffff:c000:201'), '2001:db8::ffff:c000:201');
  t.equal(v6('2001:db8:1:2:3:4:192.0.2.1'), '2001:db8:1:2:3:4:c000:201', 'embedded dotted quad elsewhere');
  t.equal(v6('2001:db8:1:2:3:4:5::'), '2001:db8:1:2:3:4:5:0', ':: standing for a single group');
  const buf = Buffer.alloc(20);
  parseIPv6('2001:db8::53', buf, 3);
  t.equal(ipv6ToString(buf, 3), '2001:db8::53', 'reads at an offset');
});

t.test('IPv6 parsing refuses malformed text', async (t) => {
  for (const bad of ['', ':', ':::', '2001:db8', '2001:db8:1:2:3:4:5:6:7', '2001:db8::1::2', '2001:db8:12345::',
    '2001:db8::g', '2001:db8::1:', ':2001:db8::1', '2001:db8::1%eth0', '2001:db8:1:2:3:4:5:192.0.2.1',
    '::ffff:192.0.2', '::ffff:192.0.2.1.1', '::192.0.2.1:1', '2001:db8:1:2:3:4:5:6::', '192.0.2.1',
    '2001:db8::1 ', '2001:db8:::1']) {
    t.equal(parseIPv6(bad), null, `refuses ${JSON.stringify(bad)}`);
  }
});

/** Independent RFC 5952 formatter for the property test: arrays and strings, no cleverness. */
function reference(bytes: Uint8Array): string {
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push(bytes[i] * 256 + bytes[i + 1]);
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return '::ffff:' + Array.from(bytes.slice(12)).join('.');
  let best = [-1, 0];
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > best[1]) best = [i, j - i];
  }
  const hex = g.map((x) => x.toString(16));
  if (best[1] < 2) return hex.join(':');
  return hex.slice(0, best[0]).join(':') + '::' + hex.slice(best[0] + best[1]).join(':');
}

t.test('IPv6 formatting matches a reference on random documentation addresses', async (t) => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
  const b = new Uint8Array(16);
  let mismatches = 0;
  for (let n = 0; n < 20000; n++) {
    b.set([0x20, 0x01, 0x0d, 0xb8]);
    // Mostly zero groups so that runs of every length and position occur.
    for (let gi = 2; gi < 8; gi++) {
      const zero = rnd() < 160;
      b[2 * gi] = zero ? 0 : rnd() & (rnd() < 128 ? 0x0f : 0xff);
      b[2 * gi + 1] = zero ? 0 : rnd();
    }
    const text = ipv6ToString(b);
    if (text !== reference(b) || ipv6ToString(parseIPv6(text)!) !== text) mismatches++;
  }
  t.equal(mismatches, 0);
});

t.test('families and canonical forms', async (t) => {
  t.equal(addressFamily('192.0.2.1'), 4);
  t.equal(addressFamily('2001:db8::1'), 6);
  t.equal(addressFamily('::ffff:192.0.2.1'), 6);
  t.equal(addressFamily('example.test'), 0);
  t.equal(canonicalAddress('2001:DB8:0:0::0:1'), '2001:db8::1');
  t.equal(canonicalAddress('203.0.113.9'), '203.0.113.9');
  t.equal(canonicalAddress('203.0.113.09'), null);
  t.same(parseAddress('2001:db8::1')?.family, 6);
  t.equal(formatAddress(Uint8Array.from([192, 0, 2, 9])), '192.0.2.9');
  t.throws(() => formatAddress(new Uint8Array(5)));
});

t.test('prefixes', async (t) => {
  const c = parseCidr('192.0.2.77/24')!;
  t.equal(formatCidr(c), '192.0.2.0/24', 'host bits cleared');
  t.ok(cidrContains(c, '192.0.2.255'));
  t.notOk(cidrContains(c, '198.51.100.1'));
  t.notOk(cidrContains(c, '::ffff:192.0.2.1'), 'families never match across');
  t.notOk(cidrContains(c, 'junk'));

  const c25 = parseCidr('203.0.113.0/25')!;
  t.ok(cidrContains(c25, '203.0.113.127'));
  t.notOk(cidrContains(c25, '203.0.113.128'));
  t.equal(formatCidr(parseCidr('203.0.113.200/27')!), '203.0.113.192/27');

  const host = parseCidr('198.51.100.7')!;
  t.equal(host.prefix, 32);
  t.ok(cidrContains(host, '198.51.100.7'));
  t.notOk(cidrContains(host, '198.51.100.6'));
  t.ok(cidrContains(parseCidr('192.0.2.1/0')!, '203.0.113.1'), '/0 contains everything of its family');

  const d = parseCidr('2001:db8::/32')!;
  t.ok(cidrContains(d, '2001:db8:ffff::1'));
  t.notOk(cidrContains(d, '2001:db9::1'));
  t.notOk(cidrContains(d, '192.0.2.1'));
  const d33 = parseCidr('2001:db8:ffff::/33')!;
  t.equal(formatCidr(d33), '2001:db8:8000::/33');
  t.ok(cidrContains(d33, '2001:db8:8000::1'));
  t.notOk(cidrContains(d33, '2001:db8:7fff::1'));
  t.equal(formatCidr(parseCidr('2001:db8::1')!), '2001:db8::1/128');

  const pkt = Buffer.from([0, 0, 203, 0, 113, 5]);
  t.ok(cidrContainsBytes(parseCidr('203.0.113.0/24')!, pkt, 2, 4));
  t.notOk(cidrContainsBytes(parseCidr('203.0.113.0/24')!, pkt, 2, 16), 'length decides the family');

  for (const bad of ['192.0.2.0/33', '192.0.2.0/', '192.0.2.0/024', '192.0.2.0/2a', '2001:db8::/129', 'x/8', '/8']) {
    t.equal(parseCidr(bad), null, `refuses ${bad}`);
  }
});

t.test('dotted netmasks', async (t) => {
  t.equal(netmaskToPrefix('255.255.255.0'), 24);
  t.equal(netmaskToPrefix('255.255.255.128'), 25);
  t.equal(netmaskToPrefix('255.255.255.255'), 32);
  t.equal(netmaskToPrefix('0.0.0.0'), 0);
  t.equal(netmaskToPrefix('255.0.255.0'), -1);
  t.equal(netmaskToPrefix('255.255.255.1'), -1);
  t.equal(netmaskToPrefix('mask'), -1);
});
