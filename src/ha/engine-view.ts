// The engine's table as the sync reads it (pickup filter and bulk transfers): copies, by serial.

import type { SessionEngine } from '../engine/engine.js';
import type { TableView } from './pickup.js';

export function engineTableView(e: SessionEngine): TableView {
  return {
    session: (serial) => e.bySerialNumber(serial),
    sessions: () => e.sessions(),
    expectations: () => e.expectations.all(),
    expectationsOf: (serial) => e.expectations.ofParent(serial),
  };
}
