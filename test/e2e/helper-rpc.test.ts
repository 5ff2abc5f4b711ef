// The pmap (SunRPC portmapper) and dcerpc (DCE/RPC endpoint mapper) helpers with real peers. The
// daemon on the router allows only the control channels client -> server (tcp+udp/111, tcp/135);
// the services listen on dynamic ports and are reached only because the helpers read the port from
// the mapper's answer.
//   pmap:   rpcbind in the server namespace, a small ONC RPC service (test/fixtures/rpc/onc-server.py)
//           registered with it, and rpcinfo as the client: -T tcp / -T tcp6 (rpcbind GETADDR over
//           TCP), -t and -u (portmap GETPORT over UDP), each followed by a NULL call on the service.
//   dcerpc: a small endpoint mapper on 135 and a DCE/RPC service on a dynamic port
//           (test/fixtures/rpc/epm-server.py), impacket as the client: hept_map, then bind and a call.

import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { waitForTcpListen, waitForUdpListen } from '../../src/topology/peers.js';
import type { SessionView } from '../../src/control/session-view.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import { DEFAULT_HELPER_BINDINGS } from '../../src/helpers/registry.js';
import { eventually, startDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/rpc/', import.meta.url));
/** Debian's python3 (the one python3-impacket belongs to). */
const PY = '/usr/bin/python3';
const PROG = 536870921; // 0x20000009, in the range for local use (RFC 5531 appendix C)

const helperId = (name: string, proto: number, port: number) => DEFAULT_HELPER_BINDINGS.find((b) => b.name === name && b.proto === proto && b.port === port)!.id;

// Closed sessions stay listed for 5 s (not 1): the short service connections are looked up after they end.
const CONFIG = (extra = '') => controlOnlyConfig({ policyId: 111, service: 'mappers', tcp: '111 135', udp: '111', extra: `config system global\n    set tcp-timewait-timer 5\nend\n${extra}` });

interface Sessions { sessions: SessionView[] }
interface Expectations { expectations: ExpectationView[] }
interface OncPorts { tcp: number; udp: number; tcp6: number; registered: boolean }

async function startRpc(topo: Topology): Promise<OncPorts> {
  topo.spawn('server', ['rpcbind', '-f']);
  await waitForTcpListen(topo, 'server', 111);
  await waitForUdpListen(topo, 'server', 111);
  const svc = topo.spawn('server', [PY, join(FIXTURES, 'onc-server.py'), String(PROG), '1', topo.addr.server.v6]);
  const line = await svc.waitForLine(/"registered"/, { timeoutMs: 15_000 });
  const ports = JSON.parse(line) as OncPorts;
  if (!ports.registered) throw new Error(`the service did not register with rpcbind: ${line}`);
  return ports;
}

const rpcinfo = (topo: Topology, args: string[], timeoutMs = 20_000) =>
  topo.exec('client', ['rpcinfo', ...args, String(PROG), '1'], { timeoutMs });

t.test('pmap: rpcinfo reaches an RPC service on its dynamic port through the expectations', async (t) => {
  await withTopology(t, async (topo) => {
    const ports = await startRpc(topo);
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const S = topo.addr.server.v4, S6 = topo.addr.server.v6;
    for (const [args, port, what] of [
      [['-T', 'tcp', S], ports.tcp, 'rpcbind GETADDR over TCP, then the TCP service'],
      [['-t', S], ports.tcp, 'portmap GETPORT over UDP, then the TCP service'],
      [['-u', S], ports.udp, 'portmap GETPORT over UDP, then the UDP service'],
      [['-T', 'tcp6', S6], ports.tcp6, 'IPv6: rpcbind GETADDR over TCP6, then the TCP6 service'],
    ] as Array<[string[], number, string]>) {
      const r = await rpcinfo(topo, args);
      t.match(r.stdout, new RegExp(`program ${PROG} version 1 ready and waiting`), `${what}: ${r.stdout.trim()} ${r.stderr.trim()}`);
      const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
      // The newest child on that port (an earlier round may have left one of its own).
      const child = sessions.filter((s) => s.orig_tuple.dport === port && s.parent !== undefined).sort((a, b) => b.serial - a.serial)[0];
      t.ok(child, `the service connection on port ${port} is a child session`);
      t.match(child, { policy_id: 111, inherited_serial: child?.parent, expected: { helper: 'pmap', kind: 'rpc' } });
      // The mapper session may already be gone (rpcinfo closes its TCP connection to rpcbind first).
      const parent = sessions.find((s) => s.serial === child?.parent);
      if (parent) t.match(parent, { helper: 'pmap', policy_id: 111, orig_tuple: { dport: 111 } });
    }
    const denied = /policy_deny=([0-9a-f]+)/.exec(await d.cli('diagnose', 'sys', 'session', 'stat'));
    t.equal(denied && parseInt(denied[1], 16), 0, 'nothing met the implicit deny');
  });
});

t.test('pmap: the expectation list while the rpcbind connection is open, empty after it closes', async (t) => {
  await withTopology(t, async (topo) => {
    const ports = await startRpc(topo);
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const c = topo.spawn('client', [PY, join(FIXTURES, 'getaddr-hold.py'), topo.addr.server.v4, String(PROG), '1'], { stdin: true });
    const got = JSON.parse(await c.waitForLine(/"uaddr"/, { timeoutMs: 15_000 })) as { uaddr: string };
    t.match(got.uaddr, new RegExp(`\\.${ports.tcp >> 8}\\.${ports.tcp & 255}$`), `rpcbind answered ${got.uaddr}`);
    const control = await eventually(async () => (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === 111 && s.orig_tuple.proto === 6));
    t.match(control, { helper: 'pmap', policy_id: 111 });
    const exps = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
    t.equal(exps.length, 1);
    t.match(exps[0], {
      helper: 'pmap', kind: 'rpc', proto: 6, policy_id: 111, serial: control!.serial, parent: control!.serial,
      tracks_parent: false, lifetime: 30, timeout: control!.timeout,
      tuple: { family: 4, proto: 6, src: topo.addr.client.v4, sport: 0, dst: topo.addr.server.v4, dport: ports.tcp },
    });
    t.ok(exps[0].expire > 0 && exps[0].expire <= 30, `expire counts down from 30: ${exps[0].expire}`);
    c.child.stdin!.write('close\n');
    await c.waitForLine(/"closed"/);
    const empty = await eventually(async () => {
      const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      return e.length === 0 ? e : undefined;
    }, 20_000);
    t.same(empty, [], 'the expectation ended with its parent');
  });
});

t.test('pmap: with the helper deleted, the service port needs a policy and rpcinfo fails', async (t) => {
  await withTopology(t, async (topo) => {
    await startRpc(topo);
    const extra = `config system session-helper\n    delete ${helperId('pmap', 6, 111)}\n    delete ${helperId('pmap', 17, 111)}\nend\n`;
    const d = await startDaemon(topo, CONFIG(extra));
    t.teardown(() => d.stop());
    for (const args of [['-T', 'tcp', topo.addr.server.v4], ['-u', topo.addr.server.v4]]) {
      const r = await rpcinfo(topo, args, 8000);
      t.notMatch(r.stdout, /ready and waiting/, `rpcinfo ${args[0]} does not reach the service (${r.timedOut ? 'timed out' : r.stderr.trim()})`);
    }
    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    t.ok(sessions.some((s) => s.orig_tuple.dport === 111 && s.orig_tuple.proto === 17 && s.helper === undefined && s.reply.packets > 0),
      'the portmapper answered over UDP, and no helper read it');
    t.equal((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations.length, 0);
    const denied = /policy_deny=([0-9a-f]+)/.exec(await d.cli('diagnose', 'sys', 'session', 'stat'));
    t.ok(denied && parseInt(denied[1], 16) > 0, 'the service connection met the implicit deny');
  });
});

interface EpmOut { binding?: string; answer?: string; error?: string }

async function startEpm(topo: Topology, towerAddr?: string): Promise<{ service: number }> {
  const p = topo.spawn('server', [PY, join(FIXTURES, 'epm-server.py'), topo.addr.server.v4, '135', ...(towerAddr ? [towerAddr] : [])]);
  const line = await p.waitForLine(/"service"/, { timeoutMs: 20_000 });
  await waitForTcpListen(topo, 'server', 135);
  return JSON.parse(line) as { service: number };
}

async function epmClient(topo: Topology, mode?: 'maponly'): Promise<EpmOut> {
  const r = await topo.exec('client', [PY, join(FIXTURES, 'epm-client.py'), topo.addr.server.v4, '135', ...(mode ? [mode] : [])], { timeoutMs: 30_000 });
  return Object.assign({}, ...r.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as EpmOut)) as EpmOut;
}

t.test('dcerpc: impacket maps the interface through the endpoint mapper and calls it on its dynamic port', async (t) => {
  await withTopology(t, async (topo) => {
    const { service } = await startEpm(topo);
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const r = await epmClient(topo);
    t.equal(r.binding, `ncacn_ip_tcp:${topo.addr.server.v4}[${service}]`, 'ept_map answered with the service port');
    t.equal(r.answer, 'pong', `the call on the dynamic port was answered ${r.error ?? ''}`);
    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    const child = sessions.find((s) => s.orig_tuple.dport === service);
    t.ok(child, 'the service connection is a session');
    t.match(child, { policy_id: 111, expected: { helper: 'dcerpc', kind: 'dcerpc' } });
    t.equal((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations.length, 0, 'used up');
  });
});

t.test('dcerpc: the expectation tracks its parent (list while the mapper connection is open), used, and ended with the parent', async (t) => {
  await withTopology(t, async (topo) => {
    const { service } = await startEpm(topo);
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const c = topo.spawn('client', [PY, join(FIXTURES, 'epm-client.py'), topo.addr.server.v4, '135', 'hold'], { stdin: true });
    await c.waitForLine(/"binding"/, { timeoutMs: 20_000 });
    const control = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === 135);
    t.match(control, { helper: 'dcerpc', policy_id: 111 });
    const exps = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
    t.equal(exps.length, 1);
    t.match(exps[0], {
      helper: 'dcerpc', kind: 'dcerpc', proto: 6, policy_id: 111, serial: control!.serial, parent: control!.serial,
      tracks_parent: true, lifetime: 30, timeout: control!.timeout,
      tuple: { family: 4, proto: 6, src: topo.addr.client.v4, sport: 0, dst: topo.addr.server.v4, dport: service },
    });
    t.ok(exps[0].expire <= 30, `expire ${exps[0].expire} (negative once past 30 s: no strict timeout)`);
    const set = (await topo.execOk('router', ['nft', 'list', 'set', 'inet', 'nfsessiond', 'pinholes4'])).stdout;
    t.match(set, new RegExp(`${topo.addr.client.v4} \\. ${topo.addr.server.v4} \\. tcp \\. ${service}`), 'the pinhole is in the kernel');
    c.child.stdin!.write('go\n');
    const answer = await c.waitForLine(/"answer"|"error"/, { timeoutMs: 20_000 });
    t.match(answer, /"answer": "pong"/);
    t.same((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations, [], 'used');

    // ept_map, then the client leaves without calling the service: the expectation ends with the mapper session.
    const r = await epmClient(topo, 'maponly');
    t.equal(r.binding, `ncacn_ip_tcp:${topo.addr.server.v4}[${service}]`);
    const empty = await eventually(async () => {
      const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
      return e.length === 0 ? e : undefined;
    }, 20_000);
    t.same(empty, [], 'the expectation ended with its parent');
  });
});

t.test('dcerpc: with the helper deleted the service connection fails; a tower naming another host opens nothing', async (t) => {
  await withTopology(t, async (topo) => {
    await startEpm(topo);
    const d = await startDaemon(topo, CONFIG(`config system session-helper\n    delete ${helperId('dcerpc', 6, 135)}\nend\n`));
    t.teardown(() => d.stop());
    const r = await epmClient(topo);
    t.ok(r.binding, 'ept_map itself works (the control channel is allowed)');
    t.notOk(r.answer, `the service is not reached: ${r.error}`);
    t.equal((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations.length, 0);
  });
  await withTopology(t, async (topo) => {
    await startEpm(topo, '192.0.2.99');
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    const r = await epmClient(topo);
    t.ok(r.binding, 'ept_map answered');
    t.notOk(r.answer, `impacket connects to the server anyway, which was not expected: ${r.error}`);
    t.equal((await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations.length, 0);
    const refused = d.proc.stdout().split('\n').filter((l) => l.includes('"msg":"expectation refused"')).map((l) => JSON.parse(l) as Record<string, unknown>);
    t.match(refused, [{ helper: 'dcerpc', reason: 'dcerpc-third-party', detail: /192\.0\.2\.99:\d+, not the server 203\.0\.113\.2/ }], 'the refusal is logged');
  });
});
