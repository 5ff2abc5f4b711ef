// The intrusive oldest-first list the bypass set is ordered by, against a plain array model.

import fc from 'fast-check';
import t from 'tap';
import { ActivityList, type Linked } from '../../src/engine/activity-list.js';

interface E extends Linked<E> { id: number }

t.test('touch, remove and oldest match an array kept in activity order', (t) => {
  fc.assert(fc.property(fc.array(fc.tuple(fc.constantFrom('touch', 'remove', 'evict'), fc.integer({ min: 0, max: 9 })), { maxLength: 200 }), (ops) => {
    const list = new ActivityList<E>();
    const items = Array.from({ length: 10 }, (_, id): E => ({ id }));
    let model: number[] = [];
    for (const [op, id] of ops) {
      if (op === 'touch') { list.touch(items[id]); model = [...model.filter((x) => x !== id), id]; }
      else if (op === 'remove') { list.remove(items[id]); model = model.filter((x) => x !== id); }
      else { const o = list.oldest(); if (o) list.remove(o); model = model.slice(1); }
      if (list.size !== model.length || list.oldest()?.id !== model[0]) return false;
    }
    // The whole order, walked from the oldest.
    const walked: number[] = [];
    for (let e = list.oldest(); e; e = e.next) walked.push(e.id);
    return JSON.stringify(walked) === JSON.stringify(model);
  }), { numRuns: 500, seed: 14 });
  t.end();
});

t.test('touching the newest again changes nothing; removing an unlisted entry is harmless', (t) => {
  const list = new ActivityList<E>();
  const a: E = { id: 1 };
  const b: E = { id: 2 };
  list.touch(a);
  list.touch(b);
  list.touch(b);
  t.same([list.size, list.oldest()?.id], [2, 1]);
  list.remove(a);
  list.remove(a);
  t.same([list.size, list.oldest()?.id], [1, 2]);
  t.end();
});
