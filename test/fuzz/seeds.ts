// Seeds for corpus mutation: the shared captures (whole files, their IP packets, and the payloads
// of each helper's control sessions), read once. The captures live outside the repository; when
// they are absent the seeds are only what the generators build, so CI still runs every target.

import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PcapFileReader } from '../../src/capture/pcap.js';
import { l3Start } from '../../src/capture/link.js';
import { decode } from '../../src/packet/decode.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** Compiled, this file runs from dist/test/fuzz: the repository root is one level further up. */
const REPO = existsSync(join(ROOT, 'package.json')) ? ROOT : resolve(ROOT, '..');
export const CORPUS_DIR = process.env.NFSESSIOND_CORPUS ?? resolve(REPO, '../shared/corpus/pcaps');
export const REGRESSIONS_DIR = join(REPO, 'test/fuzz/regressions');
export const REPO_ROOT = REPO;

export interface Chunk { dir: 'org' | 'reply'; bytes: Buffer }

export interface CorpusSeeds {
  files: Buffer[];
  packets: Buffer[];
  /** Control-channel payloads by helper name and protocol ('ftp/6', 'sip/17', ...), in capture order. */
  payloads: Map<string, Chunk[]>;
}

/** Helper ports of the default bindings that the corpus has traffic for. */
const HELPER_PORTS: Array<[string, number, number]> = [
  ['ftp', 6, 21], ['sip', 17, 5060], ['sip', 6, 5060], ['tftp', 17, 69], ['dcerpc', 6, 135], ['dcerpc', 17, 135], ['pmap', 6, 111], ['pmap', 17, 111],
];

/** Packets kept per capture: enough variety, without a large transfer dominating the pool. */
const MAX_PACKETS_PER_FILE = 200;
const MAX_FILE = 256 * 1024;

function captures(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...captures(p));
    else if (/\.pcap(ng)?$/.test(e.name)) out.push(p);
  }
  return out.sort();
}

let cached: CorpusSeeds | undefined;

export function corpusSeeds(dir = CORPUS_DIR): CorpusSeeds {
  if (cached) return cached;
  const seeds: CorpusSeeds = { files: [], packets: [], payloads: new Map() };
  for (const path of captures(dir)) {
    const whole = readFileSync(path);
    if (whole.length <= MAX_FILE) seeds.files.push(whole);
    const r = new PcapFileReader(path);
    try {
      for (let n = 0; n < MAX_PACKETS_PER_FILE; n++) {
        const p = r.next();
        if (!p) break;
        const l3 = l3Start(p.linkType, p.buf, p.offset, p.capLen);
        if (!l3.family) continue;
        const ip = Buffer.from(p.buf.subarray(l3.offset, l3.offset + l3.length));
        seeds.packets.push(ip);
        const d = decode(ip);
        if (!d.ok || !d.payloadLength) continue;
        for (const [name, proto, port] of HELPER_PORTS) {
          if (d.tuple.proto !== proto || (d.tuple.dport !== port && d.tuple.sport !== port)) continue;
          const key = `${name}/${proto}`;
          const list = seeds.payloads.get(key) ?? [];
          list.push({ dir: d.tuple.dport === port ? 'org' : 'reply', bytes: Buffer.from(ip.subarray(d.payloadOffset, d.payloadOffset + d.payloadLength)) });
          seeds.payloads.set(key, list);
        }
      }
    } catch {
      // A capture this reader refuses still seeds the file-level target.
    } finally {
      r.close();
    }
  }
  cached = seeds;
  return seeds;
}
