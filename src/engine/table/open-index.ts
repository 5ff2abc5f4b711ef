// Open addressing with linear probing over one Int32Array of small integers (slots or slot-based
// entries) whose keys live elsewhere: a cell costs four bytes and a lookup allocates nothing.
// Deletion shifts the following cells back instead of leaving tombstones, so probe chains do not
// grow with churn. Subclasses say where a value's key hashes to and how a lookup compares keys.

export const EMPTY = -1;
/** The index doubles when more than this share of its cells is taken. */
const MAX_LOAD = 0.5;

export abstract class OpenIndex {
  protected cells: Int32Array;
  protected mask: number;
  count = 0;

  constructor(entries: number) {
    const size = cellsFor(entries);
    this.cells = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
  }

  /** The hash of the key of a value in the index. */
  protected abstract hashOf(value: number): number;

  get bytes(): number { return this.cells.byteLength; }

  /** Files a value whose key is not in the index yet. */
  add(value: number): void {
    if (this.count + 1 > this.cells.length * MAX_LOAD) this.rehash(this.cells.length * 2);
    this.place(value);
    this.count++;
  }

  /** Removes a value; false when it was not there. */
  delete(value: number): boolean {
    const cells = this.cells;
    const mask = this.mask;
    let i = this.hashOf(value) & mask;
    for (;;) {
      const v = cells[i];
      if (v === EMPTY) return false;
      if (v === value) break;
      i = (i + 1) & mask;
    }
    let hole = i;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = cells[j];
      if (v === EMPTY) break;
      const home = this.hashOf(v) & mask;
      // v may move into the hole unless its home lies cyclically in (hole, j].
      const stays = hole <= j ? home > hole && home <= j : home > hole || home <= j;
      if (!stays) {
        cells[hole] = v;
        hole = j;
      }
    }
    cells[hole] = EMPTY;
    this.count--;
    return true;
  }

  clear(): void {
    this.cells.fill(EMPTY);
    this.count = 0;
  }

  /** Makes room for `entries` without growing again. */
  reserve(entries: number): void {
    const size = cellsFor(entries);
    if (size > this.cells.length) this.rehash(size);
  }

  private place(value: number): void {
    const cells = this.cells;
    const mask = this.mask;
    let i = this.hashOf(value) & mask;
    while (cells[i] !== EMPTY) i = (i + 1) & mask;
    cells[i] = value;
  }

  private rehash(size: number): void {
    const old = this.cells;
    this.cells = new Int32Array(size).fill(EMPTY);
    this.mask = size - 1;
    for (let i = 0; i < old.length; i++) if (old[i] !== EMPTY) this.place(old[i]);
  }
}

function cellsFor(entries: number): number {
  let size = 16;
  while (size * MAX_LOAD < entries) size *= 2;
  return size;
}
