// End-to-end NFQUEUE test in two throw-away network namespaces joined by a veth pair:
//   ns A 198.51.100.1 --veth-- 198.51.100.2 ns B
// In A, `iptables -A OUTPUT -p udp -d 198.51.100.2 -j NFQUEUE --queue-num 5` sends the test's UDP
// datagrams to a consumer process running PacketQueue inside A; a listener in B reports which
// datagrams got through.
//
// The consumer is this same file started again inside ns A with NFSQ_CONSUMER set (netns is
// per process, and a fixture file under test/ would itself be collected as a test by tap). It
// runs under the TypeScript loader tap gave this process, so no build step is needed; the native
// addon must be built (`npm run install`).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const SELF = fileURLToPath(import.meta.url);

// ---------------------------------------------------------------------------------------------
// Consumer role: binds the queue and decides, driven by line commands on stdin.
// ---------------------------------------------------------------------------------------------

interface ConsumerConfig {
  queue: number;
  /** blocks: accept (mark 7) when floor(n/4) is even, drop otherwise; async: same, a third decided later; hold: never read. */
  mode: 'blocks' | 'async' | 'hold';
  maxLen?: number;
  failOpen?: boolean;
}

/** Sequence number carried by the test datagrams ("seq N"), from an IPv4 packet. */
function seqOf(payload: Buffer): number {
  const ihl = (payload[0] & 0x0f) * 4;
  return Number(payload.subarray(ihl + 8).toString('latin1').slice(4));
}

const acceptedBySeq = (n: number): boolean => Math.floor(n / 4) % 2 === 0;

async function runConsumer(cfg: ConsumerConfig): Promise<void> {
  const { PacketQueue } = await import('../../src/kernel/queue.js');
  const { NF_ACCEPT, NF_DROP } = await import('../../src/kernel/nfqueue-codec.js');
  const out = (line: string): boolean => process.stdout.write(line + '\n');
  let q: InstanceType<typeof PacketQueue>;
  try {
    q = new PacketQueue({ queues: [cfg.queue], maxLen: cfg.maxLen, failOpen: cfg.failOpen });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    out(`BINDERR ${JSON.stringify({ errno: err.errno, code: err.code, message: err.message })}`);
    process.exit(0);
  }
  const errors: string[] = [];
  q.onError = (e) => errors.push(e.message);
  q.onPackets = (batch) => {
    for (const p of batch) {
      const n = seqOf(p.payload);
      const decide = (): void => (acceptedBySeq(n) ? q.verdict(p, NF_ACCEPT, 7) : q.verdict(p, NF_DROP));
      if (cfg.mode === 'async' && n % 3 === 0) setTimeout(decide, n % 5);
      else decide();
    }
  };
  if (cfg.mode !== 'hold') q.start();
  out(`READY ${q.portId}`);
  for await (const line of createInterface({ input: process.stdin })) {
    if (line === 'stats') out(`STATS ${JSON.stringify({ ...q.stats(), errors })}`);
    if (line === 'close') {
      q.close();
      out(`CLOSED ${JSON.stringify({ ...q.stats(), errors })}`);
      process.exit(0);
    }
  }
  q.close();
}

if (process.env.NFSQ_CONSUMER) {
  await runConsumer(JSON.parse(process.env.NFSQ_CONSUMER) as ConsumerConfig);
} else {
  await runTests();
}

// ---------------------------------------------------------------------------------------------
// Test role.
// ---------------------------------------------------------------------------------------------

async function runTests(): Promise<void> {
  const { default: t } = await import('tap');

  if (process.getuid?.() !== 0) {
    t.plan(0, 'needs root (network namespaces, iptables, NFQUEUE)');
    return;
  }
  for (const tool of ['ip', 'iptables']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) {
      t.plan(0, `${tool} not installed`);
      return;
    }
  }

  const tag = randomBytes(3).toString('hex');
  const nsA = `nfsq-${tag}-a`;
  const nsB = `nfsq-${tag}-b`;
  const QUEUE = 5;
  const PORT = 40000 + (randomBytes(2).readUInt16BE(0) % 20000);
  const children = new Set<ChildProcess>();

  const sh = (args: string[]): string => {
    const r = spawnSync(args[0], args.slice(1), { encoding: 'utf8', timeout: 20_000 });
    if (r.status !== 0) throw new Error(`${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };
  const inNs = (ns: string, args: string[]): string => sh(['ip', 'netns', 'exec', ns, ...args]);

  t.teardown(() => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const ns of [nsA, nsB]) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  });

  sh(['ip', 'netns', 'add', nsA]);
  sh(['ip', 'netns', 'add', nsB]);
  sh(['ip', '-n', nsA, 'link', 'add', 'va', 'address', '02:00:00:00:51:01', 'type', 'veth', 'peer', 'name', 'vb', 'address', '02:00:00:00:51:02', 'netns', nsB]);
  sh(['ip', '-n', nsA, 'addr', 'add', '198.51.100.1/24', 'dev', 'va']);
  sh(['ip', '-n', nsB, 'addr', 'add', '198.51.100.2/24', 'dev', 'vb']);
  for (const [ns, dev] of [[nsA, 'va'], [nsB, 'vb']]) {
    sh(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    sh(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  // Static neighbours: no ARP round trip parks the first datagrams in the unresolved queue.
  sh(['ip', '-n', nsA, 'neigh', 'replace', '198.51.100.2', 'lladdr', '02:00:00:00:51:02', 'dev', 'va', 'nud', 'permanent']);
  sh(['ip', '-n', nsB, 'neigh', 'replace', '198.51.100.1', 'lladdr', '02:00:00:00:51:01', 'dev', 'vb', 'nud', 'permanent']);
  inNs(nsA, ['iptables', '-A', 'OUTPUT', '-p', 'udp', '-d', '198.51.100.2', '--dport', String(PORT), '-j', 'NFQUEUE', '--queue-num', String(QUEUE)]);
  // Counts what leaves A with the mark the consumer set, to check marks on batch verdicts.
  inNs(nsA, ['iptables', '-t', 'mangle', '-A', 'POSTROUTING', '-p', 'udp', '-m', 'mark', '--mark', '7', '-j', 'ACCEPT']);

  /** Line-oriented child in a namespace; lines() waits for the next line matching a prefix. */
  function start(ns: string, argv: string[], env: NodeJS.ProcessEnv = {}) {
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    const lines: string[] = [];
    const waiters: Array<() => void> = [];
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 20_000) stderr += d.toString();
    });
    createInterface({ input: child.stdout! }).on('line', (l) => {
      lines.push(l);
      for (const w of waiters.splice(0)) w();
    });
    const exited = new Promise<void>((r) => child.on('exit', () => {
      for (const w of waiters.splice(0)) w();
      r();
    }));
    const next = async (prefix: string, timeoutMs = 15_000): Promise<string> => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const i = lines.findIndex((l) => l.startsWith(prefix));
        if (i >= 0) return lines.splice(i, 1)[0].slice(prefix.length).trim();
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${argv.join(' ')} exited before "${prefix}": ${stderr}`);
        if (Date.now() > deadline) throw new Error(`timed out waiting for "${prefix}" from ${argv.join(' ')}: ${stderr}`);
        await new Promise<void>((r) => {
          const timer = setTimeout(r, 100);
          waiters.push(() => {
            clearTimeout(timer);
            r();
          });
        });
      }
    };
    const send = (line: string): void => {
      child.stdin!.write(line + '\n');
    };
    return { child, next, send, exited, stderr: () => stderr };
  }

  const tsLoader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'));
  const consumerArgv = [process.execPath, ...(tsLoader.length ? tsLoader : ['--import', '@tapjs/typescript/import']), SELF];
  const startConsumer = (cfg: ConsumerConfig) => start(nsA, consumerArgv, { NFSQ_CONSUMER: JSON.stringify(cfg) });
  // A consumer left running by a failed subtest would keep queue 5 bound and fail every later
  // one; each subtest reaps its own children (only those it started) before the next begins.
  const reap = async (c: ReturnType<typeof start>): Promise<void> => {
    if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill('SIGKILL');
    await c.exited;
  };

  const LISTENER = `
    const dgram = require('node:dgram');
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 << 20 });
    const seen = [];
    s.on('message', (m) => seen.push(Number(m.toString().slice(4))));
    s.bind(${PORT}, '198.51.100.2', () => process.stdout.write('READY\\n'));
    process.stdin.on('data', () => { process.stdout.write('SEEN ' + JSON.stringify(seen) + '\\n'); seen.length = 0; });
    process.stdin.on('end', () => process.exit(0));`;
  // Paced in slices so the veth backlog and the listener's socket never drop on their own.
  const SENDER = `
    const dgram = require('node:dgram');
    const s = dgram.createSocket('udp4');
    const n = Number(process.argv[1]);
    let i = 0;
    const slice = () => {
      for (let k = 0; k < 32 && i < n; k++, i++) s.send(Buffer.from('seq ' + i), ${PORT}, '198.51.100.2');
      if (i < n) setTimeout(slice, 2); else setTimeout(() => { s.close(); process.stdout.write('SENT\\n'); }, 50);
    };
    slice();`;

  const listener = start(nsB, [process.execPath, '-e', LISTENER]);
  await listener.next('READY');

  const sendDatagrams = async (n: number): Promise<void> => {
    const s = start(nsA, [process.execPath, '-e', SENDER, String(n)]);
    try {
      await s.next('SENT', 30_000);
    } finally {
      await reap(s);
    }
  };
  const seen = async (): Promise<number[]> => {
    listener.send('report');
    return (JSON.parse(await listener.next('SEEN')) as number[]).sort((a, b) => a - b);
  };
  const procQueues = (): string => inNs(nsA, ['cat', '/proc/net/netfilter/nfnetlink_queue']);
  const listsQueue = (text: string, q: number): boolean => text.split('\n').some((l) => l.trim().split(/\s+/)[0] === String(q));
  const waitStats = async (c: ReturnType<typeof startConsumer>, done: (s: Record<string, number>) => boolean) => {
    for (let i = 0; i < 100; i++) {
      c.send('stats');
      const st = JSON.parse(await c.next('STATS')) as Record<string, number>;
      if (done(st)) return st;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('consumer did not settle');
  };
  const markedOut = (): number => {
    const text = inNs(nsA, ['iptables', '-t', 'mangle', '-L', 'POSTROUTING', '-v', '-x', '-n', '-Z']);
    const line = text.split('\n').find((l) => l.includes('mark match 0x7'));
    return line ? Number(line.trim().split(/\s+/)[0]) : -1;
  };

  const N = 2000;
  const expected = Array.from({ length: N }, (_, i) => i).filter(acceptedBySeq);

  for (const mode of ['blocks', 'async'] as const) {
    t.test(`consumer (${mode}) accepts blocks with mark 7 and drops the others, batched`, async (t) => {
      const c = startConsumer({ queue: QUEUE, mode });
      t.teardown(() => reap(c));
      const portId = Number(await c.next('READY'));
      const listed = procQueues().split('\n').find((l) => l.trim().split(/\s+/)[0] === String(QUEUE));
      t.ok(listed, 'queue 5 is bound');
      t.equal(Number(listed!.trim().split(/\s+/)[1]), portId, 'bound to the consumer port id');
      markedOut();
      await sendDatagrams(N);
      const st = await waitStats(c, (s) => s.verdicts >= N);
      t.equal(st.received, N, 'every datagram was queued to us');
      t.equal(st.verdicts, N, 'every packet got a verdict');
      t.equal(st.undecided, 0);
      t.ok(st.batchMessages > 0, `batch verdicts were used (${st.batchMessages} of ${st.messages} messages, ${st.sends} sends, ${st.bursts} bursts)`);
      t.ok(st.messages < N, 'fewer verdict messages than packets');
      t.same(st.errors, [], 'no verdict errors from the kernel');
      await new Promise((r) => setTimeout(r, 200));
      t.same(await seen(), expected, 'exactly the accepted datagrams arrived');
      t.equal(markedOut(), expected.length, 'accepted packets carried mark 7');
      c.send('close');
      const closed = JSON.parse(await c.next('CLOSED')) as { errors: string[] };
      t.same(closed.errors, [], 'clean unbind');
      await c.exited;
      t.notOk(listsQueue(procQueues(), QUEUE), 'queue 5 no longer listed after close');
    });
  }

  t.test('a second process cannot bind a queue that is taken, and is told who holds it', async (t) => {
    const a = startConsumer({ queue: QUEUE, mode: 'blocks' });
    t.teardown(() => reap(a));
    const portId = Number(await a.next('READY'));
    const b = startConsumer({ queue: QUEUE, mode: 'blocks' });
    t.teardown(() => reap(b));
    const err = JSON.parse(await b.next('BINDERR')) as { errno: number; code: string; message: string };
    t.ok(err.code === 'EPERM' || err.code === 'EBUSY', `refused with ${err.code}`);
    t.ok(err.errno > 0);
    t.match(err.message, new RegExp(`NFQUEUE ${QUEUE}.*port ${portId}`), err.message);
    a.send('close');
    await a.next('CLOSED');
    await a.exited;
  });

  for (const failOpen of [true, false]) {
    t.test(`queue full while the consumer does not read: fail-${failOpen ? 'open accepts' : 'closed drops'} the excess`, async (t) => {
      const maxLen = 4;
      const c = startConsumer({ queue: QUEUE, mode: 'hold', maxLen, failOpen });
      t.teardown(() => reap(c));
      await c.next('READY');
      const n = 50;
      await sendDatagrams(n);
      await new Promise((r) => setTimeout(r, 300));
      const got = await seen();
      // The first maxLen datagrams sit in the kernel queue; the rest overflow it.
      t.same(got, failOpen ? Array.from({ length: n - maxLen }, (_, i) => i + maxLen) : [], `${got.length} arrived`);
      c.send('close');
      await c.next('CLOSED');
      await c.exited;
      t.notOk(listsQueue(procQueues(), QUEUE), 'unbound');
      // Unbinding settles the held packets with a drop.
      await new Promise((r) => setTimeout(r, 100));
      t.same(await seen(), [], 'held packets were not released on close');
    });
  }

  t.test('C reference consumer (bench/c/nfq-accept.c) builds and accepts everything', async (t) => {
    const hasHeaders = existsSync('/usr/include/libnetfilter_queue/libnetfilter_queue.h') && existsSync('/usr/include/libmnl/libmnl.h');
    if (!hasHeaders || spawnSync('sh', ['-c', 'command -v gcc']).status !== 0) {
      t.plan(0, 'gcc, libnetfilter-queue-dev or libmnl-dev missing');
      return;
    }
    const dir = mkdtempSync(join(tmpdir(), 'nfsq-c-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const src = fileURLToPath(new URL('../../bench/c/nfq-accept.c', import.meta.url));
    const bin = join(dir, 'nfq-accept');
    sh(['gcc', '-O2', '-Wall', '-o', bin, src, '-lnetfilter_queue', '-lmnl']);
    const c = start(nsA, [bin, String(QUEUE)]);
    t.teardown(() => reap(c));
    await c.next('ready');
    await sendDatagrams(500);
    await new Promise((r) => setTimeout(r, 200));
    t.same(await seen(), Array.from({ length: 500 }, (_, i) => i), 'all 500 arrived');
    c.child.kill('SIGTERM');
    t.equal(await c.next('packets'), '500');
    await c.exited;
  });
}
