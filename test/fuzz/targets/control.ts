// Target: the control socket's request framing and parsing (ControlServer's per-connection
// reader), driven through a stand-in socket: chunks of bytes in, response lines out. Every
// complete request line gets exactly one response line, in order, and each response is a JSON
// object { ok: true, result } or { ok: false, error: string }; a command is only ever one of
// the server's own handlers; a line longer than the bound (in bytes, however it was cut, its
// newline in the same chunk or not) ends the connection; what the reader buffers stays bounded.

import { EventEmitter } from 'node:events';
import { StringDecoder } from 'node:string_decoder';
import fc from 'fast-check';
import { ControlServer, type Handler } from '../../../src/control/server.js';
import { ensure } from '../check.js';
import { mutated } from '../mutate.js';
import type { FuzzTarget } from '../target.js';

/** The server's line bound (not exported by it). */
const MAX_LINE = 64 * 1024;

export interface ControlInput { chunks: Buffer[] }

/** Just enough of net.Socket for ControlServer.serve: a byte stream that can be paused. */
class FakeSocket extends EventEmitter {
  destroyed = false;
  ended = false;
  written: string[] = [];
  private decoder?: StringDecoder;
  setEncoding(enc: BufferEncoding): this { this.decoder = new StringDecoder(enc); return this; }
  write(s: string): boolean { ensure(!this.ended, 'wrote after end'); this.written.push(s); return true; }
  end(s?: string, cb?: () => void): this { if (s) this.written.push(s); this.ended = true; this.destroyed = true; cb?.(); return this; }
  destroy(): this { this.destroyed = true; return this; }
  pause(): this { return this; }
  resume(): this { return this; }
  setTimeout(): this { return this; }
  receive(b: Buffer): void { this.emit('data', this.decoder ? this.decoder.write(b) : b); }
}

const HANDLERS: Record<string, Handler> = {
  echo: (args) => ({ args }),
  fail: () => { throw new Error('handler failed'); },
  later: async (args) => { await Promise.resolve(); return args; },
};

async function run({ chunks }: ControlInput): Promise<void> {
  const server = new ControlServer('/nonexistent/fuzz.sock', HANDLERS);
  const sock = new FakeSocket();
  (server as unknown as { serve(s: FakeSocket): void }).serve(sock);
  // What the reader should see: the bytes as text, cut into lines.
  const decoder = new StringDecoder('utf8');
  let text = '';
  let delivered = 0;
  for (const c of chunks) {
    if (sock.ended) break;
    delivered++;
    sock.receive(c);
    text += decoder.write(c);
    // Answers are chained on promises; a real socket's next chunk comes in a later turn of the loop.
    await new Promise((r) => setImmediate(r));
  }
  const lines = text.split('\n');
  lines.pop();
  const out = sock.written.join('');
  ensure(out === '' || out.endsWith('\n'), 'a response line without its newline');
  const responses = out ? out.slice(0, -1).split('\n') : [];
  if (!sock.ended) ensure(responses.length === lines.length, () => `${lines.length} request lines, ${responses.length} responses`);
  else ensure(responses.length <= lines.length + 1, () => `${lines.length} request lines, ${responses.length} responses`);
  for (let i = 0; i < responses.length; i++) {
    let r: { ok?: unknown; result?: unknown; error?: unknown };
    try { r = JSON.parse(responses[i]); } catch { throw new Error(`response ${i} is not JSON: ${responses[i].slice(0, 80)}`); }
    ensure(r && typeof r === 'object' && (r.ok === true ? 'result' in r : r.ok === false && typeof r.error === 'string'), `response ${i} has neither result nor error: ${responses[i].slice(0, 80)}`);
    if (i >= lines.length) { ensure(r.ok === false, 'an answer to a line that never ended'); continue; }
    let req: { cmd?: unknown } | undefined;
    try { req = JSON.parse(lines[i]); } catch { req = undefined; }
    const cmd = req && typeof req === 'object' ? req.cmd : undefined;
    const known = typeof cmd === 'string' && Object.hasOwn(HANDLERS, cmd);
    if (!known) ensure(r.ok === false, () => `request ${JSON.stringify(lines[i].slice(0, 80))} is no command of the server, yet it was answered ok`);
    else if (cmd === 'fail') ensure(r.ok === false && r.error === 'handler failed', 'a failing handler answered ok');
    else ensure(r.ok === true, () => `command ${String(cmd)} failed: ${String(r.error)}`);
  }
  // Measured on the bytes as sent: a byte that is no UTF-8 decodes to three.
  let over = false;
  const sent = Buffer.concat(chunks.slice(0, delivered));
  for (let at = 0; at <= sent.length && !over;) {
    const nl = sent.indexOf(0x0a, at);
    const end = nl < 0 ? sent.length : nl;
    over = end - at > MAX_LINE;
    at = end + 1;
  }
  ensure(sock.ended === over, () => (over ? 'a line over the bound did not end the connection' : 'the connection ended without a line over the bound'));
}

const json = fc.oneof(
  fc.record({ cmd: fc.constantFrom('echo', 'fail', 'later', 'nope', 'constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'), args: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }) }).map((r) => JSON.stringify(r)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
  fc.string({ unit: 'grapheme', maxLength: 40 }),
  fc.constantFrom('', '{', '{"cmd":', 'null', '[]', '{"cmd":null}', '{"cmd":"echo","args":null}', '{"cmd":"echo","args":5}'),
);

/** Lines joined into a stream and cut at arbitrary byte positions (splitting UTF-8 sequences too). */
const stream = fc.tuple(fc.array(json, { maxLength: 6 }), fc.boolean(), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 8 }))
  .map(([ls, trailing, cuts]) => {
    const b = Buffer.from(ls.join('\n') + (trailing ? '\n' : ''), 'utf8');
    const chunks: Buffer[] = [];
    let at = 0;
    for (const c of cuts) { if (at >= b.length) break; chunks.push(b.subarray(at, at + c)); at += c; }
    if (at < b.length) chunks.push(b.subarray(at));
    return { chunks };
  });

/** A line past the bound, in one chunk or several, with or without its end. */
const oversized = fc.tuple(fc.integer({ min: MAX_LINE - 8, max: MAX_LINE + 4096 }), fc.integer({ min: 1, max: 4 }), fc.boolean(), fc.boolean())
  .map(([n, parts, nl, prefix]) => {
    const body = Buffer.alloc(n, 0x61);
    const chunks: Buffer[] = prefix ? [Buffer.from('{"cmd":"echo"}\n')] : [];
    const step = Math.ceil(n / parts);
    for (let i = 0; i < n; i += step) chunks.push(body.subarray(i, i + step));
    if (nl) chunks.push(Buffer.from('\n'));
    return { chunks };
  });

function arbitrary(): fc.Arbitrary<ControlInput> {
  const seeds = ['{"cmd":"echo","args":{"a":1}}\n{"cmd":"later"}\n', '{"cmd":"fail"}\n{"cmd":"nope"}\n', '{"cmd":"echo","args":{"s":"\u00e9\u6f22"}}\n'].map((s) => Buffer.from(s));
  return fc.oneof(
    { arbitrary: stream, weight: 6 },
    { arbitrary: mutated(seeds, 4).map((b) => ({ chunks: [b] })), weight: 3 },
    { arbitrary: oversized, weight: 1 },
  );
}

export const controlTarget: FuzzTarget<ControlInput> = {
  name: 'control',
  invariants: [
    'the reader never throws, whatever bytes arrive and however they are cut',
    'one JSON response line { ok, result } or { ok: false, error } per request line, in order',
    "only the server's own handlers run: any other cmd (Object.prototype names included) is an error",
    'a line longer than the bound ends the connection, with or without its newline',
  ],
  sources: ['src/control/server.ts'],
  arbitrary,
  run,
  cost: 4,
};
