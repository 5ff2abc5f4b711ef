// A SYN flood through the router of a topology, with established flows talking throughout: the
// flood bench (bench/flood.ts) and its e2e test share it.
//
// The flood comes from the client namespace with source addresses the client does not own
// (FLOOD_SOURCES addresses from 192.0.2.1, each source port once), so every SYN is a new flow.
// The router routes 192.0.2.0/24 back to the client, whose kernel drops the SYN-ACKs for those
// addresses: the server's answers are real, nobody completes a handshake. A table of the test's
// own counts, at the router, the flood's SYNs that arrived (prerouting, before conntrack) and
// those that left towards the server (postrouting): independent of the daemon's own counters.
// Established TCP and UDP flows (src/topology/fixtures/pingpong.mjs) exchange a message every
// 20 ms from before the flood until after it; their echoes are counted.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { NsProcess, Topology } from './netns.js';
import { fixturePath, waitForTcpListen } from './peers.js';

export const FLOOD_FIRST = '192.0.2.1';
export const FLOOD_NET = '192.0.2.0/24';
export const FLOOD_SOURCES = 250;
/** The server port the flood's SYNs go to (a listening accept loop). */
export const FLOOD_PORT = 8080;
/** The established flows' echo port (TCP and UDP). */
export const PINGPONG_PORT = 7100;
const COUNT_TABLE = 'nfsfloodcount';

/** bench/c in the source tree, from src/topology or dist/src/topology. */
const C_DIR = [new URL('../../bench/c/', import.meta.url), new URL('../../../bench/c/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((d) => existsSync(join(d, 'syn-flood.c'))) ?? fileURLToPath(new URL('../../bench/c/', import.meta.url));

export interface GeneratorResult { sent: number; failed: number; seconds: number; pps: number; distinct: number }

export interface PingFlow { proto: 'tcp' | 'udp'; sport: number; sent: number; echoed: number; errors: number; maxGapMs: number; error?: string }

/** The router's own count of flood SYNs. */
export interface RouterCount { arrived: number; forwarded: number }

/** Compiles the generator and the server's accept loop into `dir`; throws with gcc's message. */
export function buildFloodTools(dir: string): { synFlood: string; acceptServer: string } {
  const out = { synFlood: join(dir, 'syn-flood'), acceptServer: join(dir, 'accept-server') };
  for (const [bin, src] of [[out.synFlood, 'syn-flood.c'], [out.acceptServer, 'accept-server.c']]) {
    execFileSync('gcc', ['-O2', '-Wall', '-o', bin, join(C_DIR, src)], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
  return out;
}

/**
 * Readies the topology before the daemon starts: the route back to the flood's sources, reverse
 * path filtering off for them, the counting table, the flood's listener and the echo server.
 */
export async function prepareFlood(topo: Topology, tools: { acceptServer: string }): Promise<void> {
  await topo.execOk('router', ['ip', 'route', 'add', FLOOD_NET, 'via', topo.addr.client.v4]);
  for (const k of ['all', 'default', topo.ifname.routerClient]) {
    await topo.execOk('router', ['sysctl', '-q', '-w', `net.ipv4.conf.${k}.rp_filter=0`]);
  }
  const syn = `ip saddr ${FLOOD_NET} tcp dport ${FLOOD_PORT} tcp flags & (syn | ack) == syn counter`;
  await topo.execOk('router', ['nft', '-f', '-'], {
    input: `table inet ${COUNT_TABLE} {\n\tchain arrived {\n\t\ttype filter hook prerouting priority -400; policy accept;\n\t\t${syn}\n\t}\n`
      + `\tchain forwarded {\n\t\ttype filter hook postrouting priority 400; policy accept;\n\t\t${syn}\n\t}\n}\n`,
  });
  // A server under a SYN flood answers with cookies once its backlog is full; that is its job.
  // It answers each SYN once: a retransmitted SYN/ACK of one run would reach the queue of the
  // next as a segment of no session, and the counts of each run are to be its own.
  await topo.execOk('server', ['sysctl', '-q', '-w', 'net.ipv4.tcp_synack_retries=0']);
  const acc = topo.spawn('server', [tools.acceptServer, '::', String(FLOOD_PORT)], { quiet: true });
  await waitForTcpListen(topo, 'server', FLOOD_PORT, { timeoutMs: 5000 }).catch((e: Error) => { throw new Error(`accept-server (pid ${acc.pid}): ${e.message}`); });
  const echo = topo.spawn('server', [process.execPath, fixturePath('pingpong.mjs'), '--listen', String(PINGPONG_PORT)]);
  await echo.waitForLine(/"listening":true/, { timeoutMs: 10_000, what: 'the pingpong server' });
}

export async function readRouterCount(topo: Topology): Promise<RouterCount> {
  const r = await topo.execOk('router', ['nft', '-j', 'list', 'table', 'inet', COUNT_TABLE]);
  const doc = JSON.parse(r.stdout) as { nftables: Array<{ rule?: { chain: string; expr: Array<Record<string, unknown>> } }> };
  const count = (chain: string): number => {
    const rule = doc.nftables.find((x) => x.rule?.chain === chain)?.rule;
    const c = rule?.expr.find((e) => 'counter' in e)?.counter as { packets: number } | undefined;
    if (!c) throw new Error(`no counter in chain ${chain} of inet ${COUNT_TABLE}`);
    return c.packets;
  };
  return { arrived: count('arrived'), forwarded: count('forwarded') };
}

/** Starts the established flows in the client namespace; resolves once each had its first echo. */
export async function startFlows(topo: Topology, tcp: number, udp: number): Promise<NsProcess> {
  const p = topo.spawn('client', [process.execPath, fixturePath('pingpong.mjs'), '--host', topo.addr.server.v4, '--port', String(PINGPONG_PORT),
    '--tcp', String(tcp), '--udp', String(udp), '--interval', '20']);
  await p.waitForLine(/"started":/, { timeoutMs: 15_000, what: 'the first echo of every established flow' });
  return p;
}

/** The echo counts of the established flows so far, one per flow in start order. */
export async function flowProgress(p: NsProcess): Promise<number[]> {
  const seen = p.stdout().split('\n').filter((l) => l.startsWith('{"progress"')).length;
  process.kill(p.pid, 'SIGUSR1');
  let n = 0;
  const line = await p.waitForLine((l) => l.startsWith('{"progress"') && ++n > seen, { timeoutMs: 10_000, what: 'the pingpong progress line' });
  return (JSON.parse(line) as { progress: number[] }).progress;
}

/** Stops the established flows and returns what each counted. */
export async function stopFlows(p: NsProcess): Promise<PingFlow[]> {
  await p.kill('SIGTERM', 5000);
  const line = p.stdout().split('\n').find((l) => l.startsWith('{"flows"'));
  if (!line) throw new Error(`pingpong client printed no summary: ${p.stderr().slice(-500)}`);
  return (JSON.parse(line) as { flows: PingFlow[] }).flows;
}

/** Runs the generator in the client namespace for `seconds` (unpaced unless `pps`). */
export async function flood(topo: Topology, tools: { synFlood: string }, seconds: number, pps = 0): Promise<GeneratorResult> {
  const r = await topo.execOk('client', [tools.synFlood, FLOOD_FIRST, String(FLOOD_SOURCES), topo.addr.server.v4, String(FLOOD_PORT), String(seconds), String(pps)],
    { timeoutMs: (seconds + 30) * 1000 });
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as GeneratorResult;
}

/** The stat view's figures a flood is accounted with (the parts of `diagnose sys session stat --json` used). */
export interface FloodStat {
  session_count: number;
  counters: Record<string, number>;
  packets: { decided: number; accepted: number; dropped: number; new_sessions: number };
  queue?: Record<string, number>;
}

/** What happened between two stat views, by fate. */
export interface FloodAccount {
  decided: number; dropped: number; created: number; bypassed: number; limitDrop: number;
  offered: number; numbered: number; received: number; queueDropped: number; userDropped: number; failopenPassed: number; unread: number;
}

export function floodAccount(s0: FloodStat, s1: FloodStat): FloodAccount {
  const q = (k: string) => (s1.queue?.[k] ?? 0) - (s0.queue?.[k] ?? 0);
  return {
    decided: s1.packets.decided - s0.packets.decided,
    dropped: s1.packets.dropped - s0.packets.dropped,
    created: s1.packets.new_sessions - s0.packets.new_sessions,
    bypassed: (s1.counters.failopen_bypass ?? 0) - (s0.counters.failopen_bypass ?? 0),
    limitDrop: (s1.counters.limit_drop ?? 0) - (s0.counters.limit_drop ?? 0),
    offered: q('offered'), numbered: q('numbered'), received: q('received'),
    queueDropped: q('queue_dropped'), userDropped: q('user_dropped'), failopenPassed: q('failopen_passed'),
    unread: s1.queue?.unread ?? 0,
  };
}

/**
 * The accounting identities of a flood with `queue-fail-open disable`, each true or false: the
 * router's own counts against the daemon's. Every drop is a flood SYN there (the established
 * flows are offloaded, the SYN/ACKs of admitted or bypassed flows never reach the queue).
 */
export function floodChecks(a: FloodAccount, router: RouterCount): Record<string, boolean> {
  return {
    'not forwarded = dropped by the daemon + by the queue': router.arrived - router.forwarded === a.dropped + a.queueDropped + a.userDropped,
    'forwarded = new sessions + fail-open flows': router.forwarded === a.created + a.bypassed,
    'offered = numbered + dropped as full': a.offered === a.numbered + a.queueDropped,
    'nothing passed by the kernel uninspected': a.failopenPassed === 0,
    'every numbered packet read': a.unread === 0,
    'every packet read decided': a.decided === a.received,
  };
}

/** Polls the stat view until the queue is empty and the counts stand still twice in a row. */
export async function settledStat<T extends FloodStat>(stat: () => Promise<T>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const s = await stat();
    const key = JSON.stringify([s.packets, s.queue]);
    if ((key === last && (s.queue?.waiting ?? 0) === 0) || Date.now() > deadline) return s;
    last = key;
    await new Promise((r) => setTimeout(r, 500));
  }
}
