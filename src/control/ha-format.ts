// Text of `diagnose sys ha status` (every counter of the sync channel, and why the link is down)
// and `get system ha status` (the vendor's field names; what nfsessiond does not have says so).

import type { HaStatus, PeerTableView } from '../ha/ha-service.js';

export type HaStatusResult = HaStatus & { peer_table?: PeerTableView } | { mode: 'standalone' };

const onOff = (b: boolean) => (b ? 'enable' : 'disable');
const ago = (ms: number | undefined) => (ms === undefined ? 'never' : `${(ms / 1000).toFixed(3)} s ago`);
const iso = (t: number) => new Date(t).toISOString();

function isHa(r: HaStatusResult): r is HaStatus & { peer_table?: PeerTableView } {
  return r.mode === 'a-p';
}

export function formatHaDiagnose(r: HaStatusResult): string {
  if (!isHa(r)) return 'mode: standalone (config system ha: set mode a-p to pair two nodes)';
  const p = r.pickup;
  const ro = r.role;
  const out = [
    `mode: a-p  group: ${r.group}  priority: ${r.priority}  override: ${onOff(r.override)}`,
    `role: ${ro.role} (from keepalived${ro.priority !== undefined ? `, priority ${ro.priority}` : ''}, since ${iso(ro.since)}, ${ro.transitions} transition(s))`,
    `held back: ${ro.heldBack ? 'yes' : 'no'} (${ro.holdReason}); track file ${r.keepalived.trackFile} = ${r.keepalived.trackValue ?? '(not written)'}`,
  ];
  if (r.keepalived.fifoError) out.push(`notify fifo: ${r.keepalived.fifoError}`);
  out.push(`pickup: session-pickup=${onOff(p.sessions)} connectionless=${onOff(p.connectionless)} expectation=${onOff(p.expectation)} delay=${onOff(p.delay)}`);
  const s = r.sync;
  if (!s) {
    out.push(`sync link: down: ${r.syncError ?? 'not started'}`);
    return out.join('\n');
  }
  const l = s.link;
  out.push(
    `sync link: ${l.ifname} (priority ${l.priority}) ${l.local} -> ${l.peer}:${l.port}  state: ${s.linkUp ? 'up' : `down: ${s.linkReason}`}  last heard: ${ago(s.lastHeardAgoMs)}`,
    `boot id: ${s.boot}  peer boot id: ${s.peerBoot ?? '(none)'}`,
    `tx: last_seq=${s.tx.lastSeq} sent=${s.tx.sent} acked=${s.tx.acked} unacked=${s.tx.unacked} resent=${s.tx.resent} overflows=${s.tx.overflows} last_ack=${ago(s.tx.lastAckAgoMs)}`,
    `rx: expected=${s.rx.expected} received=${s.rx.received} delivered=${s.rx.delivered} duplicates=${s.rx.duplicates} early=${s.rx.early} nacks=${s.rx.nacks} gaps_too_wide=${s.rx.gapsTooWide}`,
    `datagrams: in=${s.datagrams.in} out=${s.datagrams.out}`,
    `refused: ${Object.entries(s.refused).map(([k, v]) => `${k}=${v}`).join(' ')}${s.lastRefused ? ` (last: ${s.lastRefused.reason}, ${ago(s.lastRefused.agoMs)})` : ''}`,
    `sync lag (send to ack): samples=${s.lag.samples} last=${s.lag.lastMs ?? '-'} ms max=${s.lag.maxMs ?? '-'} ms`,
    `bulk to the peer: sent=${s.bulk.sent} last_records=${s.bulk.lastSentRecords}`,
    `bulk from the peer: ${s.bulk.received.bulk} (requested ${s.bulk.requested} time(s) after the start, ${s.bulk.received.bulksComplete} complete, last ${s.bulk.received.lastBulkRecords} records${s.bulk.received.lastBulkAt ? ` at ${iso(s.bulk.received.lastBulkAt)}` : ''}${s.bulk.received.bulk === 'in-progress' ? `, ${s.bulk.received.bulkRecordsSoFar} so far` : ''})`,
    `ours on the peer: sessions=${s.pickup.sessions} expectations=${s.pickup.expectations} waiting_for_delay=${s.pickup.delayed} not_synced_by_pickup=${s.pickup.filtered}`,
    `peer's table held here: sessions=${s.bulk.received.sessions} expectations=${s.bulk.received.expectations} changes=${s.bulk.received.changes} highest_serial=${s.bulk.received.highestSerial}`,
  );
  return out.join('\n');
}

/** The vendor's `get system ha status` fields, filled from what nfsessiond knows. */
export function formatHaGet(r: HaStatusResult): string {
  if (!isHa(r)) return 'HA Health Status: OK\nMode: standalone';
  const s = r.sync;
  const health = !s ? `ERROR: ${r.syncError ?? 'no sync channel'}` : s.linkUp ? 'OK' : `ERROR: sync link down: ${s.linkReason}`;
  const role = r.role.role === 'master' ? 'Primary' : r.role.role === 'backup' ? 'Secondary' : `(${r.role.role})`;
  const lines = [
    `HA Health Status: ${health}`,
    'Model: nfsessiond (Linux)',
    'Mode: HA A-P',
    `Group Name: ${r.group}`,
    'Group ID: (see group-id: keepalived virtual_router_id = group-id + 1)',
    'Debug: 0',
    'Cluster Uptime: (not tracked by nfsessiond)',
    `Cluster state change time: ${iso(r.role.since)}`,
    'Primary selected using:',
    `    <${iso(r.role.since)}> keepalived (VRRP) made this node ${role}${r.role.priority !== undefined ? ` with priority ${r.role.priority}` : ''}`,
    `ses_pickup: ${onOff(r.pickup.sessions)}, ses_pickup_delay=${onOff(r.pickup.delay)}`,
    `override: ${onOff(r.override)}`,
    'Configuration Status:',
    '    (nfsessiond does not sync its config: keep both nodes\' files in step)',
    'System Usage stats:',
    '    (not tracked by nfsessiond: see the Prometheus process metrics)',
    'HBDEV stats:',
  ];
  if (s) {
    lines.push(`    ${s.boot}(updated ${ago(s.lastHeardAgoMs)}):`,
      `        ${s.link.ifname}: ${s.linkUp ? 'physical/10000full, up' : 'down'}, rx-pkts=${s.datagrams.in}, tx-pkts=${s.datagrams.out}, refused=${Object.values(s.refused).reduce((a, b) => a + b, 0)}`);
  } else lines.push(`    ${r.syncError ?? 'no sync link'}`);
  lines.push(
    `${role.padEnd(9)} : this node, boot ${s?.boot ?? '(none)'}, priority ${r.priority}`,
    `Peer      : boot ${s?.peerBoot ?? '(not heard)'}, ${s?.bulk.received.sessions ?? 0} sessions synced here (its role is not reported over the sync channel)`,
    'number of vcluster: 1',
  );
  return lines.join('\n');
}
