// diagnose sys session ...: filter, list, stat, full-stat, clear. The filter is the daemon's one
// session filter (views.sessionFilter); list, clear, stat and full-stat all honour it.

import { readFileSync } from 'node:fs';
import type { Session } from '../../engine/types.js';
import type { DaemonContext } from '../context.js';
import { applyFilterArgs, compileFilter, isEmptyFilter, type SessionFilter } from '../filter.js';
import type { Handler } from '../server.js';
import { viewIn, viewOf, type SessionView } from '../session-view.js';
import { withGateways } from '../session-gateways.js';
import { expectationView, filterableView } from '../expectation-view.js';
import { fullStatOf, statOf } from '../stat.js';
import type { ControlViews } from '../views.js';

function kernelTable(): { buckets?: number; max?: number; count?: number } | undefined {
  const read = (name: string) => {
    try { return Number(readFileSync(`/proc/sys/net/netfilter/${name}`, 'utf8').trim()); } catch { return undefined; }
  };
  const k = { buckets: read('nf_conntrack_buckets'), max: read('nf_conntrack_max'), count: read('nf_conntrack_count') };
  const present = Object.fromEntries(Object.entries(k).filter(([, v]) => v !== undefined && !Number.isNaN(v)));
  return Object.keys(present).length ? present : undefined;
}

export function sessionHandlers(ctx: DaemonContext, views: ControlViews): Record<string, Handler> {
  const offload = () => ctx.engine.config.offload;
  /** The current filter as a session predicate (undefined when the filter is empty). */
  const matcher = (now: number): ((s: Session) => boolean) | undefined => {
    const f = views.sessionFilter;
    if (isEmptyFilter(f)) return undefined;
    const test = compileFilter(f);
    const ifname = (i: number) => ctx.ifname(i);
    return (s) => test(viewOf(s, now, offload(), ctx.engine.adaptiveFactor(s.vd)), ifname);
  };
  /** stat and full-stat carry the table journal's counters next to the queue's. */
  const withJournal = <V extends object>(v: V): V & { journal?: Record<string, number> } => {
    const journal = ctx.journalStats?.();
    return journal ? { ...v, journal } : v;
  };
  /** The views with their next hops; a failed lookup leaves the placeholder and is logged. */
  const gatewaysOf = async (list: SessionView[], now: number): Promise<SessionView[]> => {
    const g = ctx.gateways;
    if (!g) return list;
    const failures = g.counters.failures;
    const out = await withGateways(list, (dsts) => g.nextHops(dsts, now));
    if (g.counters.failures > failures) {
      // `ip` itself failing is the operator's problem; an address without a route is the table's.
      const fields = { failed: g.counters.failures - failures, failures: g.counters.failures, err: g.lastError };
      if (g.lastError) ctx.log.warn(fields, 'route lookups for gwy= failed: the list shows no gateway');
      else ctx.log.debug(fields, 'no route for some gwy= destinations');
    }
    return out;
  };
  return {
    'session.filter': (args) => {
      const a = Array.isArray(args.args) ? args.args.map(String) : [];
      views.sessionFilter = applyFilterArgs(views.sessionFilter, a);
      return { filter: views.sessionFilter as SessionFilter };
    },
    'session.list': (args) => {
      const now = ctx.now();
      const f = views.sessionFilter;
      const test = isEmptyFilter(f) ? undefined : compileFilter(f);
      const ifname = (i: number) => ctx.ifname(i);
      if (args.what === 'expectation') {
        const expectations = [];
        for (const x of ctx.engine.expectations.all()) {
          const v = expectationView(x, now);
          if (!test || test(filterableView(v), ifname)) expectations.push(v);
        }
        return { expectations, total: expectations.length };
      }
      if (args.what !== undefined) throw new Error(`unknown list '${String(args.what)}': expected 'expectation' or nothing`);
      // The kernel binds an offloaded session's NAT after the verdict, so the table learns it from a
      // reading: a filter on the translated source reads the offloaded sessions not yet known to be
      // translated, and filters again after the readings.
      const natFilter = f.nsrc !== undefined || f.nport !== undefined;
      const shown: Session[] = [];
      for (const s of ctx.engine.sessions()) {
        if (!test || test(viewOf(s, now, offload(), ctx.engine.adaptiveFactor(s.vd)), ifname) || (natFilter && s.offloaded && !s.nat?.snat)) shown.push(s);
      }
      const offloaded = shown.filter((s) => s.offloaded);
      const build = async () => {
        const t = ctx.now();
        // A reading may have ended a session (its time had run out in the kernel).
        // The sessions as they are after the readings (the engine hands out copies).
        const live: SessionView[] = [];
        for (const x of shown) {
          const s = ctx.engine.bySerialNumber(x.serial);
          if (!s) continue;
          const v = viewIn(ctx.engine, s, t);
          if (!natFilter || !test || test(v, ifname)) live.push(v);
        }
        const sessions = await gatewaysOf(live, t);
        return { sessions, total: sessions.length };
      };
      if (!ctx.readKernel || !offloaded.length) return build();
      return ctx.readKernel(offloaded).then(build);
    },
    'session.stat': async () => {
      const queue = await ctx.queueStats();
      const now = ctx.now();
      return withJournal(statOf(ctx.engine, now, queue, matcher(now)));
    },
    'session.full-stat': async () => {
      const queue = await ctx.queueStats();
      const now = ctx.now();
      return withJournal(fullStatOf(ctx.engine, now, queue, matcher(now), kernelTable()));
    },
    'session.clear': () => {
      const now = ctx.now();
      const m = matcher(now);
      const fx = ctx.engine.clear(m ?? (() => true), now);
      ctx.apply(fx, now);
      return { cleared: fx.filter((e) => e.kind === 'session-end').length };
    },
  };
}
