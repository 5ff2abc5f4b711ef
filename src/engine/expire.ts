// Sessions and expectations whose time ran out leave, on the daemon's timer: by their own
// timers, and under adaptive timeouts by their scaled ones, the most idle first. An offloaded
// session is not ended blind: the kernel saw its last packets, so it is read first.

import type { EngineState } from './engine-state.js';
import { endExpectation } from './helper-driver.js';
import { kernelTimerOut } from './kernel-reconcile.js';
import { end } from './lifecycle.js';
import { adaptiveLimits, closed, factorWithout } from './timers.js';
import type { Effect, Session } from './types.js';

/** Ends the sessions whose timer ran out; their kernel entries are deleted too. */
export function tick(st: EngineState, now: number): Effect[] {
  const effects: Effect[] = [];
  effects.push(...st.admission.tick(now, st.table.size));
  for (const x of st.expectations.expired(now)) endExpectation(st, x, 'timeout', now, effects);
  for (const s of st.table.popExpired(now)) {
    if (s.offloaded && st.config.kernelCache) {
      kernelTimerOut(st, s, now, effects);
      continue;
    }
    effects.push(...end(st, s, closed(s) ? 'tcp-close' : 'ttl', now, true));
  }
  adaptiveTick(st, now, effects);
  return effects;
}

/**
 * Ends the sessions whose scaled timer ran out, the most idle first, asking for the factor again
 * after each: every session that leaves gives the next ones more time. The idle queue exists only
 * while some factor is below 1, so the packet path pays nothing for it otherwise; it is built
 * from the table when the pressure starts.
 */
function adaptiveTick(st: EngineState, now: number, effects: Effect[]): void {
  const scaling = adaptiveLimits(st).some((l) => l.factor < 1);
  st.table.setScaling(scaling);
  if (!scaling) return;
  // A session sent for a kernel reading counts as gone for the rest of this tick: most readings
  // of an idle session end it, and without this one full table would read every offloaded
  // session at once. One that proves active stays, and the next tick goes on from the table.
  let reading = 0;
  const readingIn: number[] = [];
  const factor = (x: Session) => factorWithout(st, x.vd, reading, readingIn[x.vd] ?? 0);
  for (let s = st.table.nextIdle(now, factor); s; s = st.table.nextIdle(now, factor)) {
    if (s.offloaded && st.config.kernelCache) {
      // Its packets since the last reading were the kernel's alone: the reading decides.
      kernelTimerOut(st, s, now, effects, true);
      reading++;
      readingIn[s.vd] = (readingIn[s.vd] ?? 0) + 1;
      continue;
    }
    st.counters.adaptiveExpired++;
    effects.push(...end(st, s, closed(s) ? 'tcp-close' : 'ttl', now, true));
  }
}
