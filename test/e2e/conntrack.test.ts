// End-to-end test of KernelConntrack against the real kernel, in two namespaces of our own:
//
//   nfsct-<pid>-<rand>-a (veth a)  ───  (veth b) nfsct-<pid>-<rand>-b
//   198.51.100.1/24  2001:db8:c7::1/64        198.51.100.2/24  2001:db8:c7::2/64
//
// Conntrack runs in namespace a only because of an nft table there that uses `ct state`.
//
// How TypeScript runs inside the namespace: this same file is re-executed as a child under
// `ip netns exec a node --import <tap's TypeScript loader> test/e2e/conntrack.test.ts` with
// NFSCT_CHILD=1 (no build step, no extra file for tap to mistake for a test). The child opens
// KernelConntrack, subscribes, and answers JSON-line commands on stdin (dump, delete, update,
// udp/tcp traffic from fixed source ports, block the event loop); it prints events as JSON lines.
// Namespace b runs a small node UDP/TCP echo server.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ECHO_SERVER = `
const dgram = require('node:dgram'); const net = require('node:net');
for (const type of ['udp4', 'udp6']) {
  const s = dgram.createSocket(type === 'udp6' ? { type, ipv6Only: true } : { type });
  s.on('message', (m, r) => s.send(m, r.port, r.address));
  s.bind(7777, type === 'udp4' ? '0.0.0.0' : '::');
}
net.createServer((c) => { c.on('data', (d) => c.write(d)); c.on('error', () => {}); }).listen(7778, '::');
setTimeout(() => console.log('listening'), 100);
`;

if (process.env.NFSCT_CHILD === '1') {
  await runChild();
} else {
  await runTests();
}

// ------------------------------------------------------------------------------------ child

async function runChild(): Promise<void> {
  const { KernelConntrack } = await import('../../src/kernel/conntrack.js');
  const dgram = await import('node:dgram');
  const net = await import('node:net');
  const out = (o: unknown): void => {
    process.stdout.write(JSON.stringify(o) + '\n');
  };
  const acct = await KernelConntrack.enableAccounting();
  const rcv = Number(process.env.NFSCT_RCVBUF ?? 0);
  const ct = new KernelConntrack({ dropCheckIntervalMs: 100, ...(rcv ? { receiveBuffer: rcv } : {}) });
  ct.onEvents = (conns) => out({ type: 'events', conns });
  ct.onOverrun = (drops) => out({ type: 'overrun', drops });
  ct.subscribe();
  const tcpConns: import('node:net').Socket[] = [];

  const udp = (family: 4 | 6, dst: string, sport: number, dport: number, count: number, size: number): Promise<number> =>
    new Promise((resolve, reject) => {
      const s = dgram.createSocket(family === 4 ? 'udp4' : 'udp6');
      let got = 0;
      const timer = setTimeout(() => { s.close(); resolve(got); }, 3000);
      s.on('error', (e) => { clearTimeout(timer); reject(e); });
      s.on('message', () => {
        if (++got === count) { clearTimeout(timer); s.close(); resolve(got); }
      });
      s.bind(sport, () => {
        for (let i = 0; i < count; i++) s.send(Buffer.alloc(size, i), dport, dst);
      });
    });

  const tcp = (dst: string, sport: number, dport: number): Promise<string> =>
    new Promise((resolve, reject) => {
      const c = net.connect({ host: dst, port: dport, localPort: sport });
      c.on('error', reject);
      c.on('connect', () => c.write('hello'));
      c.once('data', (d) => { tcpConns.push(c); resolve(d.toString()); });
    });

  const rl = createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    void (async () => {
      const req = JSON.parse(line) as { id: number; cmd: string; [k: string]: unknown };
      try {
        let result: unknown;
        switch (req.cmd) {
          case 'dump': result = await ct.dump(req.family as 4 | 6 | undefined); break;
          case 'delete': result = await ct.delete(req.key as never); break;
          case 'update': result = await ct.update(req.key as never, req.update as never); break;
          case 'udp': result = await udp(req.family as 4 | 6, req.dst as string, req.sport as number, req.dport as number, req.count as number, req.size as number); break;
          case 'tcp': result = await tcp(req.dst as string, req.sport as number, req.dport as number); break;
          case 'block': { const end = Date.now() + (req.ms as number); while (Date.now() < end) { /* starve the loop on purpose */ } result = true; break; }
          case 'stats': ct.checkDrops(); result = ct.stats; break;
          case 'exit': for (const c of tcpConns) c.destroy(); ct.close(); rl.close(); result = true; setImmediate(() => process.exit(0)); break;
          default: throw new Error(`unknown command ${req.cmd}`);
        }
        out({ type: 'reply', id: req.id, result });
      } catch (e) {
        out({ type: 'reply', id: req.id, error: String((e as Error).stack ?? e) });
      }
    })();
  });
  out({ type: 'ready', acct, portId: ct.eventPortId });
}

// ------------------------------------------------------------------------------------ parent

async function runTests(): Promise<void> {
  const { default: t } = await import('tap');
  type KernelConn = import('../../src/kernel/conntrack-codec.js').KernelConn;

  const sh = (argv: string[], input?: string): { code: number; out: string; err: string } => {
    const r = spawnSync(argv[0]!, argv.slice(1), { input, encoding: 'utf8', timeout: 20000 });
    return { code: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
  };
  const must = (argv: string[], input?: string): string => {
    const r = sh(argv, input);
    if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${r.err}`);
    return r.out;
  };

  const base = `nfsct-${process.pid}-${randomBytes(2).toString('hex')}`;
  const A = `${base}-a`;
  const B = `${base}-b`;
  const pids: ChildProcess[] = [];

  const cleanup = (): void => {
    for (const p of pids) if (p.exitCode === null && p.signalCode === null && p.pid) { try { process.kill(p.pid, 'SIGKILL'); } catch { /* already gone */ } }
    for (const ns of [A, B]) sh(['ip', 'netns', 'del', ns]);
  };
  t.teardown(cleanup);
  process.once('exit', cleanup);

  must(['ip', 'netns', 'add', A]);
  must(['ip', 'netns', 'add', B]);
  must(['ip', '-n', A, 'link', 'add', 'vct0', 'type', 'veth', 'peer', 'name', 'vct1', 'netns', B]);
  for (const [ns, dev, n] of [[A, 'vct0', 1], [B, 'vct1', 2]] as const) {
    must(['ip', '-n', ns, 'link', 'set', 'lo', 'up']);
    must(['ip', '-n', ns, 'addr', 'add', `198.51.100.${n}/24`, 'dev', dev]);
    must(['ip', '-n', ns, 'addr', 'add', `2001:db8:c7::${n}/64`, 'dev', dev, 'nodad']);
    must(['ip', '-n', ns, 'link', 'set', dev, 'up']);
  }
  // Conntrack only runs in a namespace once some rule needs it.
  must(['ip', 'netns', 'exec', A, 'nft', '-f', '-'],
    'table inet nfsct {\n\tchain out {\n\t\ttype filter hook output priority 0; policy accept;\n\t\tct state new counter\n\t}\n}\n');

  const echo = spawn('ip', ['netns', 'exec', B, process.execPath, '-e', ECHO_SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  pids.push(echo);
  await new Promise<void>((resolve, reject) => {
    echo.stdout!.once('data', () => resolve());
    echo.once('exit', (c) => reject(new Error(`echo server exited ${c}`)));
  });

  const tsLoader = process.execArgv.find((a) => a.includes('@tapjs/typescript')) ?? `--import=${import.meta.resolve('@tapjs/typescript/import')}`;
  const self = fileURLToPath(import.meta.url);

  class Child {
    readonly proc: ChildProcess;
    readonly events: KernelConn[] = [];
    overruns: number[] = [];
    private seq = 0;
    private readonly waiters = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
    private eventWaiters: Array<() => void> = [];
    ready: Promise<{ acct: { ok: boolean; error?: string } }>;

    constructor(env: Record<string, string> = {}) {
      this.proc = spawn('ip', ['netns', 'exec', A, process.execPath, tsLoader, self], {
        env: { ...process.env, NFSCT_CHILD: '1', ...env }, stdio: ['pipe', 'pipe', 'inherit'],
      });
      pids.push(this.proc);
      let onReady!: (v: { acct: { ok: boolean } }) => void;
      this.ready = new Promise((resolve, reject) => {
        onReady = resolve;
        this.proc.once('exit', (c) => reject(new Error(`conntrack child exited ${c}`)));
      });
      createInterface({ input: this.proc.stdout! }).on('line', (line) => {
        let m: { type: string; id?: number; result?: unknown; error?: string; conns?: KernelConn[]; drops?: number; acct?: { ok: boolean } };
        try { m = JSON.parse(line); } catch { return; }
        if (m.type === 'ready') onReady(m as { acct: { ok: boolean } });
        else if (m.type === 'events') { this.events.push(...m.conns!); for (const w of this.eventWaiters.splice(0)) w(); }
        else if (m.type === 'overrun') this.overruns.push(m.drops!);
        else if (m.type === 'reply') {
          const w = this.waiters.get(m.id!);
          this.waiters.delete(m.id!);
          if (m.error) w?.reject(new Error(m.error)); else w?.resolve(m.result);
        }
      });
    }

    call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
      const id = ++this.seq;
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`child ${cmd} timed out`)), 20000);
        this.waiters.set(id, { resolve: (v) => { clearTimeout(timer); resolve(v as T); }, reject: (e) => { clearTimeout(timer); reject(e); } });
        this.proc.stdin!.write(JSON.stringify({ id, cmd, ...args }) + '\n');
      });
    }

    async waitEvent(pred: (c: KernelConn) => boolean, timeoutMs = 5000): Promise<KernelConn> {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = this.events.find(pred);
        if (hit) return hit;
        const left = end - Date.now();
        if (left <= 0) throw new Error(`no matching conntrack event; got ${JSON.stringify(this.events.map((e) => [e.event, e.orig]))}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          this.eventWaiters.push(() => { clearTimeout(timer); resolve(); });
        });
      }
    }

    async exit(): Promise<void> {
      if (this.proc.exitCode !== null) return;
      const done = new Promise((r) => this.proc.once('exit', r));
      await this.call('exit').catch(() => {});
      await done;
    }
  }

  const conntrackList = (...args: string[]): string => sh(['ip', 'netns', 'exec', A, 'conntrack', '-L', ...args]).out;

  const child = new Child();
  const ready = await child.ready;
  t.teardown(() => child.exit());

  t.test('accounting is enabled in the namespace', async (t) => {
    t.same(ready.acct.ok, true, JSON.stringify(ready.acct));
    t.equal(must(['ip', 'netns', 'exec', A, 'cat', '/proc/sys/net/netfilter/nf_conntrack_acct']).trim(), '1');
  });

  const udp4 = { family: 4, proto: 17, src: '198.51.100.1', dst: '198.51.100.2', sport: 40001, dport: 7777 };
  const same = (a: { family: number; proto: number; src: string; dst: string; sport: number; dport: number }, b: typeof a): boolean =>
    a.family === b.family && a.proto === b.proto && a.src === b.src && a.dst === b.dst && a.sport === b.sport && a.dport === b.dport;

  t.test('UDP: NEW event, counters, mark update, delete with DESTROY event', async (t) => {
    const got = await child.call<number>('udp', { family: 4, dst: udp4.dst, sport: udp4.sport, dport: udp4.dport, count: 3, size: 100 });
    t.equal(got, 3, 'echoes received');
    const ev = await child.waitEvent((c) => c.event === 'new' && same(c.orig, udp4));
    t.same(ev.orig, udp4);
    t.same(ev.reply, { family: 4, proto: 17, src: '198.51.100.2', dst: '198.51.100.1', sport: 7777, dport: 40001 });
    t.equal(ev.family, 4);

    const dump = await child.call<KernelConn[]>('dump', { family: 4 });
    const d = dump.find((c) => same(c.orig, udp4));
    t.ok(d, 'entry in dump');
    t.equal(d!.event, 'dump');
    // 3 datagrams each way of 20 (IPv4) + 8 (UDP) + 100 bytes.
    t.same(d!.counters, { origPackets: 3, origBytes: 384, replyPackets: 3, replyBytes: 384 });
    t.ok((d!.timeout ?? 0) > 0, 'timeout present');
    t.ok(d!.id !== undefined, 'id present');

    t.equal(await child.call('update', { key: { tuple: udp4 }, update: { mark: 0x00100000, markMask: 0x00100000, timeout: 300 } }), true);
    const listed = conntrackList('-p', 'udp', '--orig-port-src', '40001');
    t.match(listed, /mark=1048576/, 'mark visible in conntrack -L');
    const after = (await child.call<KernelConn[]>('dump')).find((c) => same(c.orig, udp4))!;
    t.equal(after.mark, 0x00100000);
    t.ok(after.timeout! > 200 && after.timeout! <= 300, `timeout updated (${after.timeout})`);

    t.equal(await child.call('delete', { key: { tuple: udp4 } }), true, 'deleted');
    const gone = await child.waitEvent((c) => c.event === 'destroy' && same(c.orig, udp4));
    t.same(gone.orig, udp4);
    t.same(gone.reply.src, '198.51.100.2');
    t.notMatch(conntrackList('-p', 'udp', '--orig-port-src', '40001'), /sport=40001/, 'entry gone from conntrack -L');
    t.equal(await child.call('delete', { key: { tuple: udp4 } }), false, 'second delete: already gone, not an error');
    t.equal(await child.call('update', { key: { tuple: udp4 }, update: { timeout: 5 } }), false, 'update of a gone entry: false');
  });

  t.test('TCP: NEW event with exact tuple, ESTABLISHED state in dump, delete', async (t) => {
    const tcp4 = { family: 4, proto: 6, src: '198.51.100.1', dst: '198.51.100.2', sport: 40002, dport: 7778 };
    t.equal(await child.call('tcp', { dst: tcp4.dst, sport: tcp4.sport, dport: tcp4.dport }), 'hello');
    const ev = await child.waitEvent((c) => c.event === 'new' && same(c.orig, tcp4));
    t.same(ev.reply, { family: 4, proto: 6, src: '198.51.100.2', dst: '198.51.100.1', sport: 7778, dport: 40002 });
    const d = (await child.call<KernelConn[]>('dump')).find((c) => same(c.orig, tcp4))!;
    t.equal(d.tcpState, 3);
    t.equal(d.tcpStateName, 'ESTABLISHED');
    t.ok(d.counters && d.counters.origPackets >= 3 && d.counters.replyPackets >= 2, JSON.stringify(d.counters));
    t.equal(await child.call('delete', { key: d }), true, 'delete using the dumped entry as key');
    await child.waitEvent((c) => c.event === 'destroy' && same(c.orig, tcp4));
  });

  t.test('IPv6 UDP: exact tuple in NEW and DESTROY events', async (t) => {
    const udp6 = { family: 6, proto: 17, src: '2001:db8:c7::1', dst: '2001:db8:c7::2', sport: 40003, dport: 7777 };
    t.equal(await child.call('udp', { family: 6, dst: udp6.dst, sport: udp6.sport, dport: udp6.dport, count: 2, size: 10 }), 2);
    const ev = await child.waitEvent((c) => c.event === 'new' && same(c.orig, udp6));
    t.same(ev.reply, { family: 6, proto: 17, src: '2001:db8:c7::2', dst: '2001:db8:c7::1', sport: 7777, dport: 40003 });
    const d = (await child.call<KernelConn[]>('dump', { family: 6 })).find((c) => same(c.orig, udp6))!;
    // IPv6 header 40 + UDP 8 + 10.
    t.same(d.counters, { origPackets: 2, origBytes: 116, replyPackets: 2, replyBytes: 116 });
    t.ok((await child.call<KernelConn[]>('dump', { family: 4 })).every((c) => c.family === 4), 'family filter');
    t.equal(await child.call('delete', { key: { tuple: udp6 } }), true);
    await child.waitEvent((c) => c.event === 'destroy' && same(c.orig, udp6));
  });

  t.test('a starved reader with a tiny buffer reports lost events, and keeps running', async (t) => {
    const small = new Child({ NFSCT_RCVBUF: '4096' });
    t.teardown(() => small.exit());
    await small.ready;
    const blocked = small.call('block', { ms: 1500 });
    // 200 new UDP flows from distinct source ports while the child's loop is blocked.
    const flood = `const d=require('node:dgram');let n=0;for(let i=0;i<200;i++){const s=d.createSocket('udp4');s.bind(0,()=>s.send(Buffer.alloc(1),9,'198.51.100.2',()=>{s.close();if(++n===200)process.exit(0)}))}`;
    must(['ip', 'netns', 'exec', A, process.execPath, '-e', flood]);
    await blocked;
    const end = Date.now() + 3000;
    while (small.overruns.length === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 100));
    t.ok(small.overruns.length > 0, 'onOverrun called');
    const stats = await small.call<{ overruns: number; kernelDrops: number }>('stats');
    t.ok(stats.overruns >= 1 && stats.kernelDrops > 0, JSON.stringify(stats));
    t.ok((await small.call<KernelConn[]>('dump')).length >= 0, 'still answers after the overrun');
  });
}
