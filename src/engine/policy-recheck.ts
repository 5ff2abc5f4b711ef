// The policies changed under sessions they had admitted: a reload, or a start that restored a
// table written under other policies. As the vendor's firewall-session-dirty check-all does, each
// session is looked up again: one no policy admits now ends (its kernel entry deleted, so its next
// packet meets the policy as a new flow would) together with the sessions its expectations became;
// one another policy admits now belongs to that policy. Sessions made from expectations are not
// looked up themselves: a pinhole needs no policy, they stand and fall with their parent.
//
// What the kernel bound at a connection's first packet stays: a source NAT the new policy would
// choose differently applies to new sessions only, and the session keeps its TTL.

import { IPPROTO_ICMP, IPPROTO_ICMPV6 } from '../packet/types.js';
import type { EngineState } from './engine-state.js';
import { end } from './lifecycle.js';
import type { Effect, PolicyMatch, Session } from './types.js';

export interface RecheckReport {
  /** Sessions looked up again (the rest: expectation children, and check-new sessions). */
  checked: number;
  /** Ended because no policy admits them now. */
  ended: number;
  /** Ended with them: sessions their expectations became. */
  children: number;
  /** Admitted now by another policy (or the same one with another log setting). */
  moved: number;
}

/** The type of the request an ICMP session was made by: only echo requests make sessions with an id. */
function icmpTypeOf(s: Session): number | undefined {
  if (s.orig.proto === IPPROTO_ICMP) return 8;
  if (s.orig.proto === IPPROTO_ICMPV6) return 128;
  return undefined;
}

function lookupAgain(st: EngineState, s: Session): PolicyMatch {
  return st.config.policy(s.orig, s.devOrg[0], s.devOrg[1], icmpTypeOf(s));
}

export function recheckPolicies(st: EngineState, now: number): { effects: Effect[]; report: RecheckReport } {
  const report: RecheckReport = { checked: 0, ended: 0, children: 0, moved: 0 };
  const effects: Effect[] = [];
  const changed = (s: Session): boolean => {
    if (s.parent !== undefined || !st.config.dirtyCheck(s.vd, s.policyId)) return false;
    report.checked++;
    const pol = lookupAgain(st, s);
    return pol.action === 'deny' || pol.policyId !== s.policyId || pol.logTraffic !== s.logTraffic;
  };
  const denied: Session[] = [];
  for (const s of st.table.select(changed)) {
    const pol = lookupAgain(st, s);
    if (pol.action === 'deny') { denied.push(s); continue; }
    s.policyId = pol.policyId;
    s.logTraffic = pol.logTraffic;
    report.moved++;
  }
  for (const s of denied) {
    report.ended++;
    endWithChildren(st, s, now, effects, report);
  }
  return { effects, report };
}

/** The children first, so each ends as dirty rather than as its parent's close. */
function endWithChildren(st: EngineState, s: Session, now: number, effects: Effect[], report: RecheckReport): void {
  for (const k of st.table.children(s.serial)) {
    const c = st.table.get(k);
    if (!c) continue;
    report.children++;
    endWithChildren(st, c, now, effects, report);
  }
  effects.push(...end(st, s, 'dirty', now, true));
}
