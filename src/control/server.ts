// Unix socket server for the CLI. The socket is created mode 0600 (root only: it can clear
// sessions), and a stale socket left by a crashed daemon is replaced, a live one is not.

import { chmodSync, mkdirSync, unlinkSync, existsSync } from 'node:fs';
import net from 'node:net';
import { dirname } from 'node:path';
import type { ControlRequest, ControlResponse } from './protocol.js';

export type Handler = (args: Record<string, unknown>) => unknown | Promise<unknown>;

const MAX_LINE = 64 * 1024;

function probe(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private server?: net.Server;
  private readonly clients = new Set<net.Socket>();

  constructor(private readonly path: string, private readonly handlers: Record<string, Handler>) {}

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
    this.clients.add(sock);
    sock.on('close', () => this.clients.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    let chain = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_LINE && !buf.includes('\n')) {
        sock.end(`${JSON.stringify({ ok: false, error: 'request line too long' })}\n`);
        return;
      }
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        // Answers go out in request order even when a handler is async.
        chain = chain.then(() => this.answer(line)).then((r) => { if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`); });
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
