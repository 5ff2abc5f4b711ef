import t from 'tap';
import { engineConfigFor, parseConfig } from '../../src/config/load.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { ttlFor } from '../../src/engine/engine-config.js';
import type { FlowTuple } from '../../src/packet/types.js';
import { TCP_SYN } from '../../src/packet/types.js';
import { configErrors } from '../lib/config-errors.js';

const IF: Record<number, string> = { 2: 'veth-c', 3: 'veth-s', 4: 'veth-d' };
const ifname = (i: number) => IF[i] ?? `if${i}`;
const tcp = (src: string, dst: string, dport: number, sport = 40000): FlowTuple => ({ family: src.includes(':') ? 6 : 4, proto: 6, src, dst, sport, dport });

const POLICIES = `
config firewall address
    edit "lan"
        set subnet 198.51.100.0 255.255.255.0
    next
    edit "web1"
        set subnet 203.0.113.2/32
    next
    edit "range"
        set type iprange
        set start-ip 203.0.113.10
        set end-ip 203.0.113.20
    next
end
config firewall address6
    edit "lan6"
        set ip6 2001:db8:100::/64
    next
end
config firewall addrgrp
    edit "servers"
        set member "web1" "range"
    next
end
config firewall service custom
    edit "web-alt"
        set tcp-portrange 8080-8081 8443
    next
    edit "iperf"
        set tcp-portrange 5201
        set udp-portrange 5201
    next
end
config firewall policy
    edit 10
        set name "no-telnet"
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service "TELNET"
        set action deny
    next
    edit 20
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "lan"
        set dstaddr "servers"
        set srcaddr6 "lan6"
        set dstaddr6 "all"
        set service "HTTP" "web-alt" "PING" "PING6"
        set action accept
        set logtraffic all
    next
    edit 30
        set status disable
        set srcintf "any"
        set dstintf "any"
        set srcaddr "all"
        set dstaddr "all"
        set service "ALL"
        set action accept
    next
    edit 40
        set srcintf "any"
        set dstintf "any"
        set srcaddr "lan"
        set dstaddr "all"
        set service "iperf"
        set action accept
        set logtraffic disable
        set session-ttl 120
    next
end
`;

t.test('policies: first match in order, addresses, groups, ranges, services, interfaces, implicit deny', (t) => {
  const cfg = parseConfig(POLICIES, 'p.conf');
  t.equal(cfg.policyDefaulted, false);
  const pol = engineConfigFor(cfg, ifname).policy;
  const C = '198.51.100.2';
  t.same(pol(tcp(C, '203.0.113.2', 23), 2, 3), { policyId: 10, action: 'deny', logTraffic: true, vd: 0 }, 'deny rule first');
  t.same(pol(tcp(C, '203.0.113.2', 80), 2, 3), { policyId: 20, action: 'accept', logTraffic: true, vd: 0 });
  t.equal(pol(tcp(C, '203.0.113.15', 8443), 2, 3).policyId, 20, 'range member of the group, custom service');
  t.equal(pol(tcp(C, '203.0.113.21', 80), 2, 3).policyId, 0, 'outside the range: implicit deny');
  t.equal(pol(tcp(C, '203.0.113.2', 80), 3, 2).policyId, 0, 'wrong interfaces');
  t.equal(pol(tcp('192.0.2.1', '203.0.113.2', 80), 2, 3).policyId, 0, 'source not in lan');
  t.same(pol(tcp(C, '203.0.113.2', 5201), 4, 4), { policyId: 40, action: 'accept', logTraffic: false, vd: 0, sessionTtl: 120 }, 'any interface, session-ttl');
  t.equal(pol({ family: 4, proto: 17, src: C, dst: '192.0.2.9', sport: 1, dport: 5201 }, 2, 3).policyId, 40);
  t.equal(pol(tcp(C, '203.0.113.2', 22), 2, 3).action, 'deny', 'disabled policy 30 does not match');
  const ping = { family: 4 as const, proto: 1, src: C, dst: '203.0.113.2', sport: 7, dport: 0 };
  t.equal(pol(ping, 2, 3, 8).policyId, 20, 'PING is echo request');
  t.equal(pol(ping, 2, 3, 13).policyId, 0, 'timestamp request is not PING');
  t.equal(pol(tcp('2001:db8:100::2', '2001:db8:113::2', 80), 2, 3).policyId, 20, 'IPv6 via srcaddr6/dstaddr6');
  t.equal(pol(tcp('2001:db8:200::2', '2001:db8:113::2', 80), 2, 3).policyId, 0);
  t.end();
});

t.test('the engine stores the matched policy id and uses the policy session-ttl', (t) => {
  const cfg = parseConfig(POLICIES, 'p.conf');
  const e = new SessionEngine(engineConfigFor(cfg, ifname));
  const mk = (dport: number) => ({ indev: 2, outdev: 3, mark: 0, decoded: { ok: true as const, tuple: tcp('198.51.100.2', '203.0.113.2', dport), length: 60, tcpFlags: TCP_SYN, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: 20, fragment: false } });
  t.equal(e.handlePacket(mk(80), 0).session!.policyId, 20);
  t.equal(e.handlePacket(mk(23), 0).reason, 'policy-deny:10');
  t.equal(e.handlePacket(mk(25), 0).reason, 'policy-deny:0');
  const s = e.handlePacket(mk(5201), 0).session!;
  t.same([s.policyId, s.ttl, s.logTraffic], [40, 120, false]);
  t.end();
});

t.test('no policy configured: one accept-all policy, id 1', (t) => {
  const cfg = parseConfig('', 'empty.conf');
  t.equal(cfg.policyDefaulted, true);
  t.same(engineConfigFor(cfg, ifname).policy(tcp('198.51.100.2', '203.0.113.2', 1), 2, 3), { policyId: 1, action: 'accept', logTraffic: true, vd: 0 });
  t.end();
});

t.test('implicit-policy accept in system settings', (t) => {
  const cfg = parseConfig(`config system settings
  set implicit-policy accept
end
config firewall policy
end`, 'x.conf');
  t.same(engineConfigFor(cfg, ifname).policy(tcp('198.51.100.2', '203.0.113.2', 1), 2, 3), { policyId: 0, action: 'accept', logTraffic: false, vd: 0 });
  t.end();
});

const VDOMS = `
config global
    config system interface
        edit "veth-c"
            set vdom "root"
        next
        edit "veth-s"
            set vdom "root"
        next
        edit "veth-d"
            set vdom "lab"
        next
    end
    config system global
        set tcp-halfopen-timer 5
    end
end
config vdom
    edit root
        config system session-ttl
            set default 1800
        end
        config firewall policy
            edit 1
                set srcintf "veth-c"
                set dstintf "veth-s"
                set srcaddr "all"
                set dstaddr "all"
                set service "ALL"
                set action accept
            next
        end
    next
    edit lab
        config system session-ttl
            set default 600
            config port
                edit 1
                    set protocol 17
                    set timeout 30
                    set start-port 53
                    set end-port 53
                    set refresh-direction outgoing
                next
            end
        end
        config firewall policy
            edit 7
                set srcintf "veth-d"
                set dstintf "veth-s"
                set srcaddr "all"
                set dstaddr "all"
                set service "DNS"
                set action accept
            next
        end
    next
end
`;

t.test('VDOMs: interfaces pick the VDOM, each with its own policies and session-ttl', (t) => {
  const cfg = parseConfig(VDOMS, 'v.conf');
  t.same(cfg.vdomNames, ['root', 'lab']);
  t.same(cfg.policies.interfaceVdom, { 'veth-c': 0, 'veth-s': 0, 'veth-d': 1 });
  const ec = engineConfigFor(cfg, ifname);
  t.equal(ec.tcpHalfOpenTimer, 5);
  const dns = { family: 4 as const, proto: 17, src: '192.0.2.2', dst: '203.0.113.2', sport: 3333, dport: 53 };
  t.same(ec.policy(dns, 4, 3), { policyId: 7, action: 'accept', logTraffic: true, vd: 1 });
  t.same(ec.policy(dns, 2, 3), { policyId: 1, action: 'accept', logTraffic: true, vd: 0 });
  t.same(ec.policy(tcp('192.0.2.2', '203.0.113.2', 80), 4, 3), { policyId: 0, action: 'deny', logTraffic: false, vd: 1 }, "lab's implicit deny");
  t.same(ttlFor(ec, dns, 1), { timeout: 30, refreshDir: 'outgoing', fromRule: true });
  t.same(ttlFor(ec, tcp('192.0.2.2', '203.0.113.2', 80), 1), { timeout: 600, refreshDir: 'both', fromRule: false });
  t.same(ttlFor(ec, dns, 0), { timeout: 1800, refreshDir: 'both', fromRule: false });
  t.end();
});

const errorsOf = (text: string) => configErrors(text, 'e.conf');

t.test('references and placement errors carry line and column', (t) => {
  t.same(errorsOf(`config firewall address
    edit "bad"
        set subnet 198.51.100.0 255.0.255.0
    next
end
config firewall policy
    edit 1
        set srcintf "any"
        set dstintf "any"
        set srcaddr "nosuch"
        set dstaddr "all"
        set service "HTTP" "NOPE"
        set action accept
    next
    edit x
    next
end`), [
    "e.conf:3:20: address 'bad': subnet must be '<ip> <mask>' or '<ip>/<prefix>', got '198.51.100.0 255.0.255.0'",
    "e.conf:10:21: policy 1: unknown address 'nosuch' in srcaddr",
    "e.conf:12:28: policy 1: unknown service 'NOPE'",
    "e.conf:15:10: 'config firewall policy': entry id must be a number, got 'x'",
  ]);
  t.same(errorsOf(`config global
    config firewall policy
    end
end
config vdom
    edit lab
        config system global
        end
    next
end
config global
    config system interface
        edit "eth9"
            set vdom "nowhere"
        next
    end
end`), [
    "e.conf:2:5: 'config firewall policy' belongs inside 'config vdom' / 'edit <vdom>', not 'config global'",
    "e.conf:7:9: 'config system global' is global: put it in 'config global'",
    "e.conf:14:22: interface 'eth9': unknown VDOM 'nowhere' (defined: root, lab)",
  ]);
  t.end();
});
