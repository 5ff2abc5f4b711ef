// One direction of a flow as numbers: what the compact table hashes and compares. An address is
// one 32-bit word (IPv4) or four (IPv6), big-endian, held as signed int32 so every value stays a
// small integer in V8 (no heap numbers). A key is a reusable scratch object: filling it from a
// decoded packet or a tuple allocates nothing.

import { ipv4ToString, ipv6ToString, parseIPv4, parseIPv6 } from '../../packet/address.js';
import type { FlowTuple } from '../../packet/types.js';

export class TupleKey {
  family: 4 | 6 = 4;
  proto = 0;
  sport = 0;
  dport = 0;
  /** Source address words (IPv4 uses src[0] only). */
  readonly src = new Int32Array(4);
  readonly dst = new Int32Array(4);

  /** The key of a tuple given as text (views, config, tests); false when an address does not parse. */
  setTuple(t: FlowTuple): boolean {
    this.family = t.family;
    this.proto = t.proto;
    this.sport = t.sport;
    this.dport = t.dport;
    return textToWords(t.src, t.family, this.src) && textToWords(t.dst, t.family, this.dst);
  }

  /** The key read straight from a packet's L3 header (addresses at `srcOff` and `dstOff`). */
  setFromBytes(family: 4 | 6, proto: number, b: Uint8Array, srcOff: number, dstOff: number, sport: number, dport: number): void {
    this.family = family;
    this.proto = proto;
    this.sport = sport;
    this.dport = dport;
    const words = family === 4 ? 1 : 4;
    for (let i = 0; i < words; i++) {
      this.src[i] = readWord(b, srcOff + 4 * i);
      this.dst[i] = readWord(b, dstOff + 4 * i);
    }
  }

  /** The key of the other direction when nothing translates addresses (ICMP echo keeps its id in sport). */
  reverseOf(k: TupleKey): void {
    this.family = k.family;
    this.proto = k.proto;
    const echo = k.proto === 1 || k.proto === 58;
    this.sport = echo ? k.sport : k.dport;
    this.dport = echo ? k.dport : k.sport;
    this.src.set(k.dst);
    this.dst.set(k.src);
  }

  equals(b: TupleKey): boolean {
    if (this.family !== b.family || this.proto !== b.proto || this.sport !== b.sport || this.dport !== b.dport) return false;
    const n = this.family === 4 ? 1 : 4;
    for (let i = 0; i < n; i++) if (this.src[i] !== b.src[i] || this.dst[i] !== b.dst[i]) return false;
    return true;
  }

  toTuple(): FlowTuple {
    return {
      family: this.family, proto: this.proto,
      src: wordsToText(this.src, 0, this.family), dst: wordsToText(this.dst, 0, this.family),
      sport: this.sport, dport: this.dport,
    };
  }
}

function readWord(b: Uint8Array, off: number): number {
  return (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
}

const scratch = new Uint8Array(16);

export function textToWords(text: string, family: 4 | 6, out: Int32Array, off = 0): boolean {
  if (family === 4) {
    if (!parseIPv4(text, scratch)) return false;
    out[off] = readWord(scratch, 0);
    return true;
  }
  if (!parseIPv6(text, scratch)) return false;
  for (let i = 0; i < 4; i++) out[off + i] = readWord(scratch, 4 * i);
  return true;
}

export function wordsToText(words: Int32Array, off: number, family: 4 | 6): string {
  const n = family === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) {
    const w = words[off + i];
    scratch[4 * i] = w >>> 24;
    scratch[4 * i + 1] = (w >>> 16) & 0xff;
    scratch[4 * i + 2] = (w >>> 8) & 0xff;
    scratch[4 * i + 3] = w & 0xff;
  }
  return family === 4 ? ipv4ToString(scratch, 0) : ipv6ToString(scratch, 0);
}

/** Mixes one word into a running hash (murmur3's body step). */
export function mix(h: number, w: number): number {
  let k = Math.imul(w, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

/** murmur3's finaliser: every input bit reaches every output bit. */
export function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** The 32-bit hash of one direction: the same for a key and for the stored tuple it names. */
export function hashWords(family: number, proto: number, sport: number, dport: number, src: Int32Array, srcOff: number, dst: Int32Array, dstOff: number, seed: number): number {
  let h = mix(seed, (family << 8) | proto);
  h = mix(h, (sport << 16) | dport);
  const n = family === 4 ? 1 : 4;
  for (let i = 0; i < n; i++) {
    h = mix(h, src[srcOff + i]);
    h = mix(h, dst[dstOff + i]);
  }
  return fmix(h);
}
