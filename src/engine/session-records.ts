// What admission remembers of each tracked session until it leaves: its VDOM, its user and its
// accounted service. One record per session, so they are columns of typed arrays found through an
// open-addressing index by serial, not an object and a Map entry each.

import { EMPTY } from './table/open-index.js';
import { SerialIndex } from './table/serial-index.js';

const NONE = -1;

export interface SessionRecord { vd: number; user: number; service: number }

export class SessionRecords {
  private serial = new Float64Array(1024);
  private vd = new Uint16Array(1024);
  /** User id, or NONE. */
  private user = new Int32Array(1024);
  /** Service index + 1, or 0. */
  private service = new Uint8Array(1024);
  private used = 0;
  private readonly free: number[] = [];
  private readonly index = new SerialIndex(() => this.serial, 1024);

  get size(): number { return this.index.count; }

  set(serial: number, vd: number, user: number | undefined, service: number | undefined): void {
    let i = this.index.find(serial);
    if (i === EMPTY) {
      i = this.free.pop() ?? this.used++;
      if (i >= this.serial.length) this.grow(this.serial.length * 2);
      this.serial[i] = serial;
      this.index.add(i);
    }
    this.vd[i] = vd;
    this.user[i] = user ?? NONE;
    this.service[i] = service === undefined ? 0 : service + 1;
  }

  /** Takes the record out; undefined when the serial has none. */
  take(serial: number): SessionRecord | undefined {
    const i = this.index.find(serial);
    if (i === EMPTY) return undefined;
    const r = { vd: this.vd[i], user: this.user[i], service: this.service[i] - 1 };
    this.index.delete(i);
    this.serial[i] = 0;
    this.free.push(i);
    return r;
  }

  private grow(n: number): void {
    const g = <T extends Float64Array | Uint16Array | Int32Array | Uint8Array>(a: T, C: new (n: number) => T): T => { const b = new C(n); b.set(a); return b; };
    this.serial = g(this.serial, Float64Array);
    this.vd = g(this.vd, Uint16Array);
    this.user = g(this.user, Int32Array);
    this.service = g(this.service, Uint8Array);
  }
}
