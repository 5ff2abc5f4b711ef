// A fixed-capacity ring of the most recent items: the daemon keeps its last N traffic records in
// memory for `execute log display` (the vendor's memory log device). O(1) push, no reallocation.

export class Ring<T> {
  private readonly items: (T | undefined)[];
  private head = 0;
  private count = 0;
  /** Items ever pushed, including those the ring has since dropped. */
  total = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`ring capacity ${capacity} must be a non-negative integer`);
    this.items = new Array(capacity);
  }

  get size(): number { return this.count; }

  push(item: T): void {
    this.total++;
    if (this.capacity === 0) return;
    this.items[(this.head + this.count) % this.capacity] = item;
    if (this.count < this.capacity) this.count++;
    else this.head = (this.head + 1) % this.capacity;
  }

  /** Oldest first. */
  toArray(): T[] {
    const out: T[] = [];
    for (let i = 0; i < this.count; i++) out.push(this.items[(this.head + i) % this.capacity] as T);
    return out;
  }

  clear(): void {
    this.items.fill(undefined);
    this.head = 0;
    this.count = 0;
  }
}
