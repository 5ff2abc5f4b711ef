// Runs the netfilter CLIs (nft, iptables, ip6tables, their -restore forms) without a shell, so
// rule text and chain names are never re-parsed by sh. Failures carry the full command line and
// the tool's stderr, because "exit status 1" alone is useless to an operator reading the log.

import { spawn } from 'node:child_process';

export interface ExecResult {
  /** Exit status; -1 when killed by a signal or the timeout. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface ExecOptions {
  /** Written to stdin, then stdin is closed (nft -f -, iptables-restore). */
  input?: string;
  /** Run inside this named network namespace (`ip netns exec NAME ...`): used by tests and tools. */
  netns?: string;
  /** Kill after this long; netfilter tools answer in milliseconds, a hang means a stuck lock. */
  timeoutMs?: number;
}

/** Which Debian package provides each tool, for the "not installed" message. */
const PACKAGE_OF: Record<string, string> = {
  nft: 'nftables',
  iptables: 'iptables', ip6tables: 'iptables',
  'iptables-restore': 'iptables', 'ip6tables-restore': 'iptables',
  'iptables-save': 'iptables', 'ip6tables-save': 'iptables',
  conntrack: 'conntrack',
  ip: 'iproute2',
};

export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly code: number,
    readonly stderr: string,
    what?: string,
  ) {
    super(`${what ? `${what}: ` : ''}\`${command}\` failed (exit ${code}): ${stderr.trim() || '(no stderr)'}`);
    this.name = 'CommandError';
  }
}

const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);

/** The command line as a shell would show it, for messages only. */
export function commandLine(cmd: string, args: readonly string[], netns?: string): string {
  const full = netns ? ['ip', 'netns', 'exec', netns, cmd, ...args] : [cmd, ...args];
  return full.map(quote).join(' ');
}

/** Runs a command and reports its status; never rejects for a non-zero exit (callers decide). */
export function run(cmd: string, args: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
  const file = opts.netns ? 'ip' : cmd;
  const argv = opts.netns ? ['netns', 'exec', opts.netns, cmd, ...args] : [...args];
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timer: NodeJS.Timeout | undefined;
    if (opts.timeoutMs) {
      timer = setTimeout(() => {
        err.push(Buffer.from(`\n(killed after ${opts.timeoutMs} ms)`));
        child.kill('SIGKILL');
      }, opts.timeoutMs);
    }
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', (e: NodeJS.ErrnoException) => {
      if (timer) clearTimeout(timer);
      if (e.code === 'ENOENT') {
        const pkg = PACKAGE_OF[file];
        reject(new CommandError(commandLine(cmd, args, opts.netns), -1, `${file}: not found${pkg ? ` (Debian package: ${pkg})` : ''}`));
      } else {
        reject(new CommandError(commandLine(cmd, args, opts.netns), -1, e.message));
      }
    });
    // EPIPE on stdin when the tool exits early (bad option) is reported through the exit status.
    child.stdin.on('error', () => {});
    child.on('close', (code) => {
      if (timer) clearTimeout(timer);
      resolve({ code: code ?? -1, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
    });
    child.stdin.end(opts.input ?? '');
  });
}

/** Runs a command that must succeed; returns stdout or throws a CommandError. */
export async function runOk(cmd: string, args: readonly string[], opts: ExecOptions = {}, what?: string): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new CommandError(commandLine(cmd, args, opts.netns), r.code, r.stderr, what);
  return r.stdout;
}
