// Reads the limit, user, conserve-mode and accounting settings into their part of EngineConfig.
//
//   config system global            av-failopen-session {enable|disable}   (default disable)
//                                   av-failopen {pass|off|one-shot}        (default pass)
//                                   memory-use-threshold-red|extreme|green (88/95/82, range 70-97)
//                                   adaptive-timeout-start <pct> (0 = off), adaptive-timeout-end <pct>
//   config system resource-limits   session <n>     global session limit (0 = unlimited)
//                                   proxy <n>       concurrent users, all VDOMs (0 = unlimited)
//                                   user-idle-timeout <s>  (nfsessiond: idle user expiry, 3600)
//   config system vdom-property     edit <vdom>  set session <max> [<guaranteed>]  set proxy <n>
//   config system session-accounting  http-port|smtp-port|pop3-port|imap-port|ftp-port|nntp-port
//                                   <port>...  (TCP destination ports of each accounted service)
//   config system nfsessiond        memory-sample-interval <s>, failopen-bypass-timeout <s>
//
// The schema reports every malformed value with FILE:LINE:COLUMN; the cross-field checks here do
// the same with the positions the schema kept.

import type { EngineConfig } from '../engine/engine-config.js';
import { defaultLimits, SERVICES, type FailopenMode, type LimitsConfig, type ServiceName, type VdomLimit } from '../engine/limits.js';
import type { BlockValues, Entry } from './schema.js';
import { ConfigError, type Pos } from './syntax.js';

export interface LimitsSource {
  block(path: string): BlockValues;
  table(path: string): Entry[];
}

export type LimitsPart = Pick<EngineConfig, 'maxSessions' | 'vdomNames' | 'limits'>;

const PORT_KEYS: Record<ServiceName, string> = {
  HTTP: 'http-port', SMTP: 'smtp-port', POP3: 'pop3-port', IMAP: 'imap-port', FTP: 'ftp-port', NNTP: 'nntp-port',
};

const at = (b: { positions: Record<string, Pos> }, key: string, fallback: Pos = { line: 1, col: 1 }): Pos => b.positions[key] ?? fallback;

function uint(text: string): number | undefined {
  return /^\d{1,10}$/.test(text) && Number(text) <= 0x7fffffff ? Number(text) : undefined;
}

export function readLimits(src: LimitsSource, vdomNames: string[], file: string, errors: ConfigError[]): LimitsPart {
  const glob = src.block('system global');
  const res = src.block('system resource-limits');
  const acct = src.block('system session-accounting');
  const sys = src.block('system nfsessiond');
  const g = glob.values;

  const red = g['memory-use-threshold-red'] as number;
  const extreme = g['memory-use-threshold-extreme'] as number;
  const green = g['memory-use-threshold-green'] as number;
  if (green > red) errors.push(new ConfigError(file, at(glob, 'memory-use-threshold-green', at(glob, 'memory-use-threshold-red')), `memory-use-threshold-green ${green} is above memory-use-threshold-red ${red}: conserve mode could never be left`));
  if (red > extreme) errors.push(new ConfigError(file, at(glob, 'memory-use-threshold-red', at(glob, 'memory-use-threshold-extreme')), `memory-use-threshold-red ${red} is above memory-use-threshold-extreme ${extreme}`));

  const adaptiveStart = g['adaptive-timeout-start'] as number;
  const adaptiveEnd = g['adaptive-timeout-end'] as number;
  if (adaptiveStart > 0 && adaptiveEnd <= adaptiveStart) {
    const pos = glob.valuePositions['adaptive-timeout-end']?.[0] ?? glob.valuePositions['adaptive-timeout-start']?.[0] ?? at(glob, 'adaptive-timeout-start');
    errors.push(new ConfigError(file, pos, `adaptive-timeout-end ${adaptiveEnd} must be above adaptive-timeout-start ${adaptiveStart}`));
  }

  const maxSessions = res.values.session as number;
  const vdom: VdomLimit[] = [];
  let guaranteed = 0;
  for (const e of src.table('system vdom-property')) {
    const vd = vdomNames.indexOf(e.id);
    if (vd < 0) {
      errors.push(new ConfigError(file, { line: e.pos.line, col: e.pos.col + 5 }, `vdom-property '${e.id}': unknown VDOM (defined: ${vdomNames.join(', ')})`));
      continue;
    }
    const lim: VdomLimit = { session: 0, sessionGuaranteed: 0, users: e.values.proxy as number };
    const words = e.values.session as string[];
    const pos = e.valuePositions.session ?? [];
    const ok = words.length <= 2 && words.every((w, i) => {
      if (uint(w) !== undefined) return true;
      errors.push(new ConfigError(file, pos[i] ?? e.pos, `vdom-property '${e.id}': session: expected a number 0-2147483647, got '${w}'`));
      return false;
    });
    if (words.length > 2) errors.push(new ConfigError(file, pos[2] ?? e.pos, `vdom-property '${e.id}': session takes <max> [<guaranteed>]`));
    if (ok && words.length > 0) {
      lim.session = uint(words[0])!;
      lim.sessionGuaranteed = words.length > 1 ? uint(words[1])! : 0;
      if (lim.session > 0 && lim.sessionGuaranteed > lim.session) {
        errors.push(new ConfigError(file, pos[1] ?? e.pos, `vdom-property '${e.id}': ${lim.sessionGuaranteed} guaranteed sessions are more than its maximum ${lim.session}`));
      }
      guaranteed += lim.sessionGuaranteed;
      if (maxSessions > 0 && guaranteed > maxSessions) {
        errors.push(new ConfigError(file, pos[1] ?? e.pos, `vdom-property '${e.id}': guaranteed sessions of all VDOMs (${guaranteed}) exceed resource-limits session ${maxSessions}`));
      }
    }
    vdom[vd] = lim;
  }

  const defaults = defaultLimits();
  const servicePorts = { ...defaults.servicePorts };
  const owner = new Map<number, ServiceName>();
  const ownerPos = new Map<number, Pos | undefined>();
  for (const s of SERVICES) {
    const key = PORT_KEYS[s];
    const words = acct.values[key] as string[];
    const pos = acct.valuePositions[key] ?? [];
    const ports: number[] = [];
    words.forEach((w, i) => {
      const p = /^\d{1,5}$/.test(w) ? Number(w) : NaN;
      const where = pos[i] ?? at(acct, key);
      if (!(p >= 1 && p <= 65535)) errors.push(new ConfigError(file, where, `'${key}' in 'config system session-accounting': expected a port 1-65535, got '${w}'`));
      else if (owner.has(p) && owner.get(p) !== s) {
        // Point at the value that was written, not at a default.
        errors.push(new ConfigError(file, pos[i] ?? ownerPos.get(p) ?? where, `'${key}' in 'config system session-accounting': port ${p} is already ${owner.get(p)}'s`));
      } else {
        owner.set(p, s);
        ownerPos.set(p, pos[i]);
        ports.push(p);
      }
    });
    servicePorts[s] = ports;
  }

  const limits: LimitsConfig = defaultLimits({
    users: res.values.proxy as number,
    vdom,
    userIdleTimeout: res.values['user-idle-timeout'] as number,
    failopenSession: g['av-failopen-session'] as boolean,
    failopen: g['av-failopen'] as FailopenMode,
    memoryRed: red,
    memoryExtreme: extreme,
    memoryGreen: green,
    servicePorts,
    bypassIdleTimeout: sys.values['failopen-bypass-timeout'] as number,
    memorySampleInterval: sys.values['memory-sample-interval'] as number,
    adaptiveStart,
    adaptiveEnd,
  });
  return { maxSessions, vdomNames: [...vdomNames], limits };
}
