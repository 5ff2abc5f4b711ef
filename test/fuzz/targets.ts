// Every fuzz target, in the order the campaign runs them. Each is a pure call into one parser
// of untrusted bytes, with the invariants it must keep (see each target's module).

import { configTarget } from './targets/config.js';
import { controlTarget } from './targets/control.js';
import { decodeTarget } from './targets/decode.js';
import { helperTargets } from './targets/helpers.js';
import { pcapTarget } from './targets/pcap.js';
import { journalTarget, snapshotTarget } from './targets/state.js';
import type { FuzzTarget } from './target.js';

export type { FuzzTarget } from './target.js';

export const TARGETS: FuzzTarget<any>[] = [
  decodeTarget,
  ...helperTargets,
  configTarget,
  controlTarget,
  pcapTarget,
  snapshotTarget,
  journalTarget,
];

export function targetByName(name: string): FuzzTarget<any> | undefined {
  return TARGETS.find((t) => t.name === name);
}
