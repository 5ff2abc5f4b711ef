// The systemd service protocol (sd_notify(3)) for `Type=notify`: READY=1 once the ruleset is
// installed and the queue bound, STATUS= with the session count, RELOADING=1 / READY=1 around a
// SIGHUP reload, STOPPING=1 on the way out, and WATCHDOG=1 from a timer on the event loop (a
// wedged loop stops the pings and systemd restarts the service after WatchdogSec=).
//
// The datagram goes through native/notify.cc (Node has no AF_UNIX datagram sockets). Without
// $NOTIFY_SOCKET (not started by systemd, or Type=simple) nothing is loaded and nothing is sent.

import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../kernel/netlink-socket.js';

/** native/notify.cc, as it exports itself. */
export interface NotifyAddon {
  /** Sends one datagram to a socket named as in $NOTIFY_SOCKET ('@name' = abstract). Throws on error. */
  notify(socket: string, message: string): void;
  /** Binds a datagram socket (the service manager's side; tests) and returns its fd. */
  listen(socket: string): number;
  /** One datagram as text, or null when none arrived within timeoutMs (0 = do not wait). */
  receive(fd: number, timeoutMs: number): string | null;
  close(fd: number): void;
}

let addon: NotifyAddon | undefined;

export function notifyAddonPath(): string {
  return join(packageRoot(), 'native', 'build', 'Release', 'nfsessiond_notify.node');
}

export function loadNotifyAddon(): NotifyAddon {
  if (addon) return addon;
  const path = notifyAddonPath();
  if (!existsSync(path)) throw new Error(`nfsessiond notify addon not built: ${path} is missing (run \`npm run install\`)`);
  addon = createRequire(join(packageRoot(), 'package.json'))(path) as NotifyAddon;
  return addon;
}

/** What systemd put in the environment for us. */
export interface ServiceEnv {
  notifySocket?: string;
  /** Watchdog period (µs) when the watchdog is on and meant for this process. */
  watchdogUsec?: number;
}

/**
 * Reads NOTIFY_SOCKET / WATCHDOG_USEC / WATCHDOG_PID. WATCHDOG_PID, when set, must be our pid
 * (otherwise the watchdog is another process's). With `unset`, the variables are removed from
 * the environment, as sd_notify's unset_environment does, so the iptables/nft children the
 * daemon runs never see them.
 */
export function readServiceEnv(env: NodeJS.ProcessEnv = process.env, pid = process.pid, unset = false): ServiceEnv {
  const out: ServiceEnv = {};
  const sock = env.NOTIFY_SOCKET;
  if (sock && (sock.startsWith('/') || sock.startsWith('@'))) out.notifySocket = sock;
  const usec = Number(env.WATCHDOG_USEC);
  const wpid = env.WATCHDOG_PID;
  if (Number.isInteger(usec) && usec > 0 && (wpid === undefined || wpid === '' || Number(wpid) === pid)) out.watchdogUsec = usec;
  if (unset) {
    delete env.NOTIFY_SOCKET;
    delete env.WATCHDOG_USEC;
    delete env.WATCHDOG_PID;
  }
  return out;
}

/** Current CLOCK_MONOTONIC in µs (what RELOADING=1 pairs with, MONOTONIC_USEC=). */
const monotonicUsec = (): bigint => process.hrtime.bigint() / 1000n;

/** Joins assignments into one notification: `KEY=value` lines; newlines inside values are flattened. */
export function notifyMessage(fields: Record<string, string | number>): string {
  return Object.entries(fields).map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`).join('\n');
}

export interface NotifierLog {
  warn(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

export class ServiceNotifier {
  private watchdog?: NodeJS.Timeout;
  private statusTimer?: NodeJS.Timeout;
  private lastStatus = '';
  private failures = 0;

  private constructor(private readonly env: ServiceEnv, private readonly send: (msg: string) => void, private readonly log?: NotifierLog) {}

  /**
   * A notifier for this process, or undefined when there is no $NOTIFY_SOCKET. The environment
   * variables are consumed (removed) so child processes do not inherit them.
   */
  static fromEnvironment(log?: NotifierLog, env: NodeJS.ProcessEnv = process.env): ServiceNotifier | undefined {
    const se = readServiceEnv(env, process.pid, true);
    if (!se.notifySocket) return undefined;
    const native = loadNotifyAddon();
    const sock = se.notifySocket;
    return new ServiceNotifier(se, (msg) => native.notify(sock, msg), log);
  }

  /** For tests: a notifier writing to `send`. */
  static withSender(env: ServiceEnv, send: (msg: string) => void, log?: NotifierLog): ServiceNotifier {
    return new ServiceNotifier(env, send, log);
  }

  get socket(): string | undefined { return this.env.notifySocket; }
  get watchdogUsec(): number | undefined { return this.env.watchdogUsec; }

  /** Sends one notification; a failure is logged (rate-limited), never thrown: the service goes on. */
  notify(fields: Record<string, string | number>): boolean {
    try {
      this.send(notifyMessage(fields));
      this.failures = 0;
      return true;
    } catch (e) {
      if (this.failures++ === 0) this.log?.warn({ err: (e as Error).message, socket: this.env.notifySocket }, 'sd_notify failed');
      return false;
    }
  }

  ready(status: string): void {
    this.lastStatus = status;
    this.notify({ READY: 1, STATUS: status, MAINPID: process.pid });
  }

  reloading(): void {
    this.notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec().toString() });
  }

  stopping(status = 'stopping'): void {
    this.notify({ STOPPING: 1, STATUS: status });
  }

  /** STATUS= when the text changed since the last one sent. */
  status(text: string): void {
    if (text === this.lastStatus) return;
    this.lastStatus = text;
    this.notify({ STATUS: text });
  }

  /**
   * Starts the event-loop timers: WATCHDOG=1 every half watchdog period (when the watchdog is
   * on), and the STATUS line every `statusMs` (sent only when it changed).
   */
  start(statusText: () => string, statusMs = 5000): void {
    const usec = this.env.watchdogUsec;
    if (usec) {
      const period = Math.max(1, Math.floor(usec / 2000));
      this.watchdog = setInterval(() => this.notify({ WATCHDOG: 1 }), period);
      this.watchdog.unref();
      this.log?.debug({ periodMs: period }, 'systemd watchdog pings started');
    }
    // With a short watchdog the status follows at the same pace (cheap: one string compare).
    const every = usec ? Math.min(statusMs, Math.max(100, Math.floor(usec / 2000))) : statusMs;
    this.statusTimer = setInterval(() => this.status(statusText()), every);
    this.statusTimer.unref();
  }

  stop(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.watchdog = undefined;
    this.statusTimer = undefined;
  }
}
