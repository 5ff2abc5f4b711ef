import t from 'tap';
import { applyFilterArgs, compileFilter, formatFilter, isEmptyFilter, type SessionFilter } from '../../src/control/filter.js';
import type { SessionView } from '../../src/control/session-view.js';

function view(over: Partial<SessionView> & { src?: string; dst?: string; sport?: number; dport?: number; proto?: number } = {}): SessionView {
  const proto = over.proto ?? 6;
  const tuple = { family: 4 as const, proto, src: over.src ?? '198.51.100.2', dst: over.dst ?? '203.0.113.2', sport: over.sport ?? 40000, dport: over.dport ?? 80 };
  return {
    serial: 1, proto, proto_state: '01', duration: 5, expire: 3595, timeout: 3600, refresh_dir: 'both', policy_id: 1, vd: 0, offloaded: false,
    org: { bytes: 0, packets: 0, allow_err: 0 }, reply: { bytes: 0, packets: 0, allow_err: 0 }, tx_speed_bps: 0, rx_speed_bps: 0,
    orig_tuple: tuple, reply_tuple: { ...tuple, src: tuple.dst, dst: tuple.src, sport: tuple.dport, dport: tuple.sport },
    dev_org: [2, 3], dev_reply: [3, 2], use: 3, gwy: ['0.0.0.0', '0.0.0.0'], log: true, ...over,
  };
}

const ifname = (i: number) => ({ 2: 'veth-c', 3: 'veth-s' })[i] ?? `if${i}`;
const set = (...cmds: string[][]): SessionFilter => cmds.reduce((f, c) => applyFilterArgs(f, c), {} as SessionFilter);
const matches = (f: SessionFilter, v: SessionView) => compileFilter(f)(v, ifname);

t.test('an empty filter matches everything and prints the vendor listing of any', (t) => {
  t.ok(isEmptyFilter({}));
  t.ok(matches({}, view()));
  t.equal(formatFilter({}), `session filter:
\tvd: any
\tsintf: any
\tdintf: any
\tproto: any
\tproto-state: any
\tsource ip: any
\tNAT'd source ip: any
\tdest ip: any
\tsource port: any
\tNAT'd source port: any
\tdest port: any
\tpolicy id: any
\texpire: any
\tduration: any
\tstate1: any
\tstate2: any
`);
  t.end();
});

t.test('source range, single values, negate and the listing', (t) => {
  const f = set(['src', '198.51.100.1', '198.51.100.9'], ['dport', '80'], ['proto', '6'], ['negate', 'dport']);
  t.same(f, { src: { from: '198.51.100.1', to: '198.51.100.9' }, dport: { from: 80, to: 80 }, proto: { from: 6, to: 6 }, negate: ['dport'] });
  t.equal(matches(f, view({ src: '198.51.100.9', dport: 443 })), true, 'last address of the range, dport negated');
  t.equal(matches(f, view({ src: '198.51.100.9', dport: 80 })), false, 'dport 80 is excluded by the negation');
  t.equal(matches(f, view({ src: '198.51.100.10', dport: 443 })), false, 'outside the range');
  t.equal(matches(f, view({ src: '198.51.100.1', dport: 443, proto: 17 })), false, 'proto differs');
  t.equal(formatFilter(f), `session filter:
\tvd: any
\tsintf: any
\tdintf: any
\tproto: 6-6
\tproto-state: any
\tsource ip: 198.51.100.1-198.51.100.9
\tNAT'd source ip: any
\tdest ip: any
\tsource port: any
\tNAT'd source port: any
\tdest port: 80-80 (negated)
\tpolicy id: any
\texpire: any
\tduration: any
\tstate1: any
\tstate2: any
`);
  t.end();
});

t.test('dst, ports, policy, vd, interfaces, NAT source, expire, duration', (t) => {
  t.equal(matches(set(['dst', '203.0.113.2']), view()), true);
  t.equal(matches(set(['dst', '203.0.113.3']), view()), false);
  t.equal(matches(set(['sport', '39000', '41000']), view()), true);
  t.equal(matches(set(['sport', '40001', '41000']), view()), false);
  t.equal(matches(set(['policy', '1']), view()), true);
  t.equal(matches(set(['policy', '2']), view()), false);
  t.equal(matches(set(['vd', '0']), view()), true);
  t.equal(matches(set(['vd', '1']), view()), false);
  t.same(set(['vd', '1'], ['vd', '-1']), {}, 'vd -1 matches all');
  t.equal(matches(set(['sintf', 'veth-c'], ['dintf', 'veth-s']), view()), true);
  t.equal(matches(set(['sintf', 'veth-s']), view()), false);
  const natted = view({ snat: { addr: '203.0.113.10', port: 62458 } });
  t.equal(matches(set(['nsrc', '203.0.113.10'], ['nport', '62458']), natted), true);
  t.equal(matches(set(['nsrc', '203.0.113.10']), view()), false, 'no SNAT: the original source is the NAT source');
  t.equal(matches(set(['expire', '3000', '3600']), view()), true);
  t.equal(matches(set(['duration', '6', '10']), view()), false);
  t.end();
});

t.test('IPv6 ranges compare within their family only', (t) => {
  const f = set(['src', '2001:db8::1', '2001:db8::ff']);
  const v6 = view({ orig_tuple: { family: 6, proto: 6, src: '2001:db8::10', dst: '2001:db8:1::2', sport: 1, dport: 80 } });
  t.equal(matches(f, v6), true);
  t.equal(matches(f, view()), false, 'an IPv4 session is outside an IPv6 range');
  t.end();
});

t.test('clear, clear <field>, negate of an unset field, errors', (t) => {
  const f = set(['src', '198.51.100.1'], ['dport', '80'], ['negate', 'dport']);
  t.same(applyFilterArgs(f, ['clear']), {});
  t.same(applyFilterArgs(f, ['clear', 'dport']), { src: { from: '198.51.100.1', to: '198.51.100.1' } });
  t.equal(matches(set(['negate', 'sport']), view()), true, 'negating an unset field still matches');
  t.same(applyFilterArgs(f, []), f, 'no argument changes nothing');
  t.throws(() => set(['src', '198.51.100.9', '198.51.100.1']), /range 198.51.100.9-198.51.100.1 is reversed/);
  t.throws(() => set(['src', '198.51.100.1', '2001:db8::1']), /different address families/);
  t.throws(() => set(['src', 'host']), /'host' is not an IPv4 or IPv6 address/);
  t.throws(() => set(['dport', '70000']), /dport: 70000 is out of range 0-65535/);
  t.throws(() => set(['dport', '80', '90', '100']), /too many values/);
  t.throws(() => set(['bogus', '1']), /unknown filter field 'bogus'/);
  t.throws(() => set(['negate', 'bogus']), /negate: expected a field/);
  t.end();
});
