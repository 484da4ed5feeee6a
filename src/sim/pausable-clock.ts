import type { Clock, TimerHandle } from '../core/clock.js';

/**
 * One simulated node's view of the shared simulated clock. While the node is paused (the
 * simulator's SIGSTOP) its timers do not run; at resume the overdue ones run at once, late,
 * exactly as a stopped process experiences it. Its wall clock may run ahead of or behind the
 * others (`skewMs`); timers still count real (simulated) time, as a process's do.
 */
export class PausableClock implements Clock {
  /** How far this node's wall clock is ahead of the simulation's (ms): a node without NTP. */
  skewMs = 0;
  private paused = false;
  private held: Array<() => void> = [];
  private readonly inner = new Map<number, TimerHandle>();
  private nextId = 0;

  constructor(private readonly base: Clock) {}

  now(): number {
    return this.base.now() + this.skewMs;
  }

  setTimeout(fn: () => void, ms: number, options?: { keepAlive?: boolean }): TimerHandle {
    const id = ++this.nextId;
    const handle = this.base.setTimeout(() => {
      this.inner.delete(id);
      if (this.paused) this.held.push(fn);
      else fn();
    }, ms, options);
    this.inner.set(id, handle);
    return { id };
  }

  soon(fn: () => void): void {
    this.setTimeout(fn, 0);
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    this.base.clearTimeout(this.inner.get(handle.id));
    this.inner.delete(handle.id);
  }

  get isPaused(): boolean {
    return this.paused;
  }

  pause(): void {
    this.paused = true;
  }

  /** Resumes; `runHeld` is scheduled by the caller after queued network input, like a real process. */
  resume(): Array<() => void> {
    this.paused = false;
    const held = this.held;
    this.held = [];
    return held;
  }

  /** Drops everything: a crashed node never runs again. */
  kill(): void {
    for (const h of this.inner.values()) this.base.clearTimeout(h);
    this.inner.clear();
    this.held = [];
    this.paused = true;
  }
}
