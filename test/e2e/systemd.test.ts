// The unit under a real systemd: a Debian root booted by systemd-nspawn is the router of a test
// topology (its network namespace), the built checkout is put in with `nfsessiond install
// --root --enable`, and systemctl inside drives the shipped unit, hardening included, unchanged:
//  - enabled, it is active after the boot;
//  - start returns once READY=1 came: the rules are in and the control socket answers at once;
//    client -> server traffic (UDP over IPv4, TCP over IPv6) passes through the router and the
//    sessions are listed;
//  - STATUS= is what `systemctl status` shows;
//  - reload with a good file applies it (a new session gets the new TTL), with a bad one fails,
//    leaves the unit active with the running config, and FILE:LINE:COLUMN is in the journal;
//  - a hung daemon (SIGSTOP) is killed by the watchdog and restarted, and the table comes back
//    from the state directory with the same serials;
//  - stop removes the nft table and the iptables rules;
//  - the hardening is in force on the running daemon (no new privileges, seccomp, a bounding set
//    of CAP_NET_ADMIN and CAP_NET_RAW) and the daemon logged no error under it.
// It skips, saying why, only where nspawn cannot run: not root, systemd-container or debootstrap
// not installed, no Debian mirror to build the root from.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { createTopology } from '../../src/topology/netns.js';
import { curl, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import { eventually, requireBuild, runCli } from '../lib/daemon.js';
import { boot, copyRoot, ensureRoot, nspawnUnavailable, type Container } from '../lib/nspawn.js';

// A cold cache builds the root (minutes on a loaded machine); the watchdog alone takes 30 s.
t.setTimeout(25 * 60_000);

const UNIT = 'nfsessiond.service';
const BIN = '/usr/local/bin/nfsessiond';
const CONF = '/etc/nfsessiond/nfsessiond.conf';

function skip(reason: string): void {
  // Printed as well as recorded: a skip must never look like a pass.
  console.error(`# systemd test skipped: ${reason}`);
  t.comment(`skipped: ${reason}`);
  t.test('nfsessiond under a real systemd', { skip: reason }, () => {});
}

const show = async (c: Container, ...props: string[]): Promise<Record<string, string>> => {
  const r = await c.systemctl('show', UNIT, ...props.map((p) => `--property=${p}`));
  return Object.fromEntries(r.stdout.trim().split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
};

const sessions = async (c: Container): Promise<SessionView[]> => {
  const r = await c.exec([BIN, 'diagnose', 'sys', 'session', 'list', '--json']);
  if (r.code !== 0) throw new Error(`diagnose sys session list: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { sessions: SessionView[] }).sessions;
};

const journal = async (c: Container): Promise<string> => (await c.exec(['journalctl', '--no-pager', '-o', 'cat', '-u', UNIT])).stdout;

async function main(): Promise<void> {
  const why = nspawnUnavailable();
  if (why) return skip(why);
  requireBuild();
  const cached = await ensureRoot((l) => t.comment(l));
  if ('skip' in cached) return skip(cached.skip);
  t.comment(cached.built ? `root built in ${cached.seconds.toFixed(0)} s (cached for the next runs)` : `root from the cache: ${cached.root}`);

  await t.test('nfsessiond under a real systemd', async (t) => {
    const root = await copyRoot(cached.root);
    let container: Container | undefined;
    const topo = await createTopology({ label: 'nspawn' });
    // One teardown, in order: the container first (its processes live in the router
    // namespace, which the topology would otherwise SIGKILL), then the namespaces, then the copy.
    t.teardown(async () => {
      await container?.halt();
      await topo.destroy();
      rmSync(dirname(root), { recursive: true, force: true });
    });

    // --enable under --root: the offline symlinks, as an image build would make them.
    t.comment((await runCli(['install', '--root', root, '--enable'])).trim());
    const config = join(root, CONF.slice(1));
    const example = readFileSync(config, 'utf8');
    t.match(example, /set default 3600/, 'the example config is installed, with a session TTL of 3600');

    container = await boot(root, `/run/netns/${topo.ns.router}`, { bindRo: [process.execPath] });
    const c = container;
    const failed = (await c.systemctl('--failed', '--plain', '--no-legend')).stdout.trim();
    if (failed) t.comment(`units failed during boot (not the service under test):\n${failed}`);

    await t.test('enabled by install --enable: started at boot, stops cleanly', async (t) => {
      t.match(await show(c, 'UnitFileState', 'ActiveState'), { UnitFileState: 'enabled', ActiveState: 'active' }, 'active after the boot');
      t.match((await topo.exec('router', ['iptables-save'])).stdout, /-A FORWARD .*-j NFSESSIOND/, 'its rules are in');
      t.equal((await c.systemctl('stop', UNIT)).code, 0, 'systemctl stop');
      t.notMatch((await topo.exec('router', ['iptables-save'])).stdout, /NFSESSIOND/, 'the rules are gone');
    });

    await startUdpEcho(topo);

    await t.test('start returns after READY=1: rules in, control socket up, traffic passes, sessions listed', async (t) => {
      const r = await c.systemctl('start', UNIT);
      t.equal(r.code, 0, `systemctl start: ${r.stderr.trim()}`);
      // Type=notify: start has returned, so READY=1 came, which promises the data path is in.
      const xt = (await topo.exec('router', ['iptables-save'])).stdout;
      t.match(xt, /-A FORWARD .*-j NFSESSIOND/, 'the FORWARD jump is installed when start returns');
      t.match(xt, /NFQUEUE/, 'with the NFQUEUE rule');
      t.match((await topo.exec('router', ['nft', 'list', 'tables'])).stdout, /table inet nfsessiond/, 'and the nft table');
      t.same(await sessions(c), [], 'the control socket answers at once, with an empty table');
      t.match(await show(c, 'ActiveState', 'SubState', 'Type'), { ActiveState: 'active', SubState: 'running', Type: 'notify' });

      const udp = await udpExchange(topo, { count: 3, sport: 40300 });
      t.same([udp.sent, udp.received], [3, 3], 'UDP from the client reaches the server and back through the router');
      const listed = await eventually(async () => (await sessions(c)).find((s) => s.orig_tuple.sport === 40300));
      t.ok(listed, 'the daemon lists the session');
      t.match(listed, { proto: 17, timeout: 3600, orig_tuple: { src: topo.addr.client.v4, dst: topo.addr.server.v4, dport: 7007 } });

      // TCP over IPv6: the ip6tables side of the ruleset queues too.
      const http = await startHttpServer(topo, { bodySize: 20_000 });
      t.equal(await curl(topo, http.urlFor(20_000, topo.addr.server.v6)), 20_000, 'an HTTP transfer over IPv6 passes');
      const tcp6 = await eventually(async () => (await sessions(c)).find((s) => s.proto === 6 && s.orig_tuple.dst === topo.addr.server.v6));
      t.ok(tcp6, 'and its TCP session is listed');
      await http.stop();
    });

    await t.test('systemctl status shows the STATUS= line', async (t) => {
      const text = await eventually(async () => {
        const st = (await show(c, 'StatusText')).StatusText ?? '';
        return /^1 sessions?, setup rate \S+, conserve mode off$/.test(st) ? st : undefined;
      }, 30_000, 500);
      t.ok(text, `StatusText follows the table: ${text}`);
      const status = (await c.systemctl('status', UNIT)).stdout;
      t.match(status, /Status: "1 sessions?, setup rate \S+, conserve mode off"/, 'in systemctl status');
    });

    await t.test('reload: a good file is applied, a bad one is refused and the running config stays', async (t) => {
      const pid = (await show(c, 'MainPID')).MainPID;
      writeFileSync(config, example.replace('set default 3600', 'set default 1800'));
      const good = await c.systemctl('reload', UNIT);
      t.equal(good.code, 0, `systemctl reload (good file): ${good.stderr.trim()}`);
      // New sessions get the new TTL: the reload is in force.
      let port = 40310;
      const ttlOfNew = async (): Promise<number | undefined> => {
        const sport = port++;
        await udpExchange(topo, { count: 1, sport });
        return (await eventually(async () => (await sessions(c)).find((s) => s.orig_tuple.sport === sport)))?.timeout;
      };
      t.equal(await eventually(async () => ((await ttlOfNew()) === 1800 ? 1800 : undefined), 15_000, 500), 1800, 'a session made after the reload has the new TTL');

      const bad = `${example.replace('set default 3600', 'set default 1800')}\nconfig system session-ttl\n    set default banana\nend\n`;
      writeFileSync(config, bad);
      const badLine = bad.split('\n').indexOf('    set default banana') + 1;
      const refused = await c.systemctl('reload', UNIT);
      t.not(refused.code, 0, 'systemctl reload fails on a bad file');
      const after = await show(c, 'ActiveState', 'MainPID');
      t.match(after, { ActiveState: 'active', MainPID: pid }, 'the unit stays active, the same process');
      t.match(await journal(c), new RegExp(`${CONF.replace(/\//g, '\\/')}:${badLine}:\\d+: .*banana`), 'FILE:LINE:COLUMN of the error in the journal');
      t.match((await c.systemctl('status', UNIT, '-n', '20')).stdout, new RegExp(`nfsessiond\\.conf:${badLine}:\\d+:`), 'and in systemctl status');
      t.equal(await ttlOfNew(), 1800, 'the running config (TTL 1800) is still in force');
      writeFileSync(config, example.replace('set default 3600', 'set default 1800'));
    });

    await t.test('the hardening is in force on the running daemon, and nothing failed under it', async (t) => {
      const pid = (await show(c, 'MainPID')).MainPID;
      const status = (await c.exec(['cat', `/proc/${pid}/status`])).stdout;
      t.match(status, /^NoNewPrivs:\s+1$/m, 'NoNewPrivileges');
      t.match(status, /^Seccomp:\s+2$/m, 'a system call filter');
      // CAP_NET_ADMIN is bit 12, CAP_NET_RAW bit 13.
      t.equal(BigInt(`0x${/^CapBnd:\s+([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'}`), (1n << 12n) | (1n << 13n), 'bounding set: CAP_NET_ADMIN CAP_NET_RAW');
      const mounts = (await c.exec(['cat', `/proc/${pid}/mountinfo`])).stdout;
      t.match(mounts, /^\d+ \d+ \S+ \S+ \/ ro[, ]/m, 'ProtectSystem=strict: / is read-only for the daemon');
      t.match(mounts, /^\d+ \d+ \S+ \S+ \/var\/lib\/nfsessiond rw[, ]/m, 'but its state directory is writable');
      const errors = (await journal(c)).split('\n').filter((l) => /"severity":"(error|fatal)"|Operation not permitted|EPERM|EACCES/.test(l));
      t.same(errors, [], 'no errors and no permission failures in the daemon\'s log');
    });

    await t.test('a hung daemon is killed by the watchdog and restarted with its sessions', async (t) => {
      const before = await show(c, 'MainPID', 'NRestarts', 'WatchdogUSec');
      t.equal(before.WatchdogUSec, '30s', 'the unit\'s watchdog');
      // The UDP sessions (TTL 1800 and 3600): a closed TCP session may end by its timer meanwhile.
      const table = (await sessions(c)).filter((s) => s.proto === 17);
      t.ok(table.length >= 2, `UDP sessions before the hang: ${table.length}`);
      // The journal is flushed about once a second; the watchdog needs 30 s, far more than that.
      t.equal((await c.exec(['bash', '-c', `kill -STOP ${before.MainPID}`])).code, 0, `SIGSTOP to ${before.MainPID}`);
      const restarted = await eventually(async () => {
        const s = await show(c, 'MainPID', 'NRestarts', 'ActiveState', 'SubState');
        return s.ActiveState === 'active' && s.SubState === 'running' && s.MainPID !== before.MainPID && s.MainPID !== '0' ? s : undefined;
      }, 180_000, 1000);
      t.ok(restarted, `restarted: ${JSON.stringify(restarted)}`);
      t.equal(Number(restarted?.NRestarts), Number(before.NRestarts) + 1, 'by systemd (NRestarts + 1)');
      const log = await journal(c);
      t.match(log, /Watchdog timeout/, 'the journal says the watchdog fired');
      t.match(log, /"msg":"table restored from snapshot"/, 'the new daemon restored the table');
      const now = await sessions(c);
      const serials = (l: SessionView[]) => l.map((s) => `${s.serial} ${s.orig_tuple.sport}`).sort();
      t.same(serials(now).filter((x) => serials(table).includes(x)), serials(table), 'every session is back, with its serial');
      const udp = await udpExchange(topo, { count: 2, sport: 40300 });
      t.same([udp.sent, udp.received], [2, 2], 'the first flow still passes');
    });

    await t.test('stop removes the rules', async (t) => {
      const r = await c.systemctl('stop', UNIT);
      t.equal(r.code, 0, `systemctl stop: ${r.stderr.trim()}`);
      t.match(await show(c, 'ActiveState', 'Result'), { ActiveState: 'inactive', Result: 'success' }, 'a clean stop');
      t.notMatch((await topo.exec('router', ['nft', 'list', 'ruleset'])).stdout, /table inet nfsessiond/, 'no nfsessiond nft table');
      for (const tool of ['iptables-save', 'ip6tables-save']) {
        t.notMatch((await topo.exec('router', [tool])).stdout, /NFQUEUE|NFSESSIOND/, `${tool}: no NFQUEUE rule, no NFSESSIOND chain`);
      }
    });
  });
}

await main();
