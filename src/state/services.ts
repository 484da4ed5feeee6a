/**
 * The runtime state services, as interfaces. Two providers implement every
 * one of them — `grid` (state in engine memory) and `redis` — and both pass the contract
 * suite in test/helpers/state-contract.ts, so the runtime API never knows which is in use.
 *
 * Conventions:
 * - Times are epoch milliseconds, durations milliseconds (the HTTP layer converts seconds).
 * - Everything expires: every record carries an expiry, and expired records are invisible at
 *   once (before any sweep removes them).
 * - An operation that cannot reach the replicas it needs fails with STATE_UNAVAILABLE; the
 *   HTTP layer answers 503. Nothing is half-applied: a failed call may be retried.
 */
import type { MaybePromise } from '../core/maybe-async.js';

export interface Session {
  id: string;
  subject: string;
  attributes: Record<string, unknown>;
  createdAt: number;
  /** Last time the session was created or touched. */
  lastAccessAt: number;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
  /** When it ends: the earlier of last access + idle timeout and creation + max lifetime. */
  expiresAt: number;
}

export interface NewSession {
  subject: string;
  attributes?: Record<string, unknown>;
  idleTimeoutMs: number;
  maxLifetimeMs: number;
}

/** Where a page of a subject's sessions ends: the last session it looked at. */
export interface SessionCursor {
  createdAt: number;
  id: string;
}

export interface PageOptions {
  limit: number;
  after?: SessionCursor;
  maxBytes?: number;
}

/**
 * How much session JSON one page holds at most (plus one session): whatever the limit, a
 * page stays far below what a message between engines may carry (16 MiB) and an answer a
 * client must hold.
 */
export const PAGE_MAX_BYTES = 4 * 1024 * 1024;

export interface SessionPage {
  /** Live, unrevoked sessions, oldest first (ties by id). */
  sessions: Session[];
  /** Set when more sessions may follow: pass it as `after` for the next page. */
  next?: SessionCursor;
}

export interface SessionGetOptions {
  touch?: boolean;
  touchAfterMs?: number;
}

/** Whether a touch at `now` writes the session (pure; both providers use it). */
export function touchDue(lastAccessAt: number, now: number, touchAfterMs: number | undefined): boolean {
  return touchAfterMs === undefined || now - lastAccessAt >= touchAfterMs;
}

export interface SessionService {
  create(input: NewSession): Promise<Session>;
  /**
   * The session, or undefined when unknown, expired or revoked; `touch` extends its idle time.
   * `touchAfterMs` throttles the touch: the session is written only when it was last touched
   * at least that long ago (else it is only read), so that decisions using one session from
   * many engines write it at most once per interval between them.
   */
  get(id: string, options?: SessionGetOptions): Promise<Session | undefined>;
  /**
   * As `get`, answered at once (no promise) where the provider holds the session's copy here
   * and nothing must be asked elsewhere (the grid, for a partition this engine holds in sync);
   * a promise otherwise. Providers without a copy of their own leave it out.
   */
  getNow?(id: string, options?: SessionGetOptions): MaybePromise<Session | undefined>;
  /** Live sessions of `subject`, oldest first (ties by id). Unbounded: the API uses pages. */
  listBySubject(subject: string): Promise<Session[]>;
  /**
   * At most `limit` sessions of `subject` after `after`, in the order of `listBySubject`, and
   * about `maxBytes` of them (default PAGE_MAX_BYTES; a page holds at least one session).
   * Revoked sessions are left out of a page after it is cut, so a page may hold fewer (even
   * none) while `next` says more may follow; the walk sees every session created before it
   * began and still live once.
   */
  pageBySubject(subject: string, options: PageOptions): Promise<SessionPage>;
  /**
   * Logout: removes the session and revokes its id until the session's maximum lifetime
   * would have ended, so a copy that outlived the delete (or a replayed cookie) stays
   * refused. An id not found is revoked for `unknownRevocationMs` from now (default
   * DEFAULT_REVOCATION_TTL_MS). False when it did not exist.
   */
  delete(id: string, options?: { unknownRevocationMs?: number }): Promise<boolean>;
}

export interface RevocationService {
  /** Revokes `id` until `expiresAt` (default: DEFAULT_REVOCATION_TTL_MS from now); a later expiry already stored wins. */
  revoke(id: string, expiresAt?: number): Promise<void>;
  /** Revokes `id` for `ttlMs` from the provider's own now (a JWT's remaining life); a later expiry already stored wins. */
  revokeFor(id: string, ttlMs: number): Promise<void>;
  /**
   * Whether `id` is revoked. A provider that can tell at once (the grid, from this engine's own
   * copy of the list) answers with the boolean itself, so an access decision need not wait a
   * turn of the event loop; otherwise a promise.
   */
  isRevoked(id: string): boolean | Promise<boolean>;
}

export interface LockoutPolicy {
  /** Failures within the window that lock the key. */
  maxFailures: number;
  windowMs: number;
  lockMs: number;
}

export interface LockoutStatus {
  locked: boolean;
  failures: number;
  /** How long until the lock ends; 0 when not locked. */
  retryAfterMs: number;
}

export interface LockoutService {
  /** Counts one failure (none is lost under concurrency) and says whether the key is now locked. */
  recordFailure(key: string, policy: LockoutPolicy): Promise<LockoutStatus>;
  status(key: string, policy: LockoutPolicy): Promise<LockoutStatus>;
  /** A success: forgets the failures and any lock. */
  reset(key: string): Promise<void>;
}

export interface ReplayService {
  /** Inserts `id` unless present: `true` the first time it is seen (cluster-wide), else `false`. */
  checkAndInsert(id: string, ttlMs: number): Promise<boolean>;
}

export interface ArtifactService {
  put(id: string, payload: string, ttlMs: number): Promise<void>;
  /** The payload, once: the artifact is gone after the first resolve. */
  resolve(id: string): Promise<string | undefined>;
}

/** Inter-request state and the token cache: values with a time to live. */
export interface ExpiringValueService {
  put(key: string, value: unknown, ttlMs: number): Promise<void>;
  get(key: string): Promise<unknown>;
  delete(key: string): Promise<boolean>;
}

export interface RateLimitPolicy {
  /** Bucket size: requests allowed in a burst. */
  capacity: number;
  /** Tokens added per second. */
  refillPerSecond: number;
}

export interface RateLimitTake {
  /** Whether at least one token was taken. */
  allowed: boolean;
  remaining: number;
  /**
   * How many tokens were taken (0 to `count`): an engine may take several at once and use
   * them locally. Absent in answers of engines older than the count (then 1 when allowed).
   */
  granted?: number;
}

export interface RateLimitService {
  /** Takes one token (or up to `count`, as many as the bucket holds) from the bucket of (policy, key). */
  take(policy: string, key: string, limits: RateLimitPolicy, count?: number): Promise<RateLimitTake>;
}

/** Everything one provider offers. */
export interface StateProvider {
  readonly name: 'grid' | 'redis';
  readonly sessions: SessionService;
  readonly revocations: RevocationService;
  readonly lockout: LockoutService;
  readonly replay: ReplayService;
  readonly artifacts: ArtifactService;
  readonly requestState: ExpiringValueService;
  readonly tokens: ExpiringValueService;
  readonly rateLimits: RateLimitService;
  close(): Promise<void>;
}

/** The longest lifetime the configuration lets a session have (the `services` section's bound). */
export const MAX_SESSION_LIFETIME_MS = 365 * 24 * 3600_000;

/**
 * How long a revocation is kept when the caller does not say: the longest a session may live,
 * so a revoked id is never forgotten while what it revokes may still be in use.
 */
export const DEFAULT_REVOCATION_TTL_MS = MAX_SESSION_LIFETIME_MS;

/** Where a session's life ends at the latest, touched or not: its revocation lasts until then. */
export function sessionMaxEnd(s: Pick<Session, 'createdAt' | 'maxLifetimeMs'>): number {
  return s.createdAt + s.maxLifetimeMs;
}

/** The order of a subject's sessions: oldest first, ties by id (the same in both providers). */
export function compareSessions(a: SessionCursor, b: SessionCursor): number {
  return a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** Lock-out and rate-limit settings until the console's configuration provides them. */
export const DEFAULT_LOCKOUT_POLICY: LockoutPolicy = { maxFailures: 5, windowMs: 5 * 60_000, lockMs: 15 * 60_000 };
export const DEFAULT_RATE_LIMIT: RateLimitPolicy = { capacity: 10, refillPerSecond: 1 };

/** When a session ends (pure; both providers use it). */
export function sessionExpiry(s: Pick<Session, 'createdAt' | 'lastAccessAt' | 'idleTimeoutMs' | 'maxLifetimeMs'>): number {
  return Math.min(s.lastAccessAt + s.idleTimeoutMs, s.createdAt + s.maxLifetimeMs);
}

/**
 * A token bucket's state after `now` (pure; both providers use the same maths): refilled for
 * the time elapsed, capped at capacity, then `count` tokens taken (default 1), or as many
 * whole tokens as there are when fewer.
 */
export function takeToken(
  bucket: { tokens: number; updatedAt: number } | undefined,
  limits: RateLimitPolicy,
  now: number,
  count = 1,
): { bucket: { tokens: number; updatedAt: number }; allowed: boolean; remaining: number; granted: number } {
  const start = bucket ?? { tokens: limits.capacity, updatedAt: now };
  const refilled = Math.min(limits.capacity, start.tokens + (Math.max(0, now - start.updatedAt) / 1000) * limits.refillPerSecond);
  const granted = Math.max(0, Math.min(Math.floor(count), Math.floor(refilled)));
  const tokens = refilled - granted;
  return { bucket: { tokens, updatedAt: now }, allowed: granted > 0, remaining: Math.floor(tokens), granted };
}

/**
 * A lock-out record after one more failure at `now` (pure): failures older than the window
 * are forgotten, and reaching maxFailures locks until now + lockMs.
 */
export function addFailure(
  record: { failures: number[]; lockedUntil: number } | undefined,
  policy: LockoutPolicy,
  now: number,
): { failures: number[]; lockedUntil: number } {
  const recent = (record?.failures ?? []).filter((t) => t > now - policy.windowMs);
  recent.push(now);
  const alreadyLocked = (record?.lockedUntil ?? 0) > now;
  const lockedUntil = alreadyLocked ? record!.lockedUntil : recent.length >= policy.maxFailures ? now + policy.lockMs : 0;
  // Only the failures that can still matter are kept: at most maxFailures.
  return { failures: recent.slice(-policy.maxFailures), lockedUntil };
}

export function lockoutStatus(record: { failures: number[]; lockedUntil: number } | undefined, policy: LockoutPolicy, now: number): LockoutStatus {
  const failures = (record?.failures ?? []).filter((t) => t > now - policy.windowMs).length;
  const lockedUntil = record?.lockedUntil ?? 0;
  const locked = lockedUntil > now;
  return { locked, failures, retryAfterMs: locked ? lockedUntil - now : 0 };
}
