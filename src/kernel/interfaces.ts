// Interface index -> name, read from sysfs of the daemon's network namespace. Re-read at most
// once a second on a miss, so a new interface shows up without a restart and a flood of unknown
// indexes costs nothing.

import { readdirSync, readFileSync } from 'node:fs';

export class InterfaceNames {
  private names = new Map<number, string>();
  private readAt = -Infinity;

  constructor(private readonly now: () => number = Date.now) {}

  name(index: number): string {
    if (index === 0) return 'unknown-0';
    let n = this.names.get(index);
    if (n === undefined && this.now() - this.readAt >= 1000) {
      this.refresh();
      n = this.names.get(index);
    }
    return n ?? `if${index}`;
  }

  refresh(): void {
    this.readAt = this.now();
    const m = new Map<number, string>();
    try {
      for (const dev of readdirSync('/sys/class/net')) {
        try {
          m.set(Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8').trim()), dev);
        } catch { /* interface vanished while listing */ }
      }
    } catch { /* no sysfs: keep indexes */ }
    this.names = m;
  }
}
