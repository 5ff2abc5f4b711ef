// The other pages of the vendor's `get test proxyworker <n>` besides 4 (limits-format.ts): 1 the
// memory use, 4444 the figures per VDOM, 99 a restart. The vendor's 99 restarts its proxy
// process; here nothing stands between client and server, so a restart is one of the accounting
// only: no session is dropped, the counters of page 4 count again from zero.
// The vendor's sample output shows page 4 only; the layouts of 1 and 4444 are nfsessiond's own,
// one "name value" line each as page 4 prints them.

import type { MemoryLevel } from '../engine/conserve.js';
import type { SessionEngine } from '../engine/engine.js';
import { SERVICES, vdomLimit, type ServiceName } from '../engine/limits.js';
import type { ProxyWorkerView, ServiceView } from './limits-format.js';

/** The selectors the daemon answers and what each shows; anything else is refused with this list. */
export const PROXYWORKER_MODES = {
  1: { cmd: 'proxyworker.memory', what: 'memory use' },
  4: { cmd: 'proxyworker.stat', what: 'sessions and accounting per service' },
  4444: { cmd: 'proxyworker.vdom', what: 'statistics per VDOM' },
  99: { cmd: 'proxyworker.restart', what: 'restart of the accounting, sessions stay' },
} as const;

export type ProxyWorkerMode = keyof typeof PROXYWORKER_MODES;

export function proxyWorkerMode(text: string): ProxyWorkerMode {
  if (Object.hasOwn(PROXYWORKER_MODES, text)) return Number(text) as ProxyWorkerMode;
  const supported = Object.entries(PROXYWORKER_MODES).map(([n, m]) => `${n} (${m.what})`).join(', ');
  throw new Error(`proxyworker ${text}: not supported; supported: ${supported}`);
}

// ---- 1: memory use ---------------------------------------------------------------------

export interface ProxyMemoryView {
  /** The daemon process (bytes), from the Node.js runtime. */
  process: { rss: number; heap_total: number; heap_used: number; external: number; array_buffers: number };
  /** The system memory sample conserve mode works from (percent used) and its thresholds. */
  system: { used: number; level: MemoryLevel; red: number; extreme: number; green: number };
  /** What the daemon keeps in memory per connection. */
  table: { sessions: number; expectations: number; users: number; failopen_flows: number };
}

export function proxyMemoryOf(engine: SessionEngine, mem: NodeJS.MemoryUsage): ProxyMemoryView {
  const v = engine.admission.view();
  return {
    process: { rss: mem.rss, heap_total: mem.heapTotal, heap_used: mem.heapUsed, external: mem.external, array_buffers: mem.arrayBuffers },
    system: { used: v.memory, level: v.level, ...v.thresholds },
    table: { sessions: engine.size, expectations: engine.expectations.size, users: engine.admission.users.size, failopen_flows: v.bypass_flows },
  };
}

const kb = (bytes: number) => Math.floor(bytes / 1024);

export function formatProxyMemory(v: ProxyMemoryView): string {
  const p = v.process;
  const s = v.system;
  return [
    'Worker[0]',
    'Memory',
    `Resident ${kb(p.rss)} (kb)`,
    `Heap total ${kb(p.heap_total)} (kb)`,
    `Heap used ${kb(p.heap_used)} (kb)`,
    `External ${kb(p.external)} (kb)`,
    `Array buffers ${kb(p.array_buffers)} (kb)`,
    `System memory used ${s.used}% (${s.level}; red ${s.red}%, extreme ${s.extreme}%, green ${s.green}%)`,
    'Table',
    `Sessions ${v.table.sessions}`,
    `Expectations ${v.table.expectations}`,
    `Users ${v.table.users}`,
    `Fail-open flows ${v.table.failopen_flows}`,
  ].join('\n') + '\n';
}

// ---- 4444: per VDOM ----------------------------------------------------------------------

export interface ProxyVdomView {
  vd: number;
  name: string;
  /** Tracked sessions of the VDOM and its limits (0 = none). */
  sessions: number;
  session_limit: number;
  session_guaranteed: number;
  users: number;
  user_limit: number;
  /** Live sessions per accounted service. */
  services: Record<ServiceName, number>;
}

/**
 * Only what the table holds per VDOM: sessions, users and their limits, and live sessions per
 * service. Admissions, refusals and bytes are counted per service for the whole daemon (page 4),
 * not per VDOM, so they are not shown here.
 */
export function proxyVdomsOf(engine: SessionEngine): ProxyVdomView[] {
  const a = engine.admission;
  const L = engine.config.limits;
  const names = engine.config.vdomNames.length ? engine.config.vdomNames : ['root'];
  const perService = names.map(() => Object.fromEntries(SERVICES.map((s) => [s, 0])) as Record<ServiceName, number>);
  for (const s of engine.sessions()) {
    const svc = a.accounting.serviceOf(s.orig, L);
    if (svc && perService[s.vd]) perService[s.vd][svc]++;
  }
  return names.map((name, vd) => {
    const lim = vdomLimit(L, vd);
    return {
      vd, name,
      sessions: a.sessionsIn(vd), session_limit: lim.session, session_guaranteed: lim.sessionGuaranteed,
      users: a.users.countIn(vd), user_limit: lim.users,
      services: perService[vd],
    };
  });
}

export function formatProxyVdoms(vdoms: ProxyVdomView[]): string {
  const L: string[] = [];
  for (const v of vdoms) {
    L.push(
      `VDOM[${v.vd}] ${v.name}`,
      `Sessions ${v.sessions}/${v.session_limit} (guaranteed ${v.session_guaranteed})`,
      `Users ${v.users}/${v.user_limit}`,
      ...SERVICES.map((s) => `${s} Current Connections ${v.services[s]}`),
    );
  }
  L.push(`Total VDOMs: ${vdoms.length}`);
  return `${L.join('\n')}\n`;
}

// ---- 99: restart of the accounting ---------------------------------------------------------

/** The running totals of page 4 when the accounting was restarted. */
export interface AccountingRestart {
  /** Daemon uptime (s) at the restart: page 4's running time counts from it. */
  uptime: number;
  totals: Record<ServiceName, Pick<ServiceView, 'setupOk' | 'setupFail' | 'failMemory' | 'failLimit' | 'bypassed' | 'bytesOrg' | 'bytesReply' | 'bytes_sent' | 'bytes_received'>>;
}

/**
 * Restarts page 4's figures: the engine's counts stay as they are (other views and the metrics
 * read them) and the view subtracts these totals. The most connections at once cannot be had by
 * subtraction, so it is lowered to the live count in place: the engine only ever raises it.
 */
export function restartAccounting(engine: SessionEngine, now: ProxyWorkerView, uptime: number): AccountingRestart {
  const totals = {} as AccountingRestart['totals'];
  for (const s of SERVICES) {
    const c = now.services[s];
    totals[s] = { setupOk: c.setupOk, setupFail: c.setupFail, failMemory: c.failMemory, failLimit: c.failLimit, bypassed: c.bypassed, bytesOrg: c.bytesOrg, bytesReply: c.bytesReply, bytes_sent: c.bytes_sent, bytes_received: c.bytes_received };
    const live = engine.admission.accounting.counters[s];
    live.peak = live.current;
  }
  return { uptime, totals };
}

/**
 * Page 4 as counted since a restart. bytes_sent / bytes_received take in the live sessions'
 * bytes, so a session that straddles the restart counts only what it moved after it; bytesOrg /
 * bytesReply (bytes of ended sessions) hold the sessions that ended since the restart, in full.
 */
export function sinceRestart(v: ProxyWorkerView, r: AccountingRestart | undefined, uptime: number): ProxyWorkerView {
  if (!r) return v;
  const services = {} as ProxyWorkerView['services'];
  for (const s of SERVICES) {
    const c = v.services[s];
    const b = r.totals[s];
    services[s] = {
      ...c,
      setupOk: c.setupOk - b.setupOk, setupFail: c.setupFail - b.setupFail, failMemory: c.failMemory - b.failMemory, failLimit: c.failLimit - b.failLimit,
      bypassed: c.bypassed - b.bypassed, bytesOrg: c.bytesOrg - b.bytesOrg, bytesReply: c.bytesReply - b.bytesReply,
      bytes_sent: c.bytes_sent - b.bytes_sent, bytes_received: c.bytes_received - b.bytes_received,
    };
  }
  return { running_time: Math.max(0, uptime - r.uptime), services };
}
