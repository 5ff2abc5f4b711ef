// The systemd notify protocol of the real daemon, against a NOTIFY_SOCKET this test listens on:
// a python3 AF_UNIX SOCK_DGRAM socket with an abstract name, in the router namespace where the
// daemon runs (abstract sockets belong to a network namespace). READY=1 only once the ruleset is
// installed, STATUS= with the session count, WATCHDOG=1 from the event loop, RELOADING=1/READY=1
// around SIGHUP (also for a refused file), STOPPING=1 on SIGTERM; $STATE_DIRECTORY is used.

import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { withTopology, type NsProcess } from '../../src/topology/netns.js';
import { startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import { CLI, eventually, requireBuild } from '../lib/daemon.js';

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

// Prints {"listening":true}, then one JSON line per datagram: {"msg":"READY=1\nSTATUS=..."}.
const LISTENER = `
import json, socket, sys
name = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(('\\0' + name[1:]) if name.startswith('@') else name)
print(json.dumps({"listening": True}), flush=True)
while True:
    print(json.dumps({"msg": s.recv(65536).decode()}), flush=True)
`;

const CONFIG = `
config system nfsessiond
    set kernel-sync-interval 1
    set metrics disable
end
`;

/** Datagrams received so far, parsed into KEY=value maps. */
function messages(listener: NsProcess): Array<Record<string, string>> {
  return listener.stdout().split('\n').filter((l) => l.startsWith('{"msg"')).map((l) => {
    const text = (JSON.parse(l) as { msg: string }).msg;
    return Object.fromEntries(text.split('\n').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  });
}

const after = <T>(list: T[], from: number, f: (x: T) => boolean): T | undefined => list.slice(from).find(f);

t.test('Type=notify protocol: READY after the ruleset, STATUS, WATCHDOG, RELOADING, STOPPING', async (t) => {
  requireBuild();
  await withTopology(t, async (topo) => {
    const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-notify-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const configPath = join(dir, 'nfsessiond.conf');
    writeFileSync(configPath, CONFIG);
    const stateDir = join(dir, 'state');
    const sockName = `@nfsessiond-notify-${process.pid}`;

    const listener = topo.spawn('router', [PYTHON, '-c', LISTENER, sockName]);
    await listener.waitForLine(/"listening": true/, { timeoutMs: 10_000 });
    await startUdpEcho(topo);

    const env = { ...process.env, NOTIFY_SOCKET: sockName, WATCHDOG_USEC: '400000', STATE_DIRECTORY: stateDir };
    const daemon = topo.spawn('router', [process.execPath, CLI, 'run', '--config', configPath, '--control', join(dir, 'control.sock')], { env });
    t.teardown(() => daemon.kill('SIGTERM', 10_000));

    await listener.waitForLine(/READY=1/, { timeoutMs: 20_000 });
    // READY=1 came only once the rules were in: they are there now, and the log said ready first.
    const xt = (await topo.exec('router', ['iptables-save'])).stdout;
    t.match(xt, /-A FORWARD .*-j NFSESSIOND/, 'ruleset installed when READY=1 arrives');
    t.match(daemon.stdout(), /"msg":"ready"/);
    const readyLog = JSON.parse(daemon.stdout().split('\n').find((l) => l.includes('"msg":"ready"'))!) as { stateDir: string };
    t.equal(readyLog.stateDir, stateDir, 'state directory from $STATE_DIRECTORY');
    t.match(daemon.stdout(), /"msg":"systemd notify socket found"/);

    const first = messages(listener);
    const ready = first.find((m) => m.READY === '1')!;
    t.match(ready.STATUS, /^0 sessions, setup rate 0\/s, conserve mode off$/);
    t.equal(Number(ready.MAINPID), daemon.pid, 'MAINPID is the daemon (ip netns exec execs it)');
    t.equal(first.indexOf(ready), 0, 'nothing before READY=1');

    // Watchdog pings keep coming from the event loop.
    const pings = await eventually(async () => (messages(listener).filter((m) => m.WATCHDOG === '1').length >= 3 ? true : undefined), 10_000, 100);
    t.ok(pings, 'WATCHDOG=1 every half period');

    // STATUS follows the table.
    const udp = await udpExchange(topo, { count: 3, sport: 40200 });
    t.same([udp.sent, udp.received], [3, 3]);
    const status = await eventually(async () => messages(listener).find((m) => /^1 sessions?,/.test(m.STATUS ?? '')), 10_000, 100);
    t.ok(status, 'STATUS=1 sessions... after a UDP flow');

    // SIGHUP: RELOADING=1 then READY=1 again, with a good file and with a refused one.
    let mark = messages(listener).length;
    daemon.child.kill('SIGHUP');
    const reloaded = await eventually(async () => {
      const ms = messages(listener);
      const r = ms.slice(mark).findIndex((m) => m.RELOADING === '1');
      return r >= 0 && after(ms, mark + r, (m) => m.READY === '1') ? ms.slice(mark) : undefined;
    }, 10_000, 100);
    t.ok(reloaded, 'RELOADING=1 then READY=1');
    t.match(reloaded?.find((m) => m.RELOADING === '1')?.MONOTONIC_USEC, /^\d+$/);

    writeFileSync(configPath, 'config system nfsessiond\n    set queue-num banana\nend\n');
    mark = messages(listener).length;
    daemon.child.kill('SIGHUP');
    const refused = await eventually(async () => {
      const ms = messages(listener).slice(mark);
      return ms.some((m) => m.RELOADING === '1') && ms.some((m) => m.READY === '1') ? true : undefined;
    }, 10_000, 100);
    t.ok(refused, 'a refused file still ends the reload with READY=1 (the running config stays)');
    t.match(daemon.stdout(), /config reload rejected/);

    // SIGTERM: STOPPING=1, clean exit, rules gone.
    daemon.child.kill('SIGTERM');
    const exit = await daemon.exited;
    t.equal(exit.code, 0);
    t.ok(messages(listener).some((m) => m.STOPPING === '1'), 'STOPPING=1');
    t.notMatch((await topo.exec('router', ['iptables-save'])).stdout, /NFSESSIOND/);
  });
});

t.test('--state-dir wins over $STATE_DIRECTORY; no NOTIFY_SOCKET means no notifications', async (t) => {
  requireBuild();
  await withTopology(t, async (topo) => {
    const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-statedir-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const configPath = join(dir, 'nfsessiond.conf');
    writeFileSync(configPath, CONFIG);
    const env: NodeJS.ProcessEnv = { ...process.env, STATE_DIRECTORY: join(dir, 'from-env') };
    delete env.NOTIFY_SOCKET;
    const daemon = topo.spawn('router', [process.execPath, CLI, 'run', '--config', configPath, '--control', join(dir, 'c.sock'), '--state-dir', join(dir, 'from-option')], { env });
    t.teardown(() => daemon.kill('SIGTERM', 10_000));
    const line = await daemon.waitForLine(/"msg":"ready"/, { timeoutMs: 20_000 });
    t.equal((JSON.parse(line) as { stateDir: string }).stateDir, join(dir, 'from-option'));
    t.notMatch(daemon.stdout(), /notify socket/);
    daemon.child.kill('SIGTERM');
    t.equal((await daemon.exited).code, 0);
  });
});
