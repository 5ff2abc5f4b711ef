// The compact table against the storage it replaces (string-keyed Maps of Session objects and a
// heap of timers), driven by the same random operation sequences; and its own edge cases.

import t from 'tap';
import fc from 'fast-check';
import { CompactTable } from '../../src/engine/table/compact-table.js';
import { OpenIndex } from '../../src/engine/table/open-index.js';
import { TupleKey } from '../../src/engine/table/tuple-key.js';
import { flowKey, reverseTuple } from '../../src/engine/flow-key.js';
import { ExpiryQueue } from '../../src/engine/expiry-queue.js';
import type { Session } from '../../src/engine/types.js';
import type { FlowTuple } from '../../src/packet/types.js';

// Few addresses and ports, so tuples repeat, directions clash and probe chains form.
const V4 = ['192.0.2.1', '192.0.2.2', '198.51.100.7', '203.0.113.255'];
const V6 = ['2001:db8::1', '2001:db8::2', '2001:db8:0:1::ffff', '::ffff:192.0.2.9'];
const tupleArb: fc.Arbitrary<FlowTuple> = fc.record({
  v6: fc.boolean(), proto: fc.constantFrom(6, 17, 1, 58, 132), s: fc.nat(3), d: fc.nat(3),
  sport: fc.constantFrom(0, 53, 40000, 65535), dport: fc.constantFrom(0, 80, 5060),
}).map(({ v6, proto, s, d, sport, dport }) => {
  const family = v6 ? 6 : 4;
  const p = v6 ? (proto === 1 ? 58 : proto) : proto === 58 ? 1 : proto;
  const pool = v6 ? V6 : V4;
  return { family, proto: p, src: pool[s], dst: pool[d], sport, dport } as FlowTuple;
});

type Op =
  | { op: 'add'; tuple: FlowTuple; ttl: number; nat?: { port: number } }
  | { op: 'find'; tuple: FlowTuple }
  | { op: 'remove'; pick: number }
  | { op: 'refresh'; pick: number; ttl: number }
  | { op: 'tick'; by: number };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ op: fc.constant('add' as const), tuple: tupleArb, ttl: fc.integer({ min: 1, max: 50 }), nat: fc.option(fc.record({ port: fc.integer({ min: 1024, max: 1030 }) }), { nil: undefined }) }),
  fc.record({ op: fc.constant('find' as const), tuple: tupleArb }),
  fc.record({ op: fc.constant('remove' as const), pick: fc.nat() }),
  fc.record({ op: fc.constant('refresh' as const), pick: fc.nat(), ttl: fc.integer({ min: 0, max: 50 }) }),
  fc.record({ op: fc.constant('tick' as const), by: fc.oneof(fc.integer({ min: 0, max: 20000 }), fc.constantFrom(999, 1000, 1001)) }),
);

function session(serial: number, orig: FlowTuple, reply: FlowTuple, now: number, ttl: number): Session {
  return {
    serial, orig, reply, policyId: serial % 7, vd: serial % 3, state: [serial % 10, 1], createdAt: now,
    expireAt: now + ttl * 1000, timerAt: 0, timeout: ttl, ttl, ttlFromRule: serial % 2 === 0,
    refreshDir: (['both', 'outgoing', 'incoming'] as const)[serial % 3],
    org: { bytes: 60 * serial, packets: serial, allowErr: serial % 5 === 0 ? 1 : 0 },
    rep: { bytes: 0, packets: 0, allowErr: 0 }, devOrg: [2, 3], devReply: [3, 2],
    offloaded: serial % 4 === 0, offloadPending: false,
    rate: { at: now, orgBytes: 60 * serial, replyBytes: 0, txBps: 0, rxBps: 0 }, logTraffic: true,
  };
}

/** The storage the engine keeps today: one Map entry per direction, sessions by serial, lazy timer entries. */
class Reference {
  readonly byKey = new Map<string, { serial: number; dir: 'org' | 'reply' }>();
  readonly bySerial = new Map<number, Session>();
  add(s: Session): void {
    this.byKey.set(flowKey(s.orig), { serial: s.serial, dir: 'org' });
    this.byKey.set(flowKey(s.reply), { serial: s.serial, dir: 'reply' });
    this.bySerial.set(s.serial, s);
    this.expiry.schedule(s);
  }
  remove(serial: number): void {
    const s = this.bySerial.get(serial)!;
    this.byKey.delete(flowKey(s.orig));
    this.byKey.delete(flowKey(s.reply));
    this.bySerial.delete(serial);
  }
  readonly expiry = new ExpiryQueue<Session>();
  expired(now: number): number[] {
    return this.expiry.popExpired(now, (s) => this.bySerial.get(s.serial) === s).map((s) => s.serial);
  }
}

/** Drives both storages; returns what differed. */
function run(ops: Op[], expected: number): string[] {
  const errs: string[] = [];
  const fail = (m: string) => { errs.push(m); };
  const table = new CompactTable({ expected, seed: 12345 });
  const ref = new Reference();
  let now = 1_000_000;
  let serial = 1;
  const key = new TupleKey();
  for (const o of ops) {
    if (o.op === 'add') {
      const reply = o.nat ? { ...reverseTuple(o.tuple), dport: o.nat.port } : reverseTuple(o.tuple);
      const taken = ref.byKey.has(flowKey(o.tuple)) || ref.byKey.has(flowKey(reply)) || flowKey(o.tuple) === flowKey(reply);
      if (taken) {
        if (table.findTuple(o.tuple) < 0 && table.findTuple(reply) < 0 && flowKey(o.tuple) !== flowKey(reply)) fail('a taken tuple is missing');
        continue;
      }
      const s = session(serial++, o.tuple, reply, now, o.ttl);
      ref.add(s);
      if (table.insertSession(s) < 0) fail(`insert ${s.serial} refused`);
    } else if (o.op === 'find') {
      const want = ref.byKey.get(flowKey(o.tuple));
      const e = table.findTuple(o.tuple);
      if (!want) { if (e !== -1) fail(`found ${flowKey(o.tuple)} that is not in the reference`); continue; }
      if (e < 0) { fail(`lost ${flowKey(o.tuple)}`); continue; }
      if (table.store.serial[e >> 1] !== want.serial || CompactTable.dir(e) !== want.dir) fail(`wrong entry for ${flowKey(o.tuple)}`);
    } else if (o.op === 'remove' || o.op === 'refresh') {
      if (!ref.bySerial.size) continue;
      const serials = [...ref.bySerial.keys()];
      const victim = serials[o.pick % serials.length];
      const slot = table.slotOf(victim);
      if (slot < 0) { fail(`serial ${victim} not found`); continue; }
      if (o.op === 'remove') {
        ref.remove(victim);
        table.remove(slot);
      } else {
        const s = ref.bySerial.get(victim)!;
        s.expireAt = now + o.ttl * 1000;
        ref.expiry.schedule(s);
        table.store.expireAt[slot] = s.expireAt;
        // Later: the timer stays filed and moves when it comes up; earlier: it is filed again.
        table.timers.schedule(slot);
      }
    } else {
      now += o.by;
      const popped: number[] = [];
      for (let slot = table.timers.popExpired(now); slot >= 0; slot = table.timers.popExpired(now)) {
        popped.push(table.store.serial[slot]);
        table.remove(slot);
      }
      const want = ref.expired(now);
      for (const sv of want) ref.remove(sv);
      // The old heap breaks ties arbitrarily: compare what ran out, not the order.
      const sorted = (a: number[]) => JSON.stringify([...a].sort((x, y) => x - y));
      if (sorted(popped) !== sorted(want)) fail(`expired ${popped} want ${want}`);
    }
  }
  // The whole table, object for object.
  if (table.size !== ref.bySerial.size) fail(`size ${table.size} != ${ref.bySerial.size}`);
  for (const s of ref.bySerial.values()) {
    const slot = table.slotOf(s.serial);
    const got = table.materialize(slot);
    const want = { ...s };
    if (JSON.stringify(got) !== JSON.stringify(want)) fail(`session ${s.serial}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`);
    key.setTuple(s.orig);
    if (table.find(key) !== 2 * slot) fail(`orig of ${s.serial}`);
    key.setTuple(s.reply);
    if (table.find(key) !== 2 * slot + 1) fail(`reply of ${s.serial}`);
  }
  if (table.index.count !== 2 * ref.bySerial.size) fail('not two index entries per session');
  if (table.serials.count !== ref.bySerial.size) fail('not one serial entry per session');
  return errs;
}

t.test('random operation sequences: the compact table equals the Map storage', (t) => {
  let first: string[] = [];
  fc.assert(fc.property(fc.array(opArb, { maxLength: 300 }), fc.constantFrom(1, 16, 1000), (ops, expected) => {
    const errs = run(ops, expected);
    if (errs.length && !first.length) first = errs;
    return errs.length === 0;
  }), { numRuns: 300, seed: 20261203 });
  t.same(first, [], 'no difference');
  t.end();
});

t.test('a freed slot is reused, its IPv6 pool entry too, and nothing of the old session remains', (t) => {
  const table = new CompactTable({ seed: 1 });
  const a = session(1, { family: 6, proto: 17, src: '2001:db8::1', dst: '2001:db8::2', sport: 1, dport: 2 }, { family: 6, proto: 17, src: '2001:db8::2', dst: '2001:db8::1', sport: 2, dport: 1 }, 5000, 30);
  a.helper = 'sip'; a.parent = 9; a.nat = { snat: { addr: '2001:db8::9', port: 7 } };
  const slot = table.insertSession(a);
  const pool = table.store.addr[2 * slot];
  table.remove(slot);
  t.equal(table.size, 0);
  t.equal(table.findTuple(a.orig), -1);
  const b = session(2, { family: 6, proto: 6, src: '2001:db8::3', dst: '2001:db8::4', sport: 3, dport: 4 }, { family: 6, proto: 6, src: '2001:db8::4', dst: '2001:db8::3', sport: 4, dport: 3 }, 6000, 30);
  const slot2 = table.insertSession(b);
  t.equal(slot2, slot, 'same slot');
  t.equal(table.store.addr[2 * slot2], pool, 'same IPv6 pool entry');
  const got = table.materialize(slot2);
  t.equal(got.helper, undefined, 'no helper left over');
  t.equal(got.nat, undefined, 'no NAT left over');
  t.same(got.orig, b.orig);
  t.end();
});

t.test('every optional field survives materialize → insert, and wide interface indexes are kept', (t) => {
  const table = new CompactTable({ seed: 2 });
  const s = session(77, { family: 4, proto: 6, src: '192.0.2.1', dst: '198.51.100.2', sport: 40000, dport: 21 }, { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.5', sport: 21, dport: 61000 }, 1_700_000_000_000, 3600);
  Object.assign(s, {
    helper: 'ftp', parent: 5, inheritedSerial: 3, expected: { id: 4, helper: 'ftp', kind: 'data' },
    nat: { snat: { addr: '203.0.113.5', port: 61000 } }, kernelClass: 2, ctId: 0xfffffff0, timerBase: 1_700_000_000_500,
    kernelWait: 3, kernelMisses: 2, kernelSeen: { orgPackets: 10, replyPackets: 12 },
    devOrg: [70000, 3], devReply: [3, 70000], org: { bytes: 2 ** 40, packets: 2 ** 33, allowErr: 2 }, rep: { bytes: 5, packets: 1, allowErr: 1 },
    rate: { at: 1_700_000_001_000, orgBytes: 2 ** 40 - 1000, replyBytes: 5, txBps: 1000, rxBps: 0 },
  } satisfies Partial<Session>);
  const slot = table.insertSession(s);
  const got = table.materialize(slot);
  t.same(got, { ...s, timerAt: s.expireAt });
  t.equal(table.findTuple(s.reply), 2 * slot + 1, 'found under its NAT reply tuple');
  t.equal(table.findTuple(reverseTuple(s.orig)), -1, 'not under the untranslated reverse');
  table.remove(slot);
  t.equal(table.store.wideDevs.size, 0, 'wide interface indexes go with the slot');
  t.end();
});

t.test('timers that run out together pop by serial, whatever order they were filed in', (t) => {
  const table = new CompactTable({ seed: 5 });
  for (const serial of [3, 1, 2]) {
    const o: FlowTuple = { family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', sport: serial, dport: 53 };
    table.insertSession(session(serial, o, reverseTuple(o), 0, 30));
  }
  const order: number[] = [];
  for (let slot = table.timers.popExpired(30_000); slot >= 0; slot = table.timers.popExpired(30_000)) order.push(table.store.serial[slot]);
  t.same(order, [1, 2, 3]);
  t.equal(table.timers.popExpired(1e12), -1, 'each popped once');
  t.end();
});

t.test('ICMP echo: the reply keeps the identifier in sport', (t) => {
  const table = new CompactTable({ seed: 3 });
  const orig: FlowTuple = { family: 4, proto: 1, src: '192.0.2.1', dst: '192.0.2.2', sport: 4242, dport: 0 };
  const slot = table.insertSession(session(1, orig, reverseTuple(orig), 0, 30));
  t.equal(table.findTuple({ ...orig, src: orig.dst, dst: orig.src }), 2 * slot + 1);
  t.end();
});

t.test('clear-all empties every structure and the table works afterwards', (t) => {
  const table = new CompactTable({ expected: 4, seed: 4 });
  for (let i = 0; i < 100; i++) {
    const o: FlowTuple = { family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', sport: 1000 + i, dport: 53 };
    t.ok(table.insertSession(session(i + 1, o, reverseTuple(o), 0, 30)) >= 0);
  }
  table.clear();
  t.equal(table.size, 0);
  t.equal(table.index.count, 0);
  t.equal(table.serials.count, 0);
  t.equal(table.timers.size, 0);
  t.equal(table.timers.popExpired(1e12), -1);
  const o: FlowTuple = { family: 4, proto: 17, src: '192.0.2.1', dst: '192.0.2.2', sport: 1000, dport: 53 };
  t.ok(table.insertSession(session(500, o, reverseTuple(o), 0, 30)) >= 0);
  t.equal(table.slotOf(500), table.findTuple(o) >> 1);
  t.end();
});

/** Every value hashes to one of two homes: chains wrap around the end of the array and shift back on delete. */
class Colliding extends OpenIndex {
  protected hashOf(v: number): number { return v % 2 === 0 ? 14 : 15; }
  has(v: number): boolean {
    for (let i = 0; i < this.cells.length; i++) if (this.cells[i] === v) return true;
    return false;
  }
  reachable(v: number): boolean {
    // A lookup walks from the home to the first empty cell.
    for (let i = this.hashOf(v) & this.mask; this.cells[i] !== -1; i = (i + 1) & this.mask) if (this.cells[i] === v) return true;
    return false;
  }
}

t.test('open addressing under total collision: wrap-around chains and backward-shift deletion', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.boolean(), fc.nat(12)), { maxLength: 200 }), (steps) => {
    const idx = new Colliding(8);
    const ref = new Set<number>();
    for (const [add, v] of steps) {
      if (add && !ref.has(v)) { idx.add(v); ref.add(v); }
      else if (!add) { if (idx.delete(v) !== ref.delete(v)) return false; }
      for (let x = 0; x <= 12; x++) if (idx.reachable(x) !== ref.has(x) || idx.has(x) !== ref.has(x)) return false;
    }
    return idx.count === ref.size;
  }), { numRuns: 500, seed: 7 });
  t.pass('no value lost or unreachable');
  t.end();
});
