// Traffic log records in the vendor's field names, one per session close (and start when
// configured). Pure: the daemon hands the record to pino.

import type { Session, SessionEndReason } from '../engine/types.js';

export interface TrafficRecord {
  date: string;
  time: string;
  eventtime: number;
  logid: string;
  type: 'traffic';
  subtype: 'forward';
  level: 'notice';
  vd: string;
  srcip: string;
  srcport: number;
  dstip: string;
  dstport: number;
  srcintf: string;
  dstintf: string;
  proto: number;
  service: string;
  policyid: number;
  sessionid: number;
  action: string;
  duration: number;
  sentbyte: number;
  rcvdbyte: number;
  sentpkt: number;
  rcvdpkt: number;
}

const SERVICES: Record<string, string> = {
  '6/21': 'FTP', '6/22': 'SSH', '6/23': 'TELNET', '6/25': 'SMTP', '6/80': 'HTTP', '6/110': 'POP3', '6/119': 'NNTP',
  '6/143': 'IMAP', '6/443': 'HTTPS', '17/53': 'DNS', '6/53': 'DNS', '17/69': 'TFTP', '17/123': 'NTP', '17/5060': 'SIP', '6/5060': 'SIP',
  '6/135': 'DCE-RPC', '6/111': 'PMAP', '17/111': 'PMAP', '6/5201': 'iperf3',
};

export function serviceName(proto: number, dport: number): string {
  const known = SERVICES[`${proto}/${dport}`];
  if (known) return known;
  if (proto === 1) return 'PING';
  if (proto === 58) return 'PING6';
  const p = proto === 6 ? 'tcp' : proto === 17 ? 'udp' : proto === 132 ? 'sctp' : `proto-${proto}`;
  return `${p}/${dport}`;
}

const ACTION: Record<SessionEndReason | 'start', string> = {
  start: 'start', ttl: 'timeout', 'tcp-close': 'close', 'kernel-destroy': 'close', 'kernel-gone': 'close', clear: 'clear', replaced: 'close', 'parent-closed': 'clear', dirty: 'dirty',
};

const two = (n: number) => String(n).padStart(2, '0');

/** ifname resolves interface indexes to names; unknown ones print as the index. */
export function trafficRecord(s: Session, event: SessionEndReason | 'start', now: number, ifname: (i: number) => string): TrafficRecord {
  const d = new Date(now);
  return {
    date: `${d.getUTCFullYear()}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())}`,
    time: `${two(d.getUTCHours())}:${two(d.getUTCMinutes())}:${two(d.getUTCSeconds())}`,
    eventtime: now * 1_000_000,
    logid: event === 'start' ? '0000000015' : '0000000013',
    type: 'traffic',
    subtype: 'forward',
    level: 'notice',
    vd: s.vd === 0 ? 'root' : `vd${s.vd}`,
    srcip: s.orig.src,
    srcport: s.orig.sport,
    dstip: s.orig.dst,
    dstport: s.orig.dport,
    srcintf: ifname(s.devOrg[0]),
    dstintf: ifname(s.devOrg[1]),
    proto: s.orig.proto,
    service: serviceName(s.orig.proto, s.orig.dport),
    policyid: s.policyId,
    sessionid: s.serial,
    action: ACTION[event],
    duration: Math.max(0, Math.floor((now - s.createdAt) / 1000)),
    sentbyte: s.org.bytes,
    rcvdbyte: s.rep.bytes,
    sentpkt: s.org.packets,
    rcvdpkt: s.rep.packets,
  };
}
