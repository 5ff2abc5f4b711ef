// Unix socket server for the CLI. The socket is created mode 0600 (root only: it can clear
// sessions), and a stale socket left by a crashed daemon is replaced, a live one is not.

import { chmodSync, mkdirSync, unlinkSync, existsSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import { LineReader } from './line-reader.js';
import type { ControlRequest, ControlResponse } from './protocol.js';

export type Handler = (args: Record<string, unknown>) => unknown | Promise<unknown>;

/** What one client may hold of the daemon: the CLI sends one short request per connection. */
export interface ControlLimits {
  /** Bytes of one request line, without its newline. */
  maxLine: number;
  /** Connections open at once; one more is answered with an error and closed. */
  maxClients: number;
  /** Requests of one connection read but not yet answered; past it the connection is not read from. */
  maxPending: number;
  /** A connection with nothing in flight and nothing received for this long is closed. */
  idleMs: number;
}

export const CONTROL_LIMITS: ControlLimits = { maxLine: 64 * 1024, maxClients: 64, maxPending: 16, idleMs: 60_000 };

const reply = (r: ControlResponse): string => `${JSON.stringify(r)}\n`;

function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

/**
 * Sends a last answer and closes. The socket is destroyed once the answer is out: its reading
 * side is paused (or was never read), so it would never see the client's end by itself.
 */
function closeWith(sock: net.Socket, r: ControlResponse): void {
  sock.end(reply(r), () => sock.destroy());
}

/** Resolves once the socket took its queued output, or is gone. */
function drained(sock: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => { sock.off('drain', done); sock.off('close', done); resolve(); };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

export class ControlServer {
  private server?: net.Server;
  private readonly clients = new Set<net.Socket>();
  private readonly limits: ControlLimits;
  /** Connections turned away because maxClients were open. */
  refusedClients = 0;

  constructor(private readonly path: string, private readonly handlers: Record<string, Handler>, limits: Partial<ControlLimits> = {}) {
    this.limits = { ...CONTROL_LIMITS, ...limits };
  }

  async listen(): Promise<void> {
    mkdirSync(dirname(this.path), { recursive: true, mode: 0o755 });
    if (existsSync(this.path)) {
      if (await probe(this.path)) throw new Error(`control socket ${this.path} is in use by a running daemon`);
      unlinkSync(this.path);
    }
    const server = net.createServer((sock) => this.serve(sock));
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(this.path, () => { server.off('error', reject); resolve(); });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(this.path, 0o600);
    this.server = server;
  }

  private serve(sock: net.Socket): void {
    sock.on('error', () => sock.destroy());
    const L = this.limits;
    if (this.clients.size >= L.maxClients) {
      this.refusedClients++;
      closeWith(sock, { ok: false, error: `too many control connections (${L.maxClients} open): try again once one has closed` });
      return;
    }
    this.clients.add(sock);
    sock.on('close', () => this.clients.delete(sock));
    const reader = new LineReader(L.maxLine);
    let pending = 0;
    let chain = Promise.resolve();
    const send = async (r: ControlResponse): Promise<void> => {
      if (sock.destroyed) return;
      // A client that does not read its answers holds at most one of them in the daemon.
      if (!sock.write(reply(r))) await drained(sock);
    };
    // A listener of its own: setTimeout's callback would be called only the first time.
    sock.setTimeout(L.idleMs);
    sock.on('timeout', () => {
      if (pending === 0 && !sock.destroyed) closeWith(sock, { ok: false, error: `control connection idle for ${L.idleMs / 1000} s: closed` });
    });
    sock.on('data', (chunk: Buffer | string) => {
      for (const ev of reader.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk)) {
        if ('line' in ev) {
          if (++pending >= L.maxPending) sock.pause();
          // Answers go out in request order even when a handler is async.
          chain = chain.then(() => this.answer(ev.line)).then(send).then(() => {
            pending--;
            if (pending < L.maxPending && !reader.overflowed && !sock.destroyed) sock.resume();
            // The idle timer may have run out while the handler worked: it counts from here again.
            if (pending === 0 && !sock.destroyed) sock.setTimeout(L.idleMs);
          }, () => { sock.destroy(); });
        } else {
          // Nothing more is read: the requests before the long line are answered, then the refusal.
          sock.pause();
          const error = `request line over the limit of ${L.maxLine} bytes: refused, connection closed`;
          chain = chain.then(() => { if (!sock.destroyed) closeWith(sock, { ok: false, error }); });
        }
      }
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      return { ok: false, error: 'request is not JSON' };
    }
    // Own handlers only: a name like 'constructor' or 'toString' is an Object.prototype member, not a command.
    const h = typeof req?.cmd === 'string' && Object.hasOwn(this.handlers, req.cmd) ? this.handlers[req.cmd] : undefined;
    if (!h) return { ok: false, error: `unknown command '${String(req?.cmd)}'` };
    try {
      return { ok: true, result: await h(req.args ?? {}) };
    } catch (e) {
      return { ok: false, error: (e as Error).message };
    }
  }

  async close(): Promise<void> {
    for (const c of this.clients) c.destroy();
    const s = this.server;
    this.server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
    try { unlinkSync(this.path); } catch { /* already gone */ }
  }
}

/** One request/response exchange, for the CLI. */
export function request(path: string, req: ControlRequest, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(path);
    let buf = '';
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`no answer from ${path} within ${timeoutMs} ms`)); }, timeoutMs);
    sock.setEncoding('utf8');
    sock.once('connect', () => sock.write(`${JSON.stringify(req)}\n`));
    sock.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const r = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      if (r.ok) resolve(r.result);
      else reject(new Error(r.error));
    });
    sock.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint = e.code === 'ENOENT' || e.code === 'ECONNREFUSED' ? ' (is the daemon running? set --control or NFSESSIOND_CONTROL)' : '';
      reject(new Error(`cannot reach control socket ${path}: ${e.code ?? e.message}${hint}`));
    });
  });
}
