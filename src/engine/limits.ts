// Limit settings: per-VDOM session and user limits, user expiry, conserve mode thresholds and the
// fail-open behaviour, and the destination ports of the accounted services (seeds 000 and 001).
// Pure data plus the checks the admission step (admission.ts) makes; 0 always means unlimited.

export type FailopenMode = 'off' | 'one-shot' | 'pass';

/** The protocols the vendor's proxy accounts separately (`get test proxyworker 4`). */
export const SERVICES = ['HTTP', 'SMTP', 'POP3', 'IMAP', 'FTP', 'NNTP'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const DEFAULT_SERVICE_PORTS: Readonly<Record<ServiceName, readonly number[]>> = {
  HTTP: [80], SMTP: [25], POP3: [110], IMAP: [143], FTP: [21], NNTP: [119],
};

/** `config system vdom-property` / `edit <vdom>`: `set session <max> [guaranteed]`, `set proxy <max>`. */
export interface VdomLimit {
  /** Sessions of this VDOM at most (0 = unlimited). */
  session: number;
  /** Sessions reserved for this VDOM out of the global limit: other VDOMs cannot take them. */
  sessionGuaranteed: number;
  /** Concurrent users of this VDOM at most (0 = unlimited). */
  users: number;
}

export interface LimitsConfig {
  /** `config system resource-limits` / `set proxy`: concurrent users over all VDOMs (0 = unlimited). */
  users: number;
  /** Per-VDOM limits by VDOM index; a missing entry is unlimited. */
  vdom: VdomLimit[];
  /** A user with no session left is forgotten after this many seconds (seed 001: 3600). */
  userIdleTimeout: number;
  /** `av-failopen-session`: a full table / limit / memory conserve uses `av-failopen`; disabled refuses new sessions. */
  failopenSession: boolean;
  /** `av-failopen`: off refuses, pass lets new sessions through uninspected until room frees, one-shot until reset. */
  failopen: FailopenMode;
  /** `memory-use-threshold-red`: memory use (%) that enters conserve mode. */
  memoryRed: number;
  /** `memory-use-threshold-extreme`: memory use (%) from which every new session is dropped. */
  memoryExtreme: number;
  /** `memory-use-threshold-green`: memory use (%) below which conserve mode is left. */
  memoryGreen: number;
  /** TCP destination ports of each accounted service. */
  servicePorts: Record<ServiceName, number[]>;
  /** Seconds without a userspace packet after which a fail-open (uninspected) flow is forgotten. */
  bypassIdleTimeout: number;
  /** Seconds between memory samples (read by the daemon, not the engine). */
  memorySampleInterval: number;
  /** `adaptive-timeout-start`: table use (% of the session limit) from which timeouts shrink; 0 = off (adaptive.ts). */
  adaptiveStart: number;
  /** `adaptive-timeout-end`: table use (%) at which timeouts reach zero; may exceed 100. */
  adaptiveEnd: number;
}

export function defaultLimits(over: Partial<LimitsConfig> = {}): LimitsConfig {
  return {
    users: 0,
    vdom: [],
    userIdleTimeout: 3600,
    failopenSession: false,
    failopen: 'pass',
    memoryRed: 88,
    memoryExtreme: 95,
    memoryGreen: 82,
    servicePorts: Object.fromEntries(Object.entries(DEFAULT_SERVICE_PORTS).map(([k, v]) => [k, [...v]])) as Record<ServiceName, number[]>,
    bypassIdleTimeout: 120,
    memorySampleInterval: 5,
    adaptiveStart: 0,
    adaptiveEnd: 100,
    ...over,
  };
}

export const NO_VDOM_LIMIT: VdomLimit = { session: 0, sessionGuaranteed: 0, users: 0 };

export function vdomLimit(cfg: LimitsConfig, vd: number): VdomLimit {
  return cfg.vdom[vd] ?? NO_VDOM_LIMIT;
}

/**
 * Whether the global session limit leaves room for one more session of VDOM `vd`: the table is
 * below `max`, and the sessions other VDOMs are guaranteed but do not use yet stay free. A VDOM
 * still under its own guarantee only needs the table not to be full.
 */
export function globalRoom(max: number, total: number, vd: number, perVd: readonly number[], cfg: LimitsConfig): boolean {
  if (max <= 0) return true;
  if (total >= max) return false;
  const own = vdomLimit(cfg, vd);
  if ((perVd[vd] ?? 0) < own.sessionGuaranteed) return true;
  let reserved = 0;
  for (let i = 0; i < cfg.vdom.length; i++) {
    if (i === vd) continue;
    const g = cfg.vdom[i]?.sessionGuaranteed ?? 0;
    reserved += Math.max(0, g - (perVd[i] ?? 0));
  }
  return total + 1 + reserved <= max;
}
