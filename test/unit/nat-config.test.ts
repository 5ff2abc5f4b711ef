// NAT in vendor syntax: pools, VIPs and the policy flags read into the kernel's nat rules and the
// policies' verdict marks; every mistake is reported at its line and column.

import t from 'tap';
import { parseConfig } from '../../src/config/load.js';
import { renderNat, renderTable, resolveRulesetOptions } from '../../src/kernel/ruleset.js';
import { configErrors } from '../lib/config-errors.js';

const NAT = `config firewall ippool
    edit "pool1"
        set startip 192.0.2.100
        set endip 192.0.2.103
    next
end
config firewall vip
    edit "web-in"
        set extip 192.0.2.50
        set mappedip "198.51.100.80"
        set extintf "veth-s"
        set portforward enable
        set protocol tcp
        set extport 8080
        set mappedport 80
    next
    edit "all-in"
        set extip 192.0.2.51
        set mappedip "198.51.100.81-198.51.100.82"
    next
end
`;

const policy = (id: number, extra: string, dst = 'all') => `config firewall policy
    edit ${id}
        set srcintf "any"
        set dstintf "any"
        set srcaddr "all"
        set dstaddr "${dst}"
        set service "ALL"
        set action accept
${extra}    next
end
`;

t.test('pools, VIPs and policy NAT read into nat rules and verdict marks', (t) => {
  const cfg = parseConfig(NAT + policy(3, '', 'web-in') + policy(1, '        set nat enable\n') + policy(2, '        set nat enable\n        set ippool enable\n        set poolname "pool1"\n') + policy(4, ''), 'nat.conf');
  // The default offload bit is 0x00100000 (bit 20): the NAT index sits in bits 12-19.
  t.same(cfg.nat.layout, { shift: 12, mask: 0x000ff000 });
  t.equal(cfg.nat.masquerade, true);
  t.same(cfg.nat.pools, [{ index: 2, name: 'pool1', start: '192.0.2.100', end: '192.0.2.103' }]);
  t.same(cfg.nat.vips, [
    { name: 'web-in', extip: '192.0.2.50', mappedip: '198.51.100.80', extintf: 'veth-s', portForward: { proto: 'tcp', ext: { lo: 8080, hi: 8080 }, mapped: 80 } },
    { name: 'all-in', extip: '192.0.2.51', mappedip: '198.51.100.81-198.51.100.82' },
  ]);
  const rules = cfg.policies.vdoms[0].rules;
  t.same(rules.map((r) => r.natMark), [undefined, 0x1000, 0x2000, undefined]);
  // A policy naming the VIP matches its mapped address.
  const lookup = cfg.engine.policy;
  const tuple = (dst: string) => ({ family: 4 as const, proto: 6, src: '203.0.113.2', dst, sport: 2043, dport: 80 });
  t.equal(lookup(tuple('198.51.100.80'), 1, 2).policyId, 3);
  t.equal(lookup(tuple('198.51.100.80'), 1, 2).natMark, undefined);
  t.equal(lookup(tuple('203.0.113.9'), 1, 2).natMark, 0x1000, 'policy 1 matches first and masquerades');
  t.end();
});

t.test('the nat chains render exactly', (t) => {
  const cfg = parseConfig(NAT + policy(1, '        set nat enable\n') + policy(2, '        set nat enable\n        set ippool enable\n        set poolname "pool1"\n'), 'nat.conf');
  t.equal(renderNat(cfg.nat).join('\n'), [
    'chain nat_prerouting {',
    '\ttype nat hook prerouting priority dstnat; policy accept;',
    '\tiifname "veth-s" ip daddr 192.0.2.50 tcp dport 8080 dnat ip to 198.51.100.80:80 comment "vip web-in"',
    '\tip daddr 192.0.2.51 dnat ip to 198.51.100.81-198.51.100.82 comment "vip all-in"',
    '}',
    'chain nat_postrouting {',
    '\ttype nat hook postrouting priority srcnat; policy accept;',
    '\tmeta mark & 0x000ff000 == 0x00001000 masquerade',
    '\tmeta nfproto ipv4 meta mark & 0x000ff000 == 0x00002000 snat ip to 192.0.2.100-192.0.2.103 comment "ippool pool1"',
    '}',
  ].join('\n'));
  const table = renderTable(resolveRulesetOptions({ nat: cfg.nat }), 'xt-nfqueue');
  t.match(table, '\tchain nat_postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n');
  t.ok(table.endsWith('\t}\n}\n'), 'inside the table');
  t.notMatch(renderTable(resolveRulesetOptions({ nat: parseConfig('', 'x').nat }), 'xt-nfqueue'), 'nat_', 'no NAT configured: no nat chains');
  t.end();
});

t.test('NAT mistakes are reported at their position', (t) => {
  t.same(configErrors(NAT + policy(1, '        set nat enable\n        set ippool enable\n        set poolname "nope"\n'), 'n.conf'),
    ["n.conf:32:22: policy 1: unknown ippool 'nope' in poolname"]);
  t.same(configErrors(NAT + policy(1, '', 'no-vip'), 'n.conf'), ["n.conf:27:21: policy 1: unknown address or vip 'no-vip' in dstaddr"]);
  t.same(configErrors(policy(1, '        set ippool enable\n'), 'n.conf'), ["n.conf:9:20: policy 1: ippool needs 'set nat enable'"]);
  t.same(configErrors(policy(1, '        set nat enable\n        set ippool enable\n'), 'n.conf'), ['n.conf:10:20: policy 1: ippool enable needs exactly one poolname']);
  t.same(configErrors('config firewall ippool\n    edit "p"\n        set startip 192.0.2.9\n        set endip 192.0.2.1\n    next\nend\n', 'n.conf'),
    ['n.conf:3:21: ippool \'p\': startip/endip must be IPv4 addresses with startip <= endip']);
  t.same(configErrors('config firewall vip\n    edit "v"\n        set extip 192.0.2.50\n        set mappedip "x"\n    next\nend\n', 'n.conf'),
    ["n.conf:4:22: vip 'v': mappedip must be an IPv4 address or '<first>-<last>' range, got 'x'"]);
  t.same(configErrors('config firewall vip\n    edit "v"\n        set extip 192.0.2.50\n        set mappedip 198.51.100.80\n        set portforward enable\n        set extport 70000\n    next\nend\n', 'n.conf'),
    ["n.conf:6:21: vip 'v': extport must be a port or '<lo>-<hi>' within 1-65535 with portforward enabled, got '70000'"]);
  t.match(configErrors('config firewall ippool\n    edit "p"\n        set type one-to-one\n    next\nend\n', 'n.conf').join('\n'), /n\.conf:3:18: 'type' .*expected one of overload, got 'one-to-one'/, 'only overload pools');
  t.same(configErrors('config system nfsessiond\n    set offload-mark 0x10\nend\n' + policy(1, '        set nat enable\n'), 'n.conf'),
    ['n.conf:2:22: offload-mark 0x10 leaves no room below it for the 8 NAT mark bits (use 0x00000100 or higher); a policy uses nat']);
  t.end();
});
