// Which interface the router reaches an address through (`ip route get`, one `ip -batch` for all
// addresses): the shell's answer where a decision needs interfaces the kernel entry does not
// record, such as re-deciding a conntrack entry found at start.

import { readFileSync } from 'node:fs';
import { run } from './exec.js';

/** Address -> interface index of its route; addresses without a route are absent. */
export async function routeInterfaces(addresses: Iterable<string>): Promise<Map<string, number>> {
  const unique = [...new Set(addresses)].filter((a) => /^[0-9a-fA-F:.]+$/.test(a));
  const out = new Map<string, number>();
  if (!unique.length) return out;
  const r = await run('ip', ['-j', '-force', '-batch', '-'], { input: unique.map((a) => `route get ${a}\n`).join(''), timeoutMs: 30_000 });
  const index = new Map<string, number>();
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('[')) continue;
    let routes: Array<{ dst?: string; dev?: string }>;
    try {
      routes = JSON.parse(line) as Array<{ dst?: string; dev?: string }>;
    } catch {
      continue;
    }
    for (const rt of routes) {
      if (!rt.dst || !rt.dev) continue;
      let i = index.get(rt.dev);
      if (i === undefined) {
        i = ifindexOf(rt.dev);
        index.set(rt.dev, i);
      }
      if (i > 0) out.set(rt.dst, i);
    }
  }
  return out;
}

function ifindexOf(dev: string): number {
  if (!/^[\w.@-]+$/.test(dev)) return 0;
  try {
    return Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}
