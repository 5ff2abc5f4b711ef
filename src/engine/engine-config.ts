// The settings the engine decides with. The config language (src/config) produces this; the
// defaults are the vendor's where it has one.

import type { FlowTuple } from '../packet/types.js';
import type { PolicyMatch, RefreshDirection, Verdict } from './types.js';
import { defaultLimits, type LimitsConfig } from './limits.js';
import { DEFAULT_HELPER_BINDINGS, HelperTable } from '../helpers/registry.js';
import { DEFAULT_HELPER_OPTIONS, type HelperOptions } from '../helpers/types.js';
import type { KernelCacheConfig } from './kernel-cache.js';

/** Limits and lifetimes of expectation sessions (config system session-helper-options). */
export interface ExpectationConfig {
  /** Lifetime (s) of an expectation whose helper gives none (vendor: "usually 30 seconds"). */
  timeout: number;
  /** Expectations one control session may hold; more are refused. */
  maxPerSession: number;
  /** Expectations in the whole table. */
  max: number;
  /** Ending a control session also ends the sessions its expectations became. */
  clearChildren: boolean;
  /** Out-of-order bytes buffered per direction of a helper's TCP stream. */
  streamBuffer: number;
}

export const DEFAULT_EXPECTATION_CONFIG: ExpectationConfig = { timeout: 30, maxPerSession: 16, max: 8192, clearChildren: false, streamBuffer: 65536 };

export interface TtlRule {
  proto: number;
  startPort: number;
  endPort: number;
  timeout: number;
  refreshDir: RefreshDirection;
}

/** Session settings a VDOM has of its own (vendor: per-VDOM session-ttl and settings). */
export interface VdomSessionSettings {
  name: string;
  defaultTtl: number;
  ttlRules: TtlRule[];
  tcpSessionWithoutSyn: boolean;
}

export interface EngineConfig {
  /** session-ttl default (s). */
  defaultTtl: number;
  ttlRules: TtlRule[];
  tcpHalfOpenTimer: number;
  tcpHalfCloseTimer: number;
  tcpTimeWaitTimer: number;
  /** Timeout (s) of a UDP session that no reply has answered yet and no session-ttl entry names. */
  udpIdleTimer: number;
  /** 0 = unlimited. */
  maxSessions: number;
  /** Conntrack mark bit that tells the kernel a session is offloaded (its packets skip the queue). */
  offloadMark: number;
  /** Offload sessions to the kernel once established; off keeps every packet in userspace. */
  offload: boolean;
  /** Kernel conntrack timeout set on offload: the daemon's own timer is the one that ends the session. */
  kernelTimeout: number;
  /**
   * Live daemon: sessions without a helper are offloaded by their first packet's verdict mark and
   * the kernel mirrors their timers (kernel-cache.ts). Absent (replay, tests): sessions are
   * offloaded once established, by a conntrack update.
   */
  kernelCache?: KernelCacheConfig;
  malformedVerdict: Verdict;
  /** Verdict for an ICMP error that quotes no known session. */
  unrelatedIcmpErrorVerdict: Verdict;
  /** Accept a TCP session whose first packet is not a SYN (vendor: tcp-session-without-syn). */
  tcpSessionWithoutSyn: boolean;
  /** Per-VDOM settings by VDOM index; a missing entry uses the root values above. */
  vdoms: VdomSessionSettings[];
  /** VDOM names by index, for views and logs (default ['root']). */
  vdomNames: string[];
  /** Users, per-VDOM limits, conserve mode / fail-open, per-service accounting ports (limits.ts). */
  limits: LimitsConfig;
  /** Helper per protocol/port (config system session-helper). */
  helpers: HelperTable;
  helperOptions: HelperOptions;
  expectations: ExpectationConfig;
  /** The policy lookup; the config layer builds it from `config firewall policy`. */
  policy: (t: FlowTuple, indev: number, outdev: number, icmpType?: number) => PolicyMatch;
  /**
   * Whether a change of the policies looks up a session of this VDOM and policy again
   * (firewall-session-dirty); the vendor's default re-checks every session.
   */
  dirtyCheck: (vd: number, policyId: number) => boolean;
}

export const ACCEPT_ALL: PolicyMatch = { policyId: 1, action: 'accept', logTraffic: true, vd: 0 };

export function defaultEngineConfig(over: Partial<EngineConfig> = {}): EngineConfig {
  return {
    defaultTtl: 3600,
    ttlRules: [],
    tcpHalfOpenTimer: 10,
    tcpHalfCloseTimer: 120,
    tcpTimeWaitTimer: 1,
    udpIdleTimer: 180,
    maxSessions: 0,
    offloadMark: 0x00100000,
    offload: true,
    kernelTimeout: 5 * 86400,
    malformedVerdict: 'drop',
    unrelatedIcmpErrorVerdict: 'drop',
    tcpSessionWithoutSyn: false,
    policy: () => ACCEPT_ALL,
    dirtyCheck: () => true,
    vdomNames: ['root'],
    limits: defaultLimits(),
    vdoms: [],
    helpers: new HelperTable(DEFAULT_HELPER_BINDINGS),
    helperOptions: DEFAULT_HELPER_OPTIONS,
    expectations: DEFAULT_EXPECTATION_CONFIG,
    ...over,
  };
}

export function vdomSettings(cfg: EngineConfig, vd: number): Pick<VdomSessionSettings, 'defaultTtl' | 'ttlRules' | 'tcpSessionWithoutSyn'> {
  return cfg.vdoms[vd] ?? cfg;
}

/** The session-ttl entry for a tuple in its VDOM: protocol and destination port range, first match wins. */
export function ttlFor(cfg: EngineConfig, t: FlowTuple, vd = 0): { timeout: number; refreshDir: RefreshDirection; fromRule: boolean } {
  const v = vdomSettings(cfg, vd);
  for (const r of v.ttlRules) {
    if (r.proto === t.proto && t.dport >= r.startPort && t.dport <= r.endPort) {
      return { timeout: r.timeout, refreshDir: r.refreshDir, fromRule: true };
    }
  }
  return { timeout: v.defaultTtl, refreshDir: 'both', fromRule: false };
}
