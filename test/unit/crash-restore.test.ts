// A table read after a crash: sessions whose recorded timer ran out get one timeout from the
// restore, those with time left keep it; a helper session without parser state gets a fresh one.
import t from 'tap';
import type { EngineSnapshot } from '../../src/engine/engine.js';
import type { Session } from '../../src/engine/types.js';
import { extendExpiry, freshHelperStates } from '../../src/state/crash-restore.js';

const session = (serial: number, expireAt: number, timeout: number, helper?: string) => ({
  serial, expireAt, timeout, helper, orig: { family: 4, proto: 6, src: '198.51.100.2', dst: '203.0.113.2', sport: 40000 + serial, dport: 21 }, reply: {},
}) as unknown as Session;
const snap = (sessions: Session[], helpers: EngineSnapshot['helpers'] = []): EngineSnapshot => ({ version: 1, savedAt: 0, nextSerial: 9, sessions, expectations: [], helpers });

t.test('extendExpiry: at least one timeout from now', async (t) => {
  const s = snap([session(1, 5000, 10), session(2, 50_000, 10), session(3, 20_000, 10)]);
  t.equal(extendExpiry(s, 12_000), 2);
  t.same(s.sessions.map((x) => [x.expireAt, x.timerBase]), [[22_000, 12_000], [50_000, undefined], [22_000, 12_000]]);
});

t.test('freshHelperStates: only sessions with a known helper and no state', async (t) => {
  const s = snap([session(1, 0, 1, 'ftp'), session(2, 0, 1, 'ftp'), session(3, 0, 1), session(4, 0, 1, 'nosuch')], [{ serial: 2, helper: 'ftp', state: 'kept' }]);
  t.equal(freshHelperStates(s), 1);
  t.match(s.helpers, [{ serial: 2, state: 'kept' }, { serial: 1, helper: 'ftp', state: { encrypted: false, authPending: false } }]);
});
