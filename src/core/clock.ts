/**
 * The clock every component that waits takes as a parameter.
 *
 * Nothing below `node/` reads `Date.now()` or calls the global timers itself: it is given a
 * Clock. Production code gets `systemClock`; tests and the simulator get a `ManualClock`
 * whose time only moves when they say so, which makes timing code deterministic.
 */
export interface TimerHandle {
  readonly id: number;
}

export interface Clock {
  /** Wall-clock time in milliseconds since the Unix epoch. */
  now(): number;
  /**
   * Runs `fn` once after `ms` milliseconds (0 or more). `keepAlive`: the real clock's timer
   * keeps the process running until it fires (for a wait inside work in progress, which must
   * finish); otherwise it does not (a periodic or background timer).
   */
  setTimeout(fn: () => void, ms: number, options?: { keepAlive?: boolean }): TimerHandle;
  clearTimeout(handle: TimerHandle | undefined): void;
  /**
   * Runs `fn` once the work already queued at this moment is done (for the real clock: after
   * the I/O callbacks of this event-loop turn, before any timer), to gather what those
   * callbacks produce into one batch. Not cancellable.
   */
  soon(fn: () => void): void;
}

class SystemTimer implements TimerHandle {
  constructor(
    readonly id: number,
    readonly inner: NodeJS.Timeout,
  ) {}
}

let systemTimerIds = 0;

/** The real clock. Timers are unref'd (unless `keepAlive`) so a pending timer never keeps a stopping process alive. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms, options) {
    const inner = setTimeout(fn, Math.max(0, ms));
    if (options?.keepAlive !== true) inner.unref();
    return new SystemTimer(++systemTimerIds, inner);
  },
  clearTimeout(handle) {
    if (handle instanceof SystemTimer) clearTimeout(handle.inner);
  },
  soon(fn) {
    setImmediate(fn);
  },
};

interface PendingTimer {
  id: number;
  at: number;
  fn: () => void;
  cancelled: boolean;
}

/** Orders timers by due time, then creation order. */
function earlier(a: PendingTimer, b: PendingTimer): boolean {
  return a.at < b.at || (a.at === b.at && a.id < b.id);
}

/**
 * A clock whose time moves only through `advance`.
 *
 * Pending timers sit in a binary heap (the simulator keeps tens of thousands of them);
 * a cleared timer is only marked and is skipped when it reaches the top.
 *
 * Invariants: timers fire in order of their due time, ties in order of creation; a timer
 * created by a firing timer fires in the same `advance` call if it falls due within it;
 * `now()` seen by a firing timer is its due time.
 */
export class ManualClock implements Clock {
  private current: number;
  private nextId = 0;
  private heap: PendingTimer[] = [];
  private byId = new Map<number, PendingTimer>();

  constructor(start = 1_700_000_000_000) {
    this.current = start;
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer: PendingTimer = { id: ++this.nextId, at: this.current + Math.max(0, ms), fn, cancelled: false };
    this.byId.set(timer.id, timer);
    this.push(timer);
    return { id: timer.id };
  }

  /** A timer due now: it fires in the current `advance`, after the timers already due. */
  soon(fn: () => void): void {
    this.setTimeout(fn, 0);
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (!handle) return;
    const timer = this.byId.get(handle.id);
    if (!timer) return;
    timer.cancelled = true;
    this.byId.delete(handle.id);
  }

  /** Number of timers not yet fired or cleared. */
  get pendingCount(): number {
    return this.byId.size;
  }

  /** Due time of the earliest pending timer, or undefined when none is pending. */
  nextDue(): number | undefined {
    this.dropCancelled();
    return this.heap[0]?.at;
  }

  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void {
    const target = this.current + ms;
    for (;;) {
      this.dropCancelled();
      const next = this.heap[0];
      if (!next || next.at > target) break;
      this.pop();
      this.byId.delete(next.id);
      this.current = Math.max(this.current, next.at);
      next.fn();
    }
    this.current = target;
  }

  private dropCancelled(): void {
    while (this.heap.length > 0 && this.heap[0]!.cancelled) this.pop();
  }

  private push(t: PendingTimer): void {
    const h = this.heap;
    h.push(t);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(h[i]!, h[parent]!)) break;
      [h[i], h[parent]] = [h[parent]!, h[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const h = this.heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && earlier(h[l]!, h[m]!)) m = l;
      if (r < h.length && earlier(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
