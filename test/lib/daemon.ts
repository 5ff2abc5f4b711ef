// Runs the built daemon (dist/) inside a topology's router namespace and talks to it through the
// real CLI, the way an operator would.

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NsProcess, Topology } from '../../src/topology/netns.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'dist/src/cli.js');

export interface RunningDaemon {
  proc: NsProcess;
  control: string;
  configPath: string;
  dir: string;
  /** Runs `nfsessiond <args...> --control <sock>` and returns stdout (rejects on a non-zero exit). */
  cli(...args: string[]): Promise<string>;
  json<T>(...args: string[]): Promise<T>;
  /** SIGTERM and wait; resolves with the exit code. */
  stop(): Promise<number | null>;
}

export function requireBuild(): void {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` (the test command does it)`);
}

export function runCli(args: string[], timeoutMs = 15_000): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    execFile(process.execPath, [CLI, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`nfsessiond ${args.join(' ')} failed: ${stderr || err.message}`));
      else resolvePromise(stdout);
    });
  });
}

/** Starts the daemon in the router namespace with the given config text and waits for "ready". */
export async function startDaemon(topo: Topology, config: string, opts: { dir?: string; ns?: string } = {}): Promise<RunningDaemon> {
  requireBuild();
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'nfsessiond-test-'));
  const configPath = join(dir, 'nfsessiond.conf');
  const control = join(dir, 'control.sock');
  writeFileSync(configPath, config);
  // Each daemon keeps its table snapshot in its own directory: tests run side by side.
  const proc = topo.spawn(opts.ns ?? 'router', [process.execPath, CLI, 'run', '--config', configPath, '--control', control, '--state-dir', dir]);
  try {
    await proc.waitForLine(/"msg":"ready"/, { timeoutMs: 20_000 });
  } catch (e) {
    throw new Error(`daemon did not become ready: ${(e as Error).message}\nstdout: ${proc.stdout().slice(-2000)}\nstderr: ${proc.stderr().slice(-2000)}`);
  }
  const cli = (...args: string[]) => runCli([...args, '--control', control]);
  return {
    proc,
    control,
    configPath,
    dir,
    cli,
    json: async <T>(...args: string[]) => JSON.parse(await cli(...args, '--json')) as T,
    stop: async () => {
      await proc.kill('SIGTERM', 10_000);
      const r = await proc.exited;
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
      return r.code;
    },
  };
}

/** Polls `check` until it returns a value or the deadline passes (then returns the last value seen). */
export async function eventually<T>(check: () => Promise<T | undefined>, timeoutMs = 15_000, intervalMs = 250): Promise<T | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The kernel's per-queue counters in a namespace (queue number -> last packet id and drops). */
export async function queueCounters(topo: Topology, queue = 0): Promise<{ lastId: number; queueDropped: number; userDropped: number } | undefined> {
  const r = await topo.exec('router', ['cat', '/proc/net/netfilter/nfnetlink_queue']);
  for (const line of r.stdout.split('\n')) {
    const f = line.trim().split(/\s+/).map(Number);
    if (f.length >= 8 && f[0] === queue) return { lastId: f[7], queueDropped: f[5], userDropped: f[6] };
  }
  return undefined;
}
