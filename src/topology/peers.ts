// Real peers for e2e tests, run inside the namespaces of a Topology: an HTTP server and a UDP
// echo server (plain .mjs fixtures run by `node`, tracked by the topology), curl, a UDP exchange
// client, ping and iperf3. Every wait is bounded.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NsProcess, NsRef, Topology } from './netns.js';

// test/lib/ -> test/fixtures/ when run from source; dist/test/lib/ -> test/fixtures/ when compiled
// (the .mjs fixtures are not copied to dist/).
// The fixtures are plain .mjs that tsc does not copy: from dist/ they are found in the source tree.
const FIXTURES = [new URL('./fixtures/', import.meta.url), new URL('../../../src/topology/fixtures/', import.meta.url)]
  .map((u) => fileURLToPath(u))
  .find((d) => existsSync(`${d}http-server.mjs`)) ?? fileURLToPath(new URL('./fixtures/', import.meta.url));
export const fixturePath = (name: string): string => `${FIXTURES}${name}`;

/** `host:port` for URLs and messages (brackets IPv6 literals). */
export function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Waiting for listeners

/**
 * Poll `ss -ltnH` in `ns` until something listens on TCP `port` (any address). Bounded by
 * timeoutMs (default 5000); rejects on timeout.
 */
export async function waitForTcpListen(topo: Topology, ns: NsRef, port: number, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<void> {
  await waitForListen(topo, ns, port, '-ltnH', opts);
}

/** Same as waitForTcpListen for a bound UDP socket (`ss -lunH`). */
export async function waitForUdpListen(topo: Topology, ns: NsRef, port: number, opts: { timeoutMs?: number; intervalMs?: number } = {}): Promise<void> {
  await waitForListen(topo, ns, port, '-lunH', opts);
}

async function waitForListen(topo: Topology, ns: NsRef, port: number, flags: string, opts: { timeoutMs?: number; intervalMs?: number }): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const interval = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const r = await topo.exec(ns, ['ss', flags, 'sport', '=', `:${port}`], { timeoutMs: 5000 });
    last = r.stdout + r.stderr;
    if (r.code === 0 && r.stdout.trim().length > 0) return;
    if (Date.now() >= deadline) {
      throw new Error(`nothing listening on ${flags.includes('t') ? 'tcp' : 'udp'} port ${port} in ${topo.nsName(ns)} after ${timeoutMs} ms (ss: ${last.trim() || 'empty'})`);
    }
    await sleep(interval);
  }
}

// ---------------------------------------------------------------------------------------------
// Servers

export interface Server {
  readonly proc: NsProcess;
  readonly ns: string;
  readonly host: string;
  readonly port: number;
  stop(): Promise<void>;
}

export interface HttpServer extends Server {
  /** URL for the default body; use urlFor(size) for another size. */
  readonly url: string;
  /** URL that returns exactly `size` bytes, addressed to `host` (default: the server's IPv4). */
  urlFor(size: number, host?: string): string;
}

export interface HttpServerOptions {
  ns?: NsRef;
  /** Bind address; default '::' (IPv4 and IPv6). */
  bind?: string;
  port?: number;
  /** Default body size in bytes (default 100000). */
  bodySize?: number;
  /** Address used in `url`; default the server's IPv4 address. */
  urlHost?: string;
  timeoutMs?: number;
}

/** Start the node:http fixture (test/fixtures/http-server.mjs) in the server namespace. */
export async function startHttpServer(topo: Topology, opts: HttpServerOptions = {}): Promise<HttpServer> {
  const ns = opts.ns ?? 'server';
  const port = opts.port ?? 8080;
  const bind = opts.bind ?? '::';
  const size = opts.bodySize ?? 100_000;
  const proc = topo.spawn(ns, [process.execPath, fixturePath('http-server.mjs'), '--host', bind, '--port', String(port), '--size', String(size)]);
  try {
    await proc.waitForLine(/"listening":true/, { timeoutMs: opts.timeoutMs ?? 10_000 });
    await waitForTcpListen(topo, ns, port, { timeoutMs: opts.timeoutMs ?? 5000 });
  } catch (e) {
    await proc.kill('SIGKILL');
    throw e;
  }
  const urlHost = opts.urlHost ?? topo.addr.server.v4;
  return {
    proc,
    ns: topo.nsName(ns),
    host: bind,
    port,
    url: `http://${hostPort(urlHost, port)}/`,
    urlFor: (n: number, host = urlHost) => `http://${hostPort(host, port)}/bytes/${n}`,
    stop: () => proc.kill(),
  };
}

export interface UdpEchoOptions {
  ns?: NsRef;
  bind?: string;
  port?: number;
  timeoutMs?: number;
}

/** Start the UDP echo fixture (test/fixtures/udp-echo.mjs) in the server namespace. */
export async function startUdpEcho(topo: Topology, opts: UdpEchoOptions = {}): Promise<Server> {
  const ns = opts.ns ?? 'server';
  const port = opts.port ?? 7007;
  const bind = opts.bind ?? '::';
  const proc = topo.spawn(ns, [process.execPath, fixturePath('udp-echo.mjs'), '--host', bind, '--port', String(port)]);
  try {
    await proc.waitForLine(/"listening":true/, { timeoutMs: opts.timeoutMs ?? 10_000 });
  } catch (e) {
    await proc.kill('SIGKILL');
    throw e;
  }
  return { proc, ns: topo.nsName(ns), host: bind, port, stop: () => proc.kill() };
}

// ---------------------------------------------------------------------------------------------
// Clients

export interface CurlOptions {
  ns?: NsRef;
  /** Whole-transfer limit (curl --max-time), default 20000 ms. */
  timeoutMs?: number;
  /** Extra curl arguments (e.g. ['--local-port', '40000']). */
  extraArgs?: string[];
}

export interface CurlResult {
  /** Bytes of body received (curl %{size_download}). */
  bytes: number;
  httpCode: number;
  exitCode: number | null;
  stderr: string;
}

/** Fetch `url` with curl from the client namespace; full result (never rejects on HTTP/transfer errors). */
export async function curlFetch(topo: Topology, url: string, opts: CurlOptions = {}): Promise<CurlResult> {
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const argv = ['curl', '-g', '-sS', '-o', '/dev/null', '-w', '%{size_download} %{http_code}',
    '--connect-timeout', String(Math.max(1, Math.ceil(timeoutMs / 2000))),
    '--max-time', String(Math.max(1, Math.ceil(timeoutMs / 1000))),
    ...(opts.extraArgs ?? []), url];
  const r = await topo.exec(opts.ns ?? 'client', argv, { timeoutMs: timeoutMs + 5000 });
  const [bytes, code] = r.stdout.trim().split(/\s+/).map(Number);
  return { bytes: Number.isFinite(bytes) ? bytes! : 0, httpCode: Number.isFinite(code) ? code! : 0, exitCode: r.code, stderr: r.stderr };
}

/** Fetch `url` with curl from the client namespace; resolves to the number of body bytes received (0 on failure). */
export async function curl(topo: Topology, url: string, opts: CurlOptions = {}): Promise<number> {
  return (await curlFetch(topo, url, opts)).bytes;
}

export interface UdpExchangeOptions {
  ns?: NsRef;
  /** Destination address; default the server's IPv4 address. */
  host?: string;
  port?: number;
  /** Datagrams to send (default 10). */
  count?: number;
  /** Payload bytes per datagram (default 100). */
  size?: number;
  /** How long to wait for each echo (default 1000 ms). */
  waitMs?: number;
  /** Fixed source port (default ephemeral). */
  sport?: number;
}

export interface UdpExchangeResult {
  sent: number;
  /** Echoes received with the exact payload sent. */
  received: number;
  /** Echoes whose payload differed. */
  mismatched: number;
}

/** Send `count` datagrams of `size` bytes one after another from the client namespace and count the echoes. */
export async function udpExchange(topo: Topology, opts: UdpExchangeOptions = {}): Promise<UdpExchangeResult> {
  const count = opts.count ?? 10;
  const waitMs = opts.waitMs ?? 1000;
  const argv = [process.execPath, fixturePath('udp-client.mjs'),
    '--host', opts.host ?? topo.addr.server.v4, '--port', String(opts.port ?? 7007),
    '--count', String(count), '--size', String(opts.size ?? 100), '--wait', String(waitMs),
    '--sport', String(opts.sport ?? 0)];
  const r = await topo.exec(opts.ns ?? 'client', argv, { timeoutMs: count * waitMs + 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as UdpExchangeResult;
  } catch {
    throw new Error(`udp-client failed (code ${r.code}): ${r.stderr.trim() || r.stdout.trim()}`);
  }
}

export interface PingOptions {
  ns?: NsRef;
  count?: number;
  /** Seconds between echo requests (default 0.2; < 0.2 needs root, which we are). */
  intervalS?: number;
  /** Per-reply wait in seconds (ping -W, default 2). */
  waitS?: number;
  /** Payload size (ping -s). */
  size?: number;
}

export interface PingResult {
  transmitted: number;
  received: number;
  /** True when every request got a reply. */
  ok: boolean;
  exitCode: number | null;
  output: string;
}

/** ping `dst` (v4 or v6, chosen from the address) from the client namespace. */
export async function ping(topo: Topology, dst: string, opts: PingOptions = {}): Promise<PingResult> {
  const count = opts.count ?? 3;
  const interval = opts.intervalS ?? 0.2;
  const waitS = opts.waitS ?? 2;
  const argv = ['ping', dst.includes(':') ? '-6' : '-4', '-n', '-q', '-c', String(count), '-i', String(interval), '-W', String(waitS),
    '-w', String(Math.ceil(count * interval + waitS + 1)), ...(opts.size !== undefined ? ['-s', String(opts.size)] : []), dst];
  const r = await topo.exec(opts.ns ?? 'client', argv, { timeoutMs: (count * interval + waitS + 5) * 1000 });
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(r.stdout);
  const transmitted = m ? Number(m[1]) : 0;
  const received = m ? Number(m[2]) : 0;
  // With -w, ping keeps sending until `count` replies came back (the first may wait for neighbour
  // discovery), so "ok" means at least `count` replies and none missing.
  return { transmitted, received, ok: received >= count && received === transmitted, exitCode: r.code, output: r.stdout + r.stderr };
}

// ---------------------------------------------------------------------------------------------
// iperf3

export interface Iperf3ServerOptions {
  ns?: NsRef;
  /** Bind address (iperf3 -B); default all. */
  bind?: string;
  port?: number;
  timeoutMs?: number;
}

/** Start `iperf3 -s` in the server namespace and wait until it listens. */
export async function iperf3Server(topo: Topology, opts: Iperf3ServerOptions = {}): Promise<Server> {
  const ns = opts.ns ?? 'server';
  const port = opts.port ?? 5201;
  const argv = ['iperf3', '-s', '-p', String(port), ...(opts.bind ? ['-B', opts.bind] : [])];
  const proc = topo.spawn(ns, argv, { captureLimit: 64 * 1024 });
  try {
    await waitForTcpListen(topo, ns, port, { timeoutMs: opts.timeoutMs ?? 5000 });
  } catch (e) {
    await proc.kill('SIGKILL');
    throw e;
  }
  return { proc, ns: topo.nsName(ns), host: opts.bind ?? '::', port, stop: () => proc.kill() };
}

export interface Iperf3ClientOptions {
  ns?: NsRef;
  /** Server address; default the server's IPv4 address. */
  host?: string;
  port?: number;
  /** Test length in seconds (-t, default 5). */
  seconds?: number;
  /** Parallel streams (-P, default 1). */
  streams?: number;
  /** Server sends (-R). */
  reverse?: boolean;
  /** UDP test at this bitrate, e.g. '100M' (-u -b). */
  udpBitrate?: string;
  /** Omit the first N seconds (-O). */
  omitSeconds?: number;
  /** TCP rate cap, e.g. '20M' (-b): a long test that leaves the machine's CPU to others. */
  tcpBitrate?: string;
}

export interface Iperf3Result {
  /** Receiver-side bits per second (end.sum_received for TCP, end.sum for UDP). */
  receivedBps: number;
  /** Sender-side bits per second. */
  sentBps: number;
  /** TCP retransmits (sender), when reported. */
  retransmits?: number;
  /** UDP loss percent, when reported. */
  lostPercent?: number;
  /** The full `iperf3 -J` document. */
  json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** Run an iperf3 client (`-J`) from the client namespace and parse its JSON result. */
export async function iperf3Client(topo: Topology, opts: Iperf3ClientOptions = {}): Promise<Iperf3Result> {
  const seconds = opts.seconds ?? 5;
  const host = opts.host ?? topo.addr.server.v4;
  const argv = ['iperf3', '-J', '-c', host, '-p', String(opts.port ?? 5201), '-t', String(seconds),
    '-P', String(opts.streams ?? 1), '--connect-timeout', '3000',
    ...(opts.reverse ? ['-R'] : []),
    ...(opts.udpBitrate ? ['-u', '-b', opts.udpBitrate] : []),
    ...(opts.omitSeconds ? ['-O', String(opts.omitSeconds)] : []),
    ...(opts.tcpBitrate && !opts.udpBitrate ? ['-b', opts.tcpBitrate] : [])];
  const r = await topo.exec(opts.ns ?? 'client', argv, { timeoutMs: (seconds + (opts.omitSeconds ?? 0) + 15) * 1000 });
  let json: any; // eslint-disable-line @typescript-eslint/no-explicit-any
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`iperf3 client produced no JSON (code ${r.code}${r.timedOut ? ', timed out' : ''}): ${r.stderr.trim() || r.stdout.slice(0, 500)}`);
  }
  if (json.error) throw new Error(`iperf3: ${json.error}`);
  const end = json.end ?? {};
  if (opts.udpBitrate) {
    const sum = end.sum ?? {};
    return { receivedBps: Number(end.sum_received?.bits_per_second ?? sum.bits_per_second ?? 0), sentBps: Number(end.sum_sent?.bits_per_second ?? sum.bits_per_second ?? 0), lostPercent: sum.lost_percent, json };
  }
  return {
    receivedBps: Number(end.sum_received?.bits_per_second ?? 0),
    sentBps: Number(end.sum_sent?.bits_per_second ?? 0),
    retransmits: end.sum_sent?.retransmits,
    json,
  };
}
