// Table keys for one direction of a flow. A string key is what Map hashes fastest after small
// integers, and IPv6 rules out packing into a number.

import type { FlowTuple } from '../packet/types.js';

export function flowKey(t: FlowTuple): string {
  return `${t.proto}|${t.src}|${t.sport}|${t.dst}|${t.dport}`;
}

/** The tuple a reply travels with when nothing translates addresses. */
export function reverseTuple(t: FlowTuple): FlowTuple {
  return { family: t.family, proto: t.proto, src: t.dst, dst: t.src, sport: t.dport, dport: t.sport };
}

export function sameTuple(a: FlowTuple, b: FlowTuple): boolean {
  return a.proto === b.proto && a.src === b.src && a.dst === b.dst && a.sport === b.sport && a.dport === b.dport;
}

export function formatTuple(t: FlowTuple): string {
  const a = (addr: string, port: number) => (t.family === 6 ? `[${addr}]:${port}` : `${addr}:${port}`);
  return `${a(t.src, t.sport)}->${a(t.dst, t.dport)}`;
}
