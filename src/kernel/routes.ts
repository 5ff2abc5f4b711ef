// Where the router sends packets for an address (`ip route get`, one `ip -batch` for all
// addresses): the shell's answer where a decision or a view needs what the kernel entry does not
// record, such as the interfaces of a conntrack entry found at start or a session's next hop.

import { readFileSync } from 'node:fs';
import { run } from './exec.js';

/** The routing table's answer for one destination. */
export interface Route {
  /** The outgoing interface's name. */
  dev: string;
  /** The next hop, absent when the destination is directly connected (or local). */
  gateway?: string;
}

/**
 * The answers in `ip -j route get` output, by destination as `ip` prints it. One JSON array a
 * line; a destination without a route prints nothing (its error goes to stderr), so answers are
 * matched by their `dst`, never by line position.
 */
export function parseRouteGet(stdout: string): Map<string, Route> {
  const out = new Map<string, Route>();
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('[')) continue;
    let routes: Array<{ dst?: unknown; dev?: unknown; gateway?: unknown }>;
    try {
      routes = JSON.parse(line) as typeof routes;
    } catch {
      continue;
    }
    if (!Array.isArray(routes)) continue;
    for (const rt of routes) {
      if (typeof rt?.dst !== 'string' || typeof rt.dev !== 'string') continue;
      out.set(rt.dst, typeof rt.gateway === 'string' ? { dev: rt.dev, gateway: rt.gateway } : { dev: rt.dev });
    }
  }
  return out;
}

/**
 * The route to each address, in one `ip` process. Addresses without a route are absent (so are
 * those not answered before `ip` was killed at `timeoutMs`); a missing `ip` rejects
 * (CommandError). `-force` keeps going past the lines that fail, so its exit status says only
 * that some address had no route.
 */
export async function routesTo(addresses: Iterable<string>, timeoutMs = 30_000): Promise<Map<string, Route>> {
  const unique = [...new Set(addresses)].filter((a) => /^[0-9a-fA-F:.]+$/.test(a));
  if (!unique.length) return new Map();
  const r = await run('ip', ['-j', '-force', '-batch', '-'], { input: unique.map((a) => `route get ${a}\n`).join(''), timeoutMs });
  return parseRouteGet(r.stdout);
}

/** Address -> interface index of its route; addresses without a route are absent. */
export async function routeInterfaces(addresses: Iterable<string>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  const index = new Map<string, number>();
  for (const [dst, rt] of await routesTo(addresses)) {
    let i = index.get(rt.dev);
    if (i === undefined) {
      i = ifindexOf(rt.dev);
      index.set(rt.dev, i);
    }
    if (i > 0) out.set(dst, i);
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
