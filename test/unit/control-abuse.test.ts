// The control socket against clients that send too much: a request line over the bound is
// refused and the connection closed however the bytes are cut (its newline in the same chunk
// too), what the reader holds of an unfinished line never passes the bound, a client that
// pipelines without reading is not read from past a few requests, and connections past the cap
// are answered with an error.

import t from 'tap';
import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { LineReader } from '../../src/control/line-reader.js';
import { ControlServer, type Handler } from '../../src/control/server.js';

/** Just enough of net.Socket for ControlServer.serve, with the chunks it is given exactly as cut. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  ended = false;
  paused = false;
  written: string[] = [];
  write(s: string): boolean { this.written.push(s); return true; }
  end(s?: string, cb?: () => void): this { if (s) this.written.push(s); this.ended = true; this.destroyed = true; cb?.(); return this; }
  destroy(): this { this.destroyed = true; return this; }
  pause(): this { this.paused = true; return this; }
  resume(): this { this.paused = false; return this; }
  setTimeout(): this { return this; }
  receive(b: Buffer): void { this.emit('data', b); }
  responses(): Array<{ ok: boolean; error?: string; result?: unknown }> {
    return this.written.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l));
  }
}

const settle = (): Promise<void> => new Promise((r) => setImmediate(r));

function serveFake(handlers: Record<string, Handler>, limits: ConstructorParameters<typeof ControlServer>[2]): FakeSocket {
  const server = new ControlServer('/nonexistent/abuse.sock', handlers, limits);
  const sock = new FakeSocket();
  (server as unknown as { serve(s: FakeSocket): void }).serve(sock);
  return sock;
}

/** Cuts `b` at the given sizes (the rest is the last chunk). */
function cut(b: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (const n of sizes) { if (at >= b.length) break; out.push(b.subarray(at, at + n)); at += n; }
  if (at < b.length) out.push(b.subarray(at));
  return out;
}

t.test('a line over the bound is refused and ends the connection, in every chunking', async (t) => {
  const MAX = 64;
  await fc.assert(fc.asyncProperty(
    fc.integer({ min: 0, max: 3 }), fc.integer({ min: MAX + 1, max: 4 * MAX }), fc.boolean(),
    fc.array(fc.integer({ min: 1, max: 3 * MAX }), { maxLength: 6 }),
    async (before, longLen, after, sizes) => {
      const seen: string[] = [];
      const sock = serveFake({ echo: (a) => { seen.push(String(a.pad ?? '')); return a; } }, { maxLine: MAX });
      const head = Array.from({ length: before }, (_, i) => `{"cmd":"echo","args":{"pad":"ok${i}"}}\n`).join('');
      const prefix = '{"cmd":"echo","args":{"pad":"';
      const long = `${prefix}${'x'.repeat(longLen - prefix.length - 3)}"}}`;
      const tail = after ? '{"cmd":"echo","args":{"pad":"after"}}\n' : '';
      for (const c of cut(Buffer.from(`${head}${long}\n${tail}`), sizes)) { sock.receive(c); await settle(); }
      await settle();
      const rs = sock.responses();
      if (rs.length !== before + 1) throw new Error(`${rs.length} responses to ${before} short lines and one long one`);
      for (let i = 0; i < before; i++) if (!rs[i].ok) throw new Error(`short line ${i} refused`);
      const last = rs[before];
      if (last.ok || !/over the limit of 64 bytes/.test(last.error ?? '')) throw new Error(`the long line was answered ${JSON.stringify(last).slice(0, 120)}`);
      if (!sock.ended) throw new Error('the connection stayed open after the long line');
      if (seen.some((s) => s.length > MAX || s === 'after')) throw new Error('a handler ran for the long line or what followed it');
    },
  ), { numRuns: 300, seed: 13 });
});

t.test('the reader holds no more than the bound of an unfinished line, and cuts lines like split', async (t) => {
  const MAX = 32;
  await fc.assert(fc.property(
    fc.array(fc.string({ unit: 'grapheme', maxLength: 12 }), { maxLength: 8 }), fc.array(fc.integer({ min: 1, max: 20 }), { maxLength: 10 }),
    (lines, sizes) => {
      const text = lines.join('\n');
      const r = new LineReader(MAX);
      const got: string[] = [];
      let refused = false;
      for (const c of cut(Buffer.from(text), sizes)) {
        for (const ev of r.push(c)) {
          if ('line' in ev) got.push(ev.line);
          else refused = true;
        }
        if (r.buffered > MAX) throw new Error(`holds ${r.buffered} bytes`);
      }
      const want = text.split('\n');
      want.pop();
      const over = want.findIndex((l) => Buffer.byteLength(l) > MAX);
      const tailOver = Buffer.byteLength(text.split('\n').at(-1) ?? '') > MAX;
      if (over >= 0) {
        if (!refused || JSON.stringify(got) !== JSON.stringify(want.slice(0, over))) throw new Error(`lines ${JSON.stringify(got)} around an over-long one`);
      } else {
        if (refused !== tailOver) throw new Error('refused a stream without a long line');
        if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`lines ${JSON.stringify(got)} want ${JSON.stringify(want)}`);
      }
    },
  ), { numRuns: 500, seed: 13 });
});

t.test('a client that pipelines without waiting is not read from past maxPending requests', async (t) => {
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  const sock = serveFake({ slow: async () => { await gate; return 1; } }, { maxPending: 4 });
  sock.receive(Buffer.from('{"cmd":"slow"}\n'.repeat(4)));
  t.ok(sock.paused, 'paused at 4 requests in flight');
  release();
  for (let i = 0; i < 5; i++) await settle();
  t.equal(sock.responses().length, 4);
  t.notOk(sock.paused, 'read again once they were answered');
});

t.test('a real socket: an over-long line in one write, and connections past the cap', { timeout: 10_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-ctl-'));
  const path = join(dir, 'c.sock');
  const calls: number[] = [];
  const server = new ControlServer(path, { echo: (a) => { calls.push(JSON.stringify(a).length); return 'ok'; } }, { maxClients: 3 });
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });

  /** Sends `payload`, returns what came back once `lines` answers came or the server closed. */
  const exchange = (payload: string, lines = 1): Promise<string> => new Promise((resolve, reject) => {
    const c = net.connect(path);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { got += d; if (got.split('\n').length > lines) c.destroy(); });
    c.on('error', reject);
    c.on('close', () => resolve(got));
    c.once('connect', () => c.write(payload));
  });
  const big = `{"cmd":"echo","args":{"pad":"${'y'.repeat(70 * 1024)}"}}\n`;
  const out = await exchange(`{"cmd":"echo"}\n${big}`, 2);
  const rs = out.split('\n').filter(Boolean).map((l) => JSON.parse(l));
  t.same(rs.map((r) => r.ok), [true, false], 'the short request answered, the long one refused');
  t.match(rs[1].error, /over the limit of 65536 bytes/);
  t.equal(calls.length, 1, 'the handler never saw the long line');

  // Three connections held open; the fourth is answered with an error and closed.
  const held: net.Socket[] = [];
  for (let i = 0; i < 3; i++) {
    const c = net.connect(path);
    await new Promise((r) => c.once('connect', r));
    held.push(c);
  }
  await new Promise((r) => setTimeout(r, 20));
  const refused = JSON.parse((await exchange('{"cmd":"echo"}\n')).trim());
  t.equal(refused.ok, false);
  t.match(refused.error, /too many control connections \(3 open\)/);
  t.equal(server.refusedClients, 1);
  for (const c of held) c.destroy();
  await new Promise((r) => setTimeout(r, 20));
  const again = JSON.parse((await exchange('{"cmd":"echo"}\n')).trim().split('\n')[0]);
  t.equal(again.ok, true, 'room again once they closed');
});

t.test('a client that does not read its answers holds at most one of them in the daemon', async (t) => {
  const sock = serveFake({ big: () => 'z'.repeat(100) }, {});
  let full = true;
  sock.write = (s: string): boolean => { sock.written.push(s); return !full; };
  sock.receive(Buffer.from('{"cmd":"big"}\n'.repeat(3)));
  for (let i = 0; i < 5; i++) await settle();
  t.equal(sock.responses().length, 1, 'the second answer waits for the first to drain');
  full = false;
  sock.emit('drain');
  for (let i = 0; i < 5; i++) await settle();
  t.equal(sock.responses().length, 3, 'the rest once the client reads');
});

t.test('an idle connection is closed with an error, one with a request in flight is not', { timeout: 10_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nfs-ctl-'));
  const path = join(dir, 'c.sock');
  let release: () => void = () => {};
  const gate = new Promise<void>((r) => { release = r; });
  const server = new ControlServer(path, { slow: async () => { await gate; return 'done'; } }, { idleMs: 50 });
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  const collect = (payload?: string): Promise<string> => new Promise((resolve, reject) => {
    const c = net.connect(path);
    let got = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => { got += d; });
    c.on('error', reject);
    c.on('close', () => resolve(got));
    c.once('connect', () => { if (payload) c.write(payload); });
  });
  const idle = JSON.parse((await collect()).trim());
  t.equal(idle.ok, false);
  t.match(idle.error, /idle for 0.05 s: closed/);
  const busy = collect('{"cmd":"slow"}\n');
  await new Promise((r) => setTimeout(r, 150));
  release();
  const lines = (await busy).trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines[0], { ok: true, result: 'done' }, 'answered although it took longer than the idle time');
  t.equal(lines[1]?.ok, false, 'then closed once idle');
});
