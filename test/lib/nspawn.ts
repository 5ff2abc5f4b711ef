// A Debian root with systemd as PID 1, booted by systemd-nspawn inside a test topology's router
// namespace, for testing the unit under a real service manager.
//
// The root is built once by debootstrap and kept under /var/cache/nfsessiond-test/, keyed by a
// hash of what went into it (suite, variant, package list, mirror): a changed list builds a new
// one. Each run boots a copy, so a test never leaves its state (snapshot, journal, config) in the
// cache. The host's Node.js is bind-mounted read-only at the same path: the installed wrapper
// runs the node that ran `nfsessiond install`, and the root needs no Node.js package.
//
// The host's PID 1 is not systemd here, so the container runs with --register=no --keep-unit
// (no machined, no transient scope): `machinectl shell` and `systemd-run -M` have nothing to
// talk to. Commands run inside with nsenter into the namespaces of the container's PID 1 (mount,
// UTS, IPC, network, PID, cgroup, and its root): systemctl there reaches the container's systemd
// over /run/systemd/private as root does on a router.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CACHE_DIR = '/var/cache/nfsessiond-test';
const SUITE = 'bookworm';
const VARIANT = 'minbase';
// What the daemon and the unit need at run time inside the root: systemd as PID 1 (dbus for a
// complete systemd), iptables-nft and nft for the ruleset, conntrack, iproute2 (`ip route get` for
// the views' gateway column) and the C++ runtime of the host's node and the native addons.
export const ROOT_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iptables', 'nftables', 'conntrack', 'iproute2', 'libstdc++6'];

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface CmdResult { code: number | null; stdout: string; stderr: string }

export function run(argv: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CmdResult> {
  return new Promise((resolve) => {
    execFile(argv[0]!, argv.slice(1), { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 << 20, env: opts.env ?? process.env, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : null) : 0;
        resolve({ code, stdout, stderr: stderr || (err && code === null ? err.message : '') });
      });
  });
}

function which(cmd: string): string | undefined {
  return PATH.split(':').map((d) => join(d, cmd)).find((p) => existsSync(p));
}

/** Why nspawn cannot run here, or undefined when it can (the tools are installed, we are root). */
export function nspawnUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'not root: systemd-nspawn and debootstrap need root';
  const missing = [['systemd-nspawn', 'systemd-container'], ['debootstrap', 'debootstrap'], ['nsenter', 'util-linux']]
    .filter(([cmd]) => !which(cmd!)).map(([cmd, pkg]) => `${cmd} (Debian package ${pkg})`);
  if (missing.length) return `not installed: ${missing.join(', ')}; scripts/bootstrap.sh installs them`;
  return undefined;
}

/** The Debian mirror apt uses on this machine (deb822 sources or sources.list), if any. */
export function aptMirror(): string | undefined {
  const files: string[] = [];
  for (const f of ['/etc/apt/sources.list']) if (existsSync(f)) files.push(f);
  const d = '/etc/apt/sources.list.d';
  if (existsSync(d)) for (const f of readdirSync(d).sort()) if (/\.(list|sources)$/.test(f)) files.push(join(d, f));
  for (const f of files) {
    const text = readFileSync(f, 'utf8');
    if (f.endsWith('.sources')) {
      for (const stanza of text.split(/\n\s*\n/)) {
        const uris = /^URIs:\s*(\S+)/m.exec(stanza)?.[1];
        const suites = /^Suites:\s*(.+)$/m.exec(stanza)?.[1]?.split(/\s+/) ?? [];
        if (uris && suites.includes(SUITE) && /^Types:.*\bdeb\b/m.test(stanza)) return uris;
      }
    } else {
      for (const line of text.split('\n')) {
        const m = /^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)/.exec(line);
        if (m && m[2] === SUITE) return m[1];
      }
    }
  }
  return undefined;
}

export type RootResult = { root: string; built: boolean; seconds: number } | { skip: string };

/**
 * The cached root for the package list, built when missing. A download failure (no mirror
 * reachable) is a reason to skip; any other debootstrap failure throws.
 */
export async function ensureRoot(log: (line: string) => void): Promise<RootResult> {
  const mirror = aptMirror();
  if (!mirror) return { skip: `no apt source for Debian ${SUITE} on this machine: debootstrap has no mirror to use` };
  const key = createHash('sha256').update(JSON.stringify({ v: 1, SUITE, VARIANT, packages: ROOT_PACKAGES, mirror })).digest('hex').slice(0, 16);
  const root = join(CACHE_DIR, `${SUITE}-${VARIANT}-${key}`);
  if (existsSync(join(root, '.complete'))) return { root, built: false, seconds: 0 };
  mkdirSync(CACHE_DIR, { recursive: true });
  // Built beside its final name and renamed when complete: a build that was killed half-way
  // leaves only a temporary directory, never a root that looks usable.
  const tmp = `${root}.tmp-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  log(`building the Debian root ${root} (debootstrap --variant=${VARIANT} ${SUITE}, ${ROOT_PACKAGES.length} packages on top)`);
  const start = Date.now();
  const r = await run(['debootstrap', `--variant=${VARIANT}`, `--include=${ROOT_PACKAGES.join(',')}`, SUITE, tmp, mirror], { timeoutMs: 20 * 60_000 });
  const seconds = (Date.now() - start) / 1000;
  if (r.code !== 0) {
    const out = `${r.stdout}\n${r.stderr}`;
    rmSync(tmp, { recursive: true, force: true });
    const tail = out.trim().split('\n').slice(-8).join('\n');
    if (/Failed getting release file|Couldn't download|Couldn't retrieve|Failed to download|Could not resolve|Temporary failure resolving/i.test(out)) {
      return { skip: `debootstrap cannot download from ${mirror}:\n${tail}` };
    }
    throw new Error(`debootstrap failed (code ${r.code}) after ${seconds.toFixed(0)} s:\n${tail}`);
  }
  // The downloaded packages are of no use in the root and would be copied on every run.
  for (const d of ['var/cache/apt/archives', 'var/lib/apt/lists']) {
    const dir = join(tmp, d);
    if (!existsSync(dir)) continue;
    for (const f of readdirSync(dir)) if (f.endsWith('.deb') || d.endsWith('lists')) rmSync(join(dir, f), { recursive: true, force: true });
  }
  writeFileSync(join(tmp, '.complete'), `${new Date().toISOString()} ${seconds.toFixed(1)} s\n`);
  try {
    renameSync(tmp, root);
  } catch (e) {
    // Another run built the same root meanwhile: theirs is as good as ours.
    if (!existsSync(join(root, '.complete'))) throw e;
    rmSync(tmp, { recursive: true, force: true });
  }
  return { root, built: true, seconds };
}

/** A fresh copy of the cached root for one run (removed by the caller). */
export async function copyRoot(cached: string): Promise<string> {
  const dir = join('/var/tmp', `nfsessiond-nspawn-${process.pid}-${randomBytes(3).toString('hex')}`);
  mkdirSync(dir);
  const root = join(dir, 'root');
  const r = await run(['cp', '-a', '--reflink=auto', cached, root], { timeoutMs: 5 * 60_000 });
  if (r.code !== 0) throw new Error(`copying ${cached}: ${r.stderr}`);
  rmSync(join(root, '.complete'), { force: true });
  return root;
}

export interface Container {
  /** The systemd-nspawn process (started here). */
  readonly nspawn: ChildProcess;
  /** The container's PID 1 (systemd), as a host PID. */
  readonly leader: number;
  /** Runs argv inside the container (as root, a clean environment). */
  exec(argv: string[], timeoutMs?: number): Promise<CmdResult>;
  /** systemctl --no-pager ... inside the container. */
  systemctl(...args: string[]): Promise<CmdResult>;
  /** nspawn's own output so far (the console with --console=pipe). */
  output(): string;
  /** Asks systemd to halt (SIGRTMIN+3 to PID 1) and waits; SIGKILL to PID 1 if it does not. */
  halt(): Promise<void>;
}

// glibc's SIGRTMIN is 34; systemd halts on SIGRTMIN+3. Node knows no real-time signal names.
const SIGRTMIN_3 = 37;

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

const comm = (pid: number): string => {
  try { return readFileSync(`/proc/${pid}/comm`, 'utf8').trim(); } catch { return ''; }
};

/** Boots `root` with systemd as PID 1 in the network namespace at `netnsPath`, waits for the boot to finish. */
export async function boot(root: string, netnsPath: string, opts: { bindRo?: string[]; machine?: string } = {}): Promise<Container> {
  const args = ['-D', root, '--boot', '--register=no', '--keep-unit', `--machine=${opts.machine ?? 'nfsrouter'}`,
    // CAP_NET_ADMIN is not in nspawn's default set without a private network: the daemon's
    // queue, ruleset and conntrack need it; CAP_NET_RAW is in the unit's bounding set too.
    '--capability=CAP_NET_ADMIN,CAP_NET_RAW',
    `--network-namespace-path=${netnsPath}`,
    '--console=pipe',
    ...(opts.bindRo ?? []).map((p) => `--bind-ro=${p}`)];
  const child = spawn('systemd-nspawn', args, { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH, LANG: 'C.UTF-8' } });
  let out = '';
  const keep = (b: Buffer) => { out = (out + b.toString('utf8')).slice(-200_000); };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  let gone = false;
  void exited.then(() => { gone = true; });
  if (child.pid === undefined) throw new Error('systemd-nspawn did not start');

  const deadline = Date.now() + 60_000;
  let leader = 0;
  while (!leader) {
    if (gone) throw new Error(`systemd-nspawn exited before the container started:\n${out.slice(-3000)}`);
    if (Date.now() > deadline) break;
    leader = childrenOf(child.pid).find((p) => comm(p) === 'systemd') ?? 0;
    if (!leader) await new Promise((r) => setTimeout(r, 100));
  }

  const exec = (argv: string[], timeoutMs = 120_000): Promise<CmdResult> =>
    // env -i inside: the test runner adds its loader to NODE_OPTIONS of every child it sees
    // spawned, which would reach the container's node through nsenter.
    run(['nsenter', '-t', String(leader), '-m', '-u', '-i', '-n', '-p', '-C', '-r', '-w', '--',
      '/usr/bin/env', '-i', `PATH=${PATH}`, 'LANG=C.UTF-8', 'SYSTEMD_PAGER=', 'SYSTEMD_COLORS=0', ...argv], { timeoutMs });
  const halt = async (): Promise<void> => {
    if (gone) return;
    let timer: NodeJS.Timeout | undefined;
    const wait = (ms: number) => Promise.race([exited.then(() => true), new Promise<boolean>((r) => { timer = setTimeout(() => r(false), ms); })]);
    if (leader) {
      try { process.kill(leader, SIGRTMIN_3); } catch { /* gone */ }
      const halted = await wait(90_000);
      clearTimeout(timer);
      if (halted) return;
      // PID 1 of a PID namespace: SIGKILL ends every process in the container.
      try { process.kill(leader, 'SIGKILL'); } catch { /* gone */ }
    } else {
      try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ }
    }
    await wait(30_000);
    clearTimeout(timer);
  };
  const container: Container = {
    nspawn: child,
    leader,
    exec,
    systemctl: (...a: string[]) => exec(['systemctl', '--no-pager', ...a]),
    output: () => out,
    halt,
  };
  if (!leader) {
    await halt();
    throw new Error(`no systemd inside the container after 60 s:\n${out.slice(-3000)}`);
  }
  // The boot is over when systemd says running (or degraded: a unit failed, which the caller
  // may want to know about but which is not the service under test).
  let state = '';
  while (Date.now() < deadline + 60_000) {
    if (gone) throw new Error(`the container exited during boot:\n${out.slice(-3000)}`);
    state = (await exec(['systemctl', 'is-system-running'], 10_000)).stdout.trim();
    if (state === 'running' || state === 'degraded') return container;
    await new Promise((r) => setTimeout(r, 250));
  }
  await halt();
  throw new Error(`the container did not finish booting (state '${state}'):\n${out.slice(-3000)}`);
}
