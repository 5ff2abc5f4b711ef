// NAT with real traffic: the daemon decides, the kernel translates. A client behind the router
// is source-translated (masquerade to the egress interface's address, then an IP pool), the
// server sees the translated address, and the session list shows the translation the kernel
// reports; a VIP port-forwards from outside to a server behind the router.

import t from 'tap';
import { withTopology, type Topology } from '../../src/topology/netns.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';
import type { SessionView } from '../../src/control/session-view.js';

interface ListJson { sessions: SessionView[]; total: number }

// The pool and the VIP's external address are routed to the router (the server's side has a
// route for them), so no ARP answer for them is needed.
const POOL = '192.0.2.100';
const VIP = '192.0.2.50';

const CONFIG = `
config firewall ippool
    edit "pool1"
        set startip ${POOL}
        set endip ${POOL}
    next
end
config firewall vip
    edit "web-in"
        set extip ${VIP}
        set mappedip "198.51.100.2"
        set extintf "veth-s"
        set portforward enable
        set protocol tcp
        set extport 8081
        set mappedport 8090
    next
end
config firewall service custom
    edit "web"
        set tcp-portrange 8080
    next
    edit "web-pool"
        set tcp-portrange 8082
    next
    edit "web-fwd"
        set tcp-portrange 8090
    next
end
config firewall policy
    edit 1
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service "web"
        set action accept
        set nat enable
    next
    edit 2
        set srcintf "veth-c"
        set dstintf "veth-s"
        set srcaddr "all"
        set dstaddr "all"
        set service "web-pool"
        set action accept
        set nat enable
        set ippool enable
        set poolname "pool1"
    next
    edit 3
        set srcintf "veth-s"
        set dstintf "veth-c"
        set srcaddr "all"
        set dstaddr "web-in"
        set service "web-fwd"
        set action accept
    next
end
`;

/**
 * A TCP server that tells each peer the address it saw, `addr:port`, and keeps the connection
 * open (the session stays in the table while the test reads it).
 */
const WHO = (ports: number[]) => `
const net = require('node:net');
for (const port of ${JSON.stringify(ports)}) {
  net.createServer((s) => { s.on('error', () => {}); s.write(s.remoteAddress.replace(/^::ffff:/, '') + ':' + s.remotePort + '\\n'); })
    .listen(port, '0.0.0.0', () => process.stdout.write('listening ' + port + '\\n'));
}
`;

/** A client that connects from a fixed port, prints what the server says, and holds the connection (bounded: 60 s). */
const HOLD = (host: string, port: number, localPort: number) => `
const net = require('node:net');
const c = net.connect({ host: '${host}', port: ${port}, localPort: ${localPort} });
c.on('data', (d) => process.stdout.write('saw ' + d));
c.on('error', (e) => { process.stdout.write('error ' + e.message + '\\n'); process.exit(1); });
setTimeout(() => c.destroy(), 60000).unref();
`;

/** Connects and returns the address the server saw (or 'error ...'), leaving the connection open. */
async function peerSees(topo: Topology, ns: 'client' | 'server', host: string, port: number, localPort: number): Promise<string> {
  const p = topo.spawn(ns, [process.execPath, '-e', HOLD(host, port, localPort)]);
  try {
    const line = await p.waitForLine(/^(saw|error) /, { timeoutMs: 8000 });
    return line.replace(/^saw /, '').trim();
  } catch (e) {
    return `error ${(e as Error).message}`;
  }
}

async function sessionText(d: RunningDaemon, filter: string[]): Promise<string> {
  await d.cli('diagnose', 'sys', 'session', 'filter', 'clear');
  if (filter.length) await d.cli('diagnose', 'sys', 'session', 'filter', ...filter);
  const text = await d.cli('diagnose', 'sys', 'session', 'list');
  await d.cli('diagnose', 'sys', 'session', 'filter', 'clear');
  return text;
}

t.test('SNAT (masquerade and pool) and a VIP port forward, translated by the kernel', async (t) => {
  await withTopology(t, async (topo) => {
    await topo.execOk('server', ['ip', 'route', 'add', `${POOL}/32`, 'via', topo.addr.routerServer.v4]);
    await topo.execOk('server', ['ip', 'route', 'add', `${VIP}/32`, 'via', topo.addr.routerServer.v4]);
    const outside = topo.spawn('server', [process.execPath, '-e', WHO([8080, 8082])]);
    await outside.waitForLine(/listening 8082/);
    const inside = topo.spawn('client', [process.execPath, '-e', WHO([8090])]);
    await inside.waitForLine(/listening 8090/);
    const d = await startDaemon(topo, CONFIG);
    t.teardown(() => d.stop());

    const C = topo.addr.client.v4;
    const S = topo.addr.server.v4;
    const R = topo.addr.routerServer.v4;

    // Masquerade: the server sees the router's address on its side.
    const seen = await peerSees(topo, 'client', S, 8080, 2041);
    t.match(seen, new RegExp(`^${R.replace(/\./g, '\\.')}:\\d+$`), `the server saw the router's address (${seen})`);
    const natPort = Number(seen.split(':')[1]);
    const want = [
      `hook=post dir=org act=snat ${C}:2041->${S}:8080(${R}:${natPort})`,
      `hook=pre dir=reply act=dnat ${S}:8080->${R}:${natPort}(${C}:2041)`,
    ].join('\n');
    let last = '';
    const text = await eventually(async () => {
      last = await sessionText(d, ['nsrc', R]);
      return last.includes(want) ? last : undefined;
    });
    t.ok(text, `the session list shows the kernel's translation:\n${want}`, { last });
    t.match(text ?? '', /policy_id=1 /);
    t.match(await sessionText(d, ['nport', String(natPort)]), `(${R}:${natPort})`, 'filter nport matches the translated port');
    t.match(await sessionText(d, ['nsrc', POOL]), /total session: 0/, 'filter nsrc names no other address');

    // Pool: the server sees the pool's address.
    const pooled = await peerSees(topo, 'client', S, 8082, 2042);
    t.match(pooled, new RegExp(`^${POOL.replace(/\./g, '\\.')}:\\d+$`), `the server saw the pool's address (${pooled})`);
    const poolPort = Number(pooled.split(':')[1]);
    const poolText = await eventually(async () => {
      const s = await sessionText(d, ['nsrc', POOL]);
      return s.includes(`act=snat ${C}:2042->${S}:8082(${POOL}:${poolPort})`) ? s : undefined;
    });
    t.ok(poolText, 'the pool session lists its snat line');
    t.match(poolText ?? '', /policy_id=2 /);

    // VIP: from outside to the external address; the inside server sees the outside client
    // (no source NAT), and the policy naming the VIP decided on the mapped address.
    const fwd = await peerSees(topo, 'server', VIP, 8081, 2043);
    t.equal(fwd, `${S}:2043`, 'the port forward reached the inside server, which saw the outside client');
    const direct = await peerSees(topo, 'server', VIP, 8090, 2044);
    t.match(direct, /^error /, 'a port the VIP does not forward is not translated (and not routed inside)');
    const vipList = JSON.parse(await d.cli('diagnose', 'sys', 'session', 'list', '--json')) as ListJson;
    const vs = vipList.sessions.find((s) => s.orig_tuple.sport === 2043);
    if (!vs) t.comment(JSON.stringify(vipList.sessions.map((s) => [s.orig_tuple, s.policy_id])));
    t.equal(vs?.policy_id, 3, 'policy 3 (dstaddr web-in) decided the forwarded session');
    t.equal(vs?.orig_tuple.dst, C, 'the daemon saw the mapped address');
    t.equal(vs?.orig_tuple.dport, 8090, 'and the mapped port');
    const vipWant = [
      `hook=pre dir=org act=dnat ${S}:2043->${VIP}:8081(${C}:8090)`,
      `hook=post dir=reply act=snat ${C}:8090->${S}:2043(${VIP}:8081)`,
    ].join('\n');
    let vipLast = '';
    const vipText = await eventually(async () => {
      vipLast = await sessionText(d, ['sport', '2043']);
      return vipLast.includes(vipWant) ? vipLast : undefined;
    });
    t.ok(vipText, `the VIP session lists the kernel's destination NAT:\n${vipWant}`, { last: vipLast });

    // Clearing the VIP session deletes its kernel entry, which the kernel keys by the VIP address.
    const entry = () => topo.exec('router', ['conntrack', '-L', '-p', 'tcp', '--sport', '2043']).then((r) => r.stdout.trim());
    t.match(await entry(), `dst=${VIP}`, 'the kernel holds the entry under the VIP address');
    await d.cli('diagnose', 'sys', 'session', 'filter', 'sport', '2043');
    t.same(await d.json('diagnose', 'sys', 'session', 'clear'), { cleared: 1 });
    await d.cli('diagnose', 'sys', 'session', 'filter', 'clear');
    t.equal(await eventually(async () => ((await entry()) === '' ? 'gone' : undefined)), 'gone', 'and the clear deleted it');

    // The nat chains are in our table, counted by the kernel.
    const nft = await topo.execOk('router', ['nft', 'list', 'table', 'inet', 'nfsessiond']);
    t.match(nft.stdout, /type nat hook postrouting priority srcnat/);
    t.match(nft.stdout, /type nat hook prerouting priority dstnat/);
  });
});
