// Sessions, expectations and a table for the HA unit tests: just the fields the sync reads.

import type { Effect, Session } from '../../src/engine/types.js';
import type { Expectation } from '../../src/engine/expectations.js';
import type { TableView } from '../../src/ha/pickup.js';

export function session(serial: number, proto: number, createdAt: number, extra: Partial<Session> = {}): Session {
  const orig = { family: 4 as const, proto, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000 + serial, dport: proto === 6 ? 21 : 7007 };
  return { serial, orig, reply: { ...orig, src: orig.dst, dst: orig.src, sport: orig.dport, dport: orig.sport }, policyId: 43, vd: 0, state: [1, 0], createdAt, expireAt: createdAt + 3600_000, ...extra } as Session;
}

export function expectation(id: number, parent: number): Expectation {
  return { id, parent, serial: parent, policyId: 43, vd: 0, helper: 'ftp', kind: 'pasv', family: 4, proto: 6, src: '198.51.100.2', sport: 0, dst: '203.0.113.2', dport: 50000 + id,
    createdAt: 0, expireAt: 30_000, tracksParent: false, lifetime: 30, sessionTimeout: 3600 };
}

/** A table the filter reads, changed by the effects the test applies. */
export class FakeTable implements TableView {
  readonly s = new Map<number, Session>();
  readonly x = new Map<number, Expectation>();
  session(serial: number) { return this.s.get(serial); }
  sessions() { return this.s.values(); }
  expectations() { return this.x.values(); }
  expectationsOf(serial: number) { return [...this.x.values()].filter((e) => e.parent === serial); }
  start(s: Session): Effect { this.s.set(s.serial, s); return { kind: 'session-start', session: s }; }
  end(serial: number, at: number): Effect {
    const s = this.s.get(serial)!;
    this.s.delete(serial);
    for (const [id, e] of this.x) if (e.parent === serial) this.x.delete(id);
    return { kind: 'session-end', session: s, reason: 'ttl', at };
  }
  expect(e: Expectation): Effect { this.x.set(e.id, e); return { kind: 'expect-add', expectation: e }; }
  expectEnd(id: number, at: number): Effect { const e = this.x.get(id)!; this.x.delete(id); return { kind: 'expect-end', expectation: e, reason: 'used', at } as Effect; }
}

