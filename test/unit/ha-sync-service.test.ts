// The sync service end to end in one process: two nodes over a fake datagram link, each with its
// own table. The peer's table arrives by bulk, then by changes; a restart re-syncs by bulk; a
// wrong password holds nothing and says why.

import t from 'tap';
import pino from 'pino';
import { parseConfig } from '../../src/config/load.js';
import type { HaConfig } from '../../src/config/ha.js';
import { SyncService, type DatagramPort } from '../../src/ha/sync-service.js';
import { expectation, FakeTable, session } from '../lib/ha-table.js';

const log = pino({ level: 'silent' });

const ha = (password = 's3cret', extra = ''): HaConfig => parseConfig(`config system ha
    set mode a-p
    set group-name "HA-APP"
    set password "${password}"
    set hbdev "sync0" 100
    set ha-peer-ip 192.0.2.2
    set session-pickup enable
${extra}end
`, 'ha.conf').ha;

/** One end of the fake link: what it sends waits in `out` until the test delivers it. */
class FakePort implements DatagramPort {
  out: Buffer[] = [];
  bound?: string;
  closed = false;
  async bind(port: number, address: string) { this.bound = `${address}:${port}`; }
  send(d: Buffer) { if (!this.closed) this.out.push(d); }
  onMessage() { /* the test delivers with its own clock */ }
  close() { this.closed = true; }
}

function node(name: 'a' | 'b', table: FakeTable, cfg: HaConfig, boot: string) {
  const port = new FakePort();
  const lags: number[] = [];
  const local = name === 'a' ? '192.0.2.1' : '192.0.2.2';
  const peer = name === 'a' ? '192.0.2.2' : '192.0.2.1';
  const svc = new SyncService(cfg, { ifname: 'sync0', priority: 100, local, prefix: 24, peer, port: 7030 }, table, log, { port, boot, timer: false, onLag: (ms) => lags.push(ms) });
  return { svc, port, lags, table };
}

/** Delivers both ways and ticks until the link is quiet. */
function settle(a: ReturnType<typeof node>, b: ReturnType<typeof node>, clock: { now: number }, steps = 400) {
  for (let i = 0; i < steps; i++) {
    clock.now += 5;
    const toB = a.port.out.splice(0);
    const toA = b.port.out.splice(0);
    for (const d of toB) if (!b.port.closed) b.svc.receive(d, clock.now);
    for (const d of toA) if (!a.port.closed) a.svc.receive(d, clock.now);
    a.svc.tick(clock.now);
    b.svc.tick(clock.now);
  }
}

const heldSerials = (n: ReturnType<typeof node>) => [...n.svc.synced.sessions.keys()].sort((x, y) => x - y);

t.test('bulk at the start, then changes, then a restart of the receiver re-syncs by bulk', async (t) => {
  const clock = { now: 1_000_000 };
  const ta = new FakeTable();
  ta.start(session(1, 6, 0, { helper: 'ftp' }));
  ta.start(session(2, 6, 0));
  ta.start(session(3, 17, 0));
  ta.expect(expectation(10, 1));
  const a = node('a', ta, ha('s3cret', '    set session-pickup-expectation enable\n'), 'aaaaaaaaaaaaaaaa');
  let b = node('b', new FakeTable(), ha('s3cret', '    set session-pickup-expectation enable\n'), 'bbbbbbbbbbbbbbbb');
  await a.svc.start(clock.now);
  await b.svc.start(clock.now);
  t.equal(a.port.bound, '192.0.2.1:7030', 'bound on the sync link\'s address');
  settle(a, b, clock);
  t.same(heldSerials(b), [1, 2], 'TCP sessions of A by bulk (UDP not: connectionless is off)');
  t.same([...b.svc.synced.expectations.keys()], [10], 'and the expectation');
  t.match(b.svc.synced.sessions.get(1), { policyId: 43, helper: 'ftp' });
  const sb = b.svc.status(clock.now);
  t.match(sb, { linkUp: true, linkReason: 'up', peerBoot: 'aaaaaaaaaaaaaaaa', bulk: { received: { bulk: 'complete', bulksComplete: 1, lastBulkRecords: 3, sessions: 2, expectations: 1 } } });
  t.match(a.svc.status(clock.now), { bulk: { sent: 1, lastSentRecords: 3 }, pickup: { sessions: 2, expectations: 1 }, tx: { unacked: 0 } });

  for (const e of [ta.start(session(4, 6, clock.now)), ta.end(2, clock.now)]) a.svc.record(e, clock.now);
  a.svc.flush(clock.now);
  settle(a, b, clock, 50);
  t.same(heldSerials(b), [1, 4], 'a new session appears on B, an ended one leaves');
  a.svc.record(ta.end(1, clock.now), clock.now);
  a.svc.flush(clock.now);
  settle(a, b, clock, 50);
  t.same(heldSerials(b), [4]);
  t.same([...b.svc.synced.expectations.keys()], [], 'the expectation went with its control session');
  t.ok(a.lags.length >= 2 && a.lags.every((ms) => ms >= 0), `lag measured from send to ack: ${a.lags.join(', ')} ms`);
  t.equal(a.svc.status(clock.now).lag.samples, a.lags.length);

  b.svc.stop();
  b = node('b', new FakeTable(), ha('s3cret', '    set session-pickup-expectation enable\n'), 'cccccccccccccccc');
  await b.svc.start(clock.now);
  settle(a, b, clock);
  t.same(heldSerials(b), [4], 'the restarted B has A\'s table again, by bulk (one more transfer)');
  t.match(a.svc.status(clock.now), { peerBoot: 'cccccccccccccccc', bulk: { sent: 2 } });
  t.match(b.svc.status(clock.now), { bulk: { received: { bulk: 'complete', bulksComplete: 1 } } });
});

t.test('a peer with another password: nothing held, the refusal counted and explained', async (t) => {
  const clock = { now: 5_000_000 };
  const ta = new FakeTable();
  ta.start(session(1, 6, 0));
  const a = node('a', ta, ha('right'), 'aaaaaaaaaaaaaaaa');
  const b = node('b', new FakeTable(), ha('wrong'), 'bbbbbbbbbbbbbbbb');
  await a.svc.start(clock.now);
  await b.svc.start(clock.now);
  settle(a, b, clock, 200);
  t.same(heldSerials(b), []);
  const s = b.svc.status(clock.now);
  t.match(s, { linkUp: false, linkReason: 'peer refused: authentication failed (password or group-name differs)', peerBoot: undefined, bulk: { received: { bulk: 'requested', bulksComplete: 0 } } });
  t.ok(s.refused.auth > 0, `refused: ${s.refused.auth}`);
  t.equal(a.svc.status(clock.now).bulk.sent, 0, 'A never trusted B enough to send its table');
});

t.test('no peer at all: the link is down and says so', async (t) => {
  const a = node('a', new FakeTable(), ha(), 'aaaaaaaaaaaaaaaa');
  await a.svc.start(0);
  a.svc.tick(5000);
  t.match(a.svc.status(5000), { linkUp: false, linkReason: 'nothing heard from 192.0.2.2:7030 since start', lastHeardAgoMs: undefined });
  a.svc.stop();
  t.ok(a.port.closed);
});
