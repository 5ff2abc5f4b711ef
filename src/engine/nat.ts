// Network address translation as the kernel carries it out for the daemon's decisions.
//
// The daemon decides a session at its first packet (forward hook); the kernel's NAT binds a
// connection's translation at the first packet too, in the nat chains (prerouting for
// destination NAT, postrouting for source NAT). Destination NAT (VIPs) does not depend on the
// decision: it is a static rule in prerouting, so the policy sees the mapped address. Source NAT
// does: the verdict's packet mark carries a NAT index, and the postrouting chain, which the same
// packet reaches after the verdict, translates by it (masquerade, or one pool's range).
//
// Mark layout: NAT_BITS just below the offload bit (kernel-cache.ts owns that bit and the ones
// above it). The index lives only in the packet mark, never in the ct mark: the kernel consults
// the nat chains for a connection's first packet alone and keeps the binding in the conntrack
// entry, so later packets need no index, and a reload may renumber pools without touching the
// connections that already run. Index 0 is "no NAT", 1 masquerade, 2.. the pools in order.

export const NAT_BITS = 8;
export const MAX_NAT_INDEX = (1 << NAT_BITS) - 1;
export const MASQUERADE_INDEX = 1;

export interface NatLayout {
  shift: number;
  mask: number;
}

/** The NAT field below an offload bit; throws when the bit leaves too little room. */
export function natLayout(offloadMark: number): NatLayout {
  const bit = Math.log2(offloadMark);
  if (!Number.isInteger(bit)) throw new Error(`offload-mark must be a single bit (a power of two), got 0x${offloadMark.toString(16)}`);
  if (bit < NAT_BITS) throw new Error(`offload-mark 0x${offloadMark.toString(16)} leaves no room below it for the ${NAT_BITS} NAT mark bits (use 0x00000100 or higher)`);
  const shift = bit - NAT_BITS;
  return { shift, mask: (MAX_NAT_INDEX << shift) >>> 0 };
}

export const natMark = (l: NatLayout, index: number): number => ((index << l.shift) >>> 0);

/** A source NAT pool (type overload: the kernel shares the range by port). */
export interface NatPool {
  index: number;
  name: string;
  start: string;
  end: string;
}

export interface NatPortForward {
  proto: 'tcp' | 'udp' | 'sctp';
  ext: { lo: number; hi: number };
  /** First inside port: the range keeps its width. */
  mapped: number;
}

/** A VIP: destination NAT in prerouting. Addresses are IPv4 text, ranges as 'first-last'. */
export interface NatVip {
  name: string;
  extip: string;
  mappedip: string;
  /** Undefined: any interface. */
  extintf?: string;
  portForward?: NatPortForward;
}

/** What the kernel's nat chains hold. */
export interface NatRules {
  layout: NatLayout;
  /** Some policy masquerades (index MASQUERADE_INDEX). */
  masquerade: boolean;
  pools: NatPool[];
  vips: NatVip[];
}

export const hasNat = (n: NatRules | undefined): n is NatRules => !!n && (n.masquerade || n.pools.length > 0 || n.vips.length > 0);
