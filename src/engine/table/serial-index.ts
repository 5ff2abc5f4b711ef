// Serial → slot. Serials are what the control socket, the kernel reconciliation and snapshots name
// sessions by; a slot is only the table's own address. The serial is read back from the store.

import { EMPTY, OpenIndex } from './open-index.js';
import type { SessionStore } from './session-store.js';
import { fmix } from './tuple-key.js';

function hashSerial(serial: number): number {
  // Serials stay below 2^53: fold the high word into the low one.
  return fmix((serial | 0) ^ Math.floor(serial / 4294967296));
}

export class SerialIndex extends OpenIndex {
  constructor(private readonly store: SessionStore, entries: number) { super(entries); }

  protected hashOf(slot: number): number { return hashSerial(this.store.serial[slot]); }

  /** The slot of the session with this serial, or -1. */
  find(serial: number): number {
    const cells = this.cells;
    const mask = this.mask;
    const st = this.store.serial;
    let i = hashSerial(serial) & mask;
    for (;;) {
      const s = cells[i];
      if (s === EMPTY || st[s] === serial) return s;
      i = (i + 1) & mask;
    }
  }
}
