// Sessions as columns of typed arrays addressed by an integer slot: no object per session, so a
// million sessions are a few dozen array buffers the garbage collector never walks. Freed slots
// are reused. Fields a minority of sessions have (helper links, NAT, ICMP error counts) live in a
// side map; IPv6 addresses live in a pool of their own so IPv4 sessions do not pay for them.
//
// The arrays are replaced when the store grows: read them through the store, never keep one.

/** Flag bits of `flags`. */
export const enum SessionFlag {
  V6 = 1 << 0,
  /** Two bits: 0 both, 1 outgoing, 2 incoming. */
  REFRESH_SHIFT = 1,
  REFRESH_MASK = 3 << 1,
  TTL_FROM_RULE = 1 << 3,
  OFFLOADED = 1 << 4,
  OFFLOAD_PENDING = 1 << 5,
  LOG_TRAFFIC = 1 << 6,
  /** Two bits: Session.kernelWait. */
  KWAIT_SHIFT = 7,
  KWAIT_MASK = 3 << 7,
  HAS_CTID = 1 << 9,
  HAS_TIMER_BASE = 1 << 10,
  HAS_KERNEL_SEEN = 1 << 11,
  HAS_KERNEL_CLASS = 1 << 12,
  /** The reply tuple is not the reverse of the original (NAT): it is in the side map. */
  HAS_REPLY = 1 << 13,
  IN_USE = 1 << 15,
}

/** Counter columns, four per slot. */
export const ORG_BYTES = 0;
export const ORG_PACKETS = 1;
export const REP_BYTES = 2;
export const REP_PACKETS = 3;

const NO_SLOT = -1;
const DEV_WIDE = 0xffff;

export class SessionStore {
  capacity: number;
  /** Slots handed out so far (the high-water mark); slots below it are live or on the free list. */
  used = 0;
  live = 0;
  private freeHead = NO_SLOT;

  serial: Float64Array;
  flags: Uint16Array;
  proto: Uint8Array;
  /** sport, dport of the original direction. */
  ports: Uint16Array;
  /** Source and destination of the original direction: the address (IPv4) or a pool index (IPv6). */
  addr: Int32Array;
  policyId: Uint32Array;
  vd: Uint16Array;
  /** Admission's user record id + 1 while admission counts the session; 0 = not counted. */
  user: Int32Array;
  /** Admission's accounted service index + 1; 0 = none. */
  service: Uint8Array;
  /** Endpoint states: [original side, reply side]. */
  state: Uint8Array;
  createdAt: Float64Array;
  expireAt: Float64Array;
  timerBase: Float64Array;
  /** Seconds. */
  timeout: Uint32Array;
  ttl: Uint32Array;
  /** ORG_BYTES, ORG_PACKETS, REP_BYTES, REP_PACKETS. */
  counters: Float64Array;
  /**
   * Interface indexes: original in, original out, reply in, reply out. An index above 65534 is
   * stored as DEV_WIDE with the real one in the side map (`wideDevs`).
   */
  devs: Uint16Array;
  kernelClass: Uint8Array;
  kernelMisses: Uint8Array;
  ctId: Uint32Array;
  /** Kernel packet counters last seen (original, reply), modulo 2^32: only their change matters. */
  kernelSeen: Uint32Array;
  /** Time of the last rate sample, in ms after createdAt modulo 2^32 (a rate window is one second). */
  rateAt: Uint32Array;
  /** Byte counters at rateAt (original, reply), modulo 2^32: the rate is their difference over a second. */
  rateBytes: Uint32Array;
  /** tx and rx bytes per second over the last window. */
  rateBps: Float32Array;
  /** Interface indexes too wide for `devs`, by slot * 4 + position. */
  readonly wideDevs = new Map<number, number>();

  /** IPv6 addresses: 8 words (source, destination) per pool entry. */
  v6: Int32Array;
  private v6Used = 0;
  private v6Free: number[] = [];

  constructor(initialCapacity = 1024) {
    this.capacity = Math.max(16, initialCapacity);
    const n = this.capacity;
    this.serial = new Float64Array(n);
    this.flags = new Uint16Array(n);
    this.proto = new Uint8Array(n);
    this.ports = new Uint16Array(2 * n);
    this.addr = new Int32Array(2 * n);
    this.policyId = new Uint32Array(n);
    this.vd = new Uint16Array(n);
    this.state = new Uint8Array(2 * n);
    this.createdAt = new Float64Array(n);
    this.expireAt = new Float64Array(n);
    this.timerBase = new Float64Array(n);
    this.timeout = new Uint32Array(n);
    this.ttl = new Uint32Array(n);
    this.counters = new Float64Array(4 * n);
    this.devs = new Uint16Array(4 * n);
    this.user = new Int32Array(n);
    this.service = new Uint8Array(n);
    this.kernelClass = new Uint8Array(n);
    this.kernelMisses = new Uint8Array(n);
    this.ctId = new Uint32Array(n);
    this.kernelSeen = new Uint32Array(2 * n);
    this.rateAt = new Uint32Array(n);
    this.rateBytes = new Uint32Array(2 * n);
    this.rateBps = new Float32Array(2 * n);
    this.v6 = new Int32Array(0);
  }

  /** A cleared slot, reused from the free list when there is one. */
  alloc(): number {
    let slot = this.freeHead;
    if (slot !== NO_SLOT) {
      this.freeHead = this.addr[2 * slot];
      this.addr[2 * slot] = 0;
    } else {
      if (this.used === this.capacity) this.grow(this.capacity * 2);
      slot = this.used++;
    }
    this.live++;
    this.flags[slot] = SessionFlag.IN_USE;
    return slot;
  }

  free(slot: number): void {
    if (this.flags[slot] & SessionFlag.V6) this.freeV6(this.addr[2 * slot]);
    if (this.devs[4 * slot] === DEV_WIDE || this.devs[4 * slot + 1] === DEV_WIDE || this.devs[4 * slot + 2] === DEV_WIDE || this.devs[4 * slot + 3] === DEV_WIDE) {
      for (let i = 0; i < 4; i++) this.wideDevs.delete(4 * slot + i);
    }
    this.clear(slot);
    // A free slot's first address word links the free list.
    this.addr[2 * slot] = this.freeHead;
    this.freeHead = slot;
    this.live--;
  }

  dev(slot: number, i: number): number {
    const d = this.devs[4 * slot + i];
    return d === DEV_WIDE ? (this.wideDevs.get(4 * slot + i) ?? 0) : d;
  }

  setDev(slot: number, i: number, ifindex: number): void {
    const at = 4 * slot + i;
    if (this.devs[at] === DEV_WIDE) this.wideDevs.delete(at);
    if (ifindex >= DEV_WIDE) {
      this.devs[at] = DEV_WIDE;
      this.wideDevs.set(at, ifindex);
    } else this.devs[at] = ifindex;
  }

  inUse(slot: number): boolean {
    return slot >= 0 && slot < this.used && (this.flags[slot] & SessionFlag.IN_USE) !== 0;
  }

  /** A pool entry for one session's IPv6 addresses; its index goes into the slot's addr words. */
  allocV6(): number {
    const reused = this.v6Free.pop();
    if (reused !== undefined) return reused;
    if (8 * (this.v6Used + 1) > this.v6.length) {
      const next = new Int32Array(Math.max(8 * 64, this.v6.length * 2));
      next.set(this.v6);
      this.v6 = next;
    }
    return this.v6Used++;
  }

  private freeV6(index: number): void { this.v6Free.push(index); }

  /** Bytes held by the columns and the IPv6 pool (what a slot costs, times the capacity). */
  bytes(): number {
    let total = this.v6.byteLength + this.v6Free.length * 8;
    for (const a of this.columns()) total += a.byteLength;
    return total;
  }

  private columns(): ArrayBufferView[] {
    return [
      this.serial, this.flags, this.proto, this.ports, this.addr, this.policyId, this.vd, this.user, this.service, this.state,
      this.createdAt, this.expireAt, this.timerBase, this.timeout, this.ttl, this.counters, this.devs,
      this.kernelClass, this.kernelMisses, this.ctId, this.kernelSeen, this.rateAt, this.rateBytes,
      this.rateBps,
    ];
  }

  private clear(slot: number): void {
    this.flags[slot] = 0;
    this.serial[slot] = 0;
    this.proto[slot] = 0;
    this.ports[2 * slot] = 0; this.ports[2 * slot + 1] = 0;
    this.addr[2 * slot] = 0; this.addr[2 * slot + 1] = 0;
    this.policyId[slot] = 0;
    this.vd[slot] = 0;
    this.user[slot] = 0;
    this.service[slot] = 0;
    this.state[2 * slot] = 0; this.state[2 * slot + 1] = 0;
    this.createdAt[slot] = 0;
    this.expireAt[slot] = 0;
    this.timerBase[slot] = 0;
    this.timeout[slot] = 0;
    this.ttl[slot] = 0;
    this.counters.fill(0, 4 * slot, 4 * slot + 4);
    this.devs.fill(0, 4 * slot, 4 * slot + 4);
    this.kernelClass[slot] = 0;
    this.kernelMisses[slot] = 0;
    this.ctId[slot] = 0;
    this.kernelSeen[2 * slot] = 0; this.kernelSeen[2 * slot + 1] = 0;
    this.rateAt[slot] = 0;
    this.rateBytes[2 * slot] = 0; this.rateBytes[2 * slot + 1] = 0;
    this.rateBps[2 * slot] = 0; this.rateBps[2 * slot + 1] = 0;
  }

  /** Makes room for `capacity` slots; a table that knows its limit calls this once up front. */
  grow(capacity: number): void {
    if (capacity <= this.capacity) return;
    const g = <T extends { length: number; set(a: ArrayLike<number>): void }>(a: T, per: number, C: new (n: number) => T): T => {
      const next = new C(per * capacity);
      next.set(a as unknown as ArrayLike<number>);
      return next;
    };
    this.serial = g(this.serial, 1, Float64Array);
    this.flags = g(this.flags, 1, Uint16Array);
    this.proto = g(this.proto, 1, Uint8Array);
    this.ports = g(this.ports, 2, Uint16Array);
    this.addr = g(this.addr, 2, Int32Array);
    this.policyId = g(this.policyId, 1, Uint32Array);
    this.vd = g(this.vd, 1, Uint16Array);
    this.user = g(this.user, 1, Int32Array);
    this.service = g(this.service, 1, Uint8Array);
    this.state = g(this.state, 2, Uint8Array);
    this.createdAt = g(this.createdAt, 1, Float64Array);
    this.expireAt = g(this.expireAt, 1, Float64Array);
    this.timerBase = g(this.timerBase, 1, Float64Array);
    this.timeout = g(this.timeout, 1, Uint32Array);
    this.ttl = g(this.ttl, 1, Uint32Array);
    this.counters = g(this.counters, 4, Float64Array);
    this.devs = g(this.devs, 4, Uint16Array);
    this.kernelClass = g(this.kernelClass, 1, Uint8Array);
    this.kernelMisses = g(this.kernelMisses, 1, Uint8Array);
    this.ctId = g(this.ctId, 1, Uint32Array);
    this.kernelSeen = g(this.kernelSeen, 2, Uint32Array);
    this.rateAt = g(this.rateAt, 1, Uint32Array);
    this.rateBytes = g(this.rateBytes, 2, Uint32Array);
    this.rateBps = g(this.rateBps, 2, Float32Array);
    this.capacity = capacity;
  }
}
