// Invariant checks shared by the targets. A broken invariant throws InvariantError; anything
// else a target lets escape is a crash of the code under test. Both are findings.

import { canonicalAddress } from '../../src/packet/address.js';

export class InvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'InvariantError';
  }
}

export function ensure(cond: unknown, what: string | (() => string)): asserts cond {
  if (!cond) throw new InvariantError(typeof what === 'string' ? what : what());
}

export const isPort = (n: unknown): n is number => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 65535;

/** Canonical address text of the given family (4 or 6). */
export function ensureAddress(a: unknown, family: 4 | 6 | undefined, what: string): void {
  ensure(typeof a === 'string' && canonicalAddress(a) === a, () => `${what}: ${JSON.stringify(a)} is not a canonical address`);
  if (family) ensure(a.includes(':') === (family === 6), () => `${what}: ${a} is not an IPv${family} address`);
}

/**
 * Bytes a value holds: Buffers and strings by length, containers by their members. What helper
 * state may grow to is bounded by this measure.
 */
export function sizeOf(v: unknown, depth = 0): number {
  ensure(depth < 32, 'state nested deeper than 32 levels');
  if (v === null || v === undefined) return 1;
  if (Buffer.isBuffer(v) || v instanceof Uint8Array) return v.length + 8;
  if (typeof v === 'string') return v.length + 8;
  if (typeof v !== 'object') return 8;
  let n = 8;
  if (Array.isArray(v)) for (const x of v) n += sizeOf(x, depth + 1);
  else for (const [k, x] of Object.entries(v)) n += k.length + sizeOf(x, depth + 1);
  return n;
}

/** Throws with the input attached when `fn` throws something other than the allowed error. */
export function onlyThrows<T>(fn: () => T, allowed: (e: unknown) => boolean, what: string): T | undefined {
  try {
    return fn();
  } catch (e) {
    if (allowed(e)) return undefined;
    throw e;
  }
}
