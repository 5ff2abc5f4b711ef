// The `use=` of a session record: how many things hold the session, counted when the view is
// built. The vendor's figure is its kernel reference count; ours counts the same kind of holders
// in the engine's table, which gives the vendor's usual 3 (its two tuples and its timer) and 4 when
// a helper parses the session.

import type { Direction, Session } from '../engine/types.js';
import type { FlowTuple } from '../packet/types.js';

/** The read-only part of the engine the count looks at (SessionEngine has all of it). */
export interface ReferenceHolders {
  lookup(t: FlowTuple): { session: Session; dir: Direction } | undefined;
  helperSlot(serial: number): unknown;
  children(serial: number): number[];
  bySerialNumber(serial: number): Session | undefined;
  readonly expectations: { countOfParent(serial: number): number };
}

/**
 * One for each direction's entry in the tuple index that leads to this session, one for its
 * filed timer, one for a helper's parser state, one for each pending expectation it opened, one
 * for each session in the table that one of its expectations became. Without the table, only
 * what the session records itself: its timer.
 */
export function referenceCount(s: Session, table?: ReferenceHolders): number {
  const timer = s.timerAt !== 0 ? 1 : 0;
  if (!table) return timer;
  const entry = (t: FlowTuple, dir: Direction) => {
    const slot = table.lookup(t);
    return slot?.session.serial === s.serial && slot.dir === dir ? 1 : 0;
  };
  const children = table.children(s.serial).filter((c) => table.bySerialNumber(c) !== undefined).length;
  return entry(s.orig, 'org') + entry(s.reply, 'reply')
    + timer
    + (table.helperSlot(s.serial) !== undefined ? 1 : 0)
    + table.expectations.countOfParent(s.serial)
    + children;
}
