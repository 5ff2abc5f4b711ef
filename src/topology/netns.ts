// Network-namespace test topology: client <-> router <-> server.
//
//   client (eth0)  ── veth ──  (veth-c) router (veth-s)  ── veth ──  (eth0) server
//   198.51.100.2/24            198.51.100.1/24  203.0.113.1/24            203.0.113.2/24
//   2001:db8:100::2/64         2001:db8:100::1  2001:db8:113::1           2001:db8:113::2/64
//
// The three namespaces are created by this module and are never linked to the root namespace:
// each veth pair is created directly inside its two namespaces (`ip -n A link add ... peer ...
// netns B`). Everything started here is tracked by PID and killed on destroy(), on process exit,
// and on SIGINT/SIGTERM/SIGHUP. Namespaces left behind by a harness process that died without
// cleaning up (SIGKILL) are removed by the next createTopology() (their owner PID is in the name).

import { spawn as cpSpawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync } from 'node:fs';

export type Role = 'client' | 'router' | 'server';
/** A role name or a full namespace name belonging to this topology. */
export type NsRef = Role | string;

export interface ExecOptions {
  /** Kill the command (SIGKILL, by PID) after this many ms. Default 30000. */
  timeoutMs?: number;
  /** Written to stdin, then stdin is closed. */
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export interface ExecResult {
  /** Exit code, or null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Keep at most this many characters of stdout/stderr each (oldest dropped). Default 1 MiB. */
  captureLimit?: number;
  /** Do not capture output (stdout/stderr go to /dev/null). */
  quiet?: boolean;
  /** Give the process a stdin pipe (child.stdin) to drive it step by step. */
  stdin?: boolean;
}

export interface NsProcess {
  readonly pid: number;
  readonly ns: string;
  readonly argv: readonly string[];
  readonly child: ChildProcess;
  /** Resolves when the process has exited (never rejects). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly running: boolean;
  /** Captured output so far (bounded by captureLimit). */
  stdout(): string;
  stderr(): string;
  /**
   * Resolves with the first complete output line (stdout or the given stream) that satisfies
   * `match`, including lines already received. Rejects on timeout or if the process exits first.
   */
  waitForLine(match: RegExp | ((line: string) => boolean), opts?: { timeoutMs?: number; stream?: 'stdout' | 'stderr'; what?: string }): Promise<string>;
  /** SIGTERM (or `signal`), then SIGKILL after graceMs (default 2000); resolves once it exited. */
  kill(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
}

export interface Endpoint { v4: string; v6: string }

export interface Topology {
  /** Unique prefix of every namespace name, e.g. `nfs-1234-a1b2c3`. */
  readonly prefix: string;
  /** Namespace names. */
  readonly ns: Readonly<Record<Role, string>>;
  /** Addresses (no prefix length). */
  readonly addr: {
    readonly client: Endpoint;
    /** Router address on the client link (client's gateway). */
    readonly routerClient: Endpoint;
    /** Router address on the server link (server's gateway). */
    readonly routerServer: Endpoint;
    readonly server: Endpoint;
  };
  /** Prefix lengths / subnets. */
  readonly subnet: { readonly clientLink: Endpoint; readonly serverLink: Endpoint };
  /** Interface names, each inside its own namespace. */
  readonly ifname: { readonly client: string; readonly routerClient: string; readonly routerServer: string; readonly server: string };
  /** The namespace name of one of TopologyOptions.extraNamespaces. */
  extraNs(name: string): string;
  /** Resolve a role or namespace name to the namespace name (throws for foreign names). */
  nsName(ns: NsRef): string;
  /** Run argv (no shell) inside a namespace, collecting output. Never rejects for a non-zero exit. */
  exec(ns: NsRef, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Like exec, but rejects with stderr in the message when the exit code is not 0. */
  execOk(ns: NsRef, argv: readonly string[], opts?: ExecOptions): Promise<ExecResult>;
  /** Start a long-running process inside a namespace; tracked and killed by PID on destroy(). */
  spawn(ns: NsRef, argv: readonly string[], opts?: SpawnOptions): NsProcess;
  /** Kill tracked processes (and anything left inside the namespaces), delete the namespaces. Idempotent. */
  destroy(): Promise<void>;
  readonly destroyed: boolean;
}

export interface TopologyOptions {
  /** Extra label in the namespace names (letters, digits, '-'; max 12 chars). */
  label?: string;
  /** Default timeout for exec() calls. Default 30000 ms. */
  execTimeoutMs?: number;
  /**
   * More namespaces, empty but for `lo` (e.g. a second router): `<prefix>-<name>`, reached with
   * extraNs(name); the test links them itself. Names: lower-case letters and digits.
   */
  extraNamespaces?: string[];
}

const NS_PREFIX = 'nfs';
const NETNS_DIR = '/run/netns';
const DEFAULT_EXEC_TIMEOUT = 30_000;

// ---------------------------------------------------------------------------------------------
// Process-wide registry for cleanup on exit and signals.

const live = new Set<TopologyImpl>();
let handlersInstalled = false;

function syncCleanupAll(): void {
  for (const t of [...live]) t.destroySync();
}

function onSignal(sig: NodeJS.Signals): void {
  syncCleanupAll();
  removeHandlers();
  // Re-raise with the default action unless someone else also handles this signal.
  if (process.listenerCount(sig) === 0) process.kill(process.pid, sig);
}

const sigHandlers: Partial<Record<NodeJS.Signals, () => void>> = {};

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', syncCleanupAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as NodeJS.Signals[]) {
    const h = (): void => onSignal(sig);
    sigHandlers[sig] = h;
    process.on(sig, h);
  }
}

function removeHandlers(): void {
  if (!handlersInstalled) return;
  handlersInstalled = false;
  process.removeListener('exit', syncCleanupAll);
  for (const [sig, h] of Object.entries(sigHandlers)) {
    if (h) process.removeListener(sig, h);
    delete sigHandlers[sig as NodeJS.Signals];
  }
}

// ---------------------------------------------------------------------------------------------
// Small process helpers.

function runCmd(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_EXEC_TIMEOUT;
  return new Promise((resolve) => {
    let child: ChildProcess;
    try {
      child = cpSpawn(argv[0]!, argv.slice(1), {
        env: opts.env ?? process.env,
        cwd: opts.cwd,
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      });
    } catch (e) {
      resolve({ code: 127, signal: null, stdout: '', stderr: String((e as Error).message), timedOut: false });
      return;
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => {
      timedOut = true;
      if (child.pid !== undefined) {
        try { process.kill(child.pid, 'SIGKILL'); } catch { /* already gone */ }
      }
    }, timeoutMs);
    let spawnError: Error | undefined;
    child.on('error', (e) => { spawnError = e; });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      let stderr = Buffer.concat(err).toString('utf8');
      if (spawnError) stderr += (stderr ? '\n' : '') + spawnError.message;
      resolve({
        code: spawnError && code === null && signal === null ? 127 : code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr,
        timedOut,
      });
    });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => { /* EPIPE if the command ignores stdin */ });
      child.stdin!.end(opts.input);
    }
  });
}

async function runOk(argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const r = await runCmd(argv, opts);
  if (r.code !== 0) {
    throw new Error(`command failed (code ${r.code}${r.signal ? `, signal ${r.signal}` : ''}${r.timedOut ? ', timed out' : ''}): ${argv.join(' ')}\n${r.stderr.trim()}`);
  }
  return r;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function listNetns(): string[] {
  try {
    return readdirSync(NETNS_DIR);
  } catch {
    return [];
  }
}

function nsPidsSync(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8', timeout: 5000 });
  if (r.status !== 0 || !r.stdout) return [];
  return r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/** Kill whatever still runs in our namespace and delete it (synchronous; for exit paths). */
function killAndDeleteNsSync(ns: string): void {
  for (let round = 0; round < 3; round++) {
    const pids = nsPidsSync(ns);
    if (pids.length === 0) break;
    for (const pid of pids) {
      try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
    }
  }
  spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore', timeout: 5000 });
}

/**
 * Delete namespaces of this harness whose owner process no longer exists (left by a run that was
 * SIGKILLed). Only names of the form `nfs-<pid>-<hex>-<role>` are considered.
 */
export function sweepStaleNamespaces(): string[] {
  const removed: string[] = [];
  // The last part is a role or an extra namespace's name.
  const re = new RegExp(`^${NS_PREFIX}-(\\d+)-[0-9a-f]+(?:-[A-Za-z0-9]+)*-([a-z][a-z0-9]*)$`);
  for (const name of listNetns()) {
    const m = re.exec(name);
    if (!m) continue;
    const owner = Number(m[1]);
    if (owner === process.pid || pidAlive(owner)) continue;
    killAndDeleteNsSync(name);
    removed.push(name);
  }
  return removed;
}

// ---------------------------------------------------------------------------------------------

class NsProcessImpl implements NsProcess {
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  private err = '';
  private partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  private lines: Record<'stdout' | 'stderr', string[]> = { stdout: [], stderr: [] };
  private waiters: Array<{ stream: 'stdout' | 'stderr'; test: (l: string) => boolean; resolve: (l: string) => void }> = [];
  private exitedFlag = false;

  constructor(readonly ns: string, readonly argv: readonly string[], readonly child: ChildProcess, private readonly limit: number) {
    if (child.pid === undefined) throw new Error(`spawn failed: ${argv.join(' ')}`);
    this.pid = child.pid;
    child.stdout?.on('data', (b: Buffer) => this.feed('stdout', b.toString('utf8')));
    child.stderr?.on('data', (b: Buffer) => this.feed('stderr', b.toString('utf8')));
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitedFlag = true;
        resolve({ code, signal });
      });
    });
  }

  get running(): boolean {
    return !this.exitedFlag;
  }

  private feed(stream: 'stdout' | 'stderr', s: string): void {
    if (stream === 'stdout') this.out = (this.out + s).slice(-this.limit);
    else this.err = (this.err + s).slice(-this.limit);
    const buf = this.partial[stream] + s;
    const parts = buf.split('\n');
    this.partial[stream] = parts.pop()!.slice(-this.limit);
    for (const line of parts) {
      const kept = this.lines[stream];
      kept.push(line);
      if (kept.length > 10_000) kept.splice(0, kept.length - 10_000);
      for (const w of [...this.waiters]) {
        if (w.stream === stream && w.test(line)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
    }
  }

  stdout(): string {
    return this.out;
  }

  stderr(): string {
    return this.err;
  }

  waitForLine(match: RegExp | ((line: string) => boolean), opts: { timeoutMs?: number; stream?: 'stdout' | 'stderr'; what?: string } = {}): Promise<string> {
    const stream = opts.stream ?? 'stdout';
    const test = typeof match === 'function' ? match : (l: string) => match.test(l);
    const seen = this.lines[stream].find(test);
    if (seen !== undefined) return Promise.resolve(seen);
    const timeoutMs = opts.timeoutMs ?? 10_000;
    return new Promise((resolve, reject) => {
      const waiter = {
        stream,
        test,
        resolve: (l: string) => {
          clearTimeout(timer);
          resolve(l);
        },
      };
      const fail = (why: string): void => {
        const i = this.waiters.indexOf(waiter);
        if (i < 0) return;
        this.waiters.splice(i, 1);
        clearTimeout(timer);
        const what = opts.what ?? (typeof match === 'function' ? `a ${stream} line accepted by ${match.name || 'the predicate'}` : `a ${stream} line matching ${String(match)}`);
        reject(new Error(`${why} waiting for ${what} from ${this.argv.join(' ')} in ${this.ns}\n--- stdout (tail) ---\n${this.out.slice(-2000)}\n--- stderr (tail) ---\n${this.err.slice(-2000)}`));
      };
      const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
      this.waiters.push(waiter);
      void this.exited.then((x) => fail(`process exited (code ${x.code}, signal ${x.signal})`));
    });
  }

  async kill(signal: NodeJS.Signals = 'SIGTERM', graceMs = 2000): Promise<void> {
    if (this.exitedFlag) return;
    try { process.kill(this.pid, signal); } catch { /* gone */ }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      this.exited.then(() => false),
      new Promise<boolean>((r) => { timer = setTimeout(() => r(true), graceMs); }),
    ]);
    clearTimeout(timer);
    if (timedOut && !this.exitedFlag) {
      try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
      await this.exited;
    }
  }

  killSync(): void {
    if (this.exitedFlag) return;
    try { process.kill(this.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

class TopologyImpl implements Topology {
  readonly ns: Readonly<Record<Role, string>>;
  readonly addr = {
    client: { v4: '198.51.100.2', v6: '2001:db8:100::2' },
    routerClient: { v4: '198.51.100.1', v6: '2001:db8:100::1' },
    routerServer: { v4: '203.0.113.1', v6: '2001:db8:113::1' },
    server: { v4: '203.0.113.2', v6: '2001:db8:113::2' },
  } as const;
  readonly subnet = {
    clientLink: { v4: '198.51.100.0/24', v6: '2001:db8:100::/64' },
    serverLink: { v4: '203.0.113.0/24', v6: '2001:db8:113::/64' },
  } as const;
  readonly ifname = { client: 'eth0', routerClient: 'veth-c', routerServer: 'veth-s', server: 'eth0' } as const;
  private procs = new Set<NsProcessImpl>();
  private created: string[] = [];
  private destroying: Promise<void> | undefined;
  destroyed = false;

  constructor(readonly prefix: string, private readonly execTimeoutMs: number, private readonly extra: readonly string[] = []) {
    this.ns = { client: `${prefix}-client`, router: `${prefix}-router`, server: `${prefix}-server` };
  }

  extraNs(name: string): string {
    if (!this.extra.includes(name)) throw new Error(`namespace ${name} is not an extra namespace of topology ${this.prefix}`);
    return `${this.prefix}-${name}`;
  }

  nsName(ns: NsRef): string {
    if (ns === 'client' || ns === 'router' || ns === 'server') return this.ns[ns];
    if (Object.values(this.ns).includes(ns)) return ns;
    if (this.extra.some((x) => `${this.prefix}-${x}` === ns)) return ns;
    throw new Error(`namespace ${ns} is not part of topology ${this.prefix}`);
  }

  private nsArgv(ns: NsRef, argv: readonly string[]): string[] {
    if (this.destroyed) throw new Error(`topology ${this.prefix} is destroyed`);
    if (argv.length === 0) throw new Error('empty argv');
    return ['ip', 'netns', 'exec', this.nsName(ns), ...argv];
  }

  exec(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    let full: string[];
    try {
      full = this.nsArgv(ns, argv);
    } catch (e) {
      return Promise.reject(e);
    }
    return runCmd(full, { ...opts, timeoutMs: opts.timeoutMs ?? this.execTimeoutMs });
  }

  async execOk(ns: NsRef, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const r = await this.exec(ns, argv, opts);
    if (r.code !== 0) {
      throw new Error(`in ${this.nsName(ns)}: command failed (code ${r.code}${r.signal ? `, signal ${r.signal}` : ''}${r.timedOut ? ', timed out' : ''}): ${argv.join(' ')}\n${r.stderr.trim()}`);
    }
    return r;
  }

  spawn(ns: NsRef, argv: readonly string[], opts: SpawnOptions = {}): NsProcess {
    const full = this.nsArgv(ns, argv);
    const child = cpSpawn(full[0]!, full.slice(1), {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.stdin ? 'pipe' : 'ignore', opts.quiet ? 'ignore' : 'pipe', opts.quiet ? 'ignore' : 'pipe'],
    });
    // Keep the event loop free to exit: the process is killed on destroy()/exit anyway.
    const p = new NsProcessImpl(this.nsName(ns), argv, child, opts.captureLimit ?? 1 << 20);
    child.on('error', () => { /* reported through exited */ });
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  async build(): Promise<void> {
    const { client, router, server } = this.ns;
    for (const ns of [client, router, server, ...this.extra.map((x) => `${this.prefix}-${x}`)]) {
      await runOk(['ip', 'netns', 'add', ns]);
      this.created.push(ns);
      // IPv6 addresses usable at once: no duplicate address detection in this namespace.
      await runOk(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w',
        'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0',
        'net.ipv6.conf.all.dad_transmits=0', 'net.ipv6.conf.default.dad_transmits=0']);
      await runOk(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    }
    // veth pairs created directly inside their namespaces (never in the root namespace).
    await runOk(['ip', '-n', client, 'link', 'add', this.ifname.client, 'type', 'veth', 'peer', 'name', this.ifname.routerClient, 'netns', router]);
    await runOk(['ip', '-n', server, 'link', 'add', this.ifname.server, 'type', 'veth', 'peer', 'name', this.ifname.routerServer, 'netns', router]);

    await runOk(['ip', 'netns', 'exec', router, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=1', 'net.ipv6.conf.all.forwarding=1']);

    const a = this.addr;
    // Router ends first: an end brought up while its peer is still down delays its first IPv6
    // neighbour solicitation by about a second (measured), so the hosts come up last.
    const plan: Array<[string, string, Endpoint, Endpoint | null]> = [
      [router, this.ifname.routerClient, a.routerClient, null],
      [router, this.ifname.routerServer, a.routerServer, null],
      [client, this.ifname.client, a.client, a.routerClient],
      [server, this.ifname.server, a.server, a.routerServer],
    ];
    for (const [ns, dev, ep] of plan) {
      await runOk(['ip', 'netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv6.conf.${dev}.accept_dad=0`]);
      await runOk(['ip', '-n', ns, 'addr', 'add', `${ep.v4}/24`, 'dev', dev]);
      await runOk(['ip', '-n', ns, '-6', 'addr', 'add', `${ep.v6}/64`, 'dev', dev, 'nodad']);
      await runOk(['ip', '-n', ns, 'link', 'set', dev, 'up']);
    }
    for (const [ns, , , gw] of plan) {
      if (!gw) continue;
      await runOk(['ip', '-n', ns, 'route', 'add', 'default', 'via', gw.v4]);
      await runOk(['ip', '-n', ns, '-6', 'route', 'add', 'default', 'via', gw.v6]);
    }
  }

  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    this.destroyed = true;
    await Promise.all([...this.procs].map((p) => p.kill('SIGTERM', 2000)));
    for (const ns of this.created) {
      // Anything else still inside our namespaces (e.g. grandchildren) is ours too.
      for (let round = 0; round < 3; round++) {
        const r = await runCmd(['ip', 'netns', 'pids', ns], { timeoutMs: 5000 });
        const pids = r.stdout.split(/\s+/).filter(Boolean).map(Number).filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
        if (pids.length === 0) break;
        for (const pid of pids) {
          try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ }
        }
        await new Promise((r2) => setTimeout(r2, 50));
      }
      await runCmd(['ip', 'netns', 'del', ns], { timeoutMs: 10_000 });
    }
    this.created = [];
    live.delete(this);
    if (live.size === 0) removeHandlers();
  }

  /** Synchronous variant used from exit and signal handlers. */
  destroySync(): void {
    this.destroyed = true;
    for (const p of this.procs) p.killSync();
    for (const ns of this.created) killAndDeleteNsSync(ns);
    this.created = [];
    live.delete(this);
  }
}

/** Build the three-namespace topology. On any failure during set-up, everything created is removed. */
export async function createTopology(opts: TopologyOptions = {}): Promise<Topology> {
  if (opts.label !== undefined && !/^[A-Za-z0-9][A-Za-z0-9-]{0,11}$/.test(opts.label)) {
    throw new Error(`invalid topology label ${JSON.stringify(opts.label)}`);
  }
  sweepStaleNamespaces();
  const rand = randomBytes(3).toString('hex');
  const prefix = [NS_PREFIX, String(process.pid), rand, ...(opts.label ? [opts.label] : [])].join('-');
  for (const x of opts.extraNamespaces ?? []) {
    if (!/^[a-z][a-z0-9]{0,11}$/.test(x) || ['client', 'router', 'server'].includes(x)) throw new Error(`invalid extra namespace name ${JSON.stringify(x)}`);
  }
  const topo = new TopologyImpl(prefix, opts.execTimeoutMs ?? DEFAULT_EXEC_TIMEOUT, opts.extraNamespaces);
  live.add(topo);
  installHandlers();
  try {
    await topo.build();
  } catch (e) {
    await topo.destroy();
    throw e;
  }
  return topo;
}

/** Minimal shape of a tap Test used here (avoids a type dependency on tap's internals). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

/**
 * For tap: create a topology, register t.teardown(destroy) before running `fn`, and return fn's
 * result. The topology is destroyed when the test ends, whether it passed, failed or threw.
 */
export async function withTopology<T>(t: TeardownHost, fn: (topo: Topology) => Promise<T> | T, opts?: TopologyOptions): Promise<T> {
  const topo = await createTopology(opts);
  t.teardown(() => topo.destroy());
  return fn(topo);
}

/** Names of the namespaces currently present whose name starts with `prefix`. */
export function listNamespaces(prefix: string): string[] {
  return listNetns().filter((n) => n.startsWith(prefix));
}
