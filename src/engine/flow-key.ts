// Table keys for one direction of a flow. A string key is what Map hashes fastest after small
// integers, and IPv6 rules out packing into a number.

import type { FlowTuple } from '../packet/types.js';

export function flowKey(t: FlowTuple): string {
  return `${t.proto}|${t.src}|${t.sport}|${t.dst}|${t.dport}`;
}

/**
 * The tuple a reply travels with when nothing translates addresses. ICMP echo has no ports: both
 * directions carry the same identifier (kept in sport), so only the addresses swap.
 */
export function reverseTuple(t: FlowTuple): FlowTuple {
  if (t.proto === 1 || t.proto === 58) return { family: t.family, proto: t.proto, src: t.dst, dst: t.src, sport: t.sport, dport: t.dport };
  return { family: t.family, proto: t.proto, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
}

export function sameTuple(a: FlowTuple, b: FlowTuple): boolean {
  return a.proto === b.proto && a.src === b.src && a.dst === b.dst && a.sport === b.sport && a.dport === b.dport;
}
