/**
 * Local health awareness (Lifeguard): a score that rises when this node shows signs of being
 * the slow one — probes that fail without the expected nacks from helpers, having to refute
 * suspicions about itself, timers firing late because its event loop was blocked — and falls
 * with every successful probe. Probe intervals and timeouts are multiplied by (score + 1), so
 * a struggling node slows its own judgements instead of accusing healthy peers.
 */
export class Awareness {
  private score = 0;

  constructor(private readonly max: number) {}

  /** Adds `delta` (positive: worse health) and clamps to [0, max - 1]. */
  apply(delta: number): void {
    this.score = Math.min(this.max - 1, Math.max(0, this.score + delta));
  }

  get healthScore(): number {
    return this.score;
  }

  /** `base` stretched by the current score. */
  scale(baseMs: number): number {
    return baseMs * (this.score + 1);
  }
}
