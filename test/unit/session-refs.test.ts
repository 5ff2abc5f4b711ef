// `use=` counted from the table: tuples, timer, helper, pending expectations, live children.

import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { PolicyMatch } from '../../src/engine/types.js';
import { referenceCount } from '../../src/control/session-refs.js';
import { viewIn, viewOf } from '../../src/control/session-view.js';
import { formatSession } from '../../src/control/format.js';
import { TcpConversation, tcpSyn, udp } from '../lib/flows.js';
import { live } from '../lib/live-session.js';
import { sameTuple } from '../../src/engine/flow-key.js';

const C = '198.51.100.2', S = '203.0.113.2';
const allow: PolicyMatch = { policyId: 7, action: 'accept', logTraffic: false, vd: 0 };

t.test('a plain session counts its two tuples and its timer: 3, the vendor usual value', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ policy: () => allow }));
  const s = live(e, udp(e, { addr: C, port: 40000 }, { addr: S, port: 7007 }, 'x', 1000).session!);
  t.equal(referenceCount(s, e), 3);
  t.equal(viewIn(e, s, 2000).use, 3);
  t.match(formatSession(viewIn(e, s, 2000)), / av_idx=0 use=3\n/);
  t.equal(referenceCount(s), 1, 'a bare session, without its table: only its timer');
  t.equal(viewOf(s, 2000).use, 1);
  t.end();
});

t.test('a helper adds one, each pending expectation one, each live child one', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ policy: (x) => (x.dport === 21 ? allow : { policyId: 0, action: 'deny', logTraffic: false, vd: 0 }) }));
  const ctl = new TcpConversation(e, { addr: C, port: 40000 }, { addr: S, port: 21 });
  ctl.open(1000);
  const parent = e.lookup({ family: 4, proto: 6, src: C, dst: S, sport: 40000, dport: 21 })!.session;
  t.equal(parent.helper, 'ftp');
  t.equal(referenceCount(parent, e), 4, 'tuples, timer, helper');

  ctl.send('client', 'PASV\r\n', 1100);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,156,64).\r\n', 1200);
  t.equal(e.expectations.countOfParent(parent.serial), 1);
  t.equal(referenceCount(parent, e), 5, '+ the pending expectation');
  ctl.send('client', 'PASV\r\n', 1300);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,156,65).\r\n', 1400);
  t.equal(referenceCount(parent, e), 6, '+ a second one');

  const child = live(e, tcpSyn(e, { addr: C, port: 40001 }, { addr: S, port: 40000 }, 2000).session!);
  t.equal(child.parent, parent.serial);
  t.equal(referenceCount(parent, e), 6, 'the used expectation became a child: still one each');
  t.equal(referenceCount(child, e), 3, 'the child itself is a plain session');
  t.match(formatSession(viewIn(e, parent, 2000)), / use=6\n/);

  e.clear((s) => s.serial === child.serial, 3000);
  t.equal(e.bySerialNumber(child.serial), undefined);
  t.equal(referenceCount(parent, e), 5, 'a cleared child no longer counts');
  t.end();
});

t.test('a tuple index entry that names another session is not this one\'s', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ policy: () => allow }));
  const s = live(e, udp(e, { addr: C, port: 40000 }, { addr: S, port: 7007 }, 'x', 1000).session!);
  const other = live(e, udp(e, { addr: C, port: 40002 }, { addr: S, port: 7007 }, 'x', 1000).session!);
  const table = {
    lookup: (x: typeof s.orig) => (sameTuple(x, s.reply) ? { session: other, dir: 'reply' as const } : e.lookup(x)),
    helperSlot: () => undefined,
    children: () => [],
    bySerialNumber: (n: number) => e.bySerialNumber(n),
    expectations: { countOfParent: () => 0 },
  };
  t.equal(referenceCount(s, table), 2);
  t.end();
});
