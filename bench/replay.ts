// Replay benchmark: how fast does `nfsessiond replay` read a large capture through the engine,
// against tshark's conversation statistics on the same file, in the same run?
//
// It generates a capture (Ethernet, pcap) of mixed traffic: short HTTP-like TCP connections
// (handshake, request, a few data segments, FIN close), UDP request/response pairs (DNS-like),
// and FTP control sessions (banner, USER/PASS, PASV -> 227, a data connection, 226, QUIT) so the
// FTP helper and expectations are on the path, with many flows interleaved. Then it times
//   nfsessiond replay FILE --json > /dev/null          (dist/src/cli.js, the whole command)
//   tshark -q -z conv,tcp -z conv,udp -r FILE > /dev/null
// and prints packets/s of each and the ratio (target: replay at least 5x tshark).
//
// Usage: node dist/bench/replay.js [--packets N] [--concurrency N] [--keep FILE] [--file FILE]
//                                   [--rounds N] [--no-tshark] [--profile DIR] [--out FILE]
// Addresses: clients 198.51.100.0/24 and 192.0.2.0/24, servers 203.0.113.0/24.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FdSink, LINKTYPE_ETHERNET, PcapWriter } from '../src/capture/pcap.js';
import { buildTcp, buildUdp } from '../src/packet/build.js';
import { TCP_ACK, TCP_FIN, TCP_PSH, TCP_SYN } from '../src/packet/types.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'dist/src/cli.js');

interface Options { packets: number; concurrency: number; keep?: string; file?: string; rounds: number; tshark: boolean; profile?: string; out: string }

function parseArgs(argv: string[]): Options {
  const o: Options = { packets: 2_000_000, concurrency: 2000, rounds: 1, tshark: true, out: join(ROOT, 'bench/results/replay.json') };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--packets') o.packets = Number(v());
    else if (a === '--concurrency') o.concurrency = Number(v());
    else if (a === '--keep') o.keep = v();
    else if (a === '--file') o.file = v();
    else if (a === '--rounds') o.rounds = Number(v());
    else if (a === '--no-tshark') o.tshark = false;
    else if (a === '--profile') o.profile = v();
    else if (a === '--out') o.out = v();
    else throw new Error(`unknown option ${a}`);
  }
  if (!(o.packets > 0) || !(o.concurrency > 0) || !(o.rounds > 0)) throw new Error('--packets, --concurrency and --rounds must be positive');
  return o;
}

// ---------------------------------------------------------------------------------------------
// Traffic generator: each flow is a script of packets; `concurrency` scripts run interleaved.

const MAC = Buffer.from('020000000002020000000001', 'hex');
const ETH_V4 = Buffer.from('0800', 'hex');
const eth = (ip: Buffer) => Buffer.concat([MAC, ETH_V4, ip]);

type Step = () => Buffer;

interface Flow { steps: Step[]; i: number }

let clientSeq = 0;
function client(): { addr: string; port: number } {
  const n = clientSeq++;
  const host = n % 500;
  const addr = host < 250 ? `198.51.100.${host + 2}` : `192.0.2.${host - 248}`;
  return { addr, port: 1024 + (Math.floor(n / 500) % 64000) };
}
const server = (n: number) => `203.0.113.${2 + (n % 200)}`;

function tcpConversation(c: { addr: string; port: number }, s: string, dport: number, exchange: Array<['c' | 's', string | number]>): Step[] {
  let cs = 1000;
  let ss = 9000;
  const C = (flags: number, payload?: Buffer | string) => () => {
    const p = buildTcp({ src: c.addr, dst: s, sport: c.port, dport, flags, seq: cs, ack: ss, payload });
    if (flags & (TCP_SYN | TCP_FIN)) cs++;
    cs += payload ? payload.length : 0;
    return eth(p);
  };
  const S = (flags: number, payload?: Buffer | string) => () => {
    const p = buildTcp({ src: s, dst: c.addr, sport: dport, dport: c.port, flags, seq: ss, ack: cs, payload });
    if (flags & (TCP_SYN | TCP_FIN)) ss++;
    ss += payload ? payload.length : 0;
    return eth(p);
  };
  const steps: Step[] = [C(TCP_SYN), S(TCP_SYN | TCP_ACK), C(TCP_ACK)];
  for (const [who, what] of exchange) {
    const payload = typeof what === 'number' ? Buffer.alloc(what, 0x61) : what;
    steps.push(who === 'c' ? C(TCP_ACK | TCP_PSH, payload) : S(TCP_ACK | TCP_PSH, payload));
  }
  steps.push(C(TCP_FIN | TCP_ACK), S(TCP_FIN | TCP_ACK), C(TCP_ACK));
  return steps;
}

let flowNo = 0;
function newFlow(): Flow {
  const n = flowNo++;
  const kind = n % 20;
  if (kind < 12) {
    return { steps: tcpConversation(client(), server(n), 80, [['c', 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'], ['s', 1400], ['s', 1400], ['s', 600]]), i: 0 };
  }
  if (kind < 19) {
    const c = client();
    const s = server(n);
    return {
      steps: [
        () => eth(buildUdp({ src: c.addr, dst: s, sport: c.port, dport: 53, payload: 'q'.repeat(40) })),
        () => eth(buildUdp({ src: s, dst: c.addr, sport: 53, dport: c.port, payload: 'a'.repeat(120) })),
      ],
      i: 0,
    };
  }
  // FTP: control session with PASV; the data connection is its own interleaved flow started
  // after the 227 reply (pushed by the 227 step).
  const c = client();
  const s = server(n);
  const dataPort = 30000 + (n % 30000);
  const h = s.split('.').join(',');
  const control = tcpConversation(c, s, 21, [
    ['s', '220 bench FTP\r\n'], ['c', 'USER anonymous\r\n'], ['s', '331 Password\r\n'], ['c', 'PASS x\r\n'], ['s', '230 OK\r\n'],
    ['c', 'PASV\r\n'], ['s', `227 Entering Passive Mode (${h},${dataPort >> 8},${dataPort & 255})\r\n`],
    ['c', 'RETR f\r\n'], ['s', '150 Opening\r\n'], ['s', '226 Done\r\n'], ['c', 'QUIT\r\n'], ['s', '221 Bye\r\n'],
  ]);
  const data = tcpConversation({ addr: c.addr, port: 40000 + (n % 20000) }, s, dataPort, [['s', 1400], ['s', 1400], ['s', 900]]);
  // The data connection starts once the 227 reply is out (handshake 3 steps, then the 7th line).
  const at227 = 3 + 6;
  const send227 = control[at227];
  control[at227] = () => { pendingStarts.push({ steps: data, i: 0 }); return send227(); };
  return { steps: control, i: 0 };
}

const pendingStarts: Flow[] = [];

function generate(file: string, packets: number, concurrency: number): { packets: number; flows: number; bytes: number } {
  const w = new PcapWriter(FdSink.open(file), LINKTYPE_ETHERNET);
  const active: Flow[] = [];
  for (let i = 0; i < concurrency; i++) active.push(newFlow());
  let ts = 1_700_000_000_000;
  let written = 0;
  let k = 0;
  while (written < packets) {
    k = (k + 1) % active.length;
    const f = active[k];
    const frame = f.steps[f.i++]();
    w.write(ts, frame);
    written++;
    ts += 0.01; // 10 µs per packet
    if (f.i >= f.steps.length) active[k] = pendingStarts.shift() ?? newFlow();
    else if (pendingStarts.length && active.length < concurrency * 2) active.push(pendingStarts.shift()!);
  }
  w.close();
  return { packets: written, flows: flowNo, bytes: statSync(file).size };
}

// ---------------------------------------------------------------------------------------------

function timed(argv: string[], env: NodeJS.ProcessEnv = process.env): { seconds: number; status: number | null; stderr: string; maxRssKb?: number } {
  // /usr/bin/time -f reports the peak RSS of the command.
  const useTime = existsSync('/usr/bin/time');
  const full = useTime ? ['/usr/bin/time', '-f', 'MAXRSS %M', ...argv] : argv;
  const t0 = process.hrtime.bigint();
  const r = spawnSync(full[0], full.slice(1), { env, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8', maxBuffer: 64 << 20 });
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const m = /MAXRSS (\d+)/.exec(r.stderr ?? '');
  return { seconds, status: r.status, stderr: r.stderr ?? '', maxRssKb: m ? Number(m[1]) : undefined };
}

function main(): void {
  const o = parseArgs(process.argv.slice(2));
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\``);
  const dir = mkdtempSync(join(tmpdir(), 'nfs-bench-replay-'));
  try {
    let file = o.file;
    let gen: { packets: number; flows: number; bytes: number } | undefined;
    if (!file) {
      file = o.keep ?? join(dir, 'bench.pcap');
      process.stderr.write(`generating ${o.packets} packets into ${file} ...\n`);
      const t0 = Date.now();
      gen = generate(file, o.packets, o.concurrency);
      process.stderr.write(`generated ${gen.packets} packets, ${gen.flows} flows, ${(gen.bytes / 1e6).toFixed(1)} MB in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
    }
    const packets = gen?.packets ?? o.packets;
    const hasTshark = o.tshark && spawnSync('tshark', ['--version']).status === 0;
    const results: Array<{ tool: string; seconds: number; pps: number; maxRssKb?: number }> = [];
    for (let round = 0; round < o.rounds; round++) {
      const nodeArgs = o.profile ? ['--cpu-prof', '--cpu-prof-dir', o.profile] : [];
      if (o.profile) mkdirSync(o.profile, { recursive: true });
      const r = timed([process.execPath, ...nodeArgs, CLI, 'replay', file, '--json']);
      if (r.status !== 0) throw new Error(`nfsessiond replay failed: ${r.stderr}`);
      results.push({ tool: 'nfsessiond replay', seconds: r.seconds, pps: packets / r.seconds, maxRssKb: r.maxRssKb });
      process.stderr.write(`replay: ${r.seconds.toFixed(2)} s\n`);
      if (hasTshark) {
        const ts = timed(['tshark', '-q', '-z', 'conv,tcp', '-z', 'conv,udp', '-r', file]);
        if (ts.status !== 0) throw new Error(`tshark failed: ${ts.stderr}`);
        results.push({ tool: 'tshark conv', seconds: ts.seconds, pps: packets / ts.seconds, maxRssKb: ts.maxRssKb });
        process.stderr.write(`tshark: ${ts.seconds.toFixed(2)} s\n`);
      }
    }
    const mean = (tool: string) => {
      const xs = results.filter((r) => r.tool === tool);
      return xs.length ? { seconds: xs.reduce((a, r) => a + r.seconds, 0) / xs.length, maxRssKb: Math.max(...xs.map((r) => r.maxRssKb ?? 0)) } : undefined;
    };
    const rp = mean('nfsessiond replay')!;
    const tk = mean('tshark conv');
    const rows = [['tool', 'seconds', 'packets/s', 'max RSS'], ['nfsessiond replay', rp.seconds.toFixed(2), Math.round(packets / rp.seconds).toString(), `${(rp.maxRssKb / 1024).toFixed(0)} MB`]];
    if (tk) rows.push(['tshark -z conv,tcp -z conv,udp', tk.seconds.toFixed(2), Math.round(packets / tk.seconds).toString(), `${(tk.maxRssKb / 1024).toFixed(0)} MB`]);
    const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
    for (const r of rows) process.stdout.write(`${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')}\n`);
    const ratio = tk ? tk.seconds / rp.seconds : undefined;
    process.stdout.write(`capture: ${packets} packets${gen ? `, ${gen.flows} flows, ${(gen.bytes / 1e6).toFixed(1)} MB` : ''}; ` +
      (ratio ? `replay vs tshark: x${ratio.toFixed(2)} (target >= 5)\n` : 'tshark not run\n'));
    mkdirSync(dirname(o.out), { recursive: true });
    writeFileSync(o.out, `${JSON.stringify({ at: new Date().toISOString(), cpus: cpus().length, cpu: cpus()[0]?.model, options: o, generated: gen, results, ratio }, null, 2)}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main();
