// `ip -j route get` answers: a gateway, a directly connected destination, IPv4 and IPv6, and
// the lines a batch prints around destinations that have no route.

import t from 'tap';
import { parseRouteGet } from '../../src/kernel/routes.js';
import { nextHopOf } from '../../src/control/next-hops.js';

// What `ip -j -force -batch -` printed on a router with 203.0.113.1/24 and 2001:db8:113::1/64 on
// d0, routes to 192.0.2.0/24 via 203.0.113.2 and 2001:db8:2::/64 via 2001:db8:113::2, asked for
// seven destinations of which one (198.51.100.9) had no route: it printed nothing on stdout.
const BATCH = [
  '[{"dst":"203.0.113.5","dev":"d0","prefsrc":"203.0.113.1","flags":[],"uid":0,"cache":[]}]',
  '[{"dst":"192.0.2.10","gateway":"203.0.113.2","dev":"d0","prefsrc":"203.0.113.1","flags":[],"uid":0,"cache":[]}]',
  '[{"dst":"2001:db8:113::5","from":"::","dev":"d0","protocol":"kernel","prefsrc":"2001:db8:113::1","metric":256,"flags":[],"pref":"medium"}]',
  '[{"dst":"2001:db8:2::10","from":"::","gateway":"2001:db8:113::2","dev":"d0","prefsrc":"2001:db8:113::1","metric":1024,"flags":[],"pref":"medium"}]',
  '[{"type":"local","dst":"203.0.113.1","dev":"lo","prefsrc":"203.0.113.1","flags":[],"uid":0,"cache":["local"]}]',
  '',
].join('\n');

t.test('gateway, directly connected and local answers, IPv4 and IPv6', (t) => {
  const routes = parseRouteGet(BATCH);
  t.same([...routes.keys()], ['203.0.113.5', '192.0.2.10', '2001:db8:113::5', '2001:db8:2::10', '203.0.113.1']);
  t.same(routes.get('192.0.2.10'), { dev: 'd0', gateway: '203.0.113.2' });
  t.same(routes.get('203.0.113.5'), { dev: 'd0' });
  t.same(routes.get('2001:db8:2::10'), { dev: 'd0', gateway: '2001:db8:113::2' });
  t.same(routes.get('2001:db8:113::5'), { dev: 'd0' });
  t.equal(routes.get('198.51.100.9'), undefined, 'no route: no answer');

  const hop = (dst: string) => nextHopOf(dst, routes.get(dst)!);
  t.equal(hop('192.0.2.10'), '203.0.113.2', 'via a gateway: the gateway');
  t.equal(hop('203.0.113.5'), '203.0.113.5', 'directly connected: the destination itself');
  t.equal(hop('2001:db8:2::10'), '2001:db8:113::2');
  t.equal(hop('2001:db8:113::5'), '2001:db8:113::5');
  t.equal(hop('203.0.113.1'), '203.0.113.1', 'the router itself: no gateway either');
  t.end();
});

t.test('a policy-routed answer (from, iif) reads the same', (t) => {
  const routes = parseRouteGet('[{"dst":"2001:db8:2::10","from":"2001:db8:113::7","gateway":"2001:db8:113::2","dev":"d0","metric":1024,"flags":[],"iif":"d1","pref":"medium"}]');
  t.same(routes.get('2001:db8:2::10'), { dev: 'd0', gateway: '2001:db8:113::2' });
  t.end();
});

t.test('what is not an answer is passed over', (t) => {
  t.same([...parseRouteGet('').entries()], []);
  t.same([...parseRouteGet('RTNETLINK answers: Network is unreachable\nCommand failed -:3\n').entries()], []);
  t.same([...parseRouteGet('[{"dst":"192.0.2.1"\n[]\n{"dst":"192.0.2.1","dev":"d0"}\n[{"dst":"192.0.2.2"}]\n[{"dst":"192.0.2.3","dev":"d0","gateway":7}]\n').entries()],
    [['192.0.2.3', { dev: 'd0' }]], 'cut lines, objects outside an array, answers without dev; a gateway that is not text is ignored');
  t.end();
});
