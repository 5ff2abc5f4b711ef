// Views of users, per-service accounting and conserve mode: the JSON the daemon answers and the
// text layouts the CLI prints.

import type { ServiceCounters } from '../engine/accounting.js';
import type { ConserveView } from '../engine/admission.js';
import { SERVICES, type ServiceName } from '../engine/limits.js';
import type { SessionEngine } from '../engine/engine.js';
import type { UserEntry } from '../engine/users.js';

export interface UserView {
  id: number;
  vdom: string;
  vd: number;
  family: 4 | 6;
  ip: string;
  name: string;
  duration: number;
  /** Seconds until the user is forgotten; the full idle timeout while it has sessions. */
  expire: number;
  sessions: number;
  total_sessions: number;
  policy_id: number;
  /** Client side: bytes from the client / to the client. Ended sessions plus live ones. */
  bytes_from_client: number;
  bytes_to_client: number;
}

export function usersOf(engine: SessionEngine, now: number): UserView[] {
  const a = engine.admission;
  const timeout = engine.config.limits.userIdleTimeout;
  const live = new Map<UserEntry, [number, number]>();
  for (const s of engine.sessions()) {
    const u = a.users.get(s.vd, s.orig.src);
    if (!u) continue;
    const b = live.get(u) ?? [0, 0];
    b[0] += s.org.bytes;
    b[1] += s.rep.bytes;
    live.set(u, b);
  }
  return a.users.list().map((u) => {
    const b = live.get(u) ?? [0, 0];
    return {
      id: u.id,
      vdom: a.vdomName(u.vd),
      vd: u.vd,
      family: u.family,
      ip: u.ip,
      name: u.ip,
      duration: Math.max(0, Math.floor((now - u.firstSeen) / 1000)),
      expire: u.idleSince === 0 ? timeout : Math.max(0, Math.ceil((u.idleSince + timeout * 1000 - now) / 1000)),
      sessions: u.sessions,
      total_sessions: u.totalSessions,
      policy_id: u.policyId,
      bytes_from_client: u.bytesFromClient + b[0],
      bytes_to_client: u.bytesToClient + b[1],
    };
  });
}

/**
 * `diagnose wad user list` (also `diagnose user list`): the vendor's documentation names the
 * command but shows no output; this follows the record the vendor prints for it. With IP-based identity the
 * user name is the source address; the lines with no equivalent here print fixed values:
 * worker 0 (one engine), auth_type IP, auth_method None, g_id 0 (no groups), user_based 0.
 * LAN is the client side of the user's sessions (bytes_in from the client, bytes_out to it); with
 * no proxy in the middle the server side (WAN) carries the same bytes the other way round.
 */
export function formatUsers(users: UserView[]): string {
  const out: string[] = [];
  for (const u of users) {
    out.push(
      `ID: ${u.id}, VDOM: ${u.vdom}, IPv${u.family}: ${u.ip}`,
      `  user name   : ${u.name}`,
      '  worker      : 0',
      `  duration    : ${u.duration}`,
      '  auth_type   : IP',
      '  auth_method : None',
      `  pol_id      : ${u.policy_id}`,
      '  g_id        : 0',
      '  user_based  : 0',
      `  expire      : ${u.expire}`,
      '  LAN:',
      `    bytes_in=${u.bytes_from_client} bytes_out=${u.bytes_to_client}`,
      '  WAN:',
      `    bytes_in=${u.bytes_to_client} bytes_out=${u.bytes_from_client}`,
    );
  }
  out.push(`Total users: ${users.length}`);
  return `${out.join('\n')}\n`;
}

export interface ServiceView extends ServiceCounters {
  /** The limit the service's sessions count against (the global session limit; 0 = unlimited). */
  max: number;
  /** Bytes of ended and live sessions, client to server and back. */
  bytes_sent: number;
  bytes_received: number;
}

export interface ProxyWorkerView {
  /** Daemon running time (s). */
  running_time: number;
  services: Record<ServiceName, ServiceView>;
}

export function proxyWorkerOf(engine: SessionEngine, runningTime: number): ProxyWorkerView {
  const acct = engine.admission.accounting;
  const live: Record<string, [number, number]> = {};
  for (const s of engine.sessions()) {
    const svc = acct.serviceOf(s.orig, engine.config.limits);
    if (!svc) continue;
    const b = live[svc] ?? (live[svc] = [0, 0]);
    b[0] += s.org.bytes;
    b[1] += s.rep.bytes;
  }
  const services = {} as Record<ServiceName, ServiceView>;
  for (const s of SERVICES) {
    const c = acct.counters[s];
    const b = live[s] ?? [0, 0];
    services[s] = { ...c, max: engine.config.maxSessions, bytes_sent: c.bytesOrg + b[0], bytes_received: c.bytesReply + b[1] };
  }
  return { running_time: runningTime, services };
}

const pad2 = (n: number) => String(n).padStart(2, '0');

/** HH:MM:SS:usec as the vendor prints running time (hours go past 24). */
export function runningTime(seconds: number): string {
  const us = Math.round((seconds % 1) * 1e6);
  const s = Math.floor(seconds);
  return `${pad2(Math.floor(s / 3600))}:${pad2(Math.floor((s % 3600) / 60))}:${pad2(s % 60)}:${String(us).padStart(6, '0')}`;
}

/**
 * `get test proxyworker 4` (also `diagnose test proxyworker 4`) in the vendor's layout, one
 * worker, every section for each of HTTP, SMTP, POP3, IMAP, FTP and NNTP. The blank lines between
 * output lines in the vendor's sample come from its page extraction and are not printed.
 *
 * Lines with a value here:
 *   Current Connections <live>/<max>  live tracked sessions of the service / the global session
 *                                     limit (0 = unlimited; the seed: all protocols share one max)
 *   Max Concurrent Connections        the most live sessions of the service seen at once
 *   Running time                      the daemon's running time
 *   Worker Error Count (accept)       new sessions refused (limits, conserve mode), all services
 *   Worker Error Count (alloc)        of those, refused because memory was red/extreme
 *   <P> Error Count (accept)/(alloc)  the same per service
 *   Bytes sent / received (kb)        client-to-server / server-to-client bytes of the service's
 *                                     sessions, ended and live, in KiB
 *   setup_ok / setup_fail             sessions admitted / refused
 *   acceptor= (Worker Accounting)     setup_ok of all services
 * Lines with no equivalent (there is no proxy, no AV/URL scanning, no poll loop) print 0: Time in
 * loop scanning, the read/write/poll/bind/connect/socket/retry/scan-reset/urlfilter-wait error
 * counts, Last Error, Acceptor Read/Write/Close, every Web/URL/POST request line, conn_ok,
 * conn_inp, poll, cmdb, scan, urlfilter, clt/srv and the protocol-specific counters.
 * Sessions let through uninspected by fail-open are not in these figures; see `bypassed` in the
 * JSON and `diagnose sys conserve`.
 */
export function formatProxyWorker(v: ProxyWorkerView): string {
  const L: string[] = ['Worker[0]'];
  const svc = SERVICES.map((s) => [s, v.services[s]] as const);
  for (const [name, c] of svc) {
    L.push(`${name} Common`, `Current Connections ${c.current}/${c.max}`, `Max Concurrent Connections ${c.peak}`);
  }
  const failAll = svc.reduce((a, [, c]) => a + c.setupFail, 0);
  const failMemory = svc.reduce((a, [, c]) => a + c.failMemory, 0);
  const setupOk = svc.reduce((a, [, c]) => a + c.setupOk, 0);
  L.push(
    'Worker Stat',
    `Running time (HH:MM:SS:usec) ${runningTime(v.running_time)}`,
    'Time in loop scanning 0:00:000000',
    `Error Count (accept) ${failAll}`,
    'Error Count (read) 0',
    'Error Count (write) 0',
    'Error Count (poll) 0',
    `Error Count (alloc) ${failMemory}`,
    'Last Error 0',
    'Acceptor Read 0',
    'Acceptor Write 0',
    'Acceptor Close 0',
  );
  for (const [name, c] of svc) {
    L.push(
      `${name} Stat`,
      `Bytes sent ${Math.floor(c.bytes_sent / 1024)} (kb)`,
      `Bytes received ${Math.floor(c.bytes_received / 1024)} (kb)`,
      `Error Count (alloc) ${c.failMemory}`,
      `Error Count (accept) ${c.setupFail}`,
      'Error Count (bind) 0',
      'Error Count (connect) 0',
      'Error Count (socket) 0',
      'Error Count (read) 0',
      'Error Count (write) 0',
      'Error Count (retry) 0',
      'Error Count (poll) 0',
    );
    if (name === 'HTTP') {
      L.push('Error Count (scan reset) 0', 'Error Count (urlfilter wait) 0', 'Last Error 0', ...HTTP_SCAN_LINES.map((l) => `${l} 0`));
    } else {
      L.push('Last Error 0');
    }
  }
  L.push('Worker Accounting', `poll=0/0/0 pollfail=0 cmdb=0 scan=0 acceptor=${setupOk}`);
  for (const [name, c] of svc) {
    L.push(`${name} Accounting`, `setup_ok=${c.setupOk} setup_fail=${c.setupFail} conn_ok=0 conn_inp=0`, ...ACCOUNTING_TAIL[name]);
  }
  return `${L.join('\n')}\n`;
}

const HTTP_SCAN_LINES = [
  'Web responses clean', 'Web responses scan errors', 'Web responses detected', 'Web responses infected with worms',
  'Web responses infected with viruses', 'Web responses infected with susp', 'Web responses file blocked',
  'Web responses file exempt', 'Web responses bannedword detected', 'Web requests oversize pass',
  'Web requests oversize block', 'Last Server Scan errors', 'URL requests exempt', 'URL requests blocked',
  'URL requests passed', 'URL requests submit error', 'URL requests rating error', 'URL requests rating block',
  'URL requests rating allow', 'URL requests infected with worms', 'Web requests detected', 'Web requests file blocked',
  'Web requests file exempt', 'POST requests clean', 'POST requests scan errors', 'POST requests infected with viruses',
  'POST requests infected with susp', 'POST requests file blocked', 'POST requests bannedword detected',
  'POST requests oversize pass', 'POST requests oversize block', 'Web request backlog drop', 'Web response backlog drop',
];

const ACCOUNTING_TAIL: Record<ServiceName, string[]> = {
  HTTP: ['urlfilter=0/0/0 uf_lookupf=0', 'scan=0 clt=0 srv=0'],
  SMTP: ['scan=0 suspend=0 resume=0 reject=0 spamadd=0 spamdel=0 clt=0 srv=0'],
  POP3: ['scan=0 clt=0 srv=0'],
  IMAP: ['scan=0 clt=0 srv=0'],
  FTP: ['scan=0 clt=0 srv=0 datalisten=0 dataclt=0 datasrv=0'],
  NNTP: ['scan=0 clt=0 srv=0'],
};

/**
 * `diagnose sys conserve`: the seeds show no conserve-mode view, so this one is nfsessiond's own,
 * one `name: value` line each (memory use is the last sample the daemon fed the engine).
 */
export function formatConserve(v: ConserveView): string {
  return [
    `memory conserve mode: ${v.conserve ? 'on' : 'off'}`,
    `reasons: ${v.reasons.length ? v.reasons.join(' ') : '-'}`,
    `memory used: ${v.memory}% (level ${v.level})`,
    `memory used threshold extreme: ${v.thresholds.extreme}%`,
    `memory used threshold red: ${v.thresholds.red}%`,
    `memory used threshold green: ${v.thresholds.green}%`,
    `av-failopen-session: ${v.failopen_session ? 'enable' : 'disable'}`,
    `av-failopen: ${v.failopen}`,
    `one-shot: ${v.one_shot_latched ? 'latched (diagnose sys conserve reset)' : 'not latched'}`,
    `enter=${v.enter} leave=${v.leave} refused_limit=${v.refused_limit} refused_memory=${v.refused_memory} bypassed=${v.bypassed} bypass_packets=${v.bypass_packets} bypass_flows=${v.bypass_flows} bypass_evicted=${v.bypass_evicted} one_shot_resets=${v.one_shot_resets}`,
  ].join('\n') + '\n';
}
