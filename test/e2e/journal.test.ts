// A crash loses at most a second of the table: UDP and TCP flows and an FTP control connection
// with a pending PASV expectation go through the router, the daemon is SIGKILLed 1.5 s later
// (after at least one journal flush) and started again. The same sessions come back with the
// same serials and policy ids, the expectation with its id and pinhole. Once with a snapshot a
// second (the table comes from the periodic snapshot) and once with snapshot-interval 3600 (the
// snapshot written at start is empty: the table comes from the journal replay alone).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { fixturePath, iperf3Client, iperf3Server, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { startVsftpd } from '../../src/topology/ftp.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import { eventually, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';

interface Sessions { sessions: SessionView[] }
interface Expectations { expectations: ExpectationView[] }
interface Stat { journal?: Record<string, number> }

const config = (interval: number) => controlOnlyConfig({ policyId: 43, service: 'crash-flows', tcp: '21 5201', udp: '7007' })
  + `config system global\n    set snapshot-interval ${interval}\nend\n`;

const key = (s: SessionView) => `${s.orig_tuple.proto} ${s.orig_tuple.sport}->${s.orig_tuple.dport}`;

for (const { interval, from } of [{ interval: 1, from: 'the periodic snapshot' }, { interval: 3600, from: 'the journal alone' }]) {
  t.test(`after a SIGKILL the table comes back from ${from} (snapshot-interval ${interval})`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-journal-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    await withTopology(t, async (topo) => {
      await startUdpEcho(topo, { port: 7007 });
      const iperf = await iperf3Server(topo);
      t.teardown(() => iperf.stop());
      const ftp = await startVsftpd(topo);
      t.teardown(() => ftp.stop());
      const first = await startDaemon(topo, config(interval), { dir });

      t.equal((await udpExchange(topo, { count: 3, sport: 40900, port: 7007 })).received, 3, 'a UDP flow');
      const stream = iperf3Client(topo, { seconds: 12, tcpBitrate: '5M' });
      const ctl = topo.spawn('client', [process.execPath, fixturePath('ftp-control.mjs'), topo.addr.server.v4, '21'], { stdin: true });
      t.teardown(() => { ctl.child.stdin?.end('close\n'); });
      await ctl.waitForLine(/"reply":"220/);
      for (const cmd of ['USER anonymous', 'PASS x', 'PASV']) ctl.child.stdin!.write(`send ${cmd}\n`);
      const port = (JSON.parse(await ctl.waitForLine(/"reply":"227/)) as { pasv: { port: number } }).pasv.port;

      const before = await eventually(async () => {
        const s = (await first.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
        return s.some((x) => x.orig_tuple.dport === 5201 && x.offloaded) && s.some((x) => x.orig_tuple.dport === 7007) ? s : undefined;
      });
      t.ok(before, 'UDP, TCP and the FTP control connection are sessions');
      const exp0 = (await first.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      t.match(exp0, [{ tuple: { dport: port } }], 'the PASV expectation is pending');
      // At least one flush (every second) after the last of them started.
      await new Promise((r) => setTimeout(r, 1500));
      const stat = await first.json<Stat>('diagnose', 'sys', 'session', 'stat');
      t.ok((stat.journal?.flushes ?? 0) >= 1 && (stat.journal?.records ?? 0) >= before!.length, `the journal was flushed: ${JSON.stringify(stat.journal)}`);
      first.proc.child.kill('SIGKILL');
      await first.proc.exited;

      const d = await startDaemon(topo, config(interval), { dir });
      t.teardown(() => d.stop());
      const restored = /\{[^\n]*"msg":"table restored from snapshot"\}/.exec(d.proc.stdout());
      t.ok(restored, 'restored at start');
      const log = JSON.parse(restored![0]) as { crash: boolean; journalApplied: number; journalDropped: number; sessions: number; expectations: number };
      t.match(log, { crash: true, journalDropped: 0, expectations: 1 }, 'a crash restore with the expectation');
      if (interval === 3600) t.ok(log.journalApplied >= before!.length, `every session came from journal records: ${log.journalApplied} applied`);

      const after = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
      const now = new Map(after.map((s) => [key(s), s]));
      for (const s of before!) {
        t.match(now.get(key(s)), { serial: s.serial, policy_id: 43, orig_tuple: s.orig_tuple }, `${key(s)}: serial ${s.serial} and policy 43 again`);
      }
      t.match(now.get(`6 ${before!.find((x) => x.orig_tuple.dport === 21)!.orig_tuple.sport}->21`), { helper: 'ftp' }, 'the control session has its helper');
      const exp1 = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      t.match(exp1, [{ id: exp0[0].id, serial: exp0[0].serial, policy_id: 43, tuple: { dport: port } }], 'the expectation is back');
      const set = (await topo.execOk('router', ['nft', 'list', 'set', 'inet', 'nfsessiond', 'pinholes4'])).stdout;
      t.match(set, new RegExp(`\\. tcp \\. ${port} `), 'with its kernel pinhole');

      ctl.child.stdin!.write('data LIST\n');
      const listing = JSON.parse(await ctl.waitForLine(/"data":/)) as { data: number };
      t.ok(listing.data > 0, `the data connection announced before the crash succeeds: ${listing.data} bytes`);
      const r = await stream;
      t.ok(Number(r.json.end.sum_received.bytes) > 0, 'the TCP stream ran to its end without a reset');
    });
  });
}

t.test('a corrupt journal tail is reported with its count and offset; the records before it are restored', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-journal-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await withTopology(t, async (topo) => {
    await startUdpEcho(topo, { port: 7007 });
    const first = await startDaemon(topo, config(3600), { dir });
    t.equal((await udpExchange(topo, { count: 2, sport: 40910, port: 7007 })).received, 2);
    const flushed = await eventually(async () => ((await first.json<Stat>('diagnose', 'sys', 'session', 'stat')).journal?.records ? true : undefined));
    t.ok(flushed, 'the session is in the journal');
    first.proc.child.kill('SIGKILL');
    await first.proc.exited;
    const path = join(dir, 'sessions.journal');
    const good = readFileSync(path);
    // A record whose checksum does not match, and one after it.
    writeFileSync(path, Buffer.concat([good, Buffer.from('00000000 99 {"t":"end","serial":1}\n00000000 100 {"t":"serial","next":50}\n')]));

    const d = await startDaemon(topo, config(3600), { dir });
    t.teardown(() => d.stop());
    t.match(d.proc.stdout(), new RegExp(`"dropped":2,"offset":${good.length},"reason":"line \\d+: checksum mismatch","replayed":1,"msg":"table journal: replayed up to a torn or corrupt record`));
    const after = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    t.match(after, [{ serial: 1, policy_id: 43, orig_tuple: { sport: 40910, dport: 7007 } }], 'the session before the bad record is back');
    t.match((await d.json<Stat>('diagnose', 'sys', 'session', 'stat')).journal, { replayed: 1, dropped: 2 });
  });
});
