// The service side without a network: the sd_notify addon against a datagram socket the test
// binds, the notifier's messages, state directory and metrics-listen resolution, the unit
// (systemd-analyze verify and the offline security report on an installed copy), the example
// config, and `nfsessiond install` into temporary roots.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { parseListen } from '../../src/metrics/listen.js';
import { install, installPaths, productionModules, renderUnit } from '../../src/service/install.js';
import { loadNotifyAddon, notifyMessage, readServiceEnv, ServiceNotifier } from '../../src/service/notify.js';
import { resolveStateDir } from '../../src/service/paths.js';
import { CLI, requireBuild } from '../lib/daemon.js';

const ROOT = new URL('../..', import.meta.url).pathname;
const tmp = (t: { teardown(fn: () => unknown): void }, name: string) => {
  const d = mkdtempSync(join(tmpdir(), `nfsessiond-${name}-`));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
};

/** Receives datagrams from an addon-bound socket until `n` arrived or the deadline passed. */
async function receiveAll(fd: number, n: number, timeoutMs = 5000): Promise<string[]> {
  const got: string[] = [];
  const native = loadNotifyAddon();
  const deadline = Date.now() + timeoutMs;
  while (got.length < n && Date.now() < deadline) {
    const m = native.receive(fd, 0);
    if (m === null) await new Promise((r) => setTimeout(r, 20));
    else got.push(m);
  }
  return got;
}

t.test('native notify: abstract and path sockets, errors', async (t) => {
  const native = loadNotifyAddon();
  const abstract = `@nfsessiond-test-${process.pid}-${Date.now()}`;
  const fd = native.listen(abstract);
  t.teardown(() => native.close(fd));
  native.notify(abstract, 'READY=1\nSTATUS=0 sessions');
  native.notify(abstract, 'WATCHDOG=1');
  t.same(await receiveAll(fd, 2), ['READY=1\nSTATUS=0 sessions', 'WATCHDOG=1']);

  const dir = tmp(t, 'notify');
  const path = join(dir, 'notify.sock');
  const pfd = native.listen(path);
  t.teardown(() => native.close(pfd));
  native.notify(path, 'STOPPING=1');
  t.same(await receiveAll(pfd, 1), ['STOPPING=1']);

  t.throws(() => native.notify(join(dir, 'nobody-listens.sock'), 'READY=1'), /No such file or directory/, 'ENOENT for a socket that does not exist');
  t.throws(() => native.notify('@' + 'x'.repeat(200), 'READY=1'), /bad socket name/, 'name longer than sun_path');
  t.throws(() => native.notify('', 'READY=1'), /bad socket name/);
});

t.test('notifier: environment, messages, watchdog and status timers', async (t) => {
  t.same(readServiceEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '2000000' }, 42), { notifySocket: '@x', watchdogUsec: 2000000 });
  t.same(readServiceEnv({ NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '2000000', WATCHDOG_PID: '42' }, 42).watchdogUsec, 2000000);
  t.same(readServiceEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '2000000', WATCHDOG_PID: '7' }, 42), { notifySocket: '@x' }, "another process's watchdog");
  t.same(readServiceEnv({ NOTIFY_SOCKET: 'relative' }, 42), {}, 'only absolute or abstract names');
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '1', WATCHDOG_PID: '42', KEEP: '1' };
  readServiceEnv(env, 42, true);
  t.same(env, { KEEP: '1' }, 'consumed variables are removed (children do not inherit them)');
  t.equal(notifyMessage({ READY: 1, STATUS: 'a\nb' }), 'READY=1\nSTATUS=a b');

  const sent: string[] = [];
  const n = ServiceNotifier.withSender({ notifySocket: '@x', watchdogUsec: 100_000 }, (m) => sent.push(m));
  n.ready('0 sessions');
  t.match(sent[0], /^READY=1\nSTATUS=0 sessions\nMAINPID=\d+$/);
  n.status('0 sessions');
  t.equal(sent.length, 1, 'an unchanged status is not sent again');
  n.reloading();
  t.match(sent[1], /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
  let sessions = 0;
  n.start(() => `${sessions} sessions`);
  sessions = 3;
  const deadline = Date.now() + 5000;
  while (Date.now() < deadline && !(sent.includes('WATCHDOG=1') && sent.includes('STATUS=3 sessions'))) await new Promise((r) => setTimeout(r, 20));
  n.stop();
  t.ok(sent.includes('WATCHDOG=1'), 'watchdog pings from the event loop');
  t.ok(sent.includes('STATUS=3 sessions'), 'status follows the session count');
  n.stopping();
  t.equal(sent.at(-1), 'STOPPING=1\nSTATUS=stopping');

  // A failing socket never throws into the daemon.
  const warned: string[] = [];
  const bad = ServiceNotifier.withSender({ notifySocket: '@x' }, () => { throw new Error('ECONNREFUSED'); }, { warn: (_o, m) => warned.push(m), debug: () => undefined });
  t.equal(bad.notify({ READY: 1 }), false);
  bad.notify({ READY: 1 });
  t.same(warned, ['sd_notify failed'], 'logged once');
});

t.test('state directory and metrics-listen', async (t) => {
  t.same(resolveStateDir('/opt/s', '/c', { STATE_DIRECTORY: '/e' }), { dir: '/opt/s', source: 'option' });
  t.same(resolveStateDir(undefined, '/c', { STATE_DIRECTORY: '/e' }), { dir: '/c', source: 'config' });
  t.same(resolveStateDir(undefined, '', { STATE_DIRECTORY: '/var/lib/nfsessiond:/var/lib/other' }), { dir: '/var/lib/nfsessiond', source: 'environment' });
  t.same(resolveStateDir(undefined, '', {}), { dir: '/var/lib/nfsessiond', source: 'default' });

  t.same(parseListen('127.0.0.1:9469'), { host: '127.0.0.1', port: 9469 });
  t.same(parseListen('[::1]:9469'), { host: '::1', port: 9469 });
  for (const bad of ['localhost:9469', '::1:9469', '127.0.0.1', '127.0.0.1:0', '127.0.0.1:70000', '[127.0.0.1]:1']) {
    t.ok('error' in parseListen(bad), `${bad} is refused`);
  }
  const cfg = parseConfig('config system nfsessiond\n    set metrics-listen [2001:db8::1]:9100\n    set state-dir /srv/nfs\nend\n');
  t.same(cfg.metrics, { enabled: true, listen: { host: '2001:db8::1', port: 9100 } });
  t.equal(cfg.stateDir, '/srv/nfs');
  t.same(parseConfig('').metrics, { enabled: true, listen: { host: '127.0.0.1', port: 9469 } }, 'loopback by default');
  t.equal(parseConfig('config system nfsessiond\n    set metrics disable\nend\n').metrics.enabled, false);
  t.throws(() => parseConfig('config system nfsessiond\n    set metrics-listen 0.0.0.0\nend\n', 'f.conf'), /f\.conf:2:24: bad metrics-listen '0\.0\.0\.0'/);
});

t.test('the example config and its commented-out examples are valid', async (t) => {
  const text = readFileSync(join(ROOT, 'systemd/nfsessiond.conf'), 'utf8');
  t.doesNotThrow(() => parseConfig(text, 'nfsessiond.conf'));
  const uncommented = text.split('\n').map((l) => l.replace(/^#(config |    |end$)/, '$1')).join('\n');
  t.not(uncommented, text);
  t.doesNotThrow(() => parseConfig(uncommented, 'uncommented.conf'));
  const cfg = parseConfig(uncommented);
  t.equal(cfg.policyDefaulted, false, 'the policy example is read');
});

t.test('unit template: directives the service relies on', async (t) => {
  const unit = readFileSync(join(ROOT, 'systemd/nfsessiond.service'), 'utf8');
  for (const line of [
    'Type=notify', 'NotifyAccess=main', /^WatchdogSec=\d+$/m, 'ExecReload=/usr/local/bin/nfsessiond reload --config /etc/nfsessiond/nfsessiond.conf --pid $MAINPID', 'Restart=on-failure',
    'RuntimeDirectory=nfsessiond', 'StateDirectory=nfsessiond', 'CapabilityBoundingSet=CAP_NET_ADMIN CAP_NET_RAW',
    'NoNewPrivileges=yes', 'ProtectSystem=strict', 'ProtectHome=yes', 'PrivateTmp=yes', 'ProtectKernelModules=yes',
    'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6', 'SystemCallFilter=@system-service', 'KillMode=mixed',
  ]) t.match(unit, typeof line === 'string' ? new RegExp(`^${line.replace(/[$.*+?()[\]{}|\\^]/g, '\\$&')}$`, 'm') : line, String(line));
  const rendered = renderUnit(unit, installPaths({ prefix: '/opt/x', sysconfdir: '/srv/etc' }));
  t.match(rendered, /^ExecStart=\/opt\/x\/bin\/nfsessiond run --config \/srv\/etc\/nfsessiond\/nfsessiond\.conf$/m);
  t.match(rendered, /^Documentation=file:\/\/\/opt\/x\/share\/doc\/nfsessiond\/README\.md$/m);
  t.notMatch(rendered.split('\n').filter((l) => !l.startsWith('#')).join('\n'), /[= ]\/usr\/local|[= ]\/etc\/nfsessiond|file:\/\/\/usr/, 'every path replaced');
});

t.test('production modules from the lock file', async (t) => {
  const mods = productionModules(readFileSync(join(ROOT, 'package-lock.json'), 'utf8'));
  for (const m of ['commander', 'pino', 'prom-client', 'node-addon-api']) t.ok(mods.includes(m), m);
  for (const m of ['tap', 'typescript', '@types/node']) t.notOk(mods.includes(m), `${m} is dev-only`);
});

t.test('install --dry-run changes nothing', async (t) => {
  requireBuild();
  const root = tmp(t, 'dry');
  const out = execFileSync(process.execPath, [CLI, 'install', '--dry-run', '--root', root], { encoding: 'utf8' });
  t.match(out, `would install program ${ROOT.replace(/\/$/, '')} -> ${root}/usr/local/lib/nfsessiond`);
  t.match(out, `would write ${root}/usr/local/bin/nfsessiond`);
  t.match(out, `would install ${root}/etc/nfsessiond/nfsessiond.conf (example config)`);
  t.match(out, `would write ${root}/etc/systemd/system/nfsessiond.service`);
  t.match(out, `skip systemctl daemon-reload: installing under --root ${root}`);
  t.match(out, 'not enabled or started');
  t.same(spawnSync('find', [root, '-mindepth', '1'], { encoding: 'utf8' }).stdout, '', 'the root stays empty');
});

t.test('install --root: program, wrapper, config kept, unit, offline enable', async (t) => {
  requireBuild();
  const root = tmp(t, 'root');
  const lines = install({ root, systemdBooted: false });
  const p = installPaths();
  const at = (f: string) => join(root, f);
  for (const f of ['dist/src/cli.js', 'dist/src/daemon.js', 'package.json', 'node_modules/prom-client/package.json', 'node_modules/pino/package.json',
    'native/build/Release/nfsessiond_native.node', 'native/build/Release/nfsessiond_notify.node']) {
    t.ok(existsSync(at(join(p.lib, f))), `${p.lib}/${f}`);
  }
  t.notOk(existsSync(at(join(p.lib, 'node_modules/typescript'))), 'no dev dependencies');
  t.notOk(existsSync(at(join(p.lib, 'dist/test'))), 'no tests');
  const wrapper = readFileSync(at('/usr/local/bin/nfsessiond'), 'utf8');
  t.equal(wrapper.split('\n')[0], '#!/bin/sh');
  t.match(wrapper, `exec '${process.execPath}' '/usr/local/lib/nfsessiond/dist/src/cli.js' "$@"`, 'names the final path, not the --root one');
  t.equal(statSync(at('/usr/local/bin/nfsessiond')).mode & 0o777, 0o755);
  t.equal(readFileSync(at('/etc/nfsessiond/nfsessiond.conf'), 'utf8'), readFileSync(join(ROOT, 'systemd/nfsessiond.conf'), 'utf8'));
  const unit = readFileSync(at('/etc/systemd/system/nfsessiond.service'), 'utf8');
  t.match(unit, /^ExecStart=\/usr\/local\/bin\/nfsessiond run --config \/etc\/nfsessiond\/nfsessiond\.conf$/m);
  t.ok(existsSync(at('/usr/local/share/doc/nfsessiond/README.md')));
  t.ok(lines.some((l) => l === `skip systemctl daemon-reload: installing under --root ${root}`));
  t.notOk(existsSync(at('/etc/systemd/system/multi-user.target.wants')), 'nothing enabled unless asked');

  // Again, over an edited config, with --enable: the config stays, the unit is enabled offline.
  writeFileSync(at('/etc/nfsessiond/nfsessiond.conf'), '# mine\n');
  const again = install({ root, enable: true, systemdBooted: false });
  t.equal(readFileSync(at('/etc/nfsessiond/nfsessiond.conf'), 'utf8'), '# mine\n', 'an existing config is never overwritten');
  t.ok(again.some((l) => l.startsWith(`keep ${root}/etc/nfsessiond/nfsessiond.conf (exists`)));
  t.ok(again.includes(`systemctl --root=${root} enable nfsessiond.service`));
  const link = at('/etc/systemd/system/multi-user.target.wants/nfsessiond.service');
  t.ok(lstatSync(link).isSymbolicLink(), 'WantedBy=multi-user.target link');
  t.equal(readlinkSync(link), '/etc/systemd/system/nfsessiond.service');
  t.notOk(existsSync(at(`${p.lib}.new`)) || existsSync(at(`${p.lib}.old`)), 'no staging left behind');
});

t.test('install into the running system: daemon-reload only with systemd as PID 1', async (t) => {
  requireBuild();
  const base = tmp(t, 'live');
  const opts = { prefix: join(base, 'usr'), sysconfdir: join(base, 'etc'), unitdir: join(base, 'unit') };
  const calls: string[][] = [];
  const systemctl = (a: string[]) => { calls.push(a); return ''; };
  const container = install({ ...opts, systemdBooted: false, systemctl });
  t.ok(container.some((l) => /^skip systemctl daemon-reload: systemd is not running \(PID 1 is .+\)/.test(l)), 'a container gets a message');
  t.same(calls, []);
  const booted = install({ ...opts, systemdBooted: true, systemctl, enable: true, start: true });
  t.same(calls, [['daemon-reload'], ['enable', 'nfsessiond.service'], ['restart', 'nfsessiond.service']]);
  t.ok(booted.includes('systemctl daemon-reload'));
  const noStart = install({ ...opts, systemdBooted: false, systemctl: () => '', start: true });
  t.ok(noStart.includes('skip starting nfsessiond.service: systemd is not running'));

  // The installed command runs, and systemd accepts the unit it was installed with.
  const bin = join(base, 'usr/bin/nfsessiond');
  t.match(execFileSync(bin, ['check', '--config', join(base, 'etc/nfsessiond/nfsessiond.conf')], { encoding: 'utf8' }), /: OK$/m);
  const unit = join(base, 'unit/nfsessiond.service');
  const verify = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  t.equal(verify.status, 0, `systemd-analyze verify: ${verify.stdout}${verify.stderr}`);
  t.equal(verify.stderr.trim(), '', 'no warnings');
  // The offline security report scores the sandbox (lower is better; 0-10).
  const sec = spawnSync('systemd-analyze', ['security', '--offline=true', unit], { encoding: 'utf8' });
  const score = Number(/Overall exposure level for nfsessiond\.service: ([\d.]+)/.exec(sec.stdout)?.[1]);
  t.ok(score > 0 && score <= 3.5, `exposure level ${score} (systemd-analyze security)`);
  t.match(sec.stdout, /✓ RestrictAddressFamilies=~AF_PACKET/);
});

t.test('systemd-analyze verify rejects what is wrong with a unit (the check is real)', async (t) => {
  const d = tmp(t, 'bad');
  mkdirSync(join(d, 'u'));
  const unit = readFileSync(join(ROOT, 'systemd/nfsessiond.service'), 'utf8').replace('Type=notify', 'Type=notyfy');
  writeFileSync(join(d, 'u/nfsessiond.service'), renderUnit(unit, { ...installPaths(), bin: '/bin/true' }));
  const r = spawnSync('systemd-analyze', ['verify', join(d, 'u/nfsessiond.service')], { encoding: 'utf8' });
  t.match(r.stderr, /Failed to parse service type, ignoring: notyfy/);
});
