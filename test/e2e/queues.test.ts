// Two queues, one table: with `queue-count 2` the kernel spreads flows over queues 0 and 1 by
// its --queue-balance hash of the addresses, and the daemon decides both from the one session
// table. Connections from enough client addresses land on both queues; every one of them is in the
// session list with its policy, FTP still works through the helper (its expectation is honoured
// whichever queue the control connection used), and a denied flow is denied on either queue.

import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { curlFetch, startHttpServer } from '../../src/topology/peers.js';
import { ftpTransfer, startVsftpd } from '../../src/topology/ftp.js';
import type { SessionView } from '../../src/control/session-view.js';
import { eventually, queueCounters, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';
import type { LogDisplay } from '../../src/log/display.js';

interface Sessions { sessions: SessionView[] }

const CONFIG = controlOnlyConfig({ policyId: 7, service: 'web-ftp', tcp: '21 80', system: ['set queue-num 0', 'set queue-count 2'] });

/** Client addresses beyond the topology's own, in the client subnet: each is another hash input. */
const EXTRA = Array.from({ length: 30 }, (_, i) => `198.51.100.${20 + i}`);

t.test('queue-count 2: flows on both queues, one session table, helpers across queues', async (t) => {
  await withTopology(t, async (topo) => {
    const http = await startHttpServer(topo, { port: 80, bodySize: 5000 });
    t.teardown(() => http.stop());
    const ftp = await startVsftpd(topo, { files: { 'f.bin': 100_000 } });
    t.teardown(() => ftp.stop());
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());
    t.match(d.proc.stdout(), /"queues":\{[^}]*"count":2/, 'the daemon bound two queues');

    const sources: string[] = [topo.addr.client.v4];
    const ids = async () => [(await queueCounters(topo, 0))?.lastId ?? 0, (await queueCounters(topo, 1))?.lastId ?? 0];
    t.equal((await curlFetch(topo, http.urlFor(5000))).bytes, 5000, 'HTTP from the client address');
    // Another source address until both queues have carried a first packet (each address is a
    // coin flip; thirty of them all landing on one queue would be a broken spread).
    for (const a of EXTRA) {
      const [q0, q1] = await ids();
      if (q0 > 0 && q1 > 0) break;
      await topo.execOk('client', ['ip', 'addr', 'add', `${a}/24`, 'dev', topo.ifname.client]);
      const r = await curlFetch(topo, http.urlFor(5000), { extraArgs: ['--interface', a] });
      t.equal(r.bytes, 5000, `HTTP from ${a}`);
      sources.push(a);
    }
    const [q0, q1] = await ids();
    t.ok(q0 > 0 && q1 > 0, `both queues carried packets (queue 0 last id ${q0}, queue 1 last id ${q1})`);

    // FTP: passive and active through the helper; its data connection is let in by the expectation.
    t.equal((await ftpTransfer(topo, ftp.url('f.bin'), { rfc959: true })).bytes, 100_000, 'passive FTP');
    t.equal((await ftpTransfer(topo, ftp.url('f.bin'), { active: true, rfc959: true })).bytes, 100_000, 'active FTP');
    // A port the policy does not allow, from an address on each queue, is refused.
    const denied = await curlFetch(topo, `http://${topo.addr.server.v4}:8081/`, { timeoutMs: 3000 });
    t.equal(denied.httpCode, 0, 'tcp/8081 is denied');

    // Short connections end within the test, so the one table is shown by the traffic log it
    // writes: one record per HTTP connection, every source, one serial space.
    const web = await eventually(async () => {
      const r = (await d.json<LogDisplay>('execute', 'log', 'display')).records.filter((x) => x.dstport === 80 && x.action !== 'start');
      return new Set(r.map((x) => x.srcip)).size === sources.length ? r : undefined;
    });
    t.ok(web, 'the traffic log has the HTTP session of every source, from both queues');
    if (!web) return;
    t.same([...new Set(web.map((x) => x.srcip))].sort(), [...sources].sort());
    t.ok(web.every((x) => x.policyid === 7), 'every one under policy 7');
    const all = (await d.json<LogDisplay>('execute', 'log', 'display')).records.filter((x) => x.action !== 'start' && x.policyid === 7);
    const serials = all.map((x) => x.sessionid);
    t.equal(new Set(serials).size, serials.length, `one serial space: no serial twice among ${serials.length} sessions`);
    t.ok(all.some((x) => x.dstport === 21), 'the FTP control sessions are logged too');
    const stat = await d.cli('diagnose', 'sys', 'session', 'stat');
    t.match(stat, /exp_count=0/, 'both FTP expectations were used');
    const list = await d.json<Sessions>('diagnose', 'sys', 'session', 'list');
    t.notOk(list.sessions.some((x) => x.orig_tuple.dport === 8081), 'the denied flow has no session');
  });
});
