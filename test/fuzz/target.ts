// What a fuzz target is: a pure call into one parser, the inputs to drive it with, and the
// invariants it must keep. Inputs are plain data with Buffers, so a finding is saved and
// replayed as JSON (Buffers as base64) with the snapshot codec.

import type fc from 'fast-check';
import type { Xorshift } from './havoc.js';

export interface FuzzTarget<I = unknown> {
  name: string;
  /** The invariants `run` checks, as printed in reports. */
  invariants: string[];
  /** Source files whose branch coverage the campaign reports for this target. */
  sources: string[];
  /** Built on first use: it may read the corpus. */
  arbitrary(): fc.Arbitrary<I>;
  /**
   * Throws InvariantError when an invariant breaks; any other throw is a crash of the parser.
   * `thorough` (generated inputs, not their cheap mutants) adds the checks that cost a second
   * run of the input: determinism, the snapshot round trip.
   */
  run(input: I, thorough: boolean): void | Promise<void>;
  /** A cheap mutant of a generated input; the default edits bytes of one of its Buffers or strings. */
  havoc?(input: I, r: Xorshift): I;
  /** Relative cost of one input: a campaign gives the target a share of inputs divided by it (default 1). */
  cost?: number;
}
