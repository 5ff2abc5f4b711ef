// Reads one VDOM's `config firewall address/address6/addrgrp/service custom/service group/policy`
// tables into the plain policy data the engine compiles. Names are resolved here so an unknown
// address or service is reported at its line and column.

import { MASQUERADE_INDEX, MAX_NAT_INDEX, type NatPortForward, type NatPool, type NatVip } from '../engine/nat.js';
import type { AddressMatcher, PolicyRule, PortRange, ServiceEntry, VdomPolicies } from '../engine/policy.js';
import { ipv4ToUint32, netmaskToPrefix, parseCidr, parseIPv4, parseIPv6 } from '../packet/address.js';
import type { Entry } from './schema.js';
import { ConfigError, type Pos } from './syntax.js';

const ANY4: AddressMatcher = { kind: 'cidr', cidr: { family: 4, bytes: new Uint8Array(4), prefix: 0 } };
const ANY6: AddressMatcher = { kind: 'cidr', cidr: { family: 6, bytes: new Uint8Array(16), prefix: 0 } };

const tcp = (lo: number, hi = lo): ServiceEntry => ({ proto: 6, dports: [{ lo, hi }] });
const udp = (lo: number, hi = lo): ServiceEntry => ({ proto: 17, dports: [{ lo, hi }] });

/** The vendor's predefined services that a router config commonly names. */
export const PREDEFINED_SERVICES: Record<string, ServiceEntry[]> = {
  ALL: [{ proto: 0 }],
  ALL_TCP: [tcp(1, 65535)],
  ALL_UDP: [udp(1, 65535)],
  ALL_ICMP: [{ proto: 1 }],
  ALL_ICMP6: [{ proto: 58 }],
  PING: [{ proto: 1, icmpType: 8 }],
  PING6: [{ proto: 58, icmpType: 128 }],
  HTTP: [tcp(80)],
  HTTPS: [tcp(443)],
  DNS: [tcp(53), udp(53)],
  SSH: [tcp(22)],
  TELNET: [tcp(23)],
  FTP: [tcp(21)],
  TFTP: [udp(69)],
  SMTP: [tcp(25)],
  POP3: [tcp(110)],
  IMAP: [tcp(143)],
  NNTP: [tcp(119)],
  NTP: [tcp(123), udp(123)],
  SNMP: [tcp(161, 162), udp(161, 162)],
  SIP: [udp(5060), tcp(5060)],
  SAMBA: [tcp(139)],
  'DCE-RPC': [tcp(135), udp(135)],
  'ONC-RPC': [tcp(111), udp(111)],
};

interface Ctx { file: string; errors: ConfigError[] }

/** Position of the i-th value of a key, falling back to the entry. */
const at = (e: Entry, key: string, i = 0): Pos => e.valuePositions[key]?.[i] ?? e.positions[key] ?? e.pos;

function err(ctx: Ctx, pos: Pos, msg: string): void {
  ctx.errors.push(new ConfigError(ctx.file, pos, msg));
}

function readAddresses(ctx: Ctx, v4: Entry[], v6: Entry[], groups: Entry[]): Map<string, AddressMatcher[]> {
  const out = new Map<string, AddressMatcher[]>([['all', [ANY4, ANY6]], ['none', []]]);
  for (const e of v4) {
    if (e.values.type === 'iprange') {
      const lo = parseIPv4(e.values['start-ip'] as string);
      const hi = parseIPv4(e.values['end-ip'] as string);
      if (!lo || !hi) { err(ctx, e.positions['start-ip'] ?? e.pos, `address '${e.id}': start-ip/end-ip must be IPv4 addresses`); continue; }
      out.set(e.id, [{ kind: 'range', family: 4, lo, hi }]);
      continue;
    }
    const sub = e.values.subnet as string[];
    const text = sub.length === 2 ? `${sub[0]}/${sub[1].includes('.') ? netmaskToPrefix(sub[1]) : sub[1]}` : sub[0];
    const cidr = sub.length <= 2 ? parseCidr(text) : null;
    if (!cidr || cidr.family !== 4) { err(ctx, e.positions.subnet ?? e.pos, `address '${e.id}': subnet must be '<ip> <mask>' or '<ip>/<prefix>', got '${sub.join(' ')}'`); continue; }
    out.set(e.id, [{ kind: 'cidr', cidr }]);
  }
  for (const e of v6) {
    if (e.values.type === 'iprange') {
      const lo = parseIPv6(e.values['start-ip'] as string);
      const hi = parseIPv6(e.values['end-ip'] as string);
      if (!lo || !hi) { err(ctx, e.positions['start-ip'] ?? e.pos, `address6 '${e.id}': start-ip/end-ip must be IPv6 addresses`); continue; }
      out.set(e.id, [{ kind: 'range', family: 6, lo, hi }]);
      continue;
    }
    const cidr = parseCidr(e.values.ip6 as string);
    if (!cidr || cidr.family !== 6) { err(ctx, e.positions.ip6 ?? e.pos, `address6 '${e.id}': ip6 must be '<ip6>/<len>', got '${e.values.ip6}'`); continue; }
    out.set(e.id, [{ kind: 'cidr', cidr }]);
  }
  // Groups may name groups defined later; resolve in passes, bounded by the number of groups.
  const pending = [...groups];
  for (let pass = 0; pass <= groups.length && pending.length; pass++) {
    for (let i = pending.length - 1; i >= 0; i--) {
      const g = pending[i];
      const members = g.values.member as string[];
      if (members.every((m) => out.has(m))) {
        out.set(g.id, members.flatMap((m) => out.get(m)!));
        pending.splice(i, 1);
      }
    }
  }
  for (const g of pending) {
    const missing = (g.values.member as string[]).filter((m) => !out.has(m) && !pending.some((p) => p.id === m));
    err(ctx, g.positions.member ?? g.pos, missing.length
      ? `addrgrp '${g.id}': unknown member${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`
      : `addrgrp '${g.id}': groups refer to each other in a loop`);
  }
  return out;
}

function parseRanges(text: string): { d: PortRange; s?: PortRange } | undefined {
  const [dst, src] = text.split(':');
  const one = (x: string): PortRange | undefined => {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(x);
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    return lo <= hi && hi <= 65535 ? { lo, hi } : undefined;
  };
  const d = one(dst);
  if (!d) return undefined;
  if (src === undefined) return { d };
  const s = one(src);
  return s ? { d, s } : undefined;
}

function readServices(ctx: Ctx, custom: Entry[], groups: Entry[]): Map<string, ServiceEntry[]> {
  const out = new Map<string, ServiceEntry[]>(Object.entries(PREDEFINED_SERVICES));
  for (const e of custom) {
    const entries: ServiceEntry[] = [];
    const proto = e.values.protocol as string;
    if (proto === 'ICMP' || proto === 'ICMP6') {
      entries.push({ proto: proto === 'ICMP' ? 1 : 58, icmpType: e.values.icmptype as number });
    } else if (proto === 'IP') {
      entries.push({ proto: e.values['protocol-number'] as number });
    } else {
      for (const [key, p] of [['tcp-portrange', 6], ['udp-portrange', 17], ['sctp-portrange', 132]] as const) {
        for (const r of e.values[key] as string[]) {
          const parsed = parseRanges(r);
          if (!parsed) { err(ctx, at(e, key, (e.values[key] as string[]).indexOf(r)), `service '${e.id}': bad port range '${r}' in ${key}: expected '<lo>[-<hi>][:<srclo>[-<srchi>]]' within 0-65535`); continue; }
          entries.push({ proto: p, dports: [parsed.d], ...(parsed.s ? { sports: [parsed.s] } : {}) });
        }
      }
      if (entries.length === 0) err(ctx, e.pos, `service '${e.id}': no tcp-portrange, udp-portrange or sctp-portrange set`);
    }
    out.set(e.id, entries);
  }
  for (const g of groups) {
    const missing = (g.values.member as string[]).filter((m) => !out.has(m));
    if (missing.length) { err(ctx, g.positions.member ?? g.pos, `service group '${g.id}': unknown member ${missing.map((m) => `'${m}'`).join(', ')}`); continue; }
    out.set(g.id, (g.values.member as string[]).flatMap((m) => out.get(m)!));
  }
  return out;
}

export interface VdomTables {
  address: Entry[];
  address6: Entry[];
  addrgrp: Entry[];
  serviceCustom: Entry[];
  serviceGroup: Entry[];
  policy: Entry[];
  ippool: Entry[];
  vip: Entry[];
}

/**
 * The NAT objects of every VDOM, collected into the one kernel table: pools get global indexes
 * (the verdict's mark names them), `mark` turns an index into the policy's mark bits.
 */
export interface NatCollect {
  masquerade: boolean;
  pools: NatPool[];
  vips: NatVip[];
  mark: (index: number) => number;
}

/** 'a' or 'a-b' as IPv4 text with a <= b, else undefined. */
function ipv4Range(text: string): { lo: Uint8Array; hi: Uint8Array; text: string } | undefined {
  const [a, b = a, extra] = text.split('-');
  const lo = parseIPv4(a);
  const hi = parseIPv4(b);
  if (extra !== undefined || !lo || !hi || ipv4ToUint32(a) > ipv4ToUint32(b)) return undefined;
  return { lo, hi, text: a === b ? a : `${a}-${b}` };
}

function portRange(text: string): PortRange | undefined {
  const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(text);
  if (!m) return undefined;
  const lo = Number(m[1]);
  const hi = m[2] === undefined ? lo : Number(m[2]);
  return lo >= 1 && lo <= hi && hi <= 65535 ? { lo, hi } : undefined;
}

function readPools(ctx: Ctx, entries: Entry[], nat: NatCollect): Map<string, NatPool> {
  const out = new Map<string, NatPool>();
  for (const e of entries) {
    const r = ipv4Range(`${e.values.startip}-${e.values.endip}`);
    if (!r || e.values.startip === '0.0.0.0') { err(ctx, at(e, 'startip'), `ippool '${e.id}': startip/endip must be IPv4 addresses with startip <= endip`); continue; }
    if (nat.pools.length + 2 > MAX_NAT_INDEX) { err(ctx, e.pos, `ippool '${e.id}': more than ${MAX_NAT_INDEX - 1} pools`); continue; }
    const pool: NatPool = { index: nat.pools.length + 2, name: e.id, start: e.values.startip as string, end: e.values.endip as string };
    nat.pools.push(pool);
    out.set(e.id, pool);
  }
  return out;
}

/** VIPs by name, as the address each one maps to (what a policy naming it in dstaddr matches). */
function readVips(ctx: Ctx, entries: Entry[], nat: NatCollect): Map<string, AddressMatcher[]> {
  const out = new Map<string, AddressMatcher[]>();
  for (const e of entries) {
    const v = e.values;
    const ext = ipv4Range(v.extip as string);
    if (!ext || v.extip === '0.0.0.0') { err(ctx, at(e, 'extip'), `vip '${e.id}': extip must be an IPv4 address or '<first>-<last>' range, got '${v.extip}'`); continue; }
    const mappedList = v.mappedip as string[];
    if (mappedList.length !== 1) { err(ctx, mappedList.length ? at(e, 'mappedip', 1) : e.pos, `vip '${e.id}': mappedip takes one address or '<first>-<last>' range`); continue; }
    const mapped = ipv4Range(mappedList[0]);
    if (!mapped) { err(ctx, at(e, 'mappedip'), `vip '${e.id}': mappedip must be an IPv4 address or '<first>-<last>' range, got '${mappedList[0]}'`); continue; }
    let portForward: NatPortForward | undefined;
    if (v.portforward) {
      const extPorts = portRange(v.extport as string);
      if (!extPorts) { err(ctx, at(e, 'extport'), `vip '${e.id}': extport must be a port or '<lo>-<hi>' within 1-65535 with portforward enabled, got '${v.extport}'`); continue; }
      const mp = v.mappedport === '0' ? extPorts.lo : portRange(v.mappedport as string)?.lo;
      if (mp === undefined || mp + (extPorts.hi - extPorts.lo) > 65535) { err(ctx, at(e, 'mappedport'), `vip '${e.id}': mappedport must be a port within 1-65535 leaving room for the extport range, got '${v.mappedport}'`); continue; }
      // The kernel maps a port range onto a range without keeping each port's offset: a range forwards to the same ports.
      if (extPorts.hi > extPorts.lo && mp !== extPorts.lo) { err(ctx, at(e, 'mappedport'), `vip '${e.id}': an extport range forwards to the same ports (mappedport 0 or ${extPorts.lo}), got '${v.mappedport}'`); continue; }
      portForward = { proto: v.protocol as NatPortForward['proto'], ext: extPorts, mapped: mp };
    }
    nat.vips.push({ name: e.id, extip: ext.text, mappedip: mapped.text, ...(v.extintf !== 'any' ? { extintf: v.extintf as string } : {}), ...(portForward ? { portForward } : {}) });
    out.set(e.id, [{ kind: 'range', family: 4, lo: mapped.lo, hi: mapped.hi }]);
  }
  return out;
}

/** Reads one VDOM's firewall tables; problems are appended to `errors` with positions. */
export function readVdomPolicies(name: string, tables: VdomTables, implicit: 'accept' | 'deny', knownInterfaces: Set<string> | undefined, nat: NatCollect, file: string, errors: ConfigError[]): VdomPolicies {
  const ctx: Ctx = { file, errors };
  const addrs = readAddresses(ctx, tables.address, tables.address6, tables.addrgrp);
  const pools = readPools(ctx, tables.ippool, nat);
  const vips = readVips(ctx, tables.vip, nat);
  for (const e of tables.vip) if (addrs.has(e.id)) err(ctx, e.pos, `vip '${e.id}': an address or group has the same name`);
  const services = readServices(ctx, tables.serviceCustom, tables.serviceGroup);
  const rules: PolicyRule[] = [];
  for (const e of tables.policy) {
    const v = e.values;
    const resolve = (key: string, family: 4 | 6): AddressMatcher[] => {
      const out: AddressMatcher[] = [];
      for (const [i, n] of (v[key] as string[]).entries()) {
        // The vendor's VIPs stand in dstaddr among the addresses.
        const m = addrs.get(n) ?? (key === 'dstaddr' ? vips.get(n) : undefined);
        if (!m) { err(ctx, at(e, key, i), `policy ${e.id}: unknown ${family === 6 ? 'IPv6 ' : ''}address${key === 'dstaddr' ? ' or vip' : ''} '${n}' in ${key}`); continue; }
        out.push(...m.filter((x) => (x.kind === 'cidr' ? x.cidr.family : x.family) === family));
      }
      return out;
    };
    const svc: ServiceEntry[] = [];
    for (const [i, n] of (v.service as string[]).entries()) {
      const s = services.get(n);
      if (!s) err(ctx, at(e, 'service', i), `policy ${e.id}: unknown service '${n}'`);
      else svc.push(...s);
    }
    for (const key of ['srcintf', 'dstintf', 'service'] as const) {
      if ((v[key] as string[]).length === 0) err(ctx, e.pos, `policy ${e.id}: '${key}' is not set`);
    }
    if ((v.srcaddr as string[]).length + (v.srcaddr6 as string[]).length === 0) err(ctx, e.pos, `policy ${e.id}: neither srcaddr nor srcaddr6 is set`);
    if ((v.dstaddr as string[]).length + (v.dstaddr6 as string[]).length === 0) err(ctx, e.pos, `policy ${e.id}: neither dstaddr nor dstaddr6 is set`);
    if (knownInterfaces) {
      for (const key of ['srcintf', 'dstintf'] as const) {
        for (const [k, i] of (v[key] as string[]).entries()) if (i !== 'any' && !knownInterfaces.has(i)) err(ctx, at(e, key, k), `policy ${e.id}: interface '${i}' in ${key} is not in 'config system interface'`);
      }
    }
    let natIndex = 0;
    const poolNames = v.poolname as string[];
    if (v.ippool && !v.nat) err(ctx, at(e, 'ippool'), `policy ${e.id}: ippool needs 'set nat enable'`);
    else if (v.nat && v.ippool) {
      if (poolNames.length !== 1) err(ctx, poolNames.length ? at(e, 'poolname', 1) : at(e, 'ippool'), `policy ${e.id}: ippool enable needs exactly one poolname`);
      else if (!pools.has(poolNames[0])) err(ctx, at(e, 'poolname'), `policy ${e.id}: unknown ippool '${poolNames[0]}' in poolname`);
      else natIndex = pools.get(poolNames[0])!.index;
    } else if (v.nat) natIndex = MASQUERADE_INDEX;
    if (poolNames.length && !v.ippool) err(ctx, at(e, 'poolname'), `policy ${e.id}: poolname needs 'set ippool enable'`);
    if (natIndex === MASQUERADE_INDEX) nat.masquerade = true;
    if (v.schedule !== 'always') err(ctx, e.positions.schedule ?? e.pos, `policy ${e.id}: only schedule 'always' is supported, got '${v.schedule}'`);
    rules.push({
      id: Number(e.id),
      name: v.name as string,
      enabled: v.status as boolean,
      srcintf: v.srcintf as string[],
      dstintf: v.dstintf as string[],
      src: [...resolve('srcaddr', 4), ...resolve('srcaddr6', 6)],
      dst: [...resolve('dstaddr', 4), ...resolve('dstaddr6', 6)],
      services: svc,
      action: v.action as 'accept' | 'deny',
      log: v.logtraffic !== 'disable',
      sessionTtl: v['session-ttl'] as number,
      ...(natIndex && v.action === 'accept' ? { natMark: nat.mark(natIndex) } : {}),
      ...(v['firewall-session-dirty'] === 'check-new' ? { checkNew: true } : {}),
    });
  }
  return { name, rules, implicit };
}
