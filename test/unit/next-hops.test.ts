// The next-hop cache of the session list: one lookup a view for what it does not hold, answers
// kept for a while and bounded in number, failures counted and never thrown.

import t from 'tap';
import { NextHopCache, type RouteLookup } from '../../src/control/next-hops.js';
import type { Route } from '../../src/kernel/routes.js';

const TABLE: Record<string, Route> = {
  '192.0.2.10': { dev: 'veth-s', gateway: '203.0.113.2' },
  '203.0.113.2': { dev: 'veth-s' },
  '198.51.100.2': { dev: 'veth-c' },
  '2001:db8:2::10': { dev: 'veth-s', gateway: '2001:db8:113::2' },
};

function recording(table = TABLE): { lookup: RouteLookup; calls: string[][] } {
  const calls: string[][] = [];
  const lookup: RouteLookup = async (a) => {
    calls.push([...a]);
    return new Map(a.filter((x) => table[x]).map((x) => [x, table[x]]));
  };
  return { lookup, calls };
}

t.test('one lookup for all destinations; answers come from the cache until they are old', async (t) => {
  const { lookup, calls } = recording();
  const c = new NextHopCache(lookup, { ttlMs: 10_000 });
  const first = await c.nextHops(['192.0.2.10', '203.0.113.2', '192.0.2.10', '2001:db8:2::10'], 1000);
  t.same([...first.entries()], [['192.0.2.10', '203.0.113.2'], ['203.0.113.2', '203.0.113.2'], ['2001:db8:2::10', '2001:db8:113::2']]);
  t.same(calls, [['192.0.2.10', '203.0.113.2', '2001:db8:2::10']], 'one batch, each destination once');

  const again = await c.nextHops(['192.0.2.10', '198.51.100.2'], 10_999);
  t.same([...again.entries()], [['192.0.2.10', '203.0.113.2'], ['198.51.100.2', '198.51.100.2']]);
  t.same(calls[1], ['198.51.100.2'], 'only what the cache does not hold');
  await c.nextHops(['192.0.2.10'], 11_000);
  t.same(calls[2], ['192.0.2.10'], 'asked again once the answer is ttlMs old');
  t.same(c.counters, { runs: 3, hits: 1, failures: 0 });

  const cached = await c.nextHops(['192.0.2.10', '198.51.100.2'], 11_000);
  t.equal(calls.length, 3, 'all cached: no lookup at all');
  t.equal(cached.size, 2);
  t.end();
});

t.test('bounded: the oldest answers go first', async (t) => {
  const { lookup, calls } = recording();
  const c = new NextHopCache(lookup, { maxEntries: 2 });
  await c.nextHops(['192.0.2.10'], 0);
  await c.nextHops(['203.0.113.2'], 1);
  await c.nextHops(['198.51.100.2'], 2);
  t.equal(c.size, 2);
  await c.nextHops(['203.0.113.2', '198.51.100.2'], 3);
  t.equal(calls.length, 3, 'the two newest are held');
  await c.nextHops(['192.0.2.10'], 4);
  t.same(calls[3], ['192.0.2.10'], 'the oldest was dropped');
  t.end();
});

t.test('a destination without a route and a lookup that fails: absent, counted, not cached', async (t) => {
  const { lookup, calls } = recording();
  const c = new NextHopCache(lookup);
  const got = await c.nextHops(['192.0.2.10', '192.0.2.99'], 0);
  t.same([...got.keys()], ['192.0.2.10']);
  t.same(c.counters, { runs: 1, hits: 0, failures: 1 });
  t.equal(c.lastError, undefined, 'no route is not an error of ip');
  await c.nextHops(['192.0.2.99'], 1);
  t.same(calls[1], ['192.0.2.99'], 'a missing answer is asked for again');

  let fail = true;
  const broken = new NextHopCache(async (a) => {
    if (fail) throw new Error('`ip -j -force -batch -` failed (exit -1): ip: not found (Debian package: iproute2)');
    return lookup(a);
  });
  const none = await broken.nextHops(['192.0.2.10', '2001:db8:2::10'], 0);
  t.equal(none.size, 0, 'resolves empty: the view prints its placeholder');
  t.same(broken.counters, { runs: 1, hits: 0, failures: 2 });
  t.match(broken.lastError, /ip: not found/);
  fail = false;
  t.same([...(await broken.nextHops(['192.0.2.10'], 1)).entries()], [['192.0.2.10', '203.0.113.2']], 'the next view asks again');
  t.equal(broken.lastError, undefined);
  t.end();
});
