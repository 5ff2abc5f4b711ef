// `nfsessiond demo`: builds a client/router/server namespace topology, runs the daemon on the
// router, passes real traffic (HTTP, UDP, ping v4/v6, a TCP bulk transfer) and prints the session
// table and its statistics the way an operator would see them. Everything it creates is removed
// at the end, also on Ctrl-C.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTopology } from './topology/netns.js';
import { curlFetch, iperf3Client, iperf3Server, ping, startHttpServer, startUdpEcho, udpExchange } from './topology/peers.js';

const DEMO_CONFIG = `# nfsessiond demo configuration
config system nfsessiond
    set queue-num 0
    set queue-bypass enable
    set kernel-sync-interval 1
end
config system session-ttl
    set default 3600
    config port
        edit 1
            set protocol 17
            set timeout 300
            set start-port 7007
            set end-port 7007
            set refresh-direction incoming
        next
    end
end
`;

const say = (s: string) => process.stdout.write(`${s}\n`);

export async function runDemo(opts: { keep?: boolean } = {}): Promise<void> {
  const cli = fileURLToPath(new URL('./cli.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'nfsessiond-demo-'));
  const config = join(dir, 'nfsessiond.conf');
  const control = join(dir, 'control.sock');
  writeFileSync(config, DEMO_CONFIG);
  const topo = await createTopology({ label: 'demo' });
  try {
    say(`# topology ${topo.prefix}: client ${topo.addr.client.v4} / ${topo.addr.client.v6} -> router -> server ${topo.addr.server.v4} / ${topo.addr.server.v6}`);
    const daemon = topo.spawn('router', [process.execPath, cli, 'run', '--config', config, '--control', control, '--state-dir', dir]);
    await daemon.waitForLine(/"msg":"ready"/, { timeoutMs: 20_000 });
    say('# nfsessiond is running on the router (queue 0, offload of established sessions to the kernel)');

    const http = await startHttpServer(topo, { bodySize: 1_000_000 });
    await startUdpEcho(topo);
    await iperf3Server(topo);
    const got = await curlFetch(topo, http.urlFor(1_000_000));
    say(`# curl http://${topo.addr.server.v4}:8080: HTTP ${got.httpCode}, ${got.bytes} bytes`);
    const udp = await udpExchange(topo, { count: 20, size: 200 });
    say(`# UDP echo to port 7007: ${udp.received}/${udp.sent} datagrams answered`);
    const p4 = await ping(topo, topo.addr.server.v4, { count: 3, intervalS: 0.2 });
    const p6 = await ping(topo, topo.addr.server.v6, { count: 3, intervalS: 0.2 });
    say(`# ping: IPv4 ${p4.received}/${p4.transmitted}, IPv6 ${p6.received}/${p6.transmitted}`);
    const bulk = await iperf3Client(topo, { seconds: 2 });
    say(`# iperf3 through the router: ${(bulk.receivedBps / 1e9).toFixed(2)} Gbit/s (established traffic never leaves the kernel)`);
    // Let one kernel sync pass so offloaded sessions show the kernel's counters.
    await new Promise((r) => setTimeout(r, 1500));

    const run = async (args: string[]) => {
      const r = await topo.exec('router', [process.execPath, cli, ...args, '--control', control]);
      return r.stdout + r.stderr;
    };
    say('\n# nfsessiond diagnose sys session list');
    process.stdout.write(await run(['diagnose', 'sys', 'session', 'list']));
    say('\n# nfsessiond diagnose sys session stat');
    process.stdout.write(await run(['diagnose', 'sys', 'session', 'stat']));
    if (opts.keep) {
      say(`\n# kept running; control socket ${control}. Press Ctrl-C to stop and clean up.`);
      await new Promise<void>((resolve) => process.once('SIGINT', () => resolve()));
    }
    await daemon.kill('SIGTERM', 10_000);
  } finally {
    await topo.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
}
