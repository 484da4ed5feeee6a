/**
 * Rate limits for access decisions without a round trip per request: this engine takes
 * several tokens at once from a shared bucket (an allotment) and hands them to decisions
 * locally, for at most ALLOTMENT_LEASE_MS.
 *
 * Accuracy (what an operator trades for the saved round trips, `[access] rate_limit_allotment`):
 * - Never more requests pass than tokens were taken from the shared bucket, and a token is
 *   used at most ALLOTMENT_LEASE_MS after it was taken (unused ones are dropped then). So in
 *   any period of T seconds at most `capacity + refillPerSecond × (T + 1)` requests pass for
 *   one key, cluster-wide: the limit overshoots by at most one second's refill.
 * - Tokens an engine holds cannot serve requests that reach other engines: with E engines up
 *   to E × (1.5 × allotment − 1) tokens may sit unused (an allotment, half of the one before
 *   it), so a client spread over engines can be refused a little before the bucket is empty.
 * - A busy key's next allotment is taken ahead, once half of the current one is used, and
 *   kept apart with its own lease until the current one runs out: its decisions never wait for
 *   a round trip while the bucket lasts. A key taken one token at a time never takes ahead.
 * - An allotment is sized by the key's recent rate (`nextAllotment`: about half a lease's
 *   worth), so a key used rarely is taken one token at a time (exact) and drops nothing, and
 *   at most a tenth of the bucket (`allotmentSize`), so small buckets (a login limit of 5)
 *   are always taken one token at a time: exact, a round trip per request.
 *   `rate_limit_allotment = 1` makes every policy exact.
 */
import type { Clock } from '../../core/clock.js';
import type { MaybePromise } from '../../core/maybe-async.js';
import type { RateLimitPolicy, StateProvider } from '../../state/services.js';
import type { RateLimitBy } from './definitions.js';

/** How long tokens taken for this engine may be used (ms). */
export const ALLOTMENT_LEASE_MS = 1000;
/** Most keys with an allotment held at once; the oldest of the same policy and kind is dropped first. */
export const ALLOTMENT_MAX_KEYS = 100_000;

/** The shared bucket's key for (`by`, `value`): every engine takes from the same one. */
export function bucketKey(by: RateLimitBy, value: string): string {
  return `access:${by}:${value}`;
}

/** The allotments of one policy, by kind and value: the value (a subject held by the session cache, an address) is looked up as it is, never joined into a new string per decision. */
type PolicyAllotments = Record<RateLimitBy, Map<string, Allotment>>;

/** The largest allotment of a bucket (pure): at most `maxAllotment`, at most a tenth of the bucket, at least 1. */
export function allotmentSize(limits: RateLimitPolicy, maxAllotment: number): number {
  return Math.max(1, Math.min(Math.floor(maxAllotment), Math.floor(limits.capacity / 10)));
}

/**
 * How many tokens the next take asks for (pure): what the key used of its last allotment,
 * scaled to ALLOTMENT_TARGET_MS at the rate it was used at, between 1 and `largest`. A key
 * used rarely is taken one token at a time (exact, and no token is dropped unused); a busy
 * one gets allotments that last about half a lease, so few of its tokens go unused either.
 */
export function nextAllotment(usedLast: number, elapsedMs: number, largest: number): number {
  const rate = usedLast / Math.max(1, elapsedMs);
  return Math.max(1, Math.min(largest, Math.ceil(rate * ALLOTMENT_TARGET_MS)));
}

/** An allotment is sized to last about this long at the key's recent rate (ms). */
const ALLOTMENT_TARGET_MS = ALLOTMENT_LEASE_MS / 2;

interface Allotment {
  tokens: number;
  until: number;
  /** What the last take got. */
  granted: number;
  /**
   * When this allotment's tokens began to be handed out: its take answered, or its swap in
   * from the reserve. The rate the key is used at is measured from here: from the take ahead
   * instead, the time an allotment waited as the reserve counted as time it was used, the
   * rate came out at half, and every allotment at half its size (twice the takes).
   */
  since: number;
  /** A take for more tokens in flight: how many it got. */
  pending?: Promise<number>;
  /** The next allotment, taken ahead: used once this one runs out, until its own lease ends. */
  reserve?: { tokens: number; until: number };
}

export class RateAllotments {
  private readonly held = new Map<string, PolicyAllotments>();
  private count = 0;

  constructor(
    private readonly provider: StateProvider,
    private readonly clock: Clock,
    private readonly maxAllotment: number,
    private readonly maxKeys = ALLOTMENT_MAX_KEYS,
  ) {}

  /** How many keys hold an allotment now (tests). */
  get size(): number {
    return this.count;
  }

  /**
   * One token of `policy`'s bucket for (`by`, `value`) for a decision: true when it may pass;
   * at once from a held allotment, else a promise. Rejects when the state cannot be reached.
   * `now`: the decision's time, when it has read the clock already.
   */
  take(policy: string, by: RateLimitBy, value: string, limits: RateLimitPolicy, now?: number): MaybePromise<boolean> {
    const a = this.held.get(policy)?.[by].get(value);
    if (a !== undefined && this.hasToken(a, now ?? this.clock.now())) {
      this.use(a, policy, by, value, limits);
      return true;
    }
    return this.takeWaiting(policy, by, value, limits);
  }

  /** Whether `a` has a token in its lease, the reserve's once its own are gone. */
  private hasToken(a: Allotment, now: number): boolean {
    if (a.tokens > 0 && now < a.until) return true;
    const r = a.reserve;
    if (r === undefined) return false;
    delete a.reserve;
    if (now >= r.until) return false;
    a.tokens = r.tokens;
    a.until = r.until;
    a.since = now;
    return a.tokens > 0;
  }

  /** Hands out one token; once half of a busy key's allotment is used, the next is taken ahead. */
  private use(a: Allotment, policy: string, by: RateLimitBy, value: string, limits: RateLimitPolicy): void {
    a.tokens--;
    if (a.granted > 1 && a.tokens <= a.granted / 2 && a.pending === undefined && a.reserve === undefined) {
      a.pending = this.fetch(policy, bucketKey(by, value), limits, a, true);
      // A failure shows on the take that needs the tokens (it takes again and waits).
      a.pending.catch(() => undefined);
    }
  }

  private async takeWaiting(policy: string, by: RateLimitBy, value: string, limits: RateLimitPolicy): Promise<boolean> {
    let allotments = this.held.get(policy);
    if (allotments === undefined) {
      allotments = { ip: new Map(), subject: new Map(), apiKey: new Map() };
      this.held.set(policy, allotments);
    }
    const keys = allotments[by];
    // Each round either uses a held token, waits for the take in flight, or starts one; a take
    // that got nothing ends the loop, so it runs at most as often as tokens were handed out.
    for (;;) {
      const a = keys.get(value);
      if (a !== undefined) {
        if (this.hasToken(a, this.clock.now())) {
          this.use(a, policy, by, value, limits);
          return true;
        }
        if (a.pending !== undefined) {
          if ((await a.pending) === 0) return false;
          continue;
        }
      }
      const entry: Allotment = a ?? { tokens: 0, until: 0, granted: 0, since: 0 };
      entry.pending = this.fetch(policy, bucketKey(by, value), limits, entry, false);
      if (a === undefined) {
        keys.set(value, entry);
        this.count++;
        while (this.count > this.maxKeys) this.dropOldest(keys);
      }
      if ((await entry.pending) === 0) return false;
    }
  }

  /** Drops the oldest key of `keys` (a Map iterates in insertion order), or of another kind or policy when `keys` holds only its newest. */
  private dropOldest(keys: Map<string, Allotment>): void {
    const from = keys.size > 1 ? keys : [...this.held.values()].flatMap((allotments) => Object.values(allotments)).find((other) => other !== keys && other.size > 0) ?? keys;
    from.delete(from.keys().next().value as string);
    this.count--;
  }

  /** Takes the key's next allotment: into `entry` (its tokens are gone), or `ahead` into its reserve. */
  private async fetch(policy: string, key: string, limits: RateLimitPolicy, entry: Allotment, ahead: boolean): Promise<number> {
    try {
      const now = this.clock.now();
      const count = entry.granted === 0 ? 1 : nextAllotment(entry.granted - Math.max(0, entry.tokens), now - entry.since, allotmentSize(limits, this.maxAllotment));
      const r = await this.provider.rateLimits.take(policy, key, limits, count);
      // An engine older than the count answers without `granted`: it took one token.
      const granted = r.granted ?? (r.allowed ? 1 : 0);
      const answeredAt = this.clock.now();
      const until = answeredAt + ALLOTMENT_LEASE_MS;
      if (ahead) {
        // Used, and timed, from its swap in (`hasToken`).
        entry.reserve = { tokens: granted, until };
      } else {
        entry.tokens = granted;
        entry.until = until;
        entry.since = answeredAt;
      }
      entry.granted = granted;
      return granted;
    } finally {
      delete entry.pending;
    }
  }
}
