// The FTP helper with real peers: vsftpd in the server namespace, curl and a scripted control
// connection in the client namespace, the daemon on the router with a policy that allows only
// the control channel (client -> server tcp/21). Every data connection, passive or active, IPv4
// or IPv6, gets through only because the helper expected it; with the helper deleted, passive
// transfers fail.

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology } from '../../src/topology/netns.js';
import { fixturePath } from '../../src/topology/peers.js';
import { ftpTransfer, startVsftpd } from '../../src/topology/ftp.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import { eventually, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';
import type { LogDisplay } from '../../src/log/display.js';

const CONFIG = (extra = '') => controlOnlyConfig({ policyId: 21, service: 'ftp-control', tcp: '21', extra });

interface Sessions { sessions: SessionView[] }
interface Expectations { expectations: ExpectationView[] }

t.test('FTP through the helper: passive and active, IPv4 and IPv6, uploads; pinholes in the kernel', async (t) => {
  await withTopology(t, async (topo) => {
    const ftp = await startVsftpd(topo, { files: { 'file.bin': 200_000 } });
    t.teardown(() => ftp.stop());
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const v4 = (p: string) => ftp.url(p);
    const v6 = (p: string) => ftp.url(p, topo.addr.server.v6);

    t.equal((await ftpTransfer(topo, v4('file.bin'), { rfc959: true })).bytes, 200_000, 'passive PASV');
    t.equal((await ftpTransfer(topo, v4('file.bin'))).bytes, 200_000, 'passive EPSV');
    t.equal((await ftpTransfer(topo, v4('file.bin'), { active: true, rfc959: true })).bytes, 200_000, 'active PORT');
    t.equal((await ftpTransfer(topo, v4('file.bin'), { active: true })).bytes, 200_000, 'active EPRT');
    t.equal((await ftpTransfer(topo, v6('file.bin'))).bytes, 200_000, 'IPv6 passive EPSV');
    t.equal((await ftpTransfer(topo, v6('file.bin'), { active: true })).bytes, 200_000, 'IPv6 active EPRT');

    const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-ftp-up-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const up = join(dir, 'up.bin');
    writeFileSync(up, Buffer.alloc(50_000, 7));
    t.equal((await ftpTransfer(topo, v4('upload/up.bin'), { upload: up })).bytes, 50_000, 'passive upload');
    t.same(readFileSync(join(ftp.uploads, 'up.bin')), readFileSync(up), 'the upload arrived intact');

    // The data connections hit the kernel pinhole set (the rule before the queue counts them).
    const chain = (await topo.execOk('router', ['nft', 'list', 'chain', 'inet', 'nfsessiond', 'forward'])).stdout;
    const pinholed = /@pinholes4 counter packets (\d+)/.exec(chain);
    t.ok(pinholed && Number(pinholed[1]) > 0, `IPv4 data connections went through kernel pinholes: ${pinholed?.[0]}`);
    const pinholed6 = /@pinholes6 counter packets (\d+)/.exec(chain);
    t.ok(pinholed6 && Number(pinholed6[1]) > 0, `IPv6 too: ${pinholed6?.[0]}`);
    const stat = await d.cli('diagnose', 'sys', 'session', 'stat');
    t.match(stat, /exp_count=0/, 'every expectation was used');
  });
});

t.test('the expectation list during a transfer, the child session, and the parent closing', async (t) => {
  await withTopology(t, async (topo) => {
    const ftp = await startVsftpd(topo);
    t.teardown(() => ftp.stop());
    // The LIST data connection closes right after its transfer: a TIME_WAIT of 8 s keeps its
    // session listed long enough to be read on a loaded machine, and the parent still ends
    // well within the wait below once the control connection closes.
    const d = await startDaemon(topo, CONFIG('config system global\n    set tcp-timewait-timer 8\nend\n'));
    t.teardown(() => d.stop());
    const ctl = topo.spawn('client', [process.execPath, fixturePath('ftp-control.mjs'), topo.addr.server.v4, '21'], { stdin: true });
    let seen = 0;
    const step = async (line: string) => {
      ctl.child.stdin!.write(`${line}\n`);
      seen++;
      const out = await ctl.waitForLine((l) => l.startsWith('{') && ctl.stdout().split('\n').filter((x) => x.startsWith('{')).length > seen, { timeoutMs: 15_000 });
      return JSON.parse(ctl.stdout().split('\n').filter((x) => x.startsWith('{'))[seen]) as { reply: string; pasv?: { host: string; port: number }; data?: number };
      void out;
    };
    await ctl.waitForLine(/"reply":"220/);
    await step('send USER anonymous');
    await step('send PASS x');
    const pasv = await step('send PASV');
    t.match(pasv.reply, /^227 /);
    const port = pasv.pasv!.port;

    const control = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === 21)!;
    t.equal(control.helper, 'ftp');
    t.equal(control.policy_id, 21);
    const exps = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
    t.equal(exps.length, 1);
    t.match(exps[0], {
      helper: 'ftp', kind: 'ftp-data', proto: 6, policy_id: 21, serial: control.serial, parent: control.serial, tracks_parent: false,
      lifetime: 30, timeout: control.timeout,
      tuple: { family: 4, src: topo.addr.client.v4, sport: 0, dst: topo.addr.server.v4, dport: port },
    });
    t.ok(exps[0].expire > 0 && exps[0].expire <= 30, `expire counts down from 30: ${exps[0].expire}`);
    const text = await d.cli('diagnose', 'sys', 'session', 'list', 'expectation');
    t.match(text, new RegExp(`hook=pre dir=org act=noop ${topo.addr.client.v4.replace(/\./g, '\\.')}:0->${topo.addr.server.v4.replace(/\./g, '\\.')}:${port}\\(0\\.0\\.0\\.0:0\\)`));
    t.match(text, new RegExp(`misc=0 policy_id=21 id_policy_id=0 .*\\nserial=${control.serial.toString(16).padStart(8, '0')} `));
    const set = (await topo.execOk('router', ['nft', 'list', 'set', 'inet', 'nfsessiond', 'pinholes4'])).stdout;
    t.match(set, new RegExp(`${topo.addr.client.v4} \\. ${topo.addr.server.v4} \\. tcp \\. ${port} timeout 30s`), 'the pinhole is in the kernel with the same timeout');

    const listing = await step('data LIST');
    t.ok((listing.data ?? -1) > 0, `LIST over the expected data connection: ${listing.data} bytes`);
    const child = await eventually(async () => (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === port));
    t.match(child, { parent: control.serial, inherited_serial: control.serial, policy_id: 21, expected: { helper: 'ftp', kind: 'ftp-data' } });
    t.same((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations, [], 'used up');
    const gone = await eventually(async () => {
      const s = (await topo.execOk('router', ['nft', 'list', 'set', 'inet', 'nfsessiond', 'pinholes4'])).stdout;
      return s.includes(`. ${port}`) ? undefined : s;
    });
    t.ok(gone, 'and its kernel pinhole closed');

    // A second PASV, then the control connection closes before any data connection.
    const again = await step('send PASV');
    t.match(again.reply, /^227 /);
    t.equal((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations.length, 1);
    ctl.child.stdin!.write('close\n');
    const empty = await eventually(async () => {
      const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      return e.length === 0 ? e : undefined;
    }, 20_000);
    t.same(empty, [], 'the expectation ended with its parent');
  });
});

t.test('with the ftp helper deleted, passive data connections need a policy and fail', async (t) => {
  await withTopology(t, async (topo) => {
    const ftp = await startVsftpd(topo);
    t.teardown(() => ftp.stop());
    const d = await startDaemon(topo, CONFIG('config system session-helper\n    delete 9\nend\n'));
    t.teardown(() => d.stop());
    const r = await ftpTransfer(topo, ftp.url('file.bin'), { rfc959: true, timeoutMs: 12_000 });
    t.equal(r.bytes, 0, 'no data connection');
    t.not(r.exitCode, 0, `curl fails: ${r.stderr.trim()}`);
    // Offloaded at its first packet (no helper reads it), the control session may already be
    // over when curl gives up: then its traffic record tells what it carried.
    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    const live = sessions.find((s) => s.orig_tuple.dport === 21);
    const logged = (await d.json<LogDisplay>('execute', 'log', 'display')).records.find((r) => r.dstport === 21 && r.action !== 'start');
    t.ok(live ? live.helper === undefined && live.org.packets > 3 : (logged?.sentpkt ?? 0) > 3,
      `the control session ran, without a helper: ${live ? `live, ${live.org.packets} packets` : `closed, ${logged?.sentpkt} packets`}`);
    const denied = /policy_deny=([0-9a-f]+)/.exec(await d.cli('diagnose', 'sys', 'session', 'stat'));
    t.ok(denied && parseInt(denied[1], 16) > 0, 'the data connection met the implicit deny');
  });
});
