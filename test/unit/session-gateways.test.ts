// `gwy=` of the session list: which address each direction is routed to (NAT applied), a
// direction with no packet yet, one batch of lookups per list, the placeholder when `ip` fails,
// and the list handler's wiring (the daemon's path; replay has no router and keeps 0.0.0.0).

import t from 'tap';
import pino from 'pino';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import type { PolicyMatch } from '../../src/engine/types.js';
import type { DaemonContext } from '../../src/control/context.js';
import { sessionHandlers } from '../../src/control/handlers/session.js';
import { NextHopCache } from '../../src/control/next-hops.js';
import { routedDestinations, withGateways } from '../../src/control/session-gateways.js';
import type { SessionView } from '../../src/control/session-view.js';
import { viewIn } from '../../src/control/session-view.js';
import { formatSessionList } from '../../src/control/format.js';
import { ControlViews } from '../../src/control/views.js';
import type { Route } from '../../src/kernel/routes.js';
import { udp } from '../lib/flows.js';

const C = '198.51.100.2', S = '203.0.113.2', FAR = '192.0.2.10';
const C6 = '2001:db8:100::2', FAR6 = '2001:db8:2::10';
const allow: PolicyMatch = { policyId: 1, action: 'accept', logTraffic: false, vd: 0 };

const ROUTES: Record<string, Route> = {
  [S]: { dev: 'veth-s' },
  [C]: { dev: 'veth-c' },
  [FAR]: { dev: 'veth-s', gateway: S },
  [C6]: { dev: 'veth-c' },
  [FAR6]: { dev: 'veth-s', gateway: '2001:db8:113::2' },
};

/** A table with: C->S answered, C->FAR answered, C6->FAR6 answered, C->S:9 not answered. */
function table(): SessionEngine {
  const e = new SessionEngine(defaultEngineConfig({ policy: () => allow, offload: false }));
  const pair = (src: string, dst: string, sport: number, dport: number, answered: boolean) => {
    udp(e, { addr: src, port: sport }, { addr: dst, port: dport }, 'q', 1000);
    if (answered) udp(e, { addr: dst, port: dport }, { addr: src, port: sport }, 'a', 1000, false);
  };
  pair(C, S, 40000, 7007, true);
  pair(C, FAR, 40001, 7008, true);
  pair(C6, FAR6, 40002, 7009, true);
  pair(C, S, 40003, 9, false);
  return e;
}

t.test('each direction is routed to its destination after NAT; no packet, no destination', (t) => {
  const e = table();
  const v = [...e.sessions()].map((s) => viewIn(e, s, 2000));
  t.same(v.map(routedDestinations), [[S, C], [FAR, C], [FAR6, C6], [S, undefined]]);
  const nat: SessionView = {
    ...v[0], snat: { addr: '203.0.113.1', port: 62458 }, dnat: { addr: '203.0.113.9', port: 8080 },
    reply_tuple: { ...v[0].reply_tuple, src: '203.0.113.9', sport: 8080, dst: '203.0.113.1', dport: 62458 },
  };
  t.same(routedDestinations(nat), ['203.0.113.9', C], 'DNAT: the translated server; SNAT: the client, not the translated address');
  t.end();
});

t.test('one lookup per list; gateway, directly connected, IPv6, unanswered direction', async (t) => {
  const e = table();
  const calls: string[][] = [];
  const cache = new NextHopCache(async (a) => { calls.push(a); return new Map(a.filter((x) => ROUTES[x]).map((x) => [x, ROUTES[x]])); });
  const views = await withGateways([...e.sessions()].map((s) => viewIn(e, s, 2000)), (d) => cache.nextHops(d, 2000));
  t.same(views.map((v) => v.gwy), [[S, C], [S, C], ['2001:db8:113::2', C6], [S, '0.0.0.0']]);
  t.same(calls, [[S, C, FAR, FAR6, C6]], 'one batch, each destination once');
  t.match(formatSessionList(views), `dev=2->3/3->2 gwy=${S}/${C}\n`);
  t.match(formatSessionList(views), 'gwy=2001:db8:113::2/2001:db8:100::2\n');
  t.end();
});

t.test('when the lookup fails the placeholders stay', async (t) => {
  const e = table();
  const cache = new NextHopCache(async () => { throw new Error('ip: not found'); });
  const views = await withGateways([...e.sessions()].map((s) => viewIn(e, s, 2000)), (d) => cache.nextHops(d, 2000));
  t.same(views.map((v) => v.gwy), [['0.0.0.0', '0.0.0.0'], ['0.0.0.0', '0.0.0.0'], ['::', '::'], ['0.0.0.0', '0.0.0.0']]);
  t.equal(cache.counters.failures, 5);
  t.end();
});

/** The session.list handler as the daemon builds it, with a log that keeps its warnings. */
function handlers(e: SessionEngine, gateways?: NextHopCache) {
  const warnings: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => { const m = JSON.parse(line) as { level: number; msg: string }; if (m.level >= 40) warnings.push(m.msg); } });
  const ctx: DaemonContext = {
    engine: e, log, now: () => 2000, apply: () => undefined, queueStats: () => undefined, mechanism: () => undefined, ifname: (i) => `if${i}`,
    ...(gateways ? { gateways } : {}),
  };
  const h = sessionHandlers(ctx, new ControlViews({ ifname: (i) => `if${i}`, vdOf: () => 0, vdName: () => 'root' }));
  return { list: async () => (await h['session.list']({})) as { sessions: SessionView[]; total: number }, warnings };
}

t.test('the daemon\'s list: next hops from its cache, placeholders and a warning when ip fails, none without a router', async (t) => {
  const e = table();
  let broken = false;
  const cache = new NextHopCache(async (a) => {
    if (broken) throw new Error('`ip -j -force -batch -` failed (exit -1): ip: not found (Debian package: iproute2)');
    return new Map(a.filter((x) => ROUTES[x]).map((x) => [x, ROUTES[x]]));
  }, { ttlMs: 0 });
  const h = handlers(e, cache);
  const ok = await h.list();
  t.same(ok.sessions.map((v) => [v.gwy, v.use]), [[[S, C], 3], [[S, C], 3], [['2001:db8:113::2', C6], 3], [[S, '0.0.0.0'], 3]]);
  t.same(h.warnings, []);
  broken = true;
  const failed = await h.list();
  t.same(failed.sessions.map((v) => v.gwy[0]), ['0.0.0.0', '0.0.0.0', '::', '0.0.0.0'], 'the list still works');
  t.equal(failed.total, 4);
  t.same(h.warnings, ['route lookups for gwy= failed: the list shows no gateway']);
  t.equal(cache.counters.failures, 5);

  const without = await handlers(e).list();
  t.same(without.sessions.map((v) => v.gwy), [['0.0.0.0', '0.0.0.0'], ['0.0.0.0', '0.0.0.0'], ['::', '::'], ['0.0.0.0', '0.0.0.0']], 'no router to ask');
  t.end();
});
