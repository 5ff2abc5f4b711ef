import t from 'tap';
import { encodeNfMessage } from '../../src/kernel/nfnetlink.js';
import {
  ctDeleteRequest, ctUpdateRequest, encodeCtDelete, encodeCtUpdate, type TupleKey, type CtUpdate,
} from '../../src/kernel/conntrack-codec.js';

// The direct encoders must produce exactly the bytes of the Attr-tree encoders.
t.test('encodeCtDelete / encodeCtUpdate equal encodeNfMessage of the request builders', (t) => {
  const tuples: TupleKey[] = [];
  const addrs4 = [['198.51.100.1', '203.0.113.2'], ['203.0.113.250', '198.51.100.0']];
  const addrs6 = [['2001:db8::1', '2001:db8:0:1::2'], ['2001:db8:ffff:1:2:3:4:5', '::ffff:198.51.100.7']];
  for (const proto of [6, 17, 132, 33, 136, 47, 50]) {
    for (const [src, dst] of addrs4) tuples.push({ tuple: { family: 4, proto, src: src!, dst: dst!, sport: 40000, dport: 80 } });
    for (const [src, dst] of addrs6) tuples.push({ tuple: { family: 6, proto, src: src!, dst: dst!, sport: 1, dport: 65535 } });
  }
  tuples.push({ tuple: { family: 4, proto: 1, src: '198.51.100.1', dst: '203.0.113.2', sport: 77, dport: 0 } });
  tuples.push({ tuple: { family: 4, proto: 1, src: '198.51.100.1', dst: '203.0.113.2', sport: 77, dport: 0 }, icmp: { type: 13, code: 0 } });
  tuples.push({ tuple: { family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', sport: 5, dport: 0 } });
  tuples.push({ tuple: { family: 6, proto: 58, src: '2001:db8::1', dst: '2001:db8::2', sport: 5, dport: 0 }, icmp: { type: 129, code: 3 } });
  tuples.push({ tuple: { family: 4, proto: 6, src: '198.51.100.1', dst: '203.0.113.2', sport: 1, dport: 2 }, zone: 7 });
  tuples.push({ tuple: { family: 6, proto: 17, src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2 }, zone: 65535 });
  tuples.push({ tuple: { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 8090, dport: 2043 }, byReply: true });
  const updates: CtUpdate[] = [
    { mark: 0x100000, markMask: 0x100000, timeout: 3600 },
    { mark: 0x100000, markMask: 0x100000 },
    { mark: 0xffffffff },
    { timeout: 10 },
    { mark: 0x3, markMask: 0x1 },
  ];
  let n = 0;
  for (const k of tuples) {
    for (const seq of [0, 1, 0xfffffffe]) {
      t.same(encodeCtDelete(k, seq), encodeNfMessage(ctDeleteRequest(k, seq)));
      for (const u of updates) t.same(encodeCtUpdate(k, u, seq), encodeNfMessage(ctUpdateRequest(k, u, seq)));
      n++;
    }
  }
  t.ok(n > 50);
  t.end();
});

t.test('byReply keys an entry by its reply tuple (CTA_TUPLE_REPLY = 2 in the nest header)', (t) => {
  const tuple = { family: 4 as const, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 8090, dport: 2043 };
  t.equal(encodeCtDelete({ tuple }).readUInt16LE(22) & 0x3fff, 1);
  t.equal(encodeCtDelete({ tuple, byReply: true }).readUInt16LE(22) & 0x3fff, 2);
  t.end();
});

t.test('bad addresses and out-of-range fields throw like the request builders', (t) => {
  const bad: TupleKey = { tuple: { family: 4, proto: 6, src: '2001:db8::1', dst: '198.51.100.1', sport: 1, dport: 2 } };
  t.throws(() => encodeCtDelete(bad), /bad IPv4 tuple address/);
  t.throws(() => encodeNfMessage(ctDeleteRequest(bad)), /bad IPv4 tuple address/);
  const port: TupleKey = { tuple: { family: 4, proto: 6, src: '198.51.100.1', dst: '198.51.100.2', sport: 70000, dport: 2 } };
  t.throws(() => encodeCtUpdate(port, { timeout: 1 }));
  t.throws(() => encodeNfMessage(ctUpdateRequest(port, { timeout: 1 })));
  t.end();
});
