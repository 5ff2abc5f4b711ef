// Targets: each session helper's data() on a control session fed a sequence of chunks in both
// directions. Never throws; every expectation is well formed (protocol, canonical addresses of
// the session's family, ports in range); the state stays plain data (it survives the snapshot
// codec and behaves the same afterwards), does not keep views of the packet buffers it was
// handed, and stays within a bound however long the session runs.

import fc from 'fast-check';
import { HELPERS } from '../../../src/helpers/registry.js';
import { DEFAULT_HELPER_OPTIONS, type ControlView, type HelperOptions, type HelperResult } from '../../../src/helpers/types.js';
import { IPPROTO_TCP, IPPROTO_UDP, type FlowTuple } from '../../../src/packet/types.js';
import { decodeJson, encodeJson } from '../../../src/state/snapshot.js';
import { ensure, ensureAddress, isPort, sizeOf } from '../check.js';
import { dcerpcTcpMessages, dcerpcUdpMessages, ftpMessages, HOSTS, recordMark, rpcMessages, sipMessages, tftpMessages, type Msg } from '../grammars.js';
import { mutated } from '../mutate.js';
import { corpusSeeds } from '../seeds.js';
import type { FuzzTarget } from '../target.js';

export interface HelperInput {
  family: 4 | 6;
  proto: number;
  opts: HelperOptions;
  steps: Msg[];
}

interface HelperSpec {
  /** Registry name of the helper. */
  helper: string;
  port: number;
  protos: number[];
  /** Messages of the helper's protocol (for TCP they are cut into segments at random points). */
  messages: Partial<Record<number, fc.Arbitrary<Msg[]>>>;
  /** What the state may hold beyond twice the largest chunk fed (buffers waiting for the rest of a message). */
  stateBound: number;
  /** Expectation kinds the helper may ask for. */
  kinds: string[];
  sources: string[];
}

/** Refusal details are logged: one hostile message must not become an unbounded log line. */
const MAX_DETAIL = 512;

export function controlView(family: 4 | 6, proto: number, port: number): ControlView {
  const h = HOSTS[family];
  const orig: FlowTuple = { family, proto, src: h.client, dst: h.server, sport: 40000, dport: port };
  return { orig, reply: { family, proto, src: h.server, dst: h.client, sport: port, dport: 40000 } };
}

function checkResult(r: HelperResult | undefined, ctl: ControlView, kinds: string[]): void {
  if (r === undefined) return;
  ensure(r && typeof r === 'object', 'result is not an object');
  for (const x of r.expect ?? []) {
    ensure(kinds.includes(x.kind), `expectation kind '${x.kind}'`);
    ensure(x.proto === IPPROTO_TCP || x.proto === IPPROTO_UDP, `expectation proto ${x.proto}`);
    ensureAddress(x.src, ctl.orig.family, 'expectation src');
    ensureAddress(x.dst, ctl.orig.family, 'expectation dst');
    ensure(isPort(x.sport) && isPort(x.dport) && x.dport > 0, `expectation ports ${x.sport} -> ${x.dport}`);
    ensure(x.timeout === undefined || (Number.isFinite(x.timeout) && x.timeout >= 0), `expectation timeout ${x.timeout}`);
    ensure(x.tag === undefined || typeof x.tag === 'string', 'expectation tag');
  }
  for (const x of r.refuse ?? []) {
    ensure(typeof x.reason === 'string' && /^[a-z0-9-]+$/.test(x.reason), `refusal reason ${JSON.stringify(x.reason)}`);
    ensure(typeof x.detail === 'string' && x.detail.length <= MAX_DETAIL, `refusal detail of ${String(x.detail?.length)} characters`);
  }
  for (const x of r.release ?? []) ensure(typeof x === 'string', 'release tag is not a string');
}

/** Runs the steps; a copy of every chunk is handed over and scribbled on afterwards, as the engine reuses its buffers. */
function feed(spec: HelperSpec, input: HelperInput, ctl: ControlView, state: unknown, from: number, scribble: boolean, record = true): string[] {
  const h = HELPERS[spec.helper];
  const out: string[] = [];
  let largest = 0;
  for (let i = from; i < input.steps.length; i++) {
    const s = input.steps[i];
    const chunk = Buffer.from(s.bytes);
    largest = Math.max(largest, chunk.length);
    const r = h.data(state, s.dir, chunk, ctl, input.opts);
    checkResult(r, ctl, spec.kinds);
    if (record) out.push(encodeJson(r ?? null));
    if (scribble) chunk.fill(0xa5);
    const size = sizeOf(state);
    ensure(size <= spec.stateBound + 2 * largest, () => `state of ${size} bytes after step ${i} (bound ${spec.stateBound} + 2 x ${largest})`);
  }
  return out;
}

function runHelper(spec: HelperSpec, input: HelperInput, thorough: boolean): void {
  const ctl = controlView(input.family, input.proto, spec.port);
  const h = HELPERS[spec.helper];
  const state = h.init(ctl);
  if (!thorough) { feed(spec, input, ctl, state, 0, true, false); return; }
  const mid = input.steps.length >> 1;
  const head = feed(spec, { ...input, steps: input.steps.slice(0, mid) }, ctl, state, 0, true);
  // The state as a snapshot would store and restore it must carry on exactly as the original.
  const copy = decodeJson(encodeJson(state));
  const tail = feed(spec, input, ctl, state, mid, true);
  const tailCopy = feed(spec, input, ctl, copy, mid, false);
  ensure(head.length === mid, 'steps lost');
  ensure(tail.join('\n') === tailCopy.join('\n'), () => 'the state restored from its snapshot form (or one not holding views of old packet buffers) answers differently');
}

/** TCP: the stream of each direction cut at random points, in order. */
function segments(msgs: Msg[], cuts: number[]): Msg[] {
  const out: Msg[] = [];
  let c = 0;
  for (const m of msgs) {
    let b = m.bytes;
    while (b.length > 1 && c < cuts.length && cuts[c] % 3 !== 0) {
      const at = 1 + (cuts[c++] % (b.length - 1));
      out.push({ dir: m.dir, bytes: b.subarray(0, at) });
      b = b.subarray(at);
    }
    c++;
    out.push({ dir: m.dir, bytes: b });
  }
  return out;
}

function inputs(spec: HelperSpec): fc.Arbitrary<HelperInput> {
  const seeds = corpusSeeds();
  const opts = fc.record({ ftpThirdParty: fc.boolean(), sipMediaAnyPeer: fc.boolean() }).map((o) => (o.ftpThirdParty || o.sipMediaAnyPeer ? o : DEFAULT_HELPER_OPTIONS));
  const arbs: Array<fc.Arbitrary<HelperInput>> = [];
  for (const proto of spec.protos) {
    const msgs = spec.messages[proto];
    if (msgs) {
      // The same messages with some of them edited: what a lying or broken peer sends.
      const edited = msgs.chain((m) => (m.length
        ? fc.tuple(...m.map((x) => fc.oneof(fc.constant(x), mutated([x.bytes], 4).map((bytes) => ({ dir: x.dir, bytes })))))
        : fc.constant(m)));
      for (const source of [msgs, edited]) {
        const stream = proto === IPPROTO_TCP
          ? fc.tuple(source, fc.array(fc.nat(), { maxLength: 16 })).map(([m, cuts]) => segments(m, cuts))
          : source;
        arbs.push(fc.record({ family: fc.constantFrom(4 as const, 6 as const), proto: fc.constant(proto), opts, steps: stream }));
      }
    }
    const corpus = seeds.payloads.get(`${spec.helper}/${proto}`);
    if (corpus?.length) {
      const pool = corpus.map((c) => c.bytes);
      arbs.push(fc.record({
        family: fc.constant(4 as const), proto: fc.constant(proto), opts,
        steps: fc.array(fc.tuple(fc.integer({ min: 0, max: corpus.length - 1 }), fc.boolean(), mutated(pool, 3)), { minLength: 1, maxLength: 8 })
          .map((xs) => xs.map(([i, keep, b]) => ({ dir: corpus[i].dir, bytes: keep ? corpus[i].bytes : b }))),
      }));
    }
  }
  return fc.oneof(...arbs);
}

const SPECS: HelperSpec[] = [
  { helper: 'ftp', port: 21, protos: [IPPROTO_TCP], messages: { [IPPROTO_TCP]: ftpMessages }, stateBound: 8192, kinds: ['ftp-data'], sources: ['src/helpers/ftp.ts', 'src/helpers/lines.ts'] },
  { helper: 'tftp', port: 69, protos: [IPPROTO_UDP], messages: { [IPPROTO_UDP]: tftpMessages }, stateBound: 256, kinds: ['tftp-data'], sources: ['src/helpers/tftp.ts'] },
  {
    helper: 'sip', port: 5060, protos: [IPPROTO_UDP, IPPROTO_TCP], messages: { [IPPROTO_UDP]: sipMessages, [IPPROTO_TCP]: sipMessages },
    stateBound: 1 << 20, kinds: ['rtp', 'rtcp', 'udptl'], sources: ['src/helpers/sip.ts', 'src/helpers/sdp.ts'],
  },
  {
    helper: 'dcerpc', port: 135, protos: [IPPROTO_TCP, IPPROTO_UDP], messages: { [IPPROTO_TCP]: dcerpcTcpMessages, [IPPROTO_UDP]: dcerpcUdpMessages },
    stateBound: 4 << 20, kinds: ['dcerpc'], sources: ['src/helpers/dcerpc.ts'],
  },
  {
    helper: 'pmap', port: 111, protos: [IPPROTO_UDP, IPPROTO_TCP],
    messages: {
      [IPPROTO_UDP]: rpcMessages,
      [IPPROTO_TCP]: fc.tuple(rpcMessages, fc.array(fc.nat(), { maxLength: 8 }), fc.constantFrom(0, 0, 0, 1, -1, 0x7fffffff)).map(([ms, splits, lie]) => ms.map((m, i) => recordMark(m, splits[i] ?? 0, i === 0 ? lie : 0))),
    },
    stateBound: 64 << 10, kinds: ['rpc'], sources: ['src/helpers/sunrpc.ts', 'src/helpers/onc-rpc.ts'],
  },
];

function target(spec: HelperSpec): FuzzTarget<HelperInput> {
  return {
    name: `helper-${spec.helper === 'pmap' ? 'sunrpc' : spec.helper}`,
    invariants: [
      'init and data never throw',
      `expectations: kind in ${spec.kinds.join('/')}, proto TCP/UDP, src/dst canonical addresses of the session family, sport 0-65535, dport 1-65535`,
      `refusals: reason a counter label, detail at most ${MAX_DETAIL} characters`,
      `state at most ${spec.stateBound} bytes + twice the largest chunk`,
      'state round-trips through the snapshot codec and answers the rest of the session the same; no views of handed-over buffers kept',
    ],
    sources: spec.sources,
    arbitrary: () => inputs(spec),
    run: (input, thorough) => runHelper(spec, input, thorough),
  };
}

export const helperTargets: FuzzTarget<HelperInput>[] = SPECS.map(target);
