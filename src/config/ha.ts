// Reads `config system ha` into HaConfig, with the checks that need more than one key. Every
// error points at the value it is about (FILE:LINE:COLUMN), or at `mode` when a-p lacks a key.
//
//   config system ha
//       set mode a-p
//       set group-name "HA-APP"
//       set password "..."
//       set hbdev "sync0" 100 ["sync1" 50 ...]
//       set ha-peer-ip 192.0.2.2
//       set session-pickup enable   (+ -connectionless, -expectation, -delay)
//   end

import type { BlockValues } from './schema.js';
import { ConfigError, type Pos } from './syntax.js';

export interface HbDev { ifname: string; priority: number }

export interface PickupConfig {
  /** session-pickup: TCP sessions are synced. */
  sessions: boolean;
  /** UDP, ICMP and the other connectionless protocols too. */
  connectionless: boolean;
  /** Expectations and the sessions made from them. */
  expectation: boolean;
  /** Only sessions older than 30 s. */
  delay: boolean;
}

export interface HaConfig {
  mode: 'standalone' | 'a-p';
  groupName: string;
  groupId: number;
  password: string;
  /** Highest priority first (the order the sync link is chosen in). */
  hbdev: HbDev[];
  peerIp: string;
  port: number;
  pickup: PickupConfig;
  override: boolean;
  priority: number;
  notifyFifo: string;
  trackFile: string;
}

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function isIPv4(s: string): boolean {
  return IPV4.test(s);
}

function readHbdev(b: BlockValues, file: string, errors: ConfigError[]): HbDev[] {
  const words = b.values.hbdev as string[];
  const pos = b.valuePositions.hbdev ?? [];
  const at = (i: number): Pos => pos[i] ?? b.positions.hbdev ?? { line: 1, col: 1 };
  const out: HbDev[] = [];
  for (let i = 0; i < words.length; i += 2) {
    const ifname = words[i];
    if (!/^[A-Za-z0-9_.:@-]{1,15}$/.test(ifname)) {
      errors.push(new ConfigError(file, at(i), `'hbdev' in 'config system ha': '${ifname}' is not an interface name (at most 15 letters, digits, '_', '.', ':', '@', '-')`));
      continue;
    }
    if (i + 1 >= words.length) {
      errors.push(new ConfigError(file, at(i), `'hbdev' in 'config system ha': '${ifname}' needs its priority ('"<ifname>" <priority>' pairs)`));
      continue;
    }
    const p = words[i + 1];
    const prio = /^\d{1,3}$/.test(p) ? Number(p) : NaN;
    if (!(prio >= 0 && prio <= 512)) {
      errors.push(new ConfigError(file, at(i + 1), `'hbdev' in 'config system ha': priority of '${ifname}' must be 0-512, got '${p}'`));
      continue;
    }
    if (out.some((h) => h.ifname === ifname)) {
      errors.push(new ConfigError(file, at(i), `'hbdev' in 'config system ha': '${ifname}' is given twice`));
      continue;
    }
    out.push({ ifname, priority: prio });
  }
  // A stable sort: among equal priorities the order written decides.
  return out.sort((x, y) => y.priority - x.priority);
}

export function readHa(b: BlockValues, file: string, errors: ConfigError[]): HaConfig {
  const v = b.values;
  const valueAt = (key: string): Pos => b.positions[key] ?? b.positions.mode ?? { line: 1, col: 1 };
  const hbdev = readHbdev(b, file, errors);
  const peerIp = v['ha-peer-ip'] as string;
  if (peerIp && !isIPv4(peerIp)) {
    errors.push(new ConfigError(file, valueAt('ha-peer-ip'), `'ha-peer-ip' in 'config system ha': expected an IPv4 address, got '${peerIp}'`));
  }
  const pickup: PickupConfig = {
    sessions: v['session-pickup'] as boolean,
    connectionless: v['session-pickup-connectionless'] as boolean,
    expectation: v['session-pickup-expectation'] as boolean,
    delay: v['session-pickup-delay'] as boolean,
  };
  // Refinements of session-pickup do nothing without it: refused rather than silently ignored.
  for (const key of ['session-pickup-connectionless', 'session-pickup-expectation', 'session-pickup-delay']) {
    if (v[key] === true && !pickup.sessions) {
      errors.push(new ConfigError(file, valueAt(key), `'${key}' in 'config system ha' needs 'set session-pickup enable'`));
    }
  }
  const group = v['group-name'] as string;
  // It is keepalived's instance name and comes back quoted in its FIFO lines: kept to a plain word.
  if (group && !/^[A-Za-z0-9_.-]{1,32}$/.test(group)) {
    errors.push(new ConfigError(file, valueAt('group-name'), `'group-name' in 'config system ha': at most 32 letters, digits, '_', '.', '-', got '${group}'`));
  }
  const mode = v.mode as HaConfig['mode'];
  if (mode === 'a-p') {
    const missing: Array<[string, boolean, string]> = [
      ['group-name', !(v['group-name'] as string), 'it names the cluster and keys the sync channel'],
      ['password', !(v.password as string), 'the sync channel is authenticated and encrypted with it'],
      ['hbdev', !(v.hbdev as string[]).length, 'the sync link\'s interface'],
      ['ha-peer-ip', !peerIp, 'the peer\'s address on the sync link'],
    ];
    for (const [key, absent, why] of missing) {
      if (absent) errors.push(new ConfigError(file, valueAt('mode'), `'config system ha': mode a-p needs '${key}' (${why})`));
    }
  }
  return {
    mode,
    groupName: v['group-name'] as string,
    groupId: v['group-id'] as number,
    password: v.password as string,
    hbdev,
    peerIp,
    port: v['ha-sync-port'] as number,
    pickup,
    override: v.override as boolean,
    priority: v.priority as number,
    notifyFifo: v['ha-notify-fifo'] as string,
    trackFile: v['ha-track-file'] as string,
  };
}
