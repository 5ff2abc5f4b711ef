// Conserve mode (seed 000, vendor thresholds): memory use is an input sample, never measured here.
//
//   memory level  enter                 leave
//   red           use >= red            use < green (hysteresis: between green and red it stays)
//   extreme       use >= extreme        use < extreme (back to red, still in conserve)
//
// A full table or limit also puts the unit in conserve mode, "until entries and memory free up
// again": each limit that refused or bypassed a session stays listed until it has room again.
// The one-shot fail-open latch is separate: once a session went through uninspected under
// `av-failopen one-shot`, every new session does until an operator resets it (or the config no
// longer says one-shot).

export type MemoryLevel = 'green' | 'red' | 'extreme';

export interface FullLimit { kind: 'session' | 'vdom-session' | 'user' | 'vdom-user'; vd: number }

export type ConserveEvent = 'enter' | 'leave' | 'one-shot-latched' | 'one-shot-reset';

export interface ConserveChange {
  event: ConserveEvent;
  /** What holds the unit in conserve mode after the change (memory, limit names). */
  reasons: string[];
  memory: number;
}

export class ConserveState {
  memory = 0;
  level: MemoryLevel = 'green';
  /** Limits found full and not yet with room again, by name (`session`, `vdom-session:root`, `user`, ...). */
  readonly fullLimits = new Map<string, FullLimit>();
  oneShotLatched = false;
  enterCount = 0;
  leaveCount = 0;
  /** Time (ms) conserve mode was last entered; 0 when not in it. */
  since = 0;
  private active = false;

  get inConserve(): boolean { return this.active; }

  reasons(): string[] {
    const r: string[] = [];
    if (this.level !== 'green') r.push(`memory-${this.level}`);
    r.push(...this.fullLimits.keys());
    return r;
  }

  /** A memory sample; returns the level reached. */
  observeMemory(percent: number, t: { red: number; extreme: number; green: number }): MemoryLevel {
    this.memory = percent;
    if (percent >= t.extreme) this.level = 'extreme';
    else if (percent >= t.red) this.level = 'red';
    else if (percent < t.green) this.level = 'green';
    else if (this.level === 'extreme') this.level = 'red';
    return this.level;
  }

  /** Re-evaluates conserve mode after a change; the returned change is what to log. */
  settle(now: number): ConserveChange | undefined {
    const on = this.level !== 'green' || this.fullLimits.size > 0;
    if (on === this.active) return undefined;
    this.active = on;
    if (on) {
      this.enterCount++;
      this.since = now;
    } else {
      this.leaveCount++;
      this.since = 0;
    }
    return { event: on ? 'enter' : 'leave', reasons: this.reasons(), memory: this.memory };
  }
}
