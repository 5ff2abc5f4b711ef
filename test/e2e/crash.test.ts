// A crash that also lost the table on disk (a wiped or new state directory) leaves the kernel's
// offloaded connections behind with no session of ours; the next start decides them again by the
// running policy: a connection the new policy denies is cut, one it accepts is adopted. (With the
// table on disk, a crash restores it: test/e2e/journal.test.ts.)

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import { eventually, queueCounters, startDaemon } from '../lib/daemon.js';

interface ListJson { sessions: SessionView[] }

const config = (ports: string) => `
config firewall address
    edit "clients"
        set subnet 198.51.100.0/24
    next
end
config firewall service custom
    edit "echo"
        set udp-portrange ${ports}
    next
end
config firewall policy
    edit 7
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "clients"
        set dstaddr "all"
        set service "echo"
        set action accept
    next
end
`;

const kernelHas = async (topo: Topology, sport: number) =>
  (await topo.exec('router', ['conntrack', '-L', '-p', 'udp', '--sport', String(sport)])).stdout.includes(`sport=${sport}`);

t.test('after a SIGKILL that lost the table on disk, the next start re-decides the offloaded connections by the running policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-crash-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withTopology(t, async (topo) => {
    await startUdpEcho(topo, { port: 7007 });
    await startUdpEcho(topo, { port: 7008 });
    const first = await startDaemon(topo, config('7007-7008'), { dir });
    t.equal((await udpExchange(topo, { count: 3, sport: 40800, port: 7007 })).received, 3);
    t.equal((await udpExchange(topo, { count: 3, sport: 40801, port: 7008 })).received, 3);
    const before = (await first.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
    t.same(before.map((s) => [s.orig_tuple.dport, s.offloaded, s.policy_id]).sort(), [[7007, true, 7], [7008, true, 7]]);
    first.proc.child.kill('SIGKILL');
    await first.proc.exited;
    t.ok(existsSync(join(dir, 'sessions.journal')), 'the crash left the snapshot and journal behind');
    for (const f of ['sessions.json', 'sessions.journal']) rmSync(join(dir, f));
    t.ok(await kernelHas(topo, 40801), 'the kernel still carries both connections');

    // While it was down the policy lost udp/7008.
    const d = await startDaemon(topo, config('7007'), { dir });
    t.teardown(() => d.stop());
    t.match(d.proc.stdout(), /"adopted":1,"cut":1,"msg":"started without a table: connections offloaded by an earlier run were decided again by the running policy"/);
    const after = (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
    t.match(after, [{ orig_tuple: { sport: 40800, dport: 7007 }, policy_id: 7, offloaded: true }], 'the allowed one is a session of its policy again');
    t.equal(after.length, 1);
    t.ok(await eventually(async () => ((await kernelHas(topo, 40801)) ? undefined : true), 5000), 'the denied one\'s kernel entry is deleted');

    const q0 = await queueCounters(topo);
    t.equal((await udpExchange(topo, { count: 3, sport: 40800, port: 7007 })).received, 3, 'the adopted connection flows on');
    const q1 = await queueCounters(topo);
    t.equal(q1!.lastId - q0!.lastId, 0, 'through the kernel alone');
    const cut = await udpExchange(topo, { count: 2, sport: 40801, port: 7008, waitMs: 400 });
    t.equal(cut.received, 0, 'the denied connection is cut: its next datagrams meet the policy');
    t.ok((await d.json<{ counters: Record<string, number> }>('diagnose', 'sys', 'session', 'stat')).counters.policy_deny >= 3, 'counted as denied');
  });
});

// With the table on disk the sessions come back, but under the policies of their time: each is
// looked up again against the running ones (firewall-session-dirty check-all, the default).
t.test('after a SIGKILL with the table on disk, a policy changed while down ends the sessions it no longer admits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-dirty-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withTopology(t, async (topo) => {
    await startUdpEcho(topo, { port: 7007 });
    await startUdpEcho(topo, { port: 7008 });
    const first = await startDaemon(topo, config('7007-7008'), { dir });
    t.equal((await udpExchange(topo, { count: 3, sport: 40810, port: 7007 })).received, 3);
    t.equal((await udpExchange(topo, { count: 3, sport: 40811, port: 7008 })).received, 3);
    const before = (await first.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
    t.equal(before.length, 2);
    // A journal flush (every second) after both started.
    await new Promise((r) => setTimeout(r, 1500));
    first.proc.child.kill('SIGKILL');
    await first.proc.exited;

    const d = await startDaemon(topo, config('7007'), { dir });
    t.teardown(() => d.stop());
    t.match(d.proc.stdout(), /"why":"table restored","checked":2,"ended":1,"children":0,"moved":0,"msg":"policies changed/);
    const after = (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
    const kept = before.find((s) => s.orig_tuple.sport === 40810)!;
    t.match(after, [{ serial: kept.serial, orig_tuple: { sport: 40810, dport: 7007 }, policy_id: 7 }], 'the allowed one is restored with its serial');
    t.equal(after.length, 1);
    t.ok(await eventually(async () => ((await kernelHas(topo, 40811)) ? undefined : true), 5000), 'the denied one\'s kernel entry is deleted');
    t.equal((await udpExchange(topo, { count: 3, sport: 40810, port: 7007 })).received, 3, 'the allowed one flows on');
    t.equal((await udpExchange(topo, { count: 2, sport: 40811, port: 7008, waitMs: 400 })).received, 0, 'the denied one is cut');
    const stat = await d.json<{ counters: Record<string, number> }>('diagnose', 'sys', 'session', 'stat');
    t.ok(stat.counters.policy_deny >= 2, `its next datagrams were denied by the policy (${stat.counters.policy_deny})`);
  });
});

t.test('a reload whose policies no longer admit a running connection ends it and cuts it in the kernel', async (t) => {
  await withTopology(t, async (topo) => {
    await startUdpEcho(topo, { port: 7007 });
    await startUdpEcho(topo, { port: 7008 });
    const d = await startDaemon(topo, config('7007-7008'));
    t.teardown(() => d.stop());
    t.equal((await udpExchange(topo, { count: 3, sport: 40820, port: 7007 })).received, 3);
    t.equal((await udpExchange(topo, { count: 3, sport: 40821, port: 7008 })).received, 3);
    t.ok(await kernelHas(topo, 40821), 'offloaded to the kernel');

    // Only another block changes: the sessions are not looked up.
    writeFileSync(d.configPath, config('7007-7008') + 'config system global\n    set tcp-timewait-timer 2\nend\n');
    d.proc.child.kill('SIGHUP');
    await d.proc.waitForLine(/config reloaded/);
    t.notMatch(d.proc.stdout(), /policies changed/, 'same policies: no look-up');

    writeFileSync(d.configPath, config('7007'));
    d.proc.child.kill('SIGHUP');
    const line = await d.proc.waitForLine(/policies changed/);
    t.match(line, /"why":"config reload","checked":2,"ended":1,"children":0,"moved":0/);
    const after = (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions;
    t.match(after, [{ orig_tuple: { sport: 40820 } }]);
    t.equal(after.length, 1);
    t.ok(await eventually(async () => ((await kernelHas(topo, 40821)) ? undefined : true), 5000), 'its kernel entry is deleted');
    t.equal((await udpExchange(topo, { count: 2, sport: 40821, port: 7008, waitMs: 400 })).received, 0, 'the connection is cut');
    t.equal((await udpExchange(topo, { count: 3, sport: 40820, port: 7007 })).received, 3, 'the other flows on');
    const log = await d.cli('execute', 'log', 'display');
    t.match(log, /action="dirty"/, 'its traffic record says why it ended');
  });
});
