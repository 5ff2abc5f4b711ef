// A change of the policies under running sessions (firewall-session-dirty): with check-all every
// session is looked up again; check-new leaves them; check-policy-option asks each policy.

import t, { type Test } from 'tap';
import { engineConfigFor, parseConfig, policyFingerprint } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import type { Effect } from '../../src/engine/types.js';
import { buildIcmpEcho } from '../../src/packet/build.js';
import { packetOf, tcpSyn, TcpConversation } from '../lib/flows.js';
import { configErrors } from '../lib/config-errors.js';

const IF: Record<number, string> = { 2: 'veth-c', 3: 'veth-s' };
const ifname = (i: number) => IF[i] ?? `if${i}`;
const C = '198.51.100.2', S = '203.0.113.2';

const policy = (id: number, service: string, extra = '') => `
    edit ${id}
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service ${service}
        set action accept
        set logtraffic all${extra}
    next`;
const conf = (policies: string, settings = '') => `
config firewall service custom
    edit "web-alt"
        set tcp-portrange 8080
    next
end
${settings ? `config system settings\n    set firewall-session-dirty ${settings}\nend` : ''}
config firewall policy${policies}
end
`;
const BEFORE = conf(policy(5, '"HTTP" "FTP" "PING"') + policy(6, '"web-alt"'));

/** An engine running `BEFORE` with an HTTP, an 8080, a ping and an FTP control session with a data child and a pending expectation. */
function running(t: Test) {
  const e = new SessionEngine(engineConfigFor(parseConfig(BEFORE, 'before.conf'), ifname));
  const http = tcpSyn(e, { addr: C, port: 41000 }, { addr: S, port: 80 }, 1000).session!;
  const alt = tcpSyn(e, { addr: C, port: 41001 }, { addr: S, port: 8080 }, 1000).session!;
  const ping = e.handlePacket(packetOf(buildIcmpEcho({ src: C, dst: S, id: 77 })), 1000).session!;
  const ctl = new TcpConversation(e, { addr: C, port: 41002 }, { addr: S, port: 21 });
  const ftp = ctl.open(1000).session!;
  ctl.send('server', '220 ready\r\n', 1100);
  ctl.send('client', 'PASV\r\n', 1200);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,156,64).\r\n', 1300);
  const data = tcpSyn(e, { addr: C, port: 41003 }, { addr: S, port: 40000 }, 1400).session!;
  ctl.send('client', 'PASV\r\n', 1500);
  ctl.send('server', '227 Entering Passive Mode (203,0,113,2,156,65).\r\n', 1600);
  t.same([http.policyId, alt.policyId, ping.policyId, ftp.policyId, data.parent], [5, 6, 5, 5, ftp.serial], 'the sessions before the change');
  t.equal(e.expectations.size, 1, 'one expectation pending');
  return { e, http, alt, ping, ftp, data };
}

const change = (e: SessionEngine, text: string) => { e.config = engineConfigFor(parseConfig(text, 'after.conf'), ifname); };
const ends = (fx: Effect[]) => fx.flatMap((x) => (x.kind === 'session-end' ? [[x.session.serial, x.reason]] : [])).sort();
const deletes = (fx: Effect[]) => fx.flatMap((x) => (x.kind === 'ct-delete' ? [x.serial] : [])).sort();

t.test('check-all (the default): sessions no policy admits end as dirty, the others move to the policy that admits them', (t) => {
  const { e, http, alt, ping, ftp } = running(t);
  // HTTP moves to a new policy 8 that does not log; web-alt and FTP are no longer allowed.
  change(e, conf(policy(5, '"PING"') + policy(8, '"HTTP"').replace('logtraffic all', 'logtraffic disable')));
  const r = e.recheckPolicies(5000);
  t.same(r.report, { checked: 4, ended: 2, children: 1, moved: 1 }, 'the FTP data child is not looked up itself');
  const data = e.children(ftp.serial);
  t.same(data, [], 'the child is gone with its parent');
  t.same(ends(r.effects), [[alt.serial, 'dirty'], [ftp.serial, 'dirty'], [ftp.serial + 1, 'dirty']].sort(), 'the 8080 session, the FTP control session and its data child end as dirty');
  t.same(deletes(r.effects), [alt.serial, ftp.serial, ftp.serial + 1].sort(), 'their kernel entries are deleted: their next packets meet the policy');
  t.match(r.effects.filter((x) => x.kind === 'expect-end'), [{ reason: 'parent-closed' }], 'the pending expectation closes with its parent');
  t.equal(e.expectations.size, 0);
  t.match(e.bySerialNumber(http.serial), { policyId: 8, logTraffic: false }, 'the HTTP session belongs to policy 8 now');
  t.match(e.bySerialNumber(ping.serial), { policyId: 5 }, 'the ping session is still policy 5\'s (PING is an echo request)');
  t.equal(e.size, 2);
  t.equal(e.counters.sessionsEnded.dirty, 3);
  t.same(e.recheckPolicies(6000).report, { checked: 2, ended: 0, children: 0, moved: 0 }, 'a second look changes nothing');
  t.end();
});

t.test('an unchanged policy set keeps every session as it is', (t) => {
  const { e } = running(t);
  change(e, BEFORE);
  const r = e.recheckPolicies(5000);
  t.same(r.report, { checked: 4, ended: 0, children: 0, moved: 0 });
  t.same(r.effects, []);
  t.equal(e.size, 5);
  t.end();
});

t.test('check-new: a policy change applies to new sessions only', (t) => {
  const { e, alt } = running(t);
  change(e, conf(policy(5, '"PING"'), 'check-new'));
  const r = e.recheckPolicies(5000);
  t.same(r.report, { checked: 0, ended: 0, children: 0, moved: 0 });
  t.equal(e.size, 5);
  t.match(e.bySerialNumber(alt.serial), { policyId: 6 });
  t.equal(tcpSyn(e, { addr: C, port: 41010 }, { addr: S, port: 8080 }, 5000).verdict, 'drop', 'a new 8080 connection is denied');
  t.end();
});

t.test('check-policy-option: each policy says, the implicit policy and a removed id check all', (t) => {
  const { e, http, alt } = running(t);
  // Policy 6 now admits nothing of 8080 but is check-new: its session stays. Policy 5 lost HTTP.
  change(e, conf(policy(5, '"FTP" "PING"') + policy(6, '"SSH"', '\n        set firewall-session-dirty check-new'), 'check-policy-option'));
  const r = e.recheckPolicies(5000);
  t.same(r.report, { checked: 3, ended: 1, children: 0, moved: 0 });
  t.same(ends(r.effects), [[http.serial, 'dirty']]);
  t.match(e.bySerialNumber(alt.serial), { policyId: 6 }, 'the check-new policy\'s session is left be');
  t.end();
});

t.test('the keys are checked like every other', (t) => {
  t.match(configErrors(conf(policy(5, '"HTTP"'), 'check-some'), 'x.conf'), ["x.conf:8:32: 'firewall-session-dirty' in 'config system settings': expected one of check-all|check-new|check-policy-option, got 'check-some'"]);
  t.match(configErrors(conf(policy(5, '"HTTP"', '\n        set firewall-session-dirty check-policy-option')), 'y.conf'), [/^y\.conf:\d+:\d+: 'firewall-session-dirty' in .*expected one of check-all\|check-new, got 'check-policy-option'/]);
  t.end();
});

t.test('the fingerprint a reload compares: equal for the same policies, different when one changes', (t) => {
  const a = parseConfig(BEFORE, 'a.conf');
  t.equal(policyFingerprint(a), policyFingerprint(parseConfig(BEFORE + '\nconfig system global\n    set tcp-timewait-timer 2\nend\n', 'b.conf')), 'another block changed');
  t.not(policyFingerprint(a), policyFingerprint(parseConfig(BEFORE.replace('tcp-portrange 8080', 'tcp-portrange 8081'), 'c.conf')), 'a service changed');
  t.end();
});
