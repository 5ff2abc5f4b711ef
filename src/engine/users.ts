// Users (seed 001): with IP-based identity every source address is one user of its VDOM, however
// many sessions it opens (the limit is on users, never on sessions per user). A user whose last
// session ended is idle; an idle user is forgotten after the idle timeout (3600 s by default) or
// by an operator clear, and counts against the user limits until then.
//
// The seed's "two table entries per proxied connection" does not apply here: nfsessiond has no
// proxy, so one connection is one session.

export interface UserEntry {
  id: number;
  vd: number;
  /** The user's name: with IP-based identity, its source address. */
  ip: string;
  family: 4 | 6;
  firstSeen: number;
  /** Live sessions of this user. */
  sessions: number;
  /** Sessions ever admitted for this user. */
  totalSessions: number;
  /** Policy of the user's latest session. */
  policyId: number;
  /** When its last session ended (ms); 0 while it has sessions. */
  idleSince: number;
  /** Bytes of its ended sessions: from the client (original direction) and to it (reply). */
  bytesFromClient: number;
  bytesToClient: number;
}

const keyOf = (vd: number, ip: string) => `${vd}|${ip}`;

export class UserTable {
  private readonly users = new Map<string, UserEntry>();
  /** The same users by id: a session's record names its user by id. */
  private readonly ids = new Map<number, UserEntry>();
  /** Idle users in the order they became idle (re-inserted when they go idle again). */
  private readonly idle = new Map<string, UserEntry>();
  private readonly perVd: number[] = [];
  private nextId = 1;
  expired = 0;
  cleared = 0;
  /** Idle users forgotten before their timeout because too many were idle (trimIdle). */
  trimmed = 0;

  get size(): number { return this.users.size; }

  countIn(vd: number): number { return this.perVd[vd] ?? 0; }

  get(vd: number, ip: string): UserEntry | undefined { return this.users.get(keyOf(vd, ip)); }

  list(): UserEntry[] { return [...this.users.values()]; }

  /** A user by id, while it is in the table (not cleared, not forgotten). */
  byId(id: number): UserEntry | undefined { return this.ids.get(id); }

  /** A session of this user was admitted: creates the user if new. */
  attach(vd: number, ip: string, family: 4 | 6, policyId: number, now: number): UserEntry {
    const k = keyOf(vd, ip);
    let u = this.users.get(k);
    if (!u) {
      u = { id: this.nextId++, vd, ip, family, firstSeen: now, sessions: 0, totalSessions: 0, policyId, idleSince: 0, bytesFromClient: 0, bytesToClient: 0 };
      this.users.set(k, u);
      this.ids.set(u.id, u);
      this.perVd[vd] = (this.perVd[vd] ?? 0) + 1;
    }
    if (u.idleSince !== 0) {
      this.idle.delete(k);
      u.idleSince = 0;
    }
    u.sessions++;
    u.totalSessions++;
    u.policyId = policyId;
    return u;
  }

  /** One of the user's sessions ended. A user cleared meanwhile is not touched. */
  detach(u: UserEntry, bytesFromClient: number, bytesToClient: number, now: number): void {
    u.bytesFromClient += bytesFromClient;
    u.bytesToClient += bytesToClient;
    if (u.sessions > 0) u.sessions--;
    const k = keyOf(u.vd, u.ip);
    if (this.users.get(k) !== u) return;
    if (u.sessions === 0) {
      u.idleSince = now;
      this.idle.delete(k);
      this.idle.set(k, u);
    }
  }

  /** Forgets the users idle for at least `timeoutS`; returns how many. */
  expire(now: number, timeoutS: number): number {
    let n = 0;
    for (const [k, u] of this.idle) {
      if (u.idleSince + timeoutS * 1000 > now) break;
      this.drop(k, u);
      n++;
    }
    this.expired += n;
    return n;
  }

  /**
   * Forgets the users idle longest until at most `most` are idle; returns how many. Only where no
   * user limit counts them: an idle user then holds nothing but its history.
   */
  trimIdle(most: number): number {
    let n = 0;
    for (const [k, u] of this.idle) {
      if (this.idle.size <= most) break;
      this.drop(k, u);
      n++;
    }
    this.trimmed += n;
    return n;
  }

  /** Operator clear: every user, or those whose name (source address) is `name`. */
  clear(name?: string): number {
    let n = 0;
    for (const [k, u] of [...this.users]) {
      if (name !== undefined && u.ip !== name) continue;
      this.drop(k, u);
      n++;
    }
    this.cleared += n;
    return n;
  }

  private drop(k: string, u: UserEntry): void {
    this.users.delete(k);
    this.ids.delete(u.id);
    this.idle.delete(k);
    this.perVd[u.vd] = Math.max(0, (this.perVd[u.vd] ?? 0) - 1);
  }
}
