// The node's role comes from keepalived, which runs VRRP. keepalived writes each state change of
// an instance to the notify FIFO as one line (keepalived 2.2.7, vrrp/vrrp_notify.c):
//   INSTANCE "<name>" MASTER|BACKUP|FAULT|STOP|DELETED <priority>
// and `GROUP "<name>" ...` for sync groups. The FIFO delivers them in order, unlike notify scripts
// (keepalived.conf(5), notify_fifo). Lines of other instances and groups are not ours.
//
// Holding back: until the first bulk transfer from the peer is complete the daemon writes 1 to
// the track file keepalived watches; keepalived.conf (keepalived-config.ts) gives it weight -254,
// and keepalived.conf(5) "Track files" says a result below -253 puts the instance in FAULT, so a
// node that has not caught up cannot become master. Like pfsync's bulk update, the hold is
// released when no peer was heard at all for a while: a node that starts alone must be able to
// take the role.

export type KeepalivedState = 'MASTER' | 'BACKUP' | 'FAULT' | 'STOP' | 'DELETED';
export type Role = 'standalone' | 'unknown' | 'master' | 'backup' | 'fault' | 'stopped';

export interface FifoLine { kind: 'INSTANCE' | 'GROUP'; name: string; state: KeepalivedState; priority: number }

const LINE = /^(INSTANCE|GROUP) "((?:[^"\\]|\\.)*)" (MASTER|BACKUP|FAULT|STOP|DELETED) (-?\d+)$/;

export function parseFifoLine(line: string): FifoLine | undefined {
  const m = LINE.exec(line.trim());
  if (!m) return undefined;
  return { kind: m[1] as FifoLine['kind'], name: m[2], state: m[3] as KeepalivedState, priority: Number(m[4]) };
}

/** pfsync gives a bulk update 12 tries 2 s apart before it lifts the demotion; the same here. */
export const HOLD_WITHOUT_PEER_MS = 24_000;

const ROLE_OF: Record<KeepalivedState, Role> = { MASTER: 'master', BACKUP: 'backup', FAULT: 'fault', STOP: 'stopped', DELETED: 'stopped' };

export interface RoleChange { from: Role; to: Role; priority: number }

export interface RoleView {
  role: Role;
  /** keepalived's priority in the last line (its effective priority). */
  priority?: number;
  since: number;
  transitions: number;
  /** Lines read that were not ours or not understood. */
  ignoredLines: number;
  heldBack: boolean;
  holdReason: string;
}

export class RoleTracker {
  private role: Role;
  private priority?: number;
  private since: number;
  private transitions = 0;
  private ignored = 0;
  private released = false;

  /** `instance`: the vrrp_instance name (the group name); undefined in standalone mode. */
  constructor(private readonly instance: string | undefined, private readonly startedAt: number) {
    this.role = instance === undefined ? 'standalone' : 'unknown';
    this.since = startedAt;
  }

  /** A line from the FIFO: the new role when it changed. */
  line(text: string, now: number): RoleChange | undefined {
    const l = parseFifoLine(text);
    if (!l || l.kind !== 'INSTANCE' || l.name !== this.instance) { this.ignored++; return undefined; }
    this.priority = l.priority;
    const to = ROLE_OF[l.state];
    if (to === this.role) return undefined;
    const from = this.role;
    this.role = to;
    this.since = now;
    this.transitions++;
    return { from, to, priority: l.priority };
  }

  /**
   * Whether keepalived must keep this node from becoming master: until the first bulk transfer
   * is complete, unless no peer spoke for HOLD_WITHOUT_PEER_MS since the start. Once released it
   * stays released (a later transfer refreshes a table that is already there).
   */
  hold(now: number, sync: { firstBulkComplete: boolean; peerHeard: boolean }): { held: boolean; reason: string } {
    if (this.instance === undefined) return { held: false, reason: 'standalone' };
    if (!this.released) {
      if (sync.firstBulkComplete) this.released = true;
      else if (!sync.peerHeard && now - this.startedAt >= HOLD_WITHOUT_PEER_MS) this.released = true;
    }
    if (this.released) return { held: false, reason: sync.firstBulkComplete ? 'first bulk sync complete' : 'no peer heard since start: nothing to catch up with' };
    return { held: true, reason: sync.peerHeard ? 'first bulk sync from the peer not complete' : 'waiting for the peer (first bulk sync)' };
  }

  view(now: number, sync: { firstBulkComplete: boolean; peerHeard: boolean }): RoleView {
    const h = this.hold(now, sync);
    return { role: this.role, priority: this.priority, since: this.since, transitions: this.transitions, ignoredLines: this.ignored, heldBack: h.held, holdReason: h.reason };
  }
}
