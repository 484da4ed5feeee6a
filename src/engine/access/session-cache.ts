/**
 * Session records for access decisions, kept in this engine's memory for a short time
 * (`[access] session_cache_ttl`), so that a request carrying a session needs no round trip to
 * the engine that holds it, and touched (idle time extended) at most once per
 * `[access] session_touch_interval`.
 *
 * Invariants:
 * - Every lookup checks the revocation list first, on a hit too. With the grid that list is
 *   local on every engine, and a session's delete revokes its id on every engine before it is
 *   acknowledged, so no cached record lets a deleted or revoked session through after the
 *   delete or revocation was acknowledged (with Redis the check is a round trip, as before).
 * - A cached record is used at most `ttlMs` after it was read, and never past the session's
 *   own expiry as read; past either, the session is read again. Nothing else about a session
 *   changes after it is created (no update operation exists), so the copy cannot be stale in
 *   any way that lets a request in that the grid's record would keep out.
 * - A touch is due when the session was last touched `touchAfter(session)` ago or more; the
 *   touch is sent with that threshold (`touchAfterMs`), so the engine holding the record
 *   writes it only when no other engine has touched it within the interval: all engines
 *   together write a session at most about once per interval. At most one touch per session
 *   is in flight on this engine; a hit whose touch is due still answers from the copy at once
 *   (the copy is live), and the touch's answer refreshes the copy.
 * - At most `maxEntries` records; the oldest read is dropped first.
 */
import type { Clock } from '../../core/clock.js';
import { isPromise, type MaybePromise } from '../../core/maybe-async.js';
import type { Session, StateProvider } from '../../state/services.js';

export interface SessionCacheOptions {
  /** How long a record read from the state is used for decisions (ms); 0: read on every decision. */
  ttlMs: number;
  /** Least time between two writes of a session's last access (ms); 0: every decision writes. */
  touchIntervalMs: number;
  /** Most records kept. */
  maxEntries: number;
}

export const SESSION_CACHE_MAX_ENTRIES = 100_000;
/** After a failed touch (writes refused), the next one is tried no sooner than this. */
const TOUCH_RETRY_MS = 1000;

/**
 * How long after its last touch a session is touched again (pure): the configured interval,
 * but at most a quarter of the session's idle timeout, so that a session in use never comes
 * near its idle expiry however short that is.
 */
export function touchAfter(intervalMs: number, idleTimeoutMs: number): number {
  return Math.max(0, Math.min(intervalMs, Math.floor(idleTimeoutMs / 4)));
}

interface Entry {
  session: Session;
  /** Used for decisions until then (the read's time + ttl). */
  freshUntil: number;
  touching: boolean;
  /** No touch before then (after a failed one). */
  touchNotBefore: number;
}

export class SessionCache {
  private readonly entries = new Map<string, Entry>();
  private readonly reading = new Map<string, Promise<Session | undefined>>();

  constructor(
    private readonly provider: StateProvider,
    private readonly clock: Clock,
    private readonly options: SessionCacheOptions,
  ) {}

  /** How many records are held now (tests, metrics). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The live session of `id` for a decision, or undefined when it is unknown, expired,
   * deleted or revoked: at once from a fresh copy when the revocation list answers at once (the
   * grid's is in this engine's memory), else a promise. Rejects when the state cannot be
   * reached (the decision fails closed). `now`: the decision's time, when it has read the
   * clock already (a clock read is not free on every machine).
   */
  lookup(id: string, now?: number): MaybePromise<Session | undefined> {
    const revoked = this.provider.revocations.isRevoked(id);
    return isPromise(revoked) ? revoked.then((r) => this.liveSession(id, r, this.clock.now())) : this.liveSession(id, revoked, now ?? this.clock.now());
  }

  /** The rest of `lookup` once the revocation list has answered: the fresh copy, or a read. */
  private liveSession(id: string, revoked: boolean, now: number): MaybePromise<Session | undefined> {
    if (revoked) {
      this.entries.delete(id);
      return undefined;
    }
    const entry = this.entries.get(id);
    if (entry !== undefined) {
      if (now < entry.freshUntil && now < entry.session.expiresAt) {
        if (!entry.touching && now >= entry.touchNotBefore && now - entry.session.lastAccessAt >= this.touchAfter(entry.session)) this.touchInBackground(id, entry);
        return entry.session;
      }
      this.entries.delete(id);
    }
    // Concurrent decisions for one session share one read.
    let pending = this.reading.get(id);
    if (pending === undefined) {
      pending = this.read(id).finally(() => this.reading.delete(id));
      this.reading.set(id, pending);
    }
    return pending;
  }

  private touchAfter(s: Session): number {
    return touchAfter(this.options.touchIntervalMs, s.idleTimeoutMs);
  }

  /**
   * Reads the session, touching it when due. A touch is a write; when writes are refused (an
   * engine that sees no majority still answers reads) the session is read without extending
   * it, so a valid session still passes and nothing is extended that could not be.
   */
  private async read(id: string): Promise<Session | undefined> {
    let session: Session | undefined;
    try {
      session = await this.provider.sessions.get(id, { touch: true, touchAfterMs: this.options.touchIntervalMs });
    } catch {
      session = await this.provider.sessions.get(id);
    }
    if (session === undefined) return undefined;
    // A session whose idle timeout is shorter than four intervals is due sooner than the interval.
    if (this.clock.now() - session.lastAccessAt >= this.touchAfter(session)) {
      try {
        session = await this.provider.sessions.get(id, { touch: true, touchAfterMs: this.touchAfter(session) });
      } catch {
        // Writes refused: the session as read is still live.
      }
      if (session === undefined) return undefined;
    }
    if (this.options.ttlMs > 0) {
      this.entries.set(id, { session, freshUntil: this.clock.now() + this.options.ttlMs, touching: false, touchNotBefore: 0 });
      // A Map iterates in insertion order: the first key is the oldest read.
      while (this.entries.size > this.options.maxEntries) this.entries.delete(this.entries.keys().next().value as string);
    }
    return session;
  }

  private touchInBackground(id: string, entry: Entry): void {
    entry.touching = true;
    this.provider.sessions.get(id, { touch: true, touchAfterMs: this.touchAfter(entry.session) }).then(
      (touched) => {
        entry.touching = false;
        if (this.entries.get(id) !== entry) return;
        if (touched === undefined) this.entries.delete(id);
        else entry.session = touched;
      },
      () => {
        entry.touching = false;
        entry.touchNotBefore = this.clock.now() + TOUCH_RETRY_MS;
      },
    );
  }
}
