// Cheap mutants of a generated input, for volume: fast-check builds a structured input (the
// expensive part), then each mutant edits a few bytes of one of its Buffers or strings with a
// plain xorshift generator. Deterministic from (seed, index, mutant), like the inputs.

/** xorshift32; state never 0. */
export class Xorshift {
  private s: number;
  constructor(seed: number) { this.s = (seed | 0) || 0x9e3779b9; }
  next(): number {
    let x = this.s;
    x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
    this.s = x;
    return x >>> 0;
  }
  below(n: number): number { return n > 0 ? this.next() % n : 0; }
}

type Leaf = { get(): Buffer | string; set(v: Buffer | string): void };

/** The Buffers and strings inside v (depth-bounded), as slots that can be replaced. */
function leaves(v: unknown, out: Leaf[], depth = 0): void {
  if (depth > 6 || v === null || typeof v !== 'object') return;
  const entries: Array<[string | number, unknown]> = Array.isArray(v) ? v.map((x, i) => [i, x]) : Buffer.isBuffer(v) ? [] : Object.entries(v);
  for (const [k, x] of entries) {
    const o = v as Record<string | number, unknown>;
    if (Buffer.isBuffer(x) || (typeof x === 'string' && x.length > 0)) out.push({ get: () => o[k] as Buffer | string, set: (n) => { o[k] = n; } });
    else leaves(x, out, depth + 1);
  }
}

const EDGE = [0x00, 0x0a, 0x0d, 0x20, 0x22, 0x2c, 0x30, 0x39, 0x7f, 0x80, 0xff];

function editBytes(b: Buffer, r: Xorshift): Buffer {
  let out = Buffer.from(b);
  const n = 1 + r.below(4);
  for (let i = 0; i < n; i++) {
    const at = r.below(out.length + 1);
    switch (r.below(6)) {
      case 0: if (out.length) out[at % out.length] ^= 1 << r.below(8); break;
      case 1: if (out.length) out[at % out.length] = EDGE[r.below(EDGE.length)]; break;
      case 2: if (out.length) out[at % out.length] = r.below(256); break;
      case 3: out = out.subarray(0, at); break;
      case 4: out = Buffer.concat([out.subarray(0, at), Buffer.from([r.below(256), r.below(256)].slice(0, 1 + r.below(2))), out.subarray(at)]); break;
      case 5: if (out.length >= 2) { const p = Math.min(at, out.length - 2); const v = [0, 0xffff, 0x7fff, 0x8000, out.length, r.below(65536)][r.below(6)]; out.writeUInt16BE(v & 0xffff, p); } break;
    }
  }
  return out;
}

/** A copy of `input` with a few bytes of one of its Buffers or strings edited (the input itself is untouched). */
export function havoc<I>(input: I, r: Xorshift): I {
  // Inputs are plain data with Buffers: structuredClone keeps Buffers as Uint8Arrays, so copy by hand.
  const copy = clone(input);
  if (typeof copy === 'string') return editBytes(Buffer.from(copy, 'latin1'), r).toString('latin1') as I;
  if (Buffer.isBuffer(copy)) return editBytes(copy, r) as I;
  const slots: Leaf[] = [];
  leaves(copy, slots);
  if (!slots.length) return copy;
  const s = slots[r.below(slots.length)];
  const v = s.get();
  s.set(typeof v === 'string' ? editBytes(Buffer.from(v, 'latin1'), r).toString('latin1') : editBytes(v, r));
  return copy;
}

function clone<T>(v: T, depth = 0): T {
  if (v === null || typeof v !== 'object' || depth > 8) return v;
  if (Buffer.isBuffer(v)) return v; // replaced, never edited in place
  if (Array.isArray(v)) return v.map((x) => clone(x, depth + 1)) as T;
  const o: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) o[k] = clone(x, depth + 1);
  return o as T;
}
