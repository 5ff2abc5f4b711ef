// The next hop the router's routing table gives for a destination, for the session list's `gwy=`.
// Looked up when a view is built, never on the packet path: the destinations a view needs go to
// one `ip` process, and answers are kept briefly so that listing again and again (an operator
// watching a table, a script polling) does not start a process each time.

import { routesTo, type Route } from '../kernel/routes.js';

/** One batch of route lookups (src/kernel/routes.ts routesTo). */
export type RouteLookup = (addresses: string[]) => Promise<Map<string, Route>>;

/** What a lookup gave: the gateway, or the destination itself when it is directly connected. */
export function nextHopOf(dst: string, route: Route): string {
  return route.gateway ?? dst;
}

export interface NextHopOptions {
  /** How long an answer is used before it is asked again (ms): routes change rarely. */
  ttlMs: number;
  /** The most destinations kept; the oldest answer goes first. */
  maxEntries: number;
}

const DEFAULTS: NextHopOptions = { ttlMs: 10_000, maxEntries: 4096 };
/** A view waits this long for `ip` at most; a slow answer costs the gateways, not the view. */
const VIEW_LOOKUP_TIMEOUT_MS = 5_000;

export interface NextHopCounters {
  /** `ip` processes started. */
  runs: number;
  /** Destinations answered from the cache. */
  hits: number;
  /** Destinations asked for that got no answer (no route, or `ip` failed). */
  failures: number;
}

export class NextHopCache {
  private readonly answers = new Map<string, { hop: string; at: number }>();
  readonly counters: NextHopCounters = { runs: 0, hits: 0, failures: 0 };
  private readonly opts: NextHopOptions;
  /** The last error of a lookup that failed as a whole, for the log. */
  lastError?: string;

  constructor(
    private readonly lookup: RouteLookup = (a) => routesTo(a, VIEW_LOOKUP_TIMEOUT_MS),
    opts: Partial<NextHopOptions> = {},
  ) {
    this.opts = { ...DEFAULTS, ...opts };
  }

  get size(): number { return this.answers.size; }

  /**
   * Destination -> next hop for the destinations that have one; the rest are absent and counted
   * as failures. Never rejects: a view shows its placeholder where a lookup failed.
   */
  async nextHops(destinations: Iterable<string>, now: number): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const missing: string[] = [];
    for (const dst of new Set(destinations)) {
      const a = this.answers.get(dst);
      if (a && now - a.at < this.opts.ttlMs) {
        out.set(dst, a.hop);
        this.counters.hits++;
      } else {
        missing.push(dst);
      }
    }
    if (!missing.length) return out;
    this.counters.runs++;
    let routes = new Map<string, Route>();
    try {
      routes = await this.lookup(missing);
      this.lastError = undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
    }
    for (const dst of missing) {
      const rt = routes.get(dst);
      if (!rt) {
        this.counters.failures++;
        continue;
      }
      const hop = nextHopOf(dst, rt);
      out.set(dst, hop);
      this.remember(dst, hop, now);
    }
    return out;
  }

  private remember(dst: string, hop: string, now: number): void {
    // Re-inserted at the end, so the Map's order is oldest answer first.
    this.answers.delete(dst);
    this.answers.set(dst, { hop, at: now });
    while (this.answers.size > this.opts.maxEntries) this.answers.delete(this.answers.keys().next().value!);
  }
}
