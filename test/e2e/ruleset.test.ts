// Ruleset install/remove against the real kernel, in a fresh namespace of our own (nfsct-...).
// The Ruleset runs its nft/iptables commands through `ip netns exec`, so this process stays in
// the root namespace and nothing outside the test namespace is touched.

import t from 'tap';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Ruleset } from '../../src/kernel/ruleset.js';
import { CommandError } from '../../src/kernel/exec.js';

const NS = `nfsct-${process.pid}-${randomBytes(2).toString('hex')}-rs`;

function sh(argv: string[], input?: string): { code: number; out: string; err: string } {
  const r = spawnSync('ip', ['netns', 'exec', NS, ...argv], { input, encoding: 'utf8', timeout: 20000 });
  return { code: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
}
function must(argv: string[], input?: string): string {
  const r = sh(argv, input);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.err}`);
  return r.out;
}
const lines = (text: string, re: RegExp): string[] => text.split('\n').filter((l) => re.test(l));

const cleanup = (): void => { spawnSync('ip', ['netns', 'del', NS]); };
t.teardown(cleanup);
process.once('exit', cleanup);

const add = spawnSync('ip', ['netns', 'add', NS], { encoding: 'utf8' });
if (add.status !== 0) throw new Error(`ip netns add ${NS}: ${add.stderr}`);
must(['ip', 'link', 'set', 'lo', 'up']);

// Somebody else's objects, which must survive install and remove untouched.
must(['nft', '-f', '-'], 'table inet other {\n\tchain c {\n\t\ttype filter hook forward priority 0; policy accept;\n\t\tcounter comment "keep"\n\t}\n}\n');
must(['iptables', '-A', 'FORWARD', '-s', '192.0.2.1', '-m', 'comment', '--comment', 'unrelated', '-j', 'ACCEPT']);
must(['ip6tables', '-A', 'FORWARD', '-s', '2001:db8::1', '-m', 'comment', '--comment', 'unrelated6', '-j', 'ACCEPT']);

const JUMP = '-A FORWARD -m comment --comment nfsessiond -j NFSESSIOND';

t.test('install twice: one table, one jump per family, our chain once', async (t) => {
  const rs = new Ruleset({}, { netns: NS });
  const first = await rs.install();
  const second = await rs.install();
  t.equal(second.mechanism, first.mechanism);
  t.equal(first.table, 'nfsessiond');
  const nftSupported = await rs.detectNftQueue();
  t.equal(first.mechanism, nftSupported ? 'nft-queue' : 'xt-nfqueue', 'mechanism follows the probe');
  t.equal(second.jumpsAdded, 0, 'no jump added the second time');

  const tables = lines(must(['nft', 'list', 'tables']), /./);
  t.same(tables.filter((l) => l.includes('nfsessiond')), ['table inet nfsessiond'], 'exactly one table, no probe leftovers');
  const table = must(['nft', 'list', 'table', 'inet', 'nfsessiond']);
  t.match(table, /set pinholes4 \{\n\t\ttype ipv4_addr \. ipv4_addr \. inet_proto \. inet_service\n\t\tflags timeout/);
  t.match(table, /set pinholes6 \{\n\t\ttype ipv6_addr \. ipv6_addr \. inet_proto \. inet_service/);
  t.match(table, /type filter hook forward priority filter - 10; policy accept;/);
  t.equal(lines(table, /ct mark & 0x00100000 == 0x00100000 counter .*comment "offloaded: not queued"/).length, 1);

  if (first.mechanism === 'xt-nfqueue') {
    t.equal(first.jumpsAdded, 2);
    for (const tool of ['iptables-save', 'ip6tables-save']) {
      const save = must([tool]);
      t.same(lines(save, /nfsessiond|NFSESSIOND/), [
        ':NFSESSIOND - [0:0]',
        JUMP,
        '-A NFSESSIOND -m connmark --mark 0x100000/0x100000 -j RETURN',
        '-A NFSESSIOND -j NFQUEUE --queue-num 0 --queue-bypass',
      ], `${tool}: our objects exactly once`);
      // The jump is first in FORWARD, ahead of the operator's rule.
      t.equal(lines(save, /^-A FORWARD/)[0], JUMP, `${tool}: jump is the first FORWARD rule`);
    }
  }
});

t.test('changing hooks adds and removes jumps; queue settings are replaced in place', async (t) => {
  const two = await new Ruleset({ hooks: ['forward', 'input'], queues: { first: 3, last: 4 } }, { netns: NS }).install();
  if (two.mechanism !== 'xt-nfqueue') { t.pass('nft queue kernel: no iptables jumps to check'); return; }
  let save = must(['iptables-save']);
  t.equal(lines(save, /-A INPUT -m comment --comment nfsessiond -j NFSESSIOND/).length, 1);
  t.same(lines(save, /NFQUEUE/), ['-A NFSESSIOND -j NFQUEUE --queue-balance 3:4 --queue-bypass']);
  t.match(must(['nft', 'list', 'table', 'inet', 'nfsessiond']), /hook input/);
  await new Ruleset({}, { netns: NS }).install();
  save = must(['iptables-save']);
  t.equal(lines(save, /-A INPUT .*NFSESSIOND/).length, 0, 'input jump removed when input is no longer configured');
  t.equal(lines(save, /-A FORWARD .*NFSESSIOND/).length, 1);
  t.same(lines(save, /NFQUEUE/), ['-A NFSESSIOND -j NFQUEUE --queue-num 0 --queue-bypass']);
  t.notMatch(must(['nft', 'list', 'table', 'inet', 'nfsessiond']), /hook input/);
});

t.test('bypass: with nobody on the queue, queued traffic still passes (crash safety)', async (t) => {
  const rs = new Ruleset({ hooks: ['output'], families: [4], queues: { first: 9, last: 9 } }, { netns: NS });
  await rs.install();
  const ping = sh(['ping', '-c', '2', '-i', '0.2', '-W', '1', '127.0.0.1']);
  t.equal(ping.code, 0, `ping through the queue rule with bypass: ${ping.err}`);
  // The packets really went through the queue rule (counted), and conntrack runs (ct rules).
  const counted = must(['nft', 'list', 'ruleset']);
  t.match(counted, /counter packets [1-9]\d* bytes \d+ queue num 9 bypass|queue flags bypass to 9/);
  t.match(must(['conntrack', '-L']), /src=127\.0\.0\.1/, 'conntrack runs in the fresh namespace');
  await new Ruleset({}, { netns: NS }).install();
});

t.test('a forced nft queue on a kernel without it fails with the command and nft stderr', async (t) => {
  const rs = new Ruleset({ mechanism: 'nft-queue' }, { netns: NS });
  if (await rs.detectNftQueue()) { t.pass('kernel has nft queue'); return; }
  const err = await rs.install().then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof CommandError, 'a CommandError');
  t.match((err as Error).message, /`ip netns exec \S+ nft -f -` failed \(exit 1\): .*Could not process rule: No such file or directory/s);
  // The failed transaction left the previous table in place.
  t.match(must(['nft', 'list', 'table', 'inet', 'nfsessiond']), /hook forward/);
});

t.test('remove leaves zero nfsessiond objects and everything else intact', async (t) => {
  must(['nft', 'add', 'table', 'inet', 'nfsessiond_probe_1_abcdef']);
  const rs = new Ruleset({}, { netns: NS });
  await rs.remove();
  await rs.remove();
  const ruleset = must(['nft', 'list', 'ruleset']);
  t.notMatch(ruleset, /nfsessiond|NFSESSIOND/i, 'no table, chain, jump or probe table of ours');
  t.match(ruleset, /table inet other/);
  t.match(ruleset, /comment "keep"/);
  t.same(lines(must(['iptables-save']), /FORWARD -s/), ['-A FORWARD -s 192.0.2.1/32 -m comment --comment unrelated -j ACCEPT']);
  t.same(lines(must(['ip6tables-save']), /FORWARD -s/), ['-A FORWARD -s 2001:db8::1/128 -m comment --comment unrelated6 -j ACCEPT']);
});
