// Firewall policy evaluation: the ordered policy list of the session's VDOM, first match wins,
// then the implicit policy 0. Policies are compiled from plain data (what the config reader
// produces) into a function the engine calls for each new session.

import { cidrContainsBytes, parseIPv4, parseIPv6, type Cidr } from '../packet/address.js';
import type { FlowTuple } from '../packet/types.js';
import type { PolicyMatch } from './types.js';

export type AddressMatcher =
  | { kind: 'cidr'; cidr: Cidr }
  | { kind: 'range'; family: 4 | 6; lo: Uint8Array; hi: Uint8Array };

export interface PortRange { lo: number; hi: number }

/** One protocol entry of a service. proto 0 = any protocol; no ranges = any port. */
export interface ServiceEntry {
  proto: number;
  dports?: PortRange[];
  sports?: PortRange[];
  /** ICMP/ICMPv6 type, -1 = any. */
  icmpType?: number;
}

export interface PolicyRule {
  id: number;
  name: string;
  enabled: boolean;
  /** Interface names; 'any' matches every interface. */
  srcintf: string[];
  dstintf: string[];
  /** Empty list = no address of that family matches. */
  src: AddressMatcher[];
  dst: AddressMatcher[];
  services: ServiceEntry[];
  action: 'accept' | 'deny';
  log: boolean;
  /** Session TTL override (s); 0 = none. */
  sessionTtl: number;
  /** Packet mark bits that select the kernel's source NAT for its sessions (nat.ts); absent: none. */
  natMark?: number;
  /** Its sessions are left be when the policies change (firewall-session-dirty check-new). */
  checkNew?: boolean;
}

export interface VdomPolicies {
  name: string;
  rules: PolicyRule[];
  implicit: 'accept' | 'deny';
}

export interface PolicySet {
  /** Indexed by VDOM number; 0 is root. */
  vdoms: VdomPolicies[];
  /** Interface name -> VDOM number; interfaces not listed belong to root. */
  interfaceVdom: Record<string, number>;
}

export type PolicyLookup = (t: FlowTuple, indev: number, outdev: number, icmpType?: number) => PolicyMatch;

function inRange(b: Uint8Array, lo: Uint8Array, hi: Uint8Array): boolean {
  let geLo = true;
  let leHi = true;
  for (let i = 0; i < b.length; i++) {
    if (geLo && b[i] !== lo[i]) { if (b[i] < lo[i]) return false; geLo = false; }
    if (leHi && b[i] !== hi[i]) { if (b[i] > hi[i]) return false; leHi = false; }
    if (!geLo && !leHi) break;
  }
  return true;
}

function addrMatches(list: AddressMatcher[], bytes: Uint8Array, family: 4 | 6): boolean {
  for (const m of list) {
    if (m.kind === 'cidr') {
      if (m.cidr.family === family && cidrContainsBytes(m.cidr, bytes, 0, bytes.length)) return true;
    } else if (m.family === family && inRange(bytes, m.lo, m.hi)) return true;
  }
  return false;
}

function portIn(ranges: PortRange[] | undefined, port: number): boolean {
  if (!ranges || ranges.length === 0) return true;
  for (const r of ranges) if (port >= r.lo && port <= r.hi) return true;
  return false;
}

const isIcmp = (proto: number) => proto === 1 || proto === 58;

function serviceMatches(services: ServiceEntry[], t: FlowTuple, icmpType: number): boolean {
  for (const s of services) {
    if (s.proto !== 0 && s.proto !== t.proto) continue;
    if (isIcmp(t.proto)) {
      if (s.icmpType === undefined || s.icmpType < 0 || s.icmpType === icmpType) return true;
      continue;
    }
    if (portIn(s.dports, t.dport) && portIn(s.sports, t.sport)) return true;
  }
  return false;
}

const intfMatches = (list: string[], name: string) => list.includes('any') || list.includes(name);

/** Matches one rule against a tuple already parsed to bytes. Exported for tests and the flow trace. */
export function ruleMatches(r: PolicyRule, t: FlowTuple, src: Uint8Array, dst: Uint8Array, inName: string, outName: string, icmpType: number): boolean {
  return r.enabled &&
    intfMatches(r.srcintf, inName) && intfMatches(r.dstintf, outName) &&
    addrMatches(r.src, src, t.family) && addrMatches(r.dst, dst, t.family) &&
    serviceMatches(r.services, t, icmpType);
}

/** The policy function the engine calls; `ifname` resolves interface indexes to names. */
export function compilePolicy(set: PolicySet, ifname: (index: number) => string): PolicyLookup {
  const src4 = new Uint8Array(4), dst4 = new Uint8Array(4), src16 = new Uint8Array(16), dst16 = new Uint8Array(16);
  return (t, indev, outdev, icmpType = -1) => {
    const inName = ifname(indev);
    const outName = ifname(outdev);
    const vd = set.interfaceVdom[inName] ?? 0;
    const v = set.vdoms[vd] ?? set.vdoms[0];
    const s = t.family === 4 ? parseIPv4(t.src, src4, 0) : parseIPv6(t.src, src16, 0);
    const d = t.family === 4 ? parseIPv4(t.dst, dst4, 0) : parseIPv6(t.dst, dst16, 0);
    if (s && d) {
      for (const r of v.rules) {
        if (ruleMatches(r, t, s, d, inName, outName, icmpType)) {
          return { policyId: r.id, action: r.action, logTraffic: r.log, vd, ...(r.sessionTtl ? { sessionTtl: r.sessionTtl } : {}), ...(r.natMark ? { natMark: r.natMark } : {}) };
        }
      }
    }
    return { policyId: 0, action: v.implicit, logTraffic: false, vd };
  };
}

/** The policy set used when the config defines no policy at all: one accept-all policy, id 1. */
export function acceptAllPolicySet(): PolicySet {
  const all: AddressMatcher[] = [
    { kind: 'cidr', cidr: { family: 4, bytes: new Uint8Array(4), prefix: 0 } },
    { kind: 'cidr', cidr: { family: 6, bytes: new Uint8Array(16), prefix: 0 } },
  ];
  return {
    vdoms: [{ name: 'root', implicit: 'deny', rules: [{ id: 1, name: 'accept-all', enabled: true, srcintf: ['any'], dstintf: ['any'], src: all, dst: all, services: [{ proto: 0 }], action: 'accept', log: true, sessionTtl: 0 }] }],
    interfaceVdom: {},
  };
}

/** What a change of the policies does to the sessions they admitted (firewall-session-dirty). */
export type SessionDirty = 'check-all' | 'check-new' | 'check-policy-option';

/**
 * Whether a change of the policies looks up again the sessions of policy `policyId` in VDOM `vd`:
 * the domain's mode, and with check-policy-option the option of the policy that now has that id
 * (the implicit policy 0 and an id that is gone: check-all).
 */
export function compileDirtyCheck(set: PolicySet, modes: readonly SessionDirty[]): (vd: number, policyId: number) => boolean {
  const checkNew = set.vdoms.map((v) => new Set(v.rules.filter((r) => r.checkNew).map((r) => r.id)));
  return (vd, policyId) => {
    const mode = modes[vd] ?? modes[0] ?? 'check-all';
    if (mode === 'check-policy-option') return !checkNew[vd]?.has(policyId);
    return mode === 'check-all';
  };
}
