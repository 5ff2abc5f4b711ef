// Corpus mutation as a fast-check arbitrary: a seed (a capture, a packet, a message) and a short
// list of edits. The edits are the ones that find bugs in length-driven parsers: bit flips,
// "interesting" bytes, truncations, splices of another seed, repeated ranges (to push buffers
// past their bounds), and length-field lies (a 16/32-bit value written at some offset). Positions
// are taken modulo the current length, so every edit list applies to every seed and shrinks.

import fc from 'fast-check';

export type Edit =
  | { op: 'flip'; pos: number; bit: number }
  | { op: 'byte'; pos: number; value: number }
  | { op: 'truncate'; pos: number }
  | { op: 'cut'; pos: number; len: number }
  | { op: 'insert'; pos: number; bytes: Uint8Array }
  | { op: 'repeat'; pos: number; len: number; times: number }
  | { op: 'splice'; pos: number; other: number; from: number; len: number }
  | { op: 'lie'; pos: number; width: 2 | 4; le: boolean; value: number };

/** Values that sit on the edges of length checks. */
const INTERESTING = [0, 1, 2, 3, 4, 7, 8, 12, 16, 20, 24, 40, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xfffe, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

const pos = fc.nat();

export const editArb: fc.Arbitrary<Edit> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant('flip' as const), pos, bit: fc.integer({ min: 0, max: 7 }) }), weight: 4 },
  { arbitrary: fc.record({ op: fc.constant('byte' as const), pos, value: fc.oneof(fc.constantFrom(0, 0x0a, 0x0d, 0x20, 0x7f, 0x80, 0xff), fc.integer({ min: 0, max: 255 })) }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant('truncate' as const), pos }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('cut' as const), pos, len: fc.integer({ min: 1, max: 64 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('insert' as const), pos, bytes: fc.uint8Array({ minLength: 1, maxLength: 16 }) }), weight: 2 },
  { arbitrary: fc.record({ op: fc.constant('repeat' as const), pos, len: fc.integer({ min: 1, max: 256 }), times: fc.integer({ min: 2, max: 300 }) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant('splice' as const), pos, other: fc.nat(), from: fc.nat(), len: fc.integer({ min: 1, max: 512 }) }), weight: 1 },
  {
    arbitrary: fc.record({
      op: fc.constant('lie' as const), pos, width: fc.constantFrom(2 as const, 4 as const), le: fc.boolean(),
      value: fc.oneof(fc.constantFrom(...INTERESTING), fc.nat()),
    }),
    weight: 3,
  },
);

/** Largest mutated input: repeats may grow a seed, but not without end. */
export const MAX_MUTATED = 1 << 20;

/** Applies the edits in order; `pool` is where splices take their bytes from. */
export function applyEdits(seed: Uint8Array, edits: readonly Edit[], pool: readonly Uint8Array[]): Buffer {
  let b = Buffer.from(seed);
  for (const e of edits) {
    const at = b.length ? e.pos % b.length : 0;
    switch (e.op) {
      case 'flip': if (b.length) b[at] ^= 1 << e.bit; break;
      case 'byte': if (b.length) b[at] = e.value; break;
      case 'truncate': b = b.subarray(0, at); break;
      case 'cut': b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]); break;
      case 'insert': b = Buffer.concat([b.subarray(0, at), e.bytes, b.subarray(at)]); break;
      case 'repeat': {
        const piece = b.subarray(at, at + e.len);
        if (!piece.length || b.length + piece.length * e.times > MAX_MUTATED) break;
        b = Buffer.concat([b.subarray(0, at), ...Array<Buffer>(e.times).fill(piece), b.subarray(at)]);
        break;
      }
      case 'splice': {
        const o = pool.length ? pool[e.other % pool.length] : undefined;
        if (!o || !o.length) break;
        const from = e.from % o.length;
        b = Buffer.concat([b.subarray(0, at), o.subarray(from, from + e.len), b.subarray(at)]);
        break;
      }
      case 'lie': {
        if (b.length < e.width) break;
        const p = Math.min(at, b.length - e.width);
        if (e.width === 2) { if (e.le) b.writeUInt16LE(e.value & 0xffff, p); else b.writeUInt16BE(e.value & 0xffff, p); }
        else if (e.le) b.writeUInt32LE(e.value >>> 0, p);
        else b.writeUInt32BE(e.value >>> 0, p);
        break;
      }
    }
  }
  return b;
}

/** A seed from the pool with up to `maxEdits` edits applied. */
export function mutated(pool: readonly Uint8Array[], maxEdits = 6): fc.Arbitrary<Buffer> {
  if (!pool.length) throw new Error('mutated: empty seed pool');
  return fc
    .tuple(fc.integer({ min: 0, max: pool.length - 1 }), fc.array(editArb, { minLength: 1, maxLength: maxEdits }))
    .map(([i, edits]) => applyEdits(pool[i], edits, pool));
}
