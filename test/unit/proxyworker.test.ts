// get test proxyworker 1 / 4 / 4444 / 99 and diagnose wad user: the views with exact figures, the
// accounting restart, and the CLI against a control socket served by the daemon's own handlers.

import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { buildProgram } from '../../src/cli.js';
import type { DaemonContext } from '../../src/control/context.js';
import { allHandlers } from '../../src/control/handlers/index.js';
import { formatProxyWorker, formatUsers, proxyWorkerOf, usersOf, type ProxyWorkerView } from '../../src/control/limits-format.js';
import { formatProxyMemory, formatProxyVdoms, proxyMemoryOf, proxyVdomsOf, proxyWorkerMode, restartAccounting, sinceRestart } from '../../src/control/proxyworker.js';
import { ControlServer } from '../../src/control/server.js';
import { ControlViews } from '../../src/control/views.js';
import { SessionEngine } from '../../src/engine/engine.js';
import { ACCEPT_ALL, defaultEngineConfig, type EngineConfig } from '../../src/engine/engine-config.js';
import { defaultLimits, type LimitsConfig } from '../../src/engine/limits.js';
import type { Packet } from '../../src/engine/types.js';
import { TCP_ACK, TCP_SYN, type FlowTuple } from '../../src/packet/types.js';

const S = '203.0.113.2';

function pkt(tu: Partial<FlowTuple> & { src: string; dst: string }, flags = TCP_SYN, len = 60): Packet {
  const tuple: FlowTuple = { family: tu.src.includes(':') ? 6 : 4, proto: 6, sport: 40000, dport: 80, ...tu };
  return {
    indev: 2, outdev: 3, mark: 0,
    decoded: { ok: true, tuple, length: len, tcpFlags: flags, icmpType: -1, icmpCode: -1, payloadOffset: 40, payloadLength: Math.max(0, len - 40), fragment: false },
  };
}
const syn = (src: string, sport: number, dport = 80, len = 60) => pkt({ src, dst: src.includes(':') ? '2001:db8::2' : S, sport, dport }, TCP_SYN, len);
const ack = (src: string, sport: number, dport = 80, len = 60) => pkt({ src, dst: S, sport, dport }, TCP_ACK, len);

/** Sources in 192.0.2.0/24 belong to VDOM 1 (dmz); the rest to root. */
function engine(limits: Partial<LimitsConfig> = {}, over: Partial<EngineConfig> = {}): SessionEngine {
  return new SessionEngine(defaultEngineConfig({
    offload: false,
    vdomNames: ['root', 'dmz'],
    policy: (tu) => ({ ...ACCEPT_ALL, vd: tu.src.startsWith('192.0.2.') ? 1 : 0 }),
    limits: defaultLimits(limits),
    ...over,
  }));
}

t.test('selectors: 1, 4, 4444 and 99; anything else is refused naming them', (t) => {
  t.equal(proxyWorkerMode('1'), 1);
  t.equal(proxyWorkerMode('4'), 4);
  t.equal(proxyWorkerMode('4444'), 4444);
  t.equal(proxyWorkerMode('99'), 99);
  const refusal = 'not supported; supported: 1 (memory use), 4 (sessions and accounting per service), 99 (restart of the accounting, sessions stay), 4444 (statistics per VDOM)';
  for (const bad of ['7', '04', 'constructor', '']) t.throws(() => proxyWorkerMode(bad), { message: `proxyworker ${bad}: ${refusal}` }, bad);
  t.end();
});

t.test('1: memory of the process, the conserve-mode sample and what the table holds', (t) => {
  const e = engine({ memoryRed: 88, memoryExtreme: 95, memoryGreen: 82 });
  e.handlePacket(syn('198.51.100.2', 1), 0);
  e.handlePacket(syn('198.51.100.3', 2), 0);
  e.handlePacket(syn('192.0.2.10', 3), 0);
  const mem = { rss: 83_912_704, heapTotal: 52_428_800, heapUsed: 40_960_000, external: 2_098_176, arrayBuffers: 524_800 };
  const v = proxyMemoryOf(e, mem);
  t.same(v, {
    process: { rss: 83_912_704, heap_total: 52_428_800, heap_used: 40_960_000, external: 2_098_176, array_buffers: 524_800 },
    system: { used: 0, level: 'green', red: 88, extreme: 95, green: 82 },
    table: { sessions: 3, expectations: 0, users: 3, failopen_flows: 0 },
  });
  t.equal(formatProxyMemory(v), `Worker[0]
Memory
Resident 81946 (kb)
Heap total 51200 (kb)
Heap used 40000 (kb)
External 2049 (kb)
Array buffers 512 (kb)
System memory used 0% (green; red 88%, extreme 95%, green 82%)
Table
Sessions 3
Expectations 0
Users 3
Fail-open flows 0
`);
  t.end();
});

t.test('4444: sessions, users and their limits per VDOM, live sessions per service', (t) => {
  const e = engine({ users: 0, vdom: [{ session: 0, sessionGuaranteed: 0, users: 0 }, { session: 5, sessionGuaranteed: 2, users: 3 }] });
  e.handlePacket(syn('198.51.100.2', 1, 80), 0);
  e.handlePacket(syn('198.51.100.2', 2, 25), 0);
  e.handlePacket(syn('198.51.100.3', 3, 22), 0);
  e.handlePacket(syn('192.0.2.10', 4, 80), 0);
  e.handlePacket(syn('192.0.2.10', 5, 80), 0);
  e.handlePacket(syn('192.0.2.11', 6, 110), 0);
  e.clear((s) => s.orig.sport === 5, 10);
  const v = proxyVdomsOf(e);
  t.same(v, [
    { vd: 0, name: 'root', sessions: 3, session_limit: 0, session_guaranteed: 0, users: 2, user_limit: 0, services: { HTTP: 1, SMTP: 1, POP3: 0, IMAP: 0, FTP: 0, NNTP: 0 } },
    { vd: 1, name: 'dmz', sessions: 2, session_limit: 5, session_guaranteed: 2, users: 2, user_limit: 3, services: { HTTP: 1, SMTP: 0, POP3: 1, IMAP: 0, FTP: 0, NNTP: 0 } },
  ]);
  t.equal(formatProxyVdoms(v), `VDOM[0] root
Sessions 3/0 (guaranteed 0)
Users 2/0
HTTP Current Connections 1
SMTP Current Connections 1
POP3 Current Connections 0
IMAP Current Connections 0
FTP Current Connections 0
NNTP Current Connections 0
VDOM[1] dmz
Sessions 2/5 (guaranteed 2)
Users 2/3
HTTP Current Connections 1
SMTP Current Connections 0
POP3 Current Connections 1
IMAP Current Connections 0
FTP Current Connections 0
NNTP Current Connections 0
Total VDOMs: 2
`);
  t.end();
});

t.test('99: page 4 counts again from zero; live sessions stay and count only what they move after', (t) => {
  const e = engine({}, { maxSessions: 3 });
  e.handlePacket(syn('198.51.100.2', 1, 80, 1000), 0);
  e.handlePacket(syn('198.51.100.2', 2, 80, 2000), 0);
  e.handlePacket(syn('198.51.100.2', 3, 80, 3000), 0);
  e.handlePacket(syn('198.51.100.2', 4, 80), 0); // refused: the table is full
  e.clear((s) => s.orig.sport === 3, 10);
  const before = proxyWorkerOf(e, 500);
  t.same(pick(before), { current: 2, peak: 3, setupOk: 3, setupFail: 1, failLimit: 1, bytesOrg: 3000, bytes_sent: 6000 });

  const r = restartAccounting(e, before, 500);
  const at = (up: number) => sinceRestart(proxyWorkerOf(e, up), r, up);
  t.same(pick(at(500).services.HTTP), { current: 2, peak: 2, setupOk: 0, setupFail: 0, failLimit: 0, bytesOrg: 0, bytes_sent: 0 });
  t.equal(at(512.5).running_time, 12.5);
  t.equal(e.size, 2, 'no session was dropped');
  t.same(pick(proxyWorkerOf(e, 0)), pick(before, { peak: 2 }), 'the engine keeps its own totals; only the peak restarts, at the live count');

  // Session 1 moves 400 more bytes and ends; a new one comes, another is refused.
  e.handlePacket(ack('198.51.100.2', 1, 80, 400), 20);
  e.clear((s) => s.orig.sport === 1, 30);
  e.handlePacket(syn('198.51.100.2', 5, 80, 100), 40);
  e.handlePacket(syn('198.51.100.2', 6, 80, 100), 40);
  e.handlePacket(syn('198.51.100.2', 7, 80), 40);
  const after = at(600);
  t.same(pick(after.services.HTTP), { current: 3, peak: 3, setupOk: 2, setupFail: 1, failLimit: 1, bytesOrg: 1400, bytes_sent: 600 });
  const text = formatProxyWorker(after).split('\n');
  t.ok(text.includes('Running time (HH:MM:SS:usec) 00:01:40:000000'));
  t.ok(text.includes('setup_ok=2 setup_fail=1 conn_ok=0 conn_inp=0'));
  t.ok(text.includes('poll=0/0/0 pollfail=0 cmdb=0 scan=0 acceptor=2'));
  t.end();
});

function pick(v: ProxyWorkerView | ProxyWorkerView['services']['HTTP'], over: Record<string, number> = {}): Record<string, number> {
  const c = 'services' in v ? v.services.HTTP : v;
  return { current: c.current, peak: c.peak, setupOk: c.setupOk, setupFail: c.setupFail, failLimit: c.failLimit, bytesOrg: c.bytesOrg, bytes_sent: c.bytes_sent, ...over };
}

/** The daemon's control handlers over a real socket, around an engine the test drives. */
async function control(t: { teardown(fn: () => unknown): void }, e: SessionEngine): Promise<{ cli: (...args: string[]) => Promise<string> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-pw-'));
  const path = join(dir, 'control.sock');
  const ctx: DaemonContext = {
    engine: e, log: pino({ level: 'silent' }), now: () => 100_000, apply: () => undefined,
    queueStats: () => undefined, mechanism: () => undefined, ifname: (i) => `if${i}`,
  };
  const server = new ControlServer(path, allHandlers(ctx, new ControlViews({ ifname: (i) => `if${i}`, vdOf: () => 0, vdName: () => 'root' })));
  await server.listen();
  t.teardown(async () => { await server.close(); rmSync(dir, { recursive: true, force: true }); });
  return {
    cli: async (...args) => {
      let out = '';
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string) => { out += chunk; return true; }) as typeof process.stdout.write;
      try {
        await buildProgram().exitOverride().parseAsync(['node', 'nfsessiond', ...args, '--control', path]);
      } finally {
        process.stdout.write = write;
      }
      return out;
    },
  };
}

t.test('CLI: get test proxyworker and diagnose test proxyworker show the same pages; 99 restarts page 4', async (t) => {
  const e = engine();
  e.handlePacket(syn('198.51.100.2', 1, 80, 2048), 0);
  e.handlePacket(syn('192.0.2.10', 2, 25), 0);
  const { cli } = await control(t, e);
  const noClock = (s: string) => s.replace(/^Running time .*$/m, 'Running time');
  const page4 = await cli('get', 'test', 'proxyworker', '4');
  t.equal(noClock(page4), noClock(formatProxyWorker(proxyWorkerOf(e, 0))));
  t.equal(noClock(await cli('diagnose', 'test', 'proxyworker', '4')), noClock(page4));
  t.match(page4, /^HTTP Accounting\nsetup_ok=1 setup_fail=0 /m);
  t.equal(await cli('get', 'test', 'proxyworker', '4444'), formatProxyVdoms(proxyVdomsOf(e)));
  t.match(await cli('get', 'test', 'proxyworker', '1'), /^Worker\[0\]\nMemory\nResident \d+ \(kb\)\n[\s\S]*\nSessions 2\nExpectations 0\nUsers 2\nFail-open flows 0\n$/);
  t.equal(await cli('get', 'test', 'proxyworker', '99'),
    'proxy worker accounting restarted: setup_ok=2 setup_fail=0 before; counters and running time count from now; 2 session(s) kept\n');
  const restarted = await cli('diagnose', 'test', 'proxyworker', '4');
  t.match(restarted, /^HTTP Common\nCurrent Connections 1\/0\nMax Concurrent Connections 1$/m);
  t.match(restarted, /^HTTP Accounting\nsetup_ok=0 setup_fail=0 /m);
  t.match(restarted, /^SMTP Accounting\nsetup_ok=0 setup_fail=0 /m);
  t.match(restarted, /^HTTP Stat\nBytes sent 0 \(kb\)$/m);
  const json = JSON.parse(await cli('get', 'test', 'proxyworker', '4', '--json')) as ProxyWorkerView;
  t.same([json.services.HTTP.current, json.services.HTTP.setupOk, json.services.SMTP.current], [1, 0, 1]);
  await t.rejects(cli('get', 'test', 'proxyworker', '7'), { message: /^proxyworker 7: not supported; supported: 1 \(memory use\), 4 / });
});

t.test('CLI: diagnose wad user list / clear [name|ip], and diagnose user as their alias', async (t) => {
  const e = engine();
  e.handlePacket(syn('198.51.100.2', 1), 0);
  e.handlePacket(syn('2001:db8::1', 2), 0);
  e.handlePacket(syn('192.0.2.10', 3), 0);
  const { cli } = await control(t, e);
  const list = await cli('diagnose', 'wad', 'user', 'list');
  t.equal(list, formatUsers(usersOf(e, 100_000)));
  t.match(list, /Total users: 3\n$/);
  t.equal(await cli('diagnose', 'user', 'list'), list);
  t.equal(await cli('diagnose', 'wad', 'user', 'clear', '2001:DB8:0::1'), 'cleared 1 user(s)\n', 'an address in any spelling names its user');
  t.equal(await cli('diagnose', 'user', 'clear', '198.51.100.2'), 'cleared 1 user(s)\n');
  t.equal(await cli('diagnose', 'wad', 'user', 'clear', '198.51.100.2'), 'cleared 0 user(s)\n');
  t.same(usersOf(e, 100_000).map((u) => u.ip), ['192.0.2.10']);
  t.equal(await cli('diagnose', 'wad', 'user', 'clear'), 'cleared 1 user(s)\n');
  t.match(await cli('diagnose', 'wad', 'user', 'list'), /^Total users: 0\n$/);
  t.equal(e.size, 3, 'sessions stay');
});
