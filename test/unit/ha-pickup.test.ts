// The pickup filters: what goes to the peer for each session-pickup setting, the 30 s delay, and
// ends and expectations only for what the peer holds.

import t from 'tap';
import type { Effect, Session } from '../../src/engine/types.js';
import type { Expectation } from '../../src/engine/expectations.js';
import { expectation, FakeTable, session } from '../lib/ha-table.js';
import type { PickupConfig } from '../../src/config/ha.js';
import { PICKUP_DELAY_MS, PickupFilter } from '../../src/ha/pickup.js';
import type { SyncRecord } from '../../src/ha/peer.js';

const cfg = (o: Partial<PickupConfig>): PickupConfig => ({ sessions: true, connectionless: false, expectation: false, delay: false, ...o });
const kinds = (rs: SyncRecord[]) => rs.map((r) => {
  switch (r.t) {
    case 'session': return `session ${r.session.serial}`;
    case 'expect': return `expect ${r.expectation.id}`;
    case 'end': return `end ${r.serial}`;
    case 'expect-end': return `expect-end ${r.id}`;
    default: return r.t;
  }
});

t.test('TCP only by default; connectionless adds UDP and ICMP; disabled pickup sends nothing', (t) => {
  const tb = new FakeTable();
  const f = new PickupFilter(cfg({}), tb);
  t.same(kinds(f.effect(tb.start(session(1, 6, 0)), 0)), ['session 1']);
  t.same(f.effect(tb.start(session(2, 17, 0)), 0), [], 'UDP is not synced');
  t.same(f.effect(tb.start(session(3, 1, 0)), 0), [], 'nor ICMP');
  t.same(f.effect(tb.end(2, 5), 5), [], 'the end of a session the peer never got is not sent');
  t.same(kinds(f.effect(tb.end(1, 5), 5)), ['end 1']);
  t.match(f.stats(), { sessions: 0, filtered: 2 });

  const c = new PickupFilter(cfg({ connectionless: true }), tb);
  t.same(kinds(c.effect(tb.start(session(4, 17, 0)), 0)), ['session 4']);
  t.same(kinds(c.effect(tb.start(session(5, 1, 0)), 0)), ['session 5']);

  const off = new PickupFilter(cfg({ sessions: false }), tb);
  t.same(off.effect(tb.start(session(6, 6, 0)), 0), []);
  t.same(off.stats(), { sessions: 0, expectations: 0, delayed: 0, filtered: 0 });
  t.end();
});

t.test('expectations and the sessions made from them only with session-pickup-expectation', (t) => {
  const tb = new FakeTable();
  const without = new PickupFilter(cfg({}), tb);
  const ctl = session(1, 6, 0, { helper: 'ftp' });
  t.same(kinds(without.effect(tb.start(ctl), 0)), ['session 1'], 'the control session is a TCP session');
  t.same(without.effect(tb.expect(expectation(10, 1)), 1), []);
  t.same(without.effect(tb.start(session(2, 6, 2, { parent: 1, expected: { id: 10, helper: 'ftp', kind: 'pasv' } })), 2), [], 'a child is not synced');

  const tb2 = new FakeTable();
  const f = new PickupFilter(cfg({ expectation: true }), tb2);
  f.effect(tb2.start(ctl), 0);
  t.same(kinds(f.effect(tb2.expect(expectation(10, 1)), 1)), ['expect 10']);
  t.same(kinds(f.effect(tb2.start(session(2, 6, 2, { parent: 1 })), 2)), ['session 2']);
  t.same(kinds(f.effect(tb2.expectEnd(10, 3), 3)), ['expect-end 10']);
  t.same(f.effect(tb2.expect(expectation(11, 99)), 3), [], 'an expectation whose parent the peer does not hold');
  f.effect(tb2.expect(expectation(12, 1)), 4);
  t.same(kinds(f.effect(tb2.end(1, 5), 5)), ['end 1'], 'the parent\'s end takes its expectations on the peer');
  t.same(f.effect({ kind: 'expect-end', expectation: expectation(12, 1), reason: 'parent-closed', at: 5 } as Effect, 5), [], 'so their end is not sent again');
  t.end();
});

t.test('session-pickup-delay: a session goes when it is 30 s old, as it is then; one that ends sooner never goes', (t) => {
  const tb = new FakeTable();
  const f = new PickupFilter(cfg({ connectionless: true, expectation: true, delay: true }), tb);
  t.same(f.effect(tb.start(session(1, 6, 0, { helper: 'ftp' })), 0), []);
  t.same(f.effect(tb.start(session(2, 17, 1000)), 1000), []);
  t.same(f.effect(tb.start(session(3, 17, 2000)), 2000), []);
  t.same(f.effect(tb.expect(expectation(10, 1)), 5000), [], 'the parent is not on the peer yet');
  t.same(f.effect(tb.end(3, 6000), 6000), [], 'ended young');
  t.equal(f.stats().delayed, 2);
  t.same(f.due(PICKUP_DELAY_MS - 1), []);
  tb.s.get(1)!.state = [4, 4];
  const due = f.due(PICKUP_DELAY_MS);
  t.same(kinds(due), ['session 1', 'expect 10'], 'with the expectation it made meanwhile');
  t.same((due[0] as { session: Session }).session.state, [4, 4], 'its state at 30 s');
  t.same(kinds(f.due(PICKUP_DELAY_MS + 2000)), ['session 2']);
  t.same(f.due(PICKUP_DELAY_MS + 9000), [], 'session 3 never goes');
  t.same(kinds(f.effect(tb.start(session(4, 6, -40_000)), 0)), ['session 4'], 'a session already older (restored) goes at once');
  t.end();
});

t.test('bulk: the table by the same rules, the young ones left for the delay; it resets what the peer holds', (t) => {
  const tb = new FakeTable();
  const f = new PickupFilter(cfg({ expectation: true, delay: true }), tb);
  tb.start(session(1, 6, 0));
  tb.start(session(2, 17, 0));
  tb.start(session(3, 6, 50_000));
  tb.expect(expectation(10, 1));
  tb.expect(expectation(11, 3));
  t.same(kinds(f.bulk(60_000)), ['session 1', 'expect 10']);
  t.same(f.stats(), { sessions: 1, expectations: 1, delayed: 1, filtered: 0 });
  t.same(kinds(f.due(80_000)), ['session 3', 'expect 11']);
  t.end();
});
