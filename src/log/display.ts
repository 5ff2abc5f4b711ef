// `execute log display`: the traffic records kept in memory, in the vendor's raw log layout
// (`key=value`, strings quoted, numbers and addresses bare), newest first, numbered, under the
// vendor's "N logs found." / "M logs returned." header. `execute log filter` narrows and pages it.

import type { TrafficRecord } from './traffic.js';

/** The vendor's field order of a forward traffic record. */
const ORDER: (keyof TrafficRecord)[] = [
  'date', 'time', 'logid', 'type', 'subtype', 'level', 'vd', 'eventtime', 'srcip', 'srcport', 'srcintf', 'dstip', 'dstport', 'dstintf',
  'sessionid', 'proto', 'action', 'policyid', 'service', 'duration', 'sentbyte', 'rcvdbyte', 'sentpkt', 'rcvdpkt',
];
const BARE = new Set(['date', 'time', 'srcip', 'dstip']);

export function formatLogRecord(r: TrafficRecord): string {
  const seen = new Set<string>(ORDER);
  const keys = [...ORDER, ...Object.keys(r).filter((k) => !seen.has(k))] as (keyof TrafficRecord)[];
  return keys
    .filter((k) => r[k] !== undefined)
    .map((k) => {
      const v = r[k];
      return typeof v === 'string' && !BARE.has(k) ? `${k}="${v}"` : `${k}=${v}`;
    })
    .join(' ');
}

export interface LogFilter {
  /** `execute log filter field <name> <value>`: every given field must equal its value. */
  fields?: Record<string, string>;
  /** Records per display (vendor default 10). */
  viewLines?: number;
  /** First record shown, 1 = newest. */
  startLine?: number;
}

export const DEFAULT_VIEW_LINES = 10;

export interface LogDisplay {
  found: number;
  start_line: number;
  records: TrafficRecord[];
}

/** Records oldest first in, the page of matching records (newest first) out. */
export function selectLogs(oldestFirst: TrafficRecord[], f: LogFilter): LogDisplay {
  const fields = Object.entries(f.fields ?? {});
  const matching = oldestFirst.filter((r) => fields.every(([k, v]) => String((r as unknown as Record<string, unknown>)[k]) === v)).reverse();
  const start = Math.max(1, f.startLine ?? 1);
  const lines = f.viewLines ?? DEFAULT_VIEW_LINES;
  return { found: matching.length, start_line: start, records: matching.slice(start - 1, start - 1 + lines) };
}

export function formatLogDisplay(d: LogDisplay): string {
  const head = `${d.found} logs found.\n${d.records.length} logs returned.\n`;
  const body = d.records.map((r, i) => `\n${d.start_line + i}: ${formatLogRecord(r)}\n`).join('');
  return head + body;
}

/** `execute log filter` with no argument. */
export function formatLogFilter(f: LogFilter): string {
  const fields = Object.entries(f.fields ?? {});
  return [
    'category: traffic',
    'device: memory',
    `start-line: ${f.startLine ?? 1}`,
    `view-lines: ${f.viewLines ?? DEFAULT_VIEW_LINES}`,
    `field: ${fields.length ? fields.map(([k, v]) => `${k}=${v}`).join(' ') : 'any'}`,
  ].join('\n') + '\n';
}

/** The filter after one `execute log filter <args...>` command; throws on bad input. */
export function applyLogFilterArgs(f: LogFilter, args: string[]): LogFilter {
  const [what, a, b] = args;
  if (!what) return f;
  const num = (x: string | undefined, name: string, min: number, max: number) => {
    if (!x || !/^\d+$/.test(x) || Number(x) < min || Number(x) > max) throw new Error(`${name}: expected a number ${min}-${max}`);
    return Number(x);
  };
  switch (what) {
    case 'reset': return {};
    case 'view-lines': return { ...f, viewLines: num(a, 'view-lines', 5, 1000) };
    case 'start-line': return { ...f, startLine: num(a, 'start-line', 1, 0x7fffffff) };
    case 'field': {
      if (!a) throw new Error('field: expected <name> [<value>] (no value removes the field)');
      const fields = { ...(f.fields ?? {}) };
      if (b === undefined) delete fields[a];
      else fields[a] = b;
      return { ...f, fields };
    }
    default: throw new Error(`unknown log filter '${what}': expected field, view-lines, start-line or reset`);
  }
}
