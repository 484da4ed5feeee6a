/**
 * Decisions the response phase may still report on (`POST /runtime/v1/decide/response`): only
 * those with a lock-out key, kept for a few minutes in this engine's memory, oldest dropped
 * first past a cap. A gateway reports to the engine that decided (the one it asked for the
 * request phase); a report this engine does not know changes nothing.
 */
import type { Clock } from '../../core/clock.js';
import type { Decision } from './decide.js';

export const RECENT_DECISION_TTL_MS = 5 * 60_000;
export const RECENT_DECISION_CAP = 100_000;

interface Entry {
  lockoutKey: string;
  at: number;
}

export class RecentDecisions {
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly clock: Clock, private readonly cap = RECENT_DECISION_CAP) {}

  remember(d: Decision): void {
    if (d.lockoutKey === undefined) return;
    this.entries.set(d.decisionId, { lockoutKey: d.lockoutKey, at: this.clock.now() });
    // A Map iterates in insertion order: the first key is the oldest.
    while (this.entries.size > this.cap) this.entries.delete(this.entries.keys().next().value as string);
  }

  /** The lock-out key of a decision still remembered; forgets it (a response is reported once). */
  take(decisionId: string): string | undefined {
    const e = this.entries.get(decisionId);
    if (!e) return undefined;
    this.entries.delete(decisionId);
    return this.clock.now() - e.at <= RECENT_DECISION_TTL_MS ? e.lockoutKey : undefined;
  }
}
