/**
 * What stands between the admin sign-in and a flood of guesses: budgets of password checks
 * and lock-outs that an outsider cannot turn against a named user.
 *
 * Budgets (a check beyond them is refused at once with AUTH_LOGIN_THROTTLED and a retry
 * time, before any scrypt work is paid):
 * - per source address, a token bucket (`login_source_burst` checks at once, refilled at
 *   `login_source_per_minute`; a check that succeeds gives its token back): one host making up
 *   user names or guessing passwords exhausts its own budget only;
 * - for the whole console, at most `login_max_concurrent` password checks in flight, plus one
 *   slot kept for sources that signed in successfully before, so a flood from many addresses
 *   bounds the scrypt work (and the thread pool it would fill) without shutting out the
 *   operators who use the console every day;
 * - of those `login_max_concurrent` (when two or more), one is kept for sources with no failed
 *   check within `login_lockout`: a flood's addresses fail, and once they have, they share
 *   one check less between them, so an operator from an address never seen before still finds
 *   a check free, and a known operator's check shares the CPU with fewer flood checks (on two
 *   cores, with the default of 2, one): a flood slows a real sign-in by little, by design.
 *
 * Lock-out (AUTH_LOCKED_OUT):
 * - per (user, source): `login_max_failures` wrong passwords in a row lock that user for that
 *   source only, for `login_lockout`; the same user from another address is not affected;
 * - per user: `login_user_max_failures` wrong passwords from any sources within `login_lockout`
 *   lock the user for every source except those from which that user signed in successfully
 *   before (remembered in memory, bounded), so a distributed guess at one user stops, and the
 *   outsider who triggers it does not lock out the user's own machine. A source that is locked
 *   out is refused without a password check, so guessing gains nothing.
 *
 * Everything here lives in memory: a refused sign-in changes no stored data, and a restart
 * forgets counts (a console restart is not something an outsider can cause at will). Memory is
 * bounded: each table forgets its idle entries first and never holds more than MAX_ENTRIES.
 */
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import { takeToken } from '../state/services.js';

export interface LoginGuardOptions {
  clock: Clock;
  /** Wrong passwords in a row from one source after which that (user, source) is locked. */
  maxFailures: number;
  lockoutMs: number;
  /** Wrong passwords for one user from any sources within `lockoutMs` after which the user is locked for unknown sources. */
  userMaxFailures: number;
  /** Password checks one source may make at once. */
  sourceBurst: number;
  /** Checks per minute a source's budget refills by. */
  sourcePerMinute: number;
  /** Password checks in flight at once for the whole console (one more is kept for known sources). */
  maxConcurrent: number;
}

/** Most entries any table remembers (sources, pairs, users); idle entries are forgotten first. */
export const MAX_ENTRIES = 50_000;

interface PairFailures {
  count: number;
  /** Checks of this pair in flight: they count against the limit until they succeed. */
  pending: number;
  lockedUntil: number;
}

interface UserFailures {
  /** Failure times within the window, oldest first (at most userMaxFailures kept). */
  times: number[];
  lockedUntil: number;
}

/** A password check admitted by the guard: settle it with `succeeded` or `failed`, exactly once. */
export interface LoginTicket {
  succeeded(): void;
  failed(): void;
}

export class LoginGuard {
  private readonly buckets = new Map<string, { tokens: number; updatedAt: number }>();
  private readonly pairs = new Map<string, PairFailures>();
  private readonly users = new Map<string, UserFailures>();
  /** `user\0source` pairs that signed in successfully; and sources that did, for any user. */
  private readonly trustedPairs = new Map<string, number>();
  private readonly trustedSources = new Map<string, number>();
  /** Source → when a check from it last failed (kept login_lockout): such sources do not get the kept check. */
  private readonly failedSources = new Map<string, number>();
  private inFlight = 0;

  constructor(private readonly o: LoginGuardOptions) {}

  /** How many checks are in flight now (for tests and metrics). */
  get checksInFlight(): number {
    return this.inFlight;
  }

  /**
   * Admits one password check of `user` from `source`, or throws AUTH_LOCKED_OUT /
   * AUTH_LOGIN_THROTTLED (with details.retryAfterSeconds) without any work being paid.
   */
  admit(user: string, source: string): LoginTicket {
    const now = this.o.clock.now();
    const pairKey = `${user}\0${source}`;
    const pair = this.pairs.get(pairKey);
    if (pair && pair.lockedUntil > now) throw lockedOut(`user ${user} is locked out from this address after ${this.o.maxFailures} wrong passwords`, pair.lockedUntil - now);
    // Checks in flight count as failures until they succeed, so parallel guesses cannot
    // outnumber the limit while the hashes are being checked.
    if (pair && pair.count + pair.pending >= this.o.maxFailures) throw lockedOut(`too many sign-ins of user ${user} from this address at once`, 1000);
    const userEntry = this.users.get(user);
    if (userEntry && userEntry.lockedUntil > now && !this.trustedPairs.has(pairKey)) {
      throw lockedOut(`user ${user} is locked out after ${this.o.userMaxFailures} wrong passwords from several addresses (addresses it signed in from before may still sign in)`, userEntry.lockedUntil - now);
    }
    if (this.inFlight >= this.concurrencyFor(source, now)) {
      throw new CohortError('AUTH_LOGIN_THROTTLED', 'too many sign-ins are being checked at once; retry in a second', { retryAfterSeconds: 1 });
    }
    const policy = { capacity: this.o.sourceBurst, refillPerSecond: this.o.sourcePerMinute / 60 };
    const taken = takeToken(this.buckets.get(source), policy, now);
    if (!taken.allowed) {
      const retryMs = ((1 - taken.bucket.tokens) / policy.refillPerSecond) * 1000;
      throw new CohortError('AUTH_LOGIN_THROTTLED', `too many sign-ins from this address; retry in ${Math.ceil(retryMs / 1000)} s`, { retryAfterSeconds: Math.max(1, Math.ceil(retryMs / 1000)) });
    }
    this.remember(this.buckets, source, taken.bucket, (b) => b.tokens + ((now - b.updatedAt) / 1000) * policy.refillPerSecond >= policy.capacity);
    this.inFlight++;
    const held = pair ?? { count: 0, pending: 0, lockedUntil: 0 };
    held.pending++;
    this.remember(this.pairs, pairKey, held, (p) => p.lockedUntil <= now && p.pending === 0);
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      this.inFlight--;
      held.pending--;
      return true;
    };
    return {
      succeeded: () => {
        if (!settle()) return;
        const at = this.o.clock.now();
        // A sign-in that succeeds gives its check back: the budget bounds guesses, and an
        // operator (or a script) signing in often from one address is not refused for it.
        const bucket = this.buckets.get(source);
        if (bucket) bucket.tokens = Math.min(this.o.sourceBurst, bucket.tokens + 1);
        if (held.pending === 0) this.pairs.delete(pairKey);
        else held.count = 0;
        this.remember(this.trustedPairs, pairKey, at, () => false);
        this.remember(this.trustedSources, source, at, () => false);
        this.failedSources.delete(source);
      },
      failed: () => {
        if (!settle()) return;
        const at = this.o.clock.now();
        this.remember(this.failedSources, source, at, (when) => at - when >= this.o.lockoutMs);
        this.recordFailure(user, pairKey, held, at);
      },
    };
  }

  /**
   * How many checks may be in flight when one from `source` is admitted: one more than the
   * budget for a source that signed in successfully before; one less for a source that failed
   * a check within `lockoutMs` (when the budget has two or more), which keeps the last for
   * sources with a clean record (a new operator) and keeps the flood's share of the CPU from
   * growing when a known operator's check runs beside it.
   */
  private concurrencyFor(source: string, now: number): number {
    if (this.trustedSources.has(source)) return this.o.maxConcurrent + 1;
    const failedAt = this.failedSources.get(source);
    const failedRecently = failedAt !== undefined && now - failedAt < this.o.lockoutMs;
    return failedRecently && this.o.maxConcurrent >= 2 ? this.o.maxConcurrent - 1 : this.o.maxConcurrent;
  }

  private recordFailure(user: string, pairKey: string, pair: PairFailures, now: number): void {
    if (pair.lockedUntil <= now) {
      pair.count++;
      if (pair.count >= this.o.maxFailures) {
        pair.count = 0;
        pair.lockedUntil = now + this.o.lockoutMs;
      }
    }
    this.remember(this.pairs, pairKey, pair, (p) => p.lockedUntil <= now && p.pending === 0);
    const u = this.users.get(user) ?? { times: [], lockedUntil: 0 };
    u.times = [...u.times.filter((t) => now - t < this.o.lockoutMs), now].slice(-this.o.userMaxFailures);
    if (u.times.length >= this.o.userMaxFailures && u.lockedUntil <= now) {
      u.lockedUntil = now + this.o.lockoutMs;
      u.times = [];
    }
    this.remember(this.users, user, u, (e) => e.lockedUntil <= now && e.times.every((t) => now - t >= this.o.lockoutMs));
  }

  /**
   * Stores `value` under `key`, keeping the table bounded: when full, idle entries (as `idle`
   * says) are forgotten first, then the oldest. Map order is insertion order; re-inserting
   * moves a key to the end, so the oldest come first.
   */
  private remember<V>(table: Map<string, V>, key: string, value: V, idle: (v: V) => boolean): void {
    table.delete(key);
    if (table.size >= MAX_ENTRIES) {
      for (const [k, v] of table) if (idle(v)) table.delete(k);
      while (table.size >= MAX_ENTRIES) table.delete(table.keys().next().value!);
    }
    table.set(key, value);
  }
}

function lockedOut(message: string, remainingMs: number): CohortError {
  const retryAfterSeconds = Math.max(1, Math.ceil(remainingMs / 1000));
  return new CohortError('AUTH_LOCKED_OUT', `${message}; retry in ${retryAfterSeconds} s`, { retryAfterSeconds });
}
