// The HA sync channel: sealed datagrams (a pinned test vector, tampering, wrong password, replays)
// and in-order delivery over a link that drops, duplicates and reorders.

import t from 'tap';
import fc from 'fast-check';
import { MessageType, open, peekBoot, ReplayWindow, seal, senderKey } from '../../src/ha/wire.js';
import { DEFAULT_CHANNEL, SyncReceiver, SyncSender, type Outgoing } from '../../src/ha/channel.js';
import type { JournalRecord } from '../../src/state/journal.js';
import { SyncPeer, type SyncRecord } from '../../src/ha/peer.js';

const BOOT = '0123456789abcdef';

t.test('test vector: key, datagram bytes, and opening it again', (t) => {
  const key = senderKey('s3cret', 'HA-APP', BOOT);
  t.equal(key.toString('hex'), senderKey('s3cret', 'HA-APP', BOOT).toString('hex'), 'deterministic');
  const d = seal(key, { type: MessageType.DATA, boot: BOOT, counter: 1n, body: { seq: 1, records: [{ t: 'end', serial: 7 }] } });
  t.equal(d.subarray(0, 24).toString('hex'), '4e464841' + '02' + '01' + '0000' + BOOT + '0000000000000001', 'header');
  // The body in binary: seq 1 (u32), one record (u16), kind 2 = end, serial 7 as f64.
  t.equal(d.length, 24 + 4 + 2 + 1 + 8 + 16);
  // The key as OpenSSL computes it: openssl kdf -keylen 32 -kdfopt digest:SHA256 -kdfopt key:s3cret
  //   -kdfopt salt:nfsessiond-ha-v1HA-APP -kdfopt "info:sync 0123456789abcdef" HKDF
  t.equal(key.toString('hex'), '624334dd78165aa24f7140a69cd1ef38a5fc3cc1aad83f84520ef17887292aa9', 'key (README test vector)');
  t.equal(d.toString('hex'), '4e464841020100000123456789abcdef0000000000000001'
    + '002b2ce5cb6b374a1b0601d5fbde91'
    + '6c0933f85281d45caccaa958d1454e45', 'datagram (README test vector)');
  t.equal(peekBoot(d), BOOT);
  const o = open(key, d);
  t.ok(o.ok);
  if (o.ok) t.same(o.frame, { type: MessageType.DATA, boot: BOOT, counter: 1n, body: { seq: 1, records: [{ t: 'end', serial: 7 }] } });
  t.end();
});

t.test('a changed byte anywhere, another password or another group is refused', (t) => {
  const key = senderKey('s3cret', 'HA-APP', BOOT);
  const d = seal(key, { type: MessageType.ACK, boot: BOOT, counter: 5n, body: { upTo: 3 } });
  for (const i of [5, 9, 20, 30, d.length - 1]) {
    const bad = Buffer.from(d);
    bad[i] ^= 0x01;
    const r = open(key, bad);
    t.same(r, { ok: false, reason: 'auth' }, `byte ${i} flipped`);
  }
  t.same(open(senderKey('other', 'HA-APP', BOOT), d), { ok: false, reason: 'auth' }, 'other password');
  t.same(open(senderKey('s3cret', 'HA-B', BOOT), d), { ok: false, reason: 'auth' }, 'other group');
  t.same(open(key, d.subarray(0, 30)), { ok: false, reason: 'short' });
  const v = Buffer.from(d); v[4] = 1; // version 1 (JSON DATA bodies) is another protocol now
  t.same(open(key, v), { ok: false, reason: 'version' });
  const m = Buffer.from(d); m[0] = 0;
  t.same(open(key, m), { ok: false, reason: 'magic' });
  t.equal(peekBoot(m), undefined);
  t.end();
});

t.test('replay window: each counter once, reordering inside the window, nothing older', (t) => {
  const w = new ReplayWindow(8n);
  t.same([1n, 2n, 2n, 5n, 3n, 3n, 4n].map((c) => w.accept(c)), [true, true, false, true, true, false, true]);
  t.ok(w.accept(20n));
  t.notOk(w.accept(12n), 'older than the window');
  t.ok(w.accept(13n), 'inside the window');
  t.notOk(w.accept(13n));
  t.notOk(w.accept(0n), 'counter 0 is never valid');
  t.end();
});

const rec = (n: number): JournalRecord => ({ t: 'end', serial: n });

/** Runs sender → receiver over a link that loses, duplicates and reorders messages by the given plan, then recovers. */
function deliver(batches: number[], plan: Array<{ drop: boolean; dup: boolean; delay: number }>, opts = DEFAULT_CHANNEL) {
  const s = new SyncSender(opts);
  const r = new SyncReceiver(opts);
  const got: number[] = [];
  let now = 0;
  let k = 0;
  // In flight: [arrival time, direction, message].
  let wire: Array<[number, 'toR' | 'toS', Outgoing]> = [];
  const put = (dir: 'toR' | 'toS', msgs: Outgoing[]) => {
    for (const m of msgs) {
      // The plan covers a lossy spell of some messages; then the link recovers.
      const p = plan[k++] ?? { drop: false, dup: false, delay: 1 };
      if (p.drop) continue;
      wire.push([now + p.delay, dir, m]);
      if (p.dup) wire.push([now + p.delay + 1, dir, m]);
    }
  };
  let serial = 0;
  for (const n of batches) {
    put('toR', s.send(Array.from({ length: n }, () => rec(++serial)), now));
    now += 3;
  }
  for (let step = 0; step < 8000 && (got.length < serial || wire.length || s.stats.unacked > 0); step++) {
    now += 1;
    const due = wire.filter(([at]) => at <= now);
    wire = wire.filter(([at]) => at > now);
    for (const [, dir, m] of due) {
      if (dir === 'toR') {
        if (m.type === 'data') { const x = r.data(m.body, now); got.push(...x.apply.map((a) => (a as { serial: number }).serial)); put('toS', x.out); }
        else if (m.type === 'alive') put('toS', r.alive(m.body.last, now));
      } else if (m.type === 'ack') s.ack(m.body, now);
      else if (m.type === 'nack') put('toR', s.nack(m.body, now));
    }
    put('toS', r.tick(now));
    put('toR', s.tick(now));
  }
  return { got, serial, s, r };
}

t.test('lossy link: every record arrives once and in order, and everything is acknowledged', (t) => {
  const planArb = fc.array(fc.record({ drop: fc.boolean(), dup: fc.boolean(), delay: fc.integer({ min: 0, max: 40 }) }), { minLength: 1, maxLength: 120 });
  let bad = '';
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 9 }), { minLength: 1, maxLength: 40 }), planArb, (batches, plan) => {
    const { got, serial, s } = deliver(batches, plan);
    const want = Array.from({ length: serial }, (_, i) => i + 1);
    const ok = JSON.stringify(got) === JSON.stringify(want) && s.stats.unacked === 0;
    if (!ok && !bad) bad = `got ${got.length}/${serial}, unacked ${s.stats.unacked}`;
    return ok;
  }), { numRuns: 200, seed: 42 });
  t.equal(bad, '', 'all delivered in order, all acknowledged');
  t.end();
});

t.test('a perfect link: one ACK covers a burst, no resend, no NACK', (t) => {
  const { got, s, r } = deliver([4, 4, 4], [{ drop: false, dup: false, delay: 1 }]);
  t.same(got, Array.from({ length: 12 }, (_, i) => i + 1));
  t.equal(s.stats.sent, 3, 'batches of 4 records');
  t.equal(s.stats.resent, 0);
  t.equal(r.stats.nacks, 0);
  t.equal(s.stats.acked, 3);
  t.end();
});

t.test('the resend queue overflows: the oldest go and a bulk transfer is due', (t) => {
  const s = new SyncSender({ ...DEFAULT_CHANNEL, batchRecords: 1, resendQueue: 3 });
  s.send([rec(1), rec(2), rec(3), rec(4), rec(5)], 0);
  t.equal(s.stats.unacked, 3);
  t.equal(s.stats.overflows, 2);
  t.ok(s.needsBulk);
  t.same(s.nack({ from: 1, to: 3 }, 1).map((m) => (m.type === 'data' ? m.body.seq : 0)), [3], 'only what is held goes again');
  s.resetForBulk();
  t.notOk(s.needsBulk);
  t.equal(s.stats.unacked, 0);
  t.end();
});

t.test('a gap wider than the reorder window asks for a bulk transfer', (t) => {
  const r = new SyncReceiver({ ...DEFAULT_CHANNEL, reorderWindow: 10 });
  t.same(r.data({ seq: 1, records: [rec(1)] }, 0).apply, [rec(1)]);
  const x = r.data({ seq: 20, records: [rec(20)] }, 1);
  t.same(x.apply, []);
  t.ok(r.needsBulk);
  r.restart(21);
  t.notOk(r.needsBulk);
  t.same(r.data({ seq: 21, records: [rec(21)] }, 2).apply, [rec(21)]);
  t.end();
});

t.test('the sync lag callback sees each message once, from its first send', (t) => {
  const s = new SyncSender({ ...DEFAULT_CHANNEL, batchRecords: 1 });
  const lags: Array<[number, number]> = [];
  s.onAcked = (seq, sentAt, now) => lags.push([seq, now - sentAt]);
  s.send([rec(1)], 100);
  s.send([rec(2)], 110);
  s.tick(400);
  s.ack({ upTo: 2 }, 420);
  s.ack({ upTo: 2 }, 430);
  t.same(lags, [[1, 320], [2, 310]]);
  t.end();
});

// Two peers over a link that misbehaves for a while, then recovers.
function pair(plan: Array<{ drop: boolean; dup: boolean; delay: number }>) {
  const a = new SyncPeer({ password: 'pw', group: 'g', boot: 'aaaaaaaaaaaaaaaa', channel: { ...DEFAULT_CHANNEL, batchRecords: 3 } });
  let b = new SyncPeer({ password: 'pw', group: 'g', boot: 'bbbbbbbbbbbbbbbb', channel: { ...DEFAULT_CHANNEL, batchRecords: 3 } });
  const applied: SyncRecord[] = [];
  let now = 0;
  let k = 0;
  let wire: Array<[number, 'toA' | 'toB', Buffer]> = [];
  const table: SyncRecord[] = [];
  const put = (dir: 'toA' | 'toB', ds: Buffer[]) => {
    for (const d of ds) {
      const p = plan[k++] ?? { drop: false, dup: false, delay: 1 };
      if (p.drop) continue;
      wire.push([now + p.delay, dir, d]);
      if (p.dup) wire.push([now + p.delay + 1, dir, d]);
    }
  };
  const step = () => {
    now += 1;
    const due = wire.filter(([at]) => at <= now);
    wire = wire.filter(([at]) => at > now);
    for (const [, dir, d] of due) {
      if (dir === 'toA') {
        const r = a.receive(d, now);
        put('toB', r.out);
        for (const e of r.events) if ((e.kind === 'hello' && e.bulkWanted) || e.kind === 'bulk-request') put('toB', a.sendBulk(table, now));
      } else {
        const r = b.receive(d, now);
        applied.push(...r.apply);
        put('toA', r.out);
      }
    }
    put('toB', a.tick(now));
    put('toA', b.tick(now));
  };
  return {
    a, get b() { return b; }, applied, table, put, step,
    restartB: () => { b = new SyncPeer({ password: 'pw', group: 'g', boot: 'cccccccccccccccc', channel: { ...DEFAULT_CHANNEL, batchRecords: 3 } }); applied.length = 0; put('toA', [b.hello(true)]); },
    change: (r: SyncRecord) => { table.push(r); put('toB', a.send([r], now)); },
    run: (steps: number) => { for (let i = 0; i < steps; i++) step(); },
  };
}

/** What B ends up knowing: the last bulk, then the changes after it, in order. */
function afterLastBulk(applied: SyncRecord[]): SyncRecord[] {
  const begin = applied.map((r) => r.t).lastIndexOf('bulk-begin');
  return applied.slice(begin + 1).filter((r) => r.t !== 'bulk-end');
}

t.test('a joining peer gets the whole table by bulk, then every change in order, over a lossy link', (t) => {
  const planArb = fc.array(fc.record({ drop: fc.boolean(), dup: fc.boolean(), delay: fc.integer({ min: 0, max: 30 }) }), { maxLength: 80 });
  let bad = '';
  fc.assert(fc.property(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 0, max: 20 }), planArb, fc.boolean(), (before, after, plan, restart) => {
    const p = pair(plan);
    for (let i = 1; i <= before; i++) p.change({ t: 'end', serial: i });
    p.put('toA', [p.b.hello(true)]);
    p.run(5);
    for (let i = before + 1; i <= before + after; i++) { p.change({ t: 'end', serial: i }); p.run(2); }
    if (restart) { p.run(3); p.restartB(); }
    p.run(3000);
    const got = afterLastBulk(p.applied);
    const ok = JSON.stringify(got) === JSON.stringify(p.table) && p.applied.some((r) => r.t === 'bulk-end') && p.a.sender.stats.unacked === 0;
    if (!ok && !bad) bad = `got ${JSON.stringify(got)} want ${JSON.stringify(p.table)}; unacked ${p.a.sender.stats.unacked}`;
    return ok;
  }), { numRuns: 200, seed: 9 });
  t.equal(bad, '', 'the peer holds exactly the table, and everything was acknowledged');
  t.end();
});

t.test('a peer with another password is refused and counted, never applied', (t) => {
  const a = new SyncPeer({ password: 'right', group: 'g', boot: 'aaaaaaaaaaaaaaaa' });
  const c = new SyncPeer({ password: 'wrong', group: 'g', boot: 'cccccccccccccccc' });
  const r1 = a.receive(c.hello(true), 1);
  const r2 = a.receive(c.send([{ t: 'end', serial: 1 }], 2)[0], 2);
  t.same([r1.apply, r2.apply], [[], []]);
  t.same([...r1.events, ...r2.events], [{ kind: 'refused', reason: 'auth' }, { kind: 'refused', reason: 'auth' }]);
  t.equal(a.stats.refused.auth, 2);
  t.equal(a.stats.peerBoot, undefined, 'not taken for the peer');
  t.same(a.receive(a.hello(false), 3).events, [{ kind: 'refused', reason: 'self' }], 'our own datagram looped back');
  const b = new SyncPeer({ password: 'right', group: 'g', boot: 'bbbbbbbbbbbbbbbb' });
  const h = b.hello(false);
  t.same(a.receive(h, 4).events, [{ kind: 'hello', boot: 'bbbbbbbbbbbbbbbb', bulkWanted: false }]);
  t.same(a.receive(h, 5).events, [{ kind: 'refused', reason: 'replay' }], 'the same datagram again');
  t.end();
});

t.test('resends back off per message and come in bursts of at most resendBurst', (t) => {
  const s = new SyncSender({ ...DEFAULT_CHANNEL, batchRecords: 1, resendAfterMs: 200, resendBurst: 64 });
  s.send([{ t: 'end', serial: 1 }], 0);
  const at = (now: number) => s.tick(now).filter((o) => o.type === 'data').length;
  // 200 ms, then 400 more, then 800 more, and every 800 from there: a peer that does not answer is not flooded.
  t.same([at(199), at(200), at(599), at(600), at(1399), at(1400), at(2199), at(2200)], [0, 1, 0, 1, 0, 1, 0, 1]);
  const b = new SyncSender({ ...DEFAULT_CHANNEL, batchRecords: 1, resendAfterMs: 200, resendBurst: 64 });
  b.send(Array.from({ length: 1000 }, (_, i) => ({ t: 'end' as const, serial: i })), 0);
  const bursts = [200, 210, 220].map((now) => b.tick(now).filter((o) => o.type === 'data').map((o) => (o.body as { seq: number }).seq));
  t.same(bursts.map((x) => x.length), [64, 64, 64], 'at most 64 a tick');
  t.same([bursts[0][0], bursts[1][0], bursts[2][0]], [1, 65, 129], 'oldest first, each once');
  b.ack({ upTo: 1000 }, 230);
  t.equal(b.tick(5000).filter((o) => o.type === 'data').length, 0, 'nothing left after the ACK');
  t.end();
});
