// The SIP helper with real peers: a sipp UAC in the client namespace calls a sipp UAS in the
// server namespace (scenarios in test/fixtures/sip/), the daemon on the router with a policy that
// allows only the signalling (client -> server udp/5060 and tcp/5060). The RTP both ways gets through only
// because the SDP offer and answer were read: while the call is up the expectation table holds
// the media tuples with the signalling session's policy id and serial, after the BYE it is empty,
// and with the helper deleted no media arrives. Then the same call runs through a router with the
// kernel's nf_conntrack_sip instead of the daemon, and its expectations must equal ours. Each call
// runs over UDP and TCP on IPv4 and over UDP on IPv6.

import { fileURLToPath } from 'node:url';
import t from 'tap';
import { withTopology, type NsProcess, type Topology } from '../../src/topology/netns.js';
import { hostPort, waitForTcpListen, waitForUdpListen } from '../../src/topology/peers.js';
import type { ExpectationView } from '../../src/control/expectation-view.js';
import type { SessionView } from '../../src/control/session-view.js';
import { eventually, startDaemon, type RunningDaemon } from '../lib/daemon.js';
import { controlOnlyConfig } from '../lib/control-only.js';
import { conntrackExpectKeys } from '../lib/conntrack-expect.js';

const SCENARIOS = fileURLToPath(new URL('../fixtures/sip/', import.meta.url));
/** Packets in /usr/share/sip-tester/dtmf_2833_1.pcap, played once by each side. */
const RTP_PACKETS = 10;

const CONFIG = (extra = '') => controlOnlyConfig({ policyId: 31, service: 'sip-signalling', tcp: '5060', udp: '5060', extra });

interface Expectations { expectations: ExpectationView[] }
interface Sessions { sessions: SessionView[] }

/** "17 203.0.113.2->198.51.100.2:7000" */
const key = (proto: number, src: string, dst: string, dport: number) => `${proto} ${src}->${dst}:${dport}`;

/** tcpdump in a namespace, printing one line per UDP packet other than the signalling. */
async function sniff(topo: Topology, ns: 'client' | 'server'): Promise<NsProcess> {
  const p = topo.spawn(ns, ['tcpdump', '-i', topo.ifname[ns], '-n', '-q', '-l', 'udp and not port 5060']);
  await p.waitForLine(/listening on/, { stream: 'stderr', timeoutMs: 10_000 });
  return p;
}

async function exited(p: NsProcess, ms: number): Promise<number | null> {
  const r = await Promise.race([p.exited, new Promise<undefined>((res) => setTimeout(res, ms))]);
  if (!r) {
    await p.kill('SIGKILL');
    throw new Error(`${p.argv[0]} did not finish in ${ms} ms\nstdout: ${p.stdout().slice(-1500)}\nstderr: ${p.stderr().slice(-1500)}`);
  }
  return r.code;
}

interface CallResult { uac: number | null; uas: number | null; toServer: number; toClient: number; uacLog: string; uasLog: string; tapServer: string; tapClient: string }

/**
 * How the call is signalled: sipp transport u1 (UDP) or t1 (TCP), IPv4 or IPv6; and the RTP
 * ports of the UAS's answer and the UAC's offer (different per call: the media session of one
 * call outlives its BYE by its own TTL, and must not carry the next call's media).
 */
interface Variant { name: string; transport: 'u1' | 't1'; family: 4 | 6; uasMedia: number; uacMedia: number }
const VARIANTS: Variant[] = [
  { name: 'SIP/UDP IPv4', transport: 'u1', family: 4, uasMedia: 6000, uacMedia: 7000 },
  { name: 'SIP/TCP IPv4', transport: 't1', family: 4, uasMedia: 6010, uacMedia: 7010 },
  { name: 'SIP/UDP IPv6', transport: 'u1', family: 6, uasMedia: 6020, uacMedia: 7020 },
];
const addrs = (topo: Topology, v: Variant) => (v.family === 4
  ? { S: topo.addr.server.v4, C: topo.addr.client.v4 }
  : { S: topo.addr.server.v6, C: topo.addr.client.v6 });

/**
 * One call: UAS on the server, UAC on the client. The UAC pauses `pauseMs` after the ACK before
 * any media (the window `during` runs in), then both sides play 10 RTP packets, then BYE.
 */
async function call(topo: Topology, v: Variant, pauseMs: number, during?: () => Promise<void>): Promise<CallResult> {
  const { S, C } = addrs(topo, v);
  const tapServer = await sniff(topo, 'server');
  const tapClient = await sniff(topo, 'client');
  const common = ['-t', v.transport, '-m', '1', '-nostdin', '-timeout', '60s', '-timeout_error'];
  const uas = topo.spawn('server', ['sipp', '-sf', `${SCENARIOS}uas.xml`, '-i', S, '-p', '5060', '-mi', S, '-mp', String(v.uasMedia), ...common]);
  await (v.transport === 't1' ? waitForTcpListen : waitForUdpListen)(topo, 'server', 5060, { timeoutMs: 10_000 });
  const uac = topo.spawn('client', ['sipp', `${hostPort(S, 5060)}`, '-sf', `${SCENARIOS}uac.xml`, '-i', C, '-p', '5060', '-mi', C, '-mp', String(v.uacMedia),
    '-s', 'echo', '-d', String(pauseMs), ...common]);
  try {
    if (during) await during();
    const uacCode = await exited(uac, 60_000);
    const uasCode = await exited(uas, 60_000);
    // tcpdump prints each packet as it sees it (-l); the last media left well before the BYE.
    await new Promise((r) => setTimeout(r, 300));
    const count = (p: NsProcess, from: string, to: string) => p.stdout().split('\n').filter((l) => l.includes(` ${from} > ${to}:`)).length;
    return {
      uac: uacCode,
      uas: uasCode,
      toServer: count(tapServer, `${C}.${v.uacMedia}`, `${S}.${v.uasMedia}`),
      toClient: count(tapClient, `${S}.${v.uasMedia}`, `${C}.${v.uacMedia}`),
      uacLog: uac.stdout().slice(-3000) + uac.stderr().slice(-1000),
      uasLog: uas.stdout().slice(-3000) + uas.stderr().slice(-1000),
      tapServer: tapServer.stdout().slice(-3000),
      tapClient: tapClient.stdout().slice(-3000),
    };
  } finally {
    for (const p of [uac, uas, tapServer, tapClient]) if (p.running) await p.kill();
  }
}

/** The four media tuples of the call: each SDP's RTP and RTCP port, from the other endpoint. */
function mediaKeys(topo: Topology, v: Variant): string[] {
  const { S, C } = addrs(topo, v);
  return [key(17, S, C, v.uacMedia), key(17, S, C, v.uacMedia + 1), key(17, C, S, v.uasMedia), key(17, C, S, v.uasMedia + 1)].sort();
}

/** Ours per variant, for the comparison with the kernel. */
const ours = new Map<string, string[]>();

t.test('calls through the sip helper: media expected from the SDP, gone after the BYE', async (t) => {
  await withTopology(t, async (topo) => {
    const d = await startDaemon(topo, CONFIG());
    t.teardown(() => d.stop());
    for (const v of VARIANTS) {
      let during: ExpectationView[] = [];
      let control: SessionView | undefined;
      const r = await call(topo, v, 5000, async () => {
        // Offer and answer read, no media yet: the four expectations of the call.
        during = (await eventually(async () => {
          const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
          return e.length >= 4 ? e : undefined;
        }, 20_000)) ?? [];
        control = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.dport === 5060 && s.orig_tuple.family === v.family && s.orig_tuple.proto === (v.transport === 't1' ? 6 : 17));
      });
      t.equal(r.uac, 0, `${v.name}: the call completed (uac exit 0)${r.uac ? `\n${r.uacLog}` : ''}`);
      t.equal(r.uas, 0, `${v.name}: the UAS saw INVITE, ACK, INFO and BYE${r.uas ? `\n${r.uasLog}` : ''}`);
      t.match(control, { helper: 'sip', policy_id: 31 }, `${v.name}: the signalling session runs the sip helper`);
      const keys = during.map((x) => key(x.proto, x.tuple.src, x.tuple.dst, x.tuple.dport)).sort();
      ours.set(v.name, keys);
      t.same(keys, mediaKeys(topo, v), `${v.name}: RTP and RTCP of the offer (towards the client) and of the answer (towards the server)`);
      t.same(during.map((x) => [x.kind, x.tuple.dport]).sort(), [['rtcp', v.uasMedia + 1], ['rtcp', v.uacMedia + 1], ['rtp', v.uasMedia], ['rtp', v.uacMedia]].sort());
      for (const x of during) {
        t.match(x, { helper: 'sip', proto: 17, policy_id: 31, serial: control?.serial, parent: control?.serial, tracks_parent: true, tuple: { family: v.family, sport: 0 } }, `${v.name}: ${x.kind} ${x.tuple.dport} inherits the signalling session's policy and serial`);
      }
      t.equal(r.toServer, RTP_PACKETS, `${v.name}: every RTP packet of the UAC reached the server${r.toServer === RTP_PACKETS ? '' : `\n${r.tapServer}`}`);
      t.equal(r.toClient, RTP_PACKETS, `${v.name}: every RTP packet of the UAS reached the client${r.toClient === RTP_PACKETS ? '' : `\n${r.tapClient}`}`);

      const media = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions.find((s) => s.orig_tuple.proto === 17 && s.orig_tuple.family === v.family && s.orig_tuple.dport !== 5060 && s.parent === control?.serial);
      t.match(media, { parent: control?.serial, inherited_serial: control?.serial, policy_id: 31, expected: { helper: 'sip', kind: 'rtp' } }, `${v.name}: the RTP session is the child of the signalling session`);
      const after = await eventually(async () => {
        const e = (await d.json<Expectations>('diagnose', 'sys', 'session', 'list', 'expectation')).expectations;
        return e.length === 0 ? e : undefined;
      });
      t.same(after, [], `${v.name}: after the BYE no expectation is left (the unused RTCP ones were released)`);
    }
    t.notMatch(d.proc.stdout(), /"msg":"expectation refused"/, 'nothing was refused');
  });
});

t.test('with the sip helper deleted the media does not get through', async (t) => {
  await withTopology(t, async (topo) => {
    // Entry 13 of the default session-helper list is sip udp/5060.
    const d = await startDaemon(topo, CONFIG('config system session-helper\n    delete 13\nend\n'));
    t.teardown(() => d.stop());
    const r = await call(topo, VARIANTS[0], 500);
    t.equal(r.uac, 0, `the signalling still completes${r.uac ? `\n${r.uacLog}` : ''}`);
    t.equal(r.toServer, 0, 'no RTP reached the server');
    t.equal(r.toClient, 0, 'no RTP reached the client');
    const sessions = (await d.json<Sessions>('diagnose', 'sys', 'session', 'list')).sessions;
    t.ok(sessions.some((s) => s.orig_tuple.dport === 5060 && s.helper === undefined), 'the signalling session ran without a helper');
    const denied = /policy_deny=([0-9a-f]+)/.exec(await d.cli('diagnose', 'sys', 'session', 'stat'));
    t.ok(denied && parseInt(denied[1], 16) > 0, 'the media met the implicit deny');
  });
});

const KERNEL_SIP = `
table inet ksip {
  ct helper sip-udp { type "sip" protocol udp; l3proto inet; }
  ct helper sip-tcp { type "sip" protocol tcp; l3proto inet; }
  chain pre {
    type filter hook prerouting priority filter; policy accept;
    udp dport 5060 ct helper set "sip-udp"
    tcp dport 5060 ct helper set "sip-tcp"
  }
}
`;

t.test('the kernel nf_conntrack_sip expects the same media on the same calls', async (t) => {
  await withTopology(t, async (topo) => {
    // The helper module is global to the kernel; loading it again is harmless.
    await topo.exec('router', ['modprobe', 'nf_conntrack_sip']);
    await topo.execOk('router', ['nft', '-f', '-'], { input: KERNEL_SIP });
    const watch = topo.spawn('router', ['conntrack', '-E', 'expect']);
    t.teardown(() => watch.kill());
    const parse = (text: string) => conntrackExpectKeys(text).sort();
    for (const v of VARIANTS) {
      let listed = '';
      const since = watch.stdout().length;
      const r = await call(topo, v, 4000, async () => {
        listed = (await eventually(async () => {
          const out = (await topo.exec('router', ['conntrack', '-L', 'expect', '-f', v.family === 4 ? 'ipv4' : 'ipv6'])).stdout;
          return out.split('\n').filter((l) => l.includes('proto=')).length >= 4 ? out : undefined;
        }, 20_000)) ?? '';
      });
      t.equal(r.uac, 0, `${v.name}: the call completed through the kernel helper${r.uac ? `\n${r.uacLog}` : ''}`);
      const kernel = parse(listed);
      t.ok(listed.includes('helper=sip') && /sport=0 /.test(listed), `${v.name}: conntrack -L expect lists the sip helper's expectations, source port open`);
      t.same(kernel, ours.get(v.name) ?? mediaKeys(topo, v), `${v.name}: our expectations equal the kernel helper's (protocol, source, destination, destination port)`);
      t.same([...new Set(parse(watch.stdout().slice(since)))].sort(), kernel, `${v.name}: and the kernel created no others during the call`);
    }
  });
});
