// Keys a reload cannot apply: the queues are bound, the ruleset installed (hooks, table, offload
// mark and the first-packet rules), the control socket and state directory opened once, at start.
// A reload that changes one keeps the running value and says so, key by key, instead of taking
// the file's value into a config the kernel side does not follow (an offload mark the installed
// rules do not skip would send every offloaded packet back to the queue).

import { createHash } from 'node:crypto';
import type { DaemonConfig } from './load.js';

/** The HA block as the reload warning shows it: the password only as a digest prefix (logs are not secret). */
function haFingerprint(c: DaemonConfig): string {
  const pw = c.ha.password ? `sha256:${createHash('sha256').update(c.ha.password).digest('hex').slice(0, 12)}` : '';
  return JSON.stringify({ ...c.ha, password: pw });
}

interface RestartOnlyKey {
  key: string;
  get: (c: DaemonConfig) => unknown;
  /** Puts the running value back into the next config. */
  keep: (next: DaemonConfig, running: DaemonConfig) => void;
}

const RESTART_ONLY: RestartOnlyKey[] = [
  { key: 'queue-num', get: (c) => c.queue.first, keep: (n, r) => { n.queue.first = r.queue.first; } },
  { key: 'queue-count', get: (c) => c.queue.count, keep: (n, r) => { n.queue.count = r.queue.count; } },
  { key: 'queue-bypass', get: (c) => c.queue.bypass, keep: (n, r) => { n.queue.bypass = r.queue.bypass; } },
  { key: 'queue-fail-open', get: (c) => c.queue.failOpen, keep: (n, r) => { n.queue.failOpen = r.queue.failOpen; } },
  { key: 'queue-maxlen', get: (c) => c.queue.maxlen, keep: (n, r) => { n.queue.maxlen = r.queue.maxlen; } },
  { key: 'copy-range', get: (c) => c.queue.copyRange, keep: (n, r) => { n.queue.copyRange = r.queue.copyRange; } },
  { key: 'hooks', get: (c) => c.hooks.join(' '), keep: (n, r) => { n.hooks = [...r.hooks]; } },
  { key: 'table', get: (c) => c.table, keep: (n, r) => { n.table = r.table; } },
  { key: 'control-socket', get: (c) => c.controlSocket, keep: (n, r) => { n.controlSocket = r.controlSocket; } },
  { key: 'state-dir', get: (c) => c.stateDir, keep: (n, r) => { n.stateDir = r.stateDir; } },
  { key: 'offload', get: (c) => c.engine.offload, keep: (n, r) => { n.engine.offload = r.engine.offload; } },
  // The sync socket, its key and the keepalived files are set up once, at start.
  { key: 'config system ha', get: haFingerprint, keep: (n, r) => { n.ha = r.ha; } },
  // The nat chains are part of the installed table. A policy's nat/poolname change applies (its
  // verdict mark), but pools and VIPs keep the running rules; pools keep their indexes only
  // when the file adds none before them.
  { key: 'config firewall ippool/vip', get: (c) => JSON.stringify({ pools: c.nat.pools, vips: c.nat.vips, masquerade: c.nat.masquerade }), keep: (n, r) => { n.nat = r.nat; } },
  { key: 'offload-mark', get: (c) => `0x${c.engine.offloadMark.toString(16).padStart(8, '0')}`, keep: (n, r) => { n.engine.offloadMark = r.engine.offloadMark; } },
];

export interface KeptKey { key: string; running: unknown; file: unknown }

/**
 * The next config with every restart-only key at its running value, and the keys whose value in
 * the file differs (they take effect at the next start).
 */
export function keepRestartOnly(running: DaemonConfig, next: DaemonConfig): { config: DaemonConfig; kept: KeptKey[] } {
  const kept: KeptKey[] = [];
  for (const k of RESTART_ONLY) {
    const a = k.get(running);
    const b = k.get(next);
    if (a === b) continue;
    kept.push({ key: k.key, running: a, file: b });
    k.keep(next, running);
  }
  return { config: next, kept };
}
