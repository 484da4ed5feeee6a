import type { Clock, TimerHandle } from '../core/clock.js';
import { remainingSuspicionTime } from './timing.js';

/**
 * The timer of one suspected member (Lifeguard). It starts at `maxMs` and shrinks towards
 * `minMs` as other members independently report the same suspicion, so a member that many
 * peers cannot reach is declared inactive sooner, while a member only one struggling peer
 * accuses gets the long timeout and time to refute.
 *
 * Invariants: each confirming member counts once; the suspector that started it does not
 * count as a confirmation; `onTimeout` fires at most once, and never after `cancel()`.
 */
export class Suspicion {
  private readonly confirmedBy = new Set<string>();
  private readonly startedAt: number;
  private timer: TimerHandle | undefined;
  private done = false;

  constructor(
    private readonly clock: Clock,
    from: string,
    /** Confirmations expected for the timeout to reach its minimum. */
    private readonly k: number,
    private readonly minMs: number,
    private readonly maxMs: number,
    private readonly onTimeout: (confirmations: number) => void,
  ) {
    this.startedAt = clock.now();
    this.confirmedBy.add(from);
    this.schedule(k < 1 ? minMs : maxMs);
  }

  /** Number of independent confirmations so far (not counting the first suspector). */
  get confirmations(): number {
    return this.confirmedBy.size - 1;
  }

  /** Records a confirmation from `from`; true when it was new and shortened the timer. */
  confirm(from: string): boolean {
    if (this.done || this.confirmedBy.has(from) || this.confirmations >= this.k) return false;
    this.confirmedBy.add(from);
    const remaining = remainingSuspicionTime(this.confirmations, this.k, this.clock.now() - this.startedAt, this.minMs, this.maxMs);
    this.schedule(remaining);
    return true;
  }

  cancel(): void {
    this.done = true;
    this.clock.clearTimeout(this.timer);
  }

  private schedule(ms: number): void {
    this.clock.clearTimeout(this.timer);
    if (ms <= 0) {
      this.fire();
      return;
    }
    this.timer = this.clock.setTimeout(() => this.fire(), ms);
  }

  private fire(): void {
    if (this.done) return;
    this.done = true;
    this.onTimeout(this.confirmations);
  }
}
