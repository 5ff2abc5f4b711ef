// Proves the namespace harness: routing through the router for IPv4 and IPv6, real TCP (curl) and
// UDP (echo) peers, and that destroy() leaves no namespace behind.
import t from 'tap';
import { createTopology, listNamespaces, withTopology } from '../../src/topology/netns.js';
import { curl, ping, startHttpServer, startUdpEcho, udpExchange } from '../../src/topology/peers.js';

t.test('client reaches server through the router', (t) =>
  withTopology(t, async (topo) => {
    t.match(topo.prefix, /^nfs-\d+-[0-9a-f]+$/, 'unique prefix');
    t.same(listNamespaces(topo.prefix).sort(), Object.values(topo.ns).sort(), 'three namespaces exist');

    const v4 = await ping(topo, topo.addr.server.v4, { count: 3 });
    t.ok(v4.ok, `IPv4 ping client -> server: ${v4.received}/${v4.transmitted}`);
    const v6 = await ping(topo, topo.addr.server.v6, { count: 3 });
    t.ok(v6.ok, `IPv6 ping client -> server: ${v6.received}/${v6.transmitted}`);

    // The path really goes through the router: TTL/hop limit decremented once.
    const tr = await topo.exec('client', ['ping', '-4', '-n', '-c', '1', '-W', '2', topo.addr.server.v4]);
    t.match(tr.stdout, /ttl=63\b/, 'one hop (ttl 63)');

    const http = await startHttpServer(topo, { port: 8080 });
    t.equal(await curl(topo, http.urlFor(100_000)), 100_000, 'curl over IPv4 got 100000 bytes');
    t.equal(await curl(topo, http.urlFor(100_000, topo.addr.server.v6)), 100_000, 'curl over IPv6 got 100000 bytes');

    const echo = await startUdpEcho(topo, { port: 7007 });
    const u4 = await udpExchange(topo, { port: echo.port, count: 10, size: 200 });
    t.same(u4, { sent: 10, received: 10, mismatched: 0 }, 'UDP echo of 10 datagrams over IPv4');
    const u6 = await udpExchange(topo, { host: topo.addr.server.v6, port: echo.port, count: 10, size: 200 });
    t.same(u6, { sent: 10, received: 10, mismatched: 0 }, 'UDP echo of 10 datagrams over IPv6');

    const r = await topo.exec('client', ['ip', '-o', 'link', 'show']);
    t.notMatch(r.stdout, /veth-s/, 'client does not see the server link');
  }));

t.test('exec passes argv without a shell and reports exit codes', (t) =>
  withTopology(t, async (topo) => {
    const r = await topo.exec('server', ['echo', '$(id); x']);
    t.equal(r.code, 0);
    t.equal(r.stdout, '$(id); x\n', 'no shell expansion');
    const c = await topo.exec('server', ['cat'], { input: 'hello' });
    t.equal(c.stdout, 'hello', 'stdin input');
    const f = await topo.exec('router', ['false']);
    t.equal(f.code, 1, 'non-zero exit code');
    const s = await topo.exec('router', ['sleep', '30'], { timeoutMs: 200 });
    t.ok(s.timedOut, 'timeout kills the command');
    await t.rejects(topo.execOk('router', ['false']), /command failed/);
    t.throws(() => topo.nsName('not-ours'));
  }));

t.test('destroy removes namespaces and processes; safe twice', async (t) => {
  const topo = await createTopology({ label: 'gone' });
  t.teardown(() => topo.destroy());
  const p = topo.spawn('server', ['sleep', '600']);
  t.equal(listNamespaces(topo.prefix).length, 3);
  await topo.destroy();
  await topo.destroy();
  t.same(listNamespaces(topo.prefix), [], 'no namespace with the prefix remains');
  const out = await (await import('node:child_process')).execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  t.notMatch(out, topo.prefix, 'ip netns list does not show the prefix');
  t.notOk(p.running, 'tracked child was killed');
  await t.rejects(topo.exec('client', ['true']), /destroyed/);
});
