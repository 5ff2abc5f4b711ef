// Session limit, conserve mode and av-failopen on real connections: the daemon on the router of a
// client/router/server topology with `resource-limits session 2`, two long-lived TCP connections
// filling the table, and for each av-failopen mode what a third connection gets:
//   off      refused, the two existing ones keep working; room again after one closes
//   pass     let through uninspected (not counted, offloaded to the kernel); tracked again once
//            room frees
//   one-shot let through, and the next ones too even with room, until `diagnose sys conserve reset`
// Each connect attempt waits 700 ms, under the first SYN retransmission (1 s), so each refused
// attempt is exactly one SYN and every count below is exact.

import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { withTopology, type NsProcess, type Topology } from '../../src/topology/netns.js';
import { waitForTcpListen } from '../../src/topology/peers.js';
import type { StatView } from '../../src/control/format.js';
import type { ProxyWorkerView, UserView } from '../../src/control/limits-format.js';
import type { ConserveView } from '../../src/engine/admission.js';
import type { SessionView } from '../../src/control/session-view.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';

const HOLD = fileURLToPath(new URL('../lib/tcp-hold.mjs', import.meta.url));
const PORT = 8080;

const config = (mode: string) => `
config system nfsessiond
    set kernel-sync-interval 1
end
config system global
    set av-failopen-session enable
    set av-failopen ${mode}
end
config system resource-limits
    set session 2
end
config system session-accounting
    set http-port ${PORT}
end
`;

/** Drives the tcp-hold client in the client namespace through its unix socket. */
class Holder {
  private buf = '';
  private waiting = new Map<string, (v: Record<string, unknown>) => void>();
  private constructor(readonly proc: NsProcess, private readonly sock: net.Socket) {
    sock.on('data', (d) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(this.buf.slice(0, i)) as Record<string, unknown>;
        this.buf = this.buf.slice(i + 1);
        const k = `${m.id}:${Object.keys(m).find((x) => x !== 'id' && x !== 'sport')}`;
        this.waiting.get(k)?.(m);
        this.waiting.delete(k);
      }
    });
  }

  static async start(topo: Topology, dir: string): Promise<Holder> {
    const ctl = join(dir, 'hold.sock');
    const proc = topo.spawn('client', [process.execPath, HOLD, 'client', '--ctl', ctl, '--host', topo.addr.server.v4, '--port', String(PORT)]);
    await proc.waitForLine(/"ready":true/, { timeoutMs: 10_000 });
    const sock = net.connect(ctl);
    await new Promise<void>((resolve, reject) => { sock.once('connect', resolve); sock.once('error', reject); });
    return new Holder(proc, sock);
  }

  private cmd(op: string, id: number, key: string): Promise<Record<string, unknown>> {
    return new Promise((resolve) => {
      this.waiting.set(`${id}:${key}`, resolve);
      this.sock.write(`${JSON.stringify({ op, id })}\n`);
    });
  }

  async open(id: number): Promise<{ open: boolean; sport?: number }> { return (await this.cmd('open', id, 'open')) as { open: boolean; sport?: number }; }
  async echo(id: number): Promise<boolean> { return (await this.cmd('echo', id, 'echo')).echo === true; }
  async close(id: number): Promise<void> { await this.cmd('close', id, 'closed'); }
  end(): void { this.sock.destroy(); }
}

interface ListJson { sessions: SessionView[]; total: number }

const stat = (d: RunningDaemon) => d.json<StatView>('diagnose', 'sys', 'session', 'stat');
const sports = async (d: RunningDaemon) => (await d.json<ListJson>('diagnose', 'sys', 'session', 'list')).sessions.map((s) => s.orig_tuple.sport).sort((a, b) => a - b);

/** Waits until the table holds `n` sessions and conserve mode is `mode`. */
async function settled(d: RunningDaemon, n: number, mode: 'on' | 'off'): Promise<StatView | undefined> {
  return eventually(async () => {
    const s = await stat(d);
    return s.session_count === n && s.conserve?.mode === mode ? s : undefined;
  }, 15_000);
}

async function kernelMark(topo: Topology, sport: number): Promise<string> {
  return (await topo.exec('router', ['conntrack', '-L', '-p', 'tcp', '--sport', String(sport)])).stdout;
}

t.test('session limit 2 with av-failopen off, pass and one-shot on real connections', async (t) => {
  await withTopology(t, async (topo) => {
    const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-limits-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const server = topo.spawn('server', [process.execPath, HOLD, 'server', '--port', String(PORT)]);
    await server.waitForLine(/"listening":true/, { timeoutMs: 10_000 });
    await waitForTcpListen(topo, 'server', PORT);
    const h = await Holder.start(topo, dir);
    t.teardown(() => h.end());
    let id = 0;

    t.test('off: the third connection is refused, the two existing ones keep working', async (t) => {
      const d = await startDaemon(topo, config('off'));
      t.teardown(async () => { await d.stop(); });
      const a = ++id, b = ++id, c = ++id, e = ++id;
      t.same((await h.open(a)).open, true);
      t.same((await h.open(b)).open, true);
      t.equal((await stat(d)).session_count, 2);
      t.equal((await h.open(c)).open, false, 'refused: the table is full');
      t.equal(await h.echo(a), true, 'existing connection a still works');
      t.equal(await h.echo(b), true, 'existing connection b still works');
      const s = await stat(d);
      t.equal(s.session_count, 2);
      t.same([s.counters.limit_drop, s.counters.failopen_bypass, s.counters.table_full], [1, 0, 1]);
      t.same(s.conserve && [s.conserve.mode, s.conserve.reasons, s.conserve.failopen, s.conserve.enter], ['on', ['session'], 'off', 1]);
      const pw = await d.json<ProxyWorkerView>('diagnose', 'test', 'proxyworker', '4');
      t.same([pw.services.HTTP.current, pw.services.HTTP.peak, pw.services.HTTP.setupOk, pw.services.HTTP.setupFail, pw.services.HTTP.max], [2, 2, 2, 1, 2]);
      const text = await d.cli('diagnose', 'test', 'proxyworker', '4');
      t.match(text, /^HTTP Common\nCurrent Connections 2\/2\nMax Concurrent Connections 2$/m);
      t.match(text, /^HTTP Accounting\nsetup_ok=2 setup_fail=1 conn_ok=0 conn_inp=0$/m);
      t.match(await d.cli('diagnose', 'sys', 'session', 'stat'), /^conserve: mode=on memory=[\d.]+% reasons=session failopen=off enter=1 leave=0 bypass_flows=0$/m);

      await h.close(a);
      const after = await settled(d, 1, 'off');
      t.ok(after, 'a closed: one session left and conserve mode left');
      t.equal((await h.open(e)).open, true, 'room again: a new connection is accepted');
      t.equal((await stat(d)).session_count, 2);
      t.equal((await d.json<ProxyWorkerView>('diagnose', 'test', 'proxyworker', '4')).services.HTTP.setupOk, 3);
      t.match(d.proc.stdout(), /"event":"enter".*"msg":"entering conserve mode"/);
      t.match(d.proc.stdout(), /"event":"leave".*"msg":"leaving conserve mode"/);

      // One user (the client's address) with its two live sessions.
      const users = await d.json<{ users: UserView[]; total: number }>('diagnose', 'user', 'list');
      t.same(users.users.map((u) => [u.vdom, u.ip, u.sessions, u.policy_id]), [['root', topo.addr.client.v4, 2, 1]]);
      t.match(await d.cli('diagnose', 'user', 'list'), new RegExp(`^ID: 1, VDOM: root, IPv4: ${topo.addr.client.v4.replace(/\./g, '\\.')}\\n  user name   : `, 'm'));
      t.match(await d.cli('diagnose', 'user', 'clear', topo.addr.client.v4), /^cleared 1 user\(s\)$/m);
      await h.close(b);
      await h.close(e);
    });

    t.test('pass: the third connection goes through uninspected; counting resumes when room frees', async (t) => {
      const d = await startDaemon(topo, config('pass'));
      t.teardown(async () => { await d.stop(); });
      const a = ++id, b = ++id, c = ++id, e = ++id;
      t.same((await h.open(a)).open, true);
      t.same((await h.open(b)).open, true);
      const oc = await h.open(c);
      t.equal(oc.open, true, 'let through although the table is full');
      t.equal(await h.echo(c), true, 'and it carries data');
      let s = await stat(d);
      t.equal(s.session_count, 2, 'not in the table');
      t.same([s.counters.limit_drop, s.counters.failopen_bypass], [0, 1]);
      const marked = await eventually(async () => ((await kernelMark(topo, oc.sport!)).includes('mark=1048576') ? true : undefined), 5000);
      t.ok(marked, 'its kernel conntrack entry carries the offload mark: the kernel handles it');
      const pw = await d.json<ProxyWorkerView>('diagnose', 'test', 'proxyworker', '4');
      t.same([pw.services.HTTP.current, pw.services.HTTP.setupOk, pw.services.HTTP.setupFail, pw.services.HTTP.bypassed], [2, 2, 0, 1]);

      await h.close(a);
      t.ok(await settled(d, 1, 'off'), 'a closed: conserve mode left');
      const oe = await h.open(e);
      t.equal(oe.open, true);
      s = await stat(d);
      t.equal(s.session_count, 2, 'the new connection is tracked again');
      t.ok((await sports(d)).includes(oe.sport!), 'it is in the session list');
      t.equal(s.counters.failopen_bypass, 1);
      t.equal(await h.echo(c), true, 'the uninspected connection still works');
      const cv = await d.json<ConserveView>('diagnose', 'sys', 'conserve');
      t.same([cv.enter, cv.leave, cv.bypassed, cv.one_shot_latched], [1, 1, 1, false]);
      for (const x of [b, c, e]) await h.close(x);
    });

    t.test('one-shot: uninspected until the operator resets, even after room frees', async (t) => {
      const d = await startDaemon(topo, config('one-shot'));
      t.teardown(async () => { await d.stop(); });
      const a = ++id, b = ++id, c = ++id, e = ++id, f = ++id;
      t.same((await h.open(a)).open, true);
      t.same((await h.open(b)).open, true);
      t.equal((await h.open(c)).open, true, 'let through uninspected');
      t.equal((await d.json<ConserveView>('diagnose', 'sys', 'conserve')).one_shot_latched, true);
      t.match(d.proc.stdout(), /"event":"one-shot-latched"/);

      await h.close(a);
      t.ok(await settled(d, 1, 'off'), 'a closed: room again, conserve mode left');
      t.equal((await h.open(e)).open, true);
      let s = await stat(d);
      t.same([s.session_count, s.counters.failopen_bypass], [1, 2], 'with room, still not inspected: one-shot stays');
      t.match(await d.cli('diagnose', 'sys', 'conserve'), /^one-shot: latched \(diagnose sys conserve reset\)$/m);

      t.match(await d.cli('diagnose', 'sys', 'conserve', 'reset'), /^one-shot fail-open reset: new sessions are inspected again$/m);
      const of = await h.open(f);
      t.equal(of.open, true);
      s = await stat(d);
      t.same([s.session_count, s.counters.failopen_bypass], [2, 2], 'after the reset new sessions are tracked');
      t.ok((await sports(d)).includes(of.sport!));
      t.equal((await d.json<ConserveView>('diagnose', 'sys', 'conserve')).one_shot_resets, 1);
      for (const x of [b, c, e, f]) t.equal(await h.echo(x), true, `connection ${x} works`);
      for (const x of [b, c, e, f]) await h.close(x);
    });
  });
});
