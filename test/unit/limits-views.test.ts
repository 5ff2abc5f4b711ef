// Text layouts of diagnose user list, diagnose test proxyworker 4 and diagnose sys conserve.

import t from 'tap';
import { SessionEngine } from '../../src/engine/engine.js';
import { defaultEngineConfig } from '../../src/engine/engine-config.js';
import { defaultLimits } from '../../src/engine/limits.js';
import { formatConserve, formatProxyWorker, formatUsers, proxyWorkerOf, runningTime, usersOf } from '../../src/control/limits-format.js';
import { parseMeminfo } from '../../src/kernel/meminfo.js';
import type { Packet } from '../../src/engine/types.js';
import { TCP_SYN, type FlowTuple } from '../../src/packet/types.js';

function syn(src: string, sport: number, dport: number, len = 60): Packet {
  const tuple: FlowTuple = { family: src.includes(':') ? 6 : 4, proto: 6, src, dst: src.includes(':') ? '2001:db8::2' : '203.0.113.2', sport, dport };
  return { indev: 2, outdev: 3, mark: 0, decoded: { ok: true, tuple, length: len, tcpFlags: TCP_SYN, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: 0, fragment: false } };
}

t.test('diagnose user list: the vendor record per user, idle expiry counting down', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ offload: false, limits: defaultLimits({ userIdleTimeout: 3600 }) }));
  e.handlePacket(syn('198.51.100.2', 1, 80, 60), 1000);
  e.handlePacket(syn('198.51.100.2', 2, 80, 100), 2000);
  e.handlePacket(syn('2001:db8::1', 3, 25, 80), 3000);
  e.clear((s) => s.orig.family === 6, 4000);
  t.equal(formatUsers(usersOf(e, 11_500)), `ID: 1, VDOM: root, IPv4: 198.51.100.2
  user name   : 198.51.100.2
  worker      : 0
  duration    : 10
  auth_type   : IP
  auth_method : None
  pol_id      : 1
  g_id        : 0
  user_based  : 0
  expire      : 3600
  LAN:
    bytes_in=160 bytes_out=0
  WAN:
    bytes_in=0 bytes_out=160
ID: 2, VDOM: root, IPv6: 2001:db8::1
  user name   : 2001:db8::1
  worker      : 0
  duration    : 8
  auth_type   : IP
  auth_method : None
  pol_id      : 1
  g_id        : 0
  user_based  : 0
  expire      : 3593
  LAN:
    bytes_in=80 bytes_out=0
  WAN:
    bytes_in=0 bytes_out=80
Total users: 2
`);
  t.end();
});

t.test('diagnose test proxyworker 4: sections per service in the seed order, exact figures', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ offload: false, maxSessions: 3 }));
  e.handlePacket(syn('198.51.100.2', 1, 80, 2048), 0);
  e.handlePacket(syn('198.51.100.2', 2, 80), 0);
  e.handlePacket(syn('198.51.100.2', 3, 110), 0);
  e.handlePacket(syn('198.51.100.2', 4, 80), 0);
  e.clear((s) => s.orig.sport === 2, 10);
  const text = formatProxyWorker(proxyWorkerOf(e, 104_787.369365));
  const lines = text.split('\n');
  t.same(lines.slice(0, 7), ['Worker[0]', 'HTTP Common', 'Current Connections 1/3', 'Max Concurrent Connections 2', 'SMTP Common', 'Current Connections 0/3', 'Max Concurrent Connections 0']);
  t.ok(lines.includes('Running time (HH:MM:SS:usec) 29:06:27:369365'));
  t.equal(lines[lines.indexOf('Worker Stat') + 3], 'Error Count (accept) 1');
  const http = lines.indexOf('HTTP Stat');
  t.same(lines.slice(http, http + 5), ['HTTP Stat', 'Bytes sent 2 (kb)', 'Bytes received 0 (kb)', 'Error Count (alloc) 0', 'Error Count (accept) 1']);
  t.equal(lines[lines.indexOf('Web response backlog drop 0') + 1], 'SMTP Stat');
  const acct = lines.indexOf('Worker Accounting');
  t.same(lines.slice(acct), [
    'Worker Accounting', 'poll=0/0/0 pollfail=0 cmdb=0 scan=0 acceptor=3',
    'HTTP Accounting', 'setup_ok=2 setup_fail=1 conn_ok=0 conn_inp=0', 'urlfilter=0/0/0 uf_lookupf=0', 'scan=0 clt=0 srv=0',
    'SMTP Accounting', 'setup_ok=0 setup_fail=0 conn_ok=0 conn_inp=0', 'scan=0 suspend=0 resume=0 reject=0 spamadd=0 spamdel=0 clt=0 srv=0',
    'POP3 Accounting', 'setup_ok=1 setup_fail=0 conn_ok=0 conn_inp=0', 'scan=0 clt=0 srv=0',
    'IMAP Accounting', 'setup_ok=0 setup_fail=0 conn_ok=0 conn_inp=0', 'scan=0 clt=0 srv=0',
    'FTP Accounting', 'setup_ok=0 setup_fail=0 conn_ok=0 conn_inp=0', 'scan=0 clt=0 srv=0 datalisten=0 dataclt=0 datasrv=0',
    'NNTP Accounting', 'setup_ok=0 setup_fail=0 conn_ok=0 conn_inp=0', 'scan=0 clt=0 srv=0',
    '',
  ]);
  t.equal(runningTime(0.5), '00:00:00:500000');
  t.end();
});

t.test('diagnose sys conserve and the meminfo sample', (t) => {
  const e = new SessionEngine(defaultEngineConfig({ limits: defaultLimits({ failopenSession: true, failopen: 'one-shot' }) }));
  e.observeMemory(90, 0);
  e.handlePacket(syn('198.51.100.2', 1, 80), 10);
  t.equal(formatConserve(e.admission.view()), `memory conserve mode: on
reasons: memory-red
memory used: 90% (level red)
memory used threshold extreme: 95%
memory used threshold red: 88%
memory used threshold green: 82%
av-failopen-session: enable
av-failopen: one-shot
one-shot: latched (diagnose sys conserve reset)
enter=1 leave=0 refused_limit=0 refused_memory=0 bypassed=1 bypass_packets=0 bypass_flows=1 bypass_evicted=0 one_shot_resets=0
`);
  t.equal(parseMeminfo('MemTotal:        1000000 kB\nMemFree:          100000 kB\nMemAvailable:     123456 kB\n'), 87.7);
  t.equal(parseMeminfo('MemTotal: 1000 kB\nMemFree: 500 kB\n'), 50);
  t.equal(parseMeminfo('nothing'), undefined);
  t.end();
});
