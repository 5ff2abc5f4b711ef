// HA metrics, read from the HA status when scraped, except the lag, observed as ACKs arrive:
//   nfsessiond_ha_sync_lag_seconds            histogram: a sync message's first send to its ACK
//   nfsessiond_ha_unacked_messages            gauge: sync messages waiting for an ACK
//   nfsessiond_ha_retransmits_total           counter: sync messages sent again (timeout or NACK)
//   nfsessiond_ha_refused_total{reason}       counter: datagrams refused (auth, replay, self, ...)
//   nfsessiond_ha_role{role}                  gauge 1 on the role keepalived gave us
//   nfsessiond_ha_link_up                     gauge 0/1: the peer was heard in the last 3 s
//   nfsessiond_ha_held_back                   gauge 0/1: keepalived is kept from making us primary
//   nfsessiond_ha_synced_sessions, _synced_expectations   gauges: the peer's table held here
//   nfsessiond_ha_bulk_complete_total         counter: bulk transfers received whole

import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { HaStatus } from '../ha/ha-service.js';

export type HaSource = () => HaStatus | undefined;

/** 1 ms to 5 s: a lag past the resend timer (200 ms) means a message was lost at least once. */
export const HA_LAG_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

const ROLES = ['standalone', 'unknown', 'master', 'backup', 'fault', 'stopped'];
const REASONS = ['auth', 'replay', 'self', 'short', 'magic', 'version', 'body'];

export function registerHaMetrics(registers: Registry[], ha: HaSource): (ms: number) => void {
  const lag = new Histogram({ name: 'nfsessiond_ha_sync_lag_seconds', help: 'Sync lag: from the first send of a sync message to the peer\'s ACK of it.', buckets: HA_LAG_BUCKETS, registers });
  const gauge = (name: string, help: string, value: (s: HaStatus) => number) => new Gauge({
    name, help, registers, collect() { const s = ha(); this.set(s ? value(s) : 0); },
  });
  gauge('nfsessiond_ha_unacked_messages', 'Sync messages sent and not yet acknowledged by the peer.', (s) => s.sync?.tx.unacked ?? 0);
  gauge('nfsessiond_ha_link_up', 'The peer was heard (an authenticated datagram) in the last 3 s.', (s) => (s.sync?.linkUp ? 1 : 0));
  gauge('nfsessiond_ha_held_back', 'keepalived is kept from making this node primary (first bulk sync not complete).', (s) => (s.role.heldBack ? 1 : 0));
  gauge('nfsessiond_ha_synced_sessions', 'Sessions of the peer\'s table held here (for a takeover).', (s) => s.sync?.bulk.received.sessions ?? 0);
  gauge('nfsessiond_ha_synced_expectations', 'Expectations of the peer\'s table held here.', (s) => s.sync?.bulk.received.expectations ?? 0);
  new Counter({
    name: 'nfsessiond_ha_retransmits_total', help: 'Sync messages sent again (not acknowledged in time, or asked for by a NACK).', registers,
    collect() { this.reset(); this.inc(ha()?.sync?.tx.resent ?? 0); },
  });
  new Counter({
    name: 'nfsessiond_ha_bulk_complete_total', help: 'Bulk transfers of the peer\'s table received whole.', registers,
    collect() { this.reset(); this.inc(ha()?.sync?.bulk.received.bulksComplete ?? 0); },
  });
  new Counter({
    name: 'nfsessiond_ha_refused_total', help: 'Sync datagrams refused, by reason: auth (password or group-name differs), replay, self, short, magic, version, body.', labelNames: ['reason'], registers,
    collect() {
      this.reset();
      const r = ha()?.sync?.refused;
      for (const reason of REASONS) this.inc({ reason }, r?.[reason as keyof typeof r] ?? 0);
    },
  });
  new Gauge({
    name: 'nfsessiond_ha_role', help: 'The HA role (1 on the current one): standalone, unknown (no keepalived state yet), master, backup, fault, stopped.', labelNames: ['role'], registers,
    collect() {
      this.reset();
      const role = ha()?.role.role ?? 'standalone';
      for (const r of ROLES) this.set({ role: r }, r === role ? 1 : 0);
    },
  });
  return (ms) => lag.observe(ms / 1000);
}
