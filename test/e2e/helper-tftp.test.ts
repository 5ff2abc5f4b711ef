// The TFTP helper with real peers: tftpd-hpa (in.tftpd) in the server namespace, the tftp-hpa
// client in the client namespace, the daemon on the router with a policy that allows only the
// control channel (client -> server udp/69). The server answers every request from a new port:
// that flow gets through only because the helper expected it. With the helper deleted
// (`config system session-helper` / `delete 5`), a get fails.

import { mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import { DEFAULT_HELPER_BINDINGS } from '../../src/helpers/registry.js';
import { eventually, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';

const TFTP_ID = DEFAULT_HELPER_BINDINGS.find((b) => b.name === 'tftp' && b.proto === 17 && b.port === 69)!.id;

const CONFIG = (extra = '') => controlOnlyConfig({ policyId: 69, service: 'tftp-control', udp: '69', extra });

interface Sessions { sessions: SessionView[] }
interface Expectations { expectations: ExpectationView[] }

/** in.tftpd in the foreground, serving (and accepting new files into) a fresh directory. */
async function startTftpd(topo: Topology, files: Record<string, Buffer>, addr = topo.addr.server.v4) {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-tftp-'));
  chmodSync(dir, 0o777);
  for (const [name, data] of Object.entries(files)) writeFileSync(join(dir, name), data);
  const bind = addr.includes(':') ? `[${addr}]:69` : `${addr}:69`;
  const proc = topo.spawn('server', ['in.tftpd', '-L', '-c', '-p', '-u', 'root', '-s', dir, '-a', bind]);
  const bound = await eventually(async () => {
    const r = await topo.exec('server', ['ss', '-lunH', 'sport', '=', ':69']);
    return r.stdout.includes(addr) ? true : undefined;
  }, 5000, 50);
  if (!bound) throw new Error(`in.tftpd did not bind ${bind}: ${proc.stderr()}`);
  return { dir, stop: async () => { await proc.kill('SIGTERM'); rmSync(dir, { recursive: true, force: true }); } };
}

/** One tftp-hpa command (get/put) with a short retransmission budget; resolves with its output. */
async function tftp(topo: Topology, server: string, command: string, timeoutS = 4) {
  const script = `mode octet\ntimeout ${timeoutS}\n${command}\nquit\n`;
  const r = await topo.exec('client', ['tftp', server.includes(':') ? '-6' : '-4', server], { input: script, timeoutMs: (timeoutS + 10) * 1000 });
  return `${r.stdout}${r.stderr}`;
}

const payload = (n: number) => { const b = Buffer.alloc(n); for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff; return b; };

t.test('TFTP get and put through the helper, IPv4 and IPv6; the transfers are children of the control session', async (t) => {
  await withTopology(t, async (topo) => {
    const file = payload(100_000);
    const srv = await startTftpd(topo, { 'file.bin': file });
    t.teardown(() => srv.stop());
    const srv6 = await startTftpd(topo, { 'file6.bin': file }, topo.addr.server.v6);
    t.teardown(() => srv6.stop());
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const work = mkdtempSync(join(tmpdir(), 'nfsessiond-tftp-client-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));

    let out = await tftp(topo, topo.addr.server.v4, `get file.bin ${join(work, 'got.bin')}`);
    t.same(readFileSync(join(work, 'got.bin')), file, `get: the file arrived intact (${out.trim()})`);
    writeFileSync(join(work, 'up.bin'), payload(40_000));
    out = await tftp(topo, topo.addr.server.v4, `put ${join(work, 'up.bin')} up.bin`);
    t.same(readFileSync(join(srv.dir, 'up.bin')), payload(40_000), `put: the upload arrived intact (${out.trim()})`);
    out = await tftp(topo, topo.addr.server.v6, `get file6.bin ${join(work, 'got6.bin')}`);
    t.same(readFileSync(join(work, 'got6.bin')), file, `IPv6 get (${out.trim()})`);

    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    const controls = sessions.filter((s) => s.orig_tuple.dport === 69);
    t.equal(controls.length, 3);
    t.ok(controls.every((s) => s.helper === 'tftp' && s.policy_id === 69));
    const children = sessions.filter((s) => s.parent !== undefined);
    t.equal(children.length, 3, 'one data flow per request');
    for (const c of children) {
      const parent = controls.find((p) => p.serial === c.parent)!;
      t.ok(parent, 'the child names its control session');
      t.match(c, { policy_id: 69, inherited_serial: parent.serial, expected: { helper: 'tftp', kind: 'tftp-data' } });
      t.match(c.orig_tuple, { src: parent.orig_tuple.dst, dst: parent.orig_tuple.src, dport: parent.orig_tuple.sport });
      t.not(c.orig_tuple.sport, 69, 'from the server\'s new port');
    }
    t.same((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations, [], 'every expectation was used');
  });
});

t.test('the expectation list after a request, and after its control session is cleared', async (t) => {
  await withTopology(t, async (topo) => {
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    // A read request nobody answers (no server yet): the expectation waits.
    const rrq = Buffer.concat([Buffer.from([0, 1]), Buffer.from('nothing.bin\0octet\0')]).toString('base64');
    const send = `const s=require('node:dgram').createSocket('udp4');s.bind(40069,()=>s.send(Buffer.from('${rrq}','base64'),69,'${topo.addr.server.v4}',()=>s.close()));`;
    await topo.execOk('client', [process.execPath, '-e', send]);
    const exps = await eventually(async () => {
      const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      return e.length ? e : undefined;
    });
    const control = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === 69)!;
    t.match(control, { helper: 'tftp', policy_id: 69 });
    t.equal(exps?.length, 1);
    t.match(exps![0], {
      helper: 'tftp', kind: 'tftp-data', proto: 17, policy_id: 69, serial: control.serial, parent: control.serial,
      tracks_parent: false, lifetime: 30, timeout: control.timeout,
      tuple: { family: 4, proto: 17, src: topo.addr.server.v4, sport: 0, dst: topo.addr.client.v4, dport: 40069 },
    });
    t.ok(exps![0].expire > 0 && exps![0].expire <= 30, `expire counts down from 30: ${exps![0].expire}`);
    const set = (await topo.execOk('router', ['nft', 'list', 'set', 'inet', 'nfsessiond', 'pinholes4'])).stdout;
    t.match(set, new RegExp(`${topo.addr.server.v4} \\. ${topo.addr.client.v4} \\. udp \\. 40069 timeout 30s`), 'the pinhole is in the kernel');

    await d.cli('diagnose', 'sys', 'session', 'filter', 'dport', '69');
    t.same(await d.json('diagnose', 'sys', 'session', 'clear'), { cleared: 1 });
    await d.cli('diagnose', 'sys', 'session', 'filter', 'clear');
    t.same((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations, [], 'the expectation ended with its parent');
  });
});

t.test(`with the tftp helper deleted (delete ${TFTP_ID}), a get fails`, async (t) => {
  await withTopology(t, async (topo) => {
    const srv = await startTftpd(topo, { 'file.bin': payload(10_000) });
    t.teardown(() => srv.stop());
    const d = await startDaemon(topo, CONFIG(`config system session-helper\n    delete ${TFTP_ID}\nend\n`));
    t.teardown(() => d.stop());
    const work = mkdtempSync(join(tmpdir(), 'nfsessiond-tftp-client-'));
    t.teardown(() => rmSync(work, { recursive: true, force: true }));
    const out = await tftp(topo, topo.addr.server.v4, `get file.bin ${join(work, 'got.bin')}`, 3);
    t.match(out, /timed out/i, `the client gives up: ${out.trim()}`);
    let got = Buffer.alloc(0);
    try { got = readFileSync(join(work, 'got.bin')); } catch { /* not created */ }
    t.equal(got.length, 0, 'nothing arrived');
    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    t.ok(sessions.some((s) => s.orig_tuple.dport === 69 && s.helper === undefined), 'the control session ran, without a helper');
    t.notOk(sessions.some((s) => s.parent !== undefined), 'no child');
    const denied = /policy_deny=([0-9a-f]+)/.exec(await d.cli('diagnose', 'sys', 'session', 'stat'));
    t.ok(denied && parseInt(denied[1], 16) > 0, 'the server\'s reply met the implicit deny');
  });
});
