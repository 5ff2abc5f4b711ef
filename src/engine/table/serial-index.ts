// Serial → row. Serials are what the control socket, the kernel reconciliation and snapshots name
// sessions by; a slot or a record row is only its table's own address. The serial is read back
// from the table's serial column, which may be replaced when the table grows.

import { EMPTY, OpenIndex } from './open-index.js';
import { fmix } from './tuple-key.js';

function hashSerial(serial: number): number {
  // Serials stay below 2^53: fold the high word into the low one.
  return fmix((serial | 0) ^ Math.floor(serial / 4294967296));
}

export class SerialIndex extends OpenIndex {
  constructor(private readonly serials: () => Float64Array, entries: number) { super(entries); }

  protected hashOf(row: number): number { return hashSerial(this.serials()[row]); }

  /** The row holding this serial, or -1. */
  find(serial: number): number {
    const cells = this.cells;
    const mask = this.mask;
    const st = this.serials();
    let i = hashSerial(serial) & mask;
    for (;;) {
      const s = cells[i];
      if (s === EMPTY || st[s] === serial) return s;
      i = (i + 1) & mask;
    }
  }
}
