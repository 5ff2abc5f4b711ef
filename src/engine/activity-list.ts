// Entries in order of their last activity, oldest first, linked through the entries themselves:
// touch, removal and taking the oldest are O(1). A Map used the same way (delete and re-set to
// move an entry to the end, iterate from the start to find the oldest) keeps the deleted slots at
// its front until it is rehashed, so under churn every look for the oldest walks them.

export interface Linked<T> { prev?: T; next?: T; listed?: boolean }

export class ActivityList<T extends Linked<T>> {
  private head?: T;
  private tail?: T;
  private count = 0;

  get size(): number { return this.count; }

  /** The entry with the oldest activity. */
  oldest(): T | undefined { return this.head; }

  /** Adds `e` as the newest, or moves it there. */
  touch(e: T): void {
    if (e.listed) {
      if (this.tail === e) return;
      this.unlink(e);
    }
    e.prev = this.tail;
    e.next = undefined;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
    e.listed = true;
    this.count++;
  }

  remove(e: T): void {
    if (e.listed) this.unlink(e);
  }

  private unlink(e: T): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = e.next = undefined;
    e.listed = false;
    this.count--;
  }
}
