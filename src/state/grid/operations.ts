/**
 * Every state change and lookup of the grid as a serializable operation, applied to a
 * `GridStore` by `applyOperation`. The engine that receives a request builds the operation;
 * the engine that owns the key's partition applies it (one JavaScript turn: atomic on that
 * engine), so concurrent requests for one key, from any engine, are serialized there.
 */
import {
  addFailure,
  compareSessions,
  lockoutStatus,
  sessionExpiry,
  sessionMaxEnd,
  takeToken,
  touchDue,
  type LockoutPolicy,
  type LockoutStatus,
  type RateLimitPolicy,
  type Session,
  type SessionCursor,
} from '../services.js';
import type { GridStore, StoredRecord } from './grid-store.js';

export type Operation =
  | { t: 'session.put'; session: Session }
  /** `touchAfterMs`: touch only a session last touched at least that long ago (older engines ignore it and always touch). */
  | { t: 'session.get'; id: string; touch: boolean; touchAfterMs?: number }
  | { t: 'session.list'; subject: string }
  | { t: 'session.page'; subject: string; limit: number; maxBytes: number; after?: SessionCursor }
  | { t: 'session.delete'; id: string }
  | { t: 'revocation.put'; id: string; expiresAt: number }
  | { t: 'revocation.get'; id: string }
  | { t: 'lockout.fail'; key: string; policy: LockoutPolicy }
  | { t: 'lockout.get'; key: string; policy: LockoutPolicy }
  | { t: 'lockout.reset'; key: string }
  | { t: 'replay.insert'; id: string; ttlMs: number }
  | { t: 'artifact.put'; id: string; payload: string; ttlMs: number }
  | { t: 'artifact.take'; id: string }
  | { t: 'value.put'; space: 'state' | 'token'; key: string; value: unknown; ttlMs: number }
  | { t: 'value.get'; space: 'state' | 'token'; key: string }
  | { t: 'value.delete'; space: 'state' | 'token'; key: string }
  /** `count`: take up to that many tokens (default 1; older engines ignore it and take one). */
  | { t: 'bucket.take'; policy: string; key: string; limits: RateLimitPolicy; count?: number };

/** Operations that change nothing: a backup may answer them when the primary cannot be reached. */
/**
 * Operations that leave the same state whether applied once or twice (they set, never add):
 * one whose primary vanished under it may be sent again to the next primary.
 */
export function isRepeatable(op: Operation): boolean {
  switch (op.t) {
    case 'session.put':
    case 'session.delete':
    case 'revocation.put':
    case 'lockout.reset':
    case 'artifact.put':
    case 'value.put':
    case 'value.delete':
      return true;
    default:
      return isReadOnly(op);
  }
}

/** Whether `store` holds `id` as revoked: the `revocation.get` operation, and every decision's check. */
export function isRevokedIn(store: GridStore, id: string): boolean {
  return store.get('revocation', id) === true;
}

export function isReadOnly(op: Operation): boolean {
  switch (op.t) {
    case 'session.get':
      return !op.touch;
    case 'session.list':
    case 'session.page':
    case 'revocation.get':
    case 'lockout.get':
    case 'value.get':
      return true;
    default:
      return false;
  }
}

interface LockoutRecord {
  failures: number[];
  lockedUntil: number;
}

/** What each operation answers. */
export interface OperationResults {
  'session.put': Session;
  'session.get': Session | null;
  'session.list': Session[];
  /** `more`: sessions follow the last one of this page. */
  'session.page': { sessions: Session[]; more: boolean };
  /** When the deleted session's maximum lifetime ends; false when there was none. */
  'session.delete': number | false;
  'revocation.put': null;
  'revocation.get': boolean;
  'lockout.fail': LockoutStatus;
  'lockout.get': LockoutStatus;
  'lockout.reset': null;
  'replay.insert': boolean;
  'artifact.put': null;
  'artifact.take': string | null;
  'value.put': null;
  'value.get': unknown;
  'value.delete': boolean;
  'bucket.take': { allowed: boolean; remaining: number; granted: number };
}

/**
 * Applies `op` to `store` at time `now` and returns its result (JSON-serializable). Records
 * written are tagged with `partition`, the partition the operation was routed to.
 */
export function applyOperation(store: GridStore, op: Operation, now: number, partition: number): unknown {
  switch (op.t) {
    case 'session.put':
      store.set('session', op.session.id, storedSession(op.session), op.session.expiresAt, partition, op.session.subject);
      return op.session;
    case 'session.get': {
      const s = sessionOf(store, op.id);
      if (!s) return null;
      if (!op.touch || !touchDue(s.lastAccessAt, now, op.touchAfterMs)) return s;
      const touched: Session = { ...s, lastAccessAt: now };
      touched.expiresAt = sessionExpiry(touched);
      store.set('session', s.id, storedSession(touched), touched.expiresAt, partition, s.subject);
      return touched;
    }
    case 'session.list':
      return subjectSessions(store, op.subject, partition).sort(compareSessions);
    case 'session.page': {
      const after = op.after;
      const rest = store
        .keysByIndex('session', op.subject, partition)
        .map((id) => sessionOf(store, id))
        .filter((s): s is Session => s !== undefined && (after === undefined || compareSessions(s, after) > 0))
        .sort(compareSessions);
      const sessions: Session[] = [];
      let bytes = 0;
      for (const session of rest) {
        if (sessions.length === op.limit || (sessions.length > 0 && bytes >= op.maxBytes)) break;
        sessions.push(session);
        // What it takes in the answer, which is what the budget bounds.
        bytes += JSON.stringify(session).length;
      }
      return { sessions, more: sessions.length < rest.length };
    }
    case 'session.delete': {
      const s = sessionOf(store, op.id);
      store.delete('session', op.id, partition);
      return s === undefined ? false : sessionMaxEnd(s);
    }
    case 'revocation.put': {
      const existing = store.record('revocation', op.id);
      store.set('revocation', op.id, true, Math.max(op.expiresAt, existing?.expiresAt ?? 0), partition);
      return null;
    }
    case 'revocation.get':
      return isRevokedIn(store, op.id);
    case 'lockout.fail': {
      const next = addFailure(store.get('lockout', op.key) as LockoutRecord | undefined, op.policy, now);
      store.set('lockout', op.key, next, Math.max(next.lockedUntil, now + op.policy.windowMs), partition);
      return lockoutStatus(next, op.policy, now);
    }
    case 'lockout.get':
      return lockoutStatus(store.get('lockout', op.key) as LockoutRecord | undefined, op.policy, now);
    case 'lockout.reset':
      store.delete('lockout', op.key, partition);
      return null;
    case 'replay.insert':
      if (store.has('replay', op.id)) return false;
      store.set('replay', op.id, true, now + op.ttlMs, partition);
      return true;
    case 'artifact.put':
      store.set('artifact', op.id, op.payload, now + op.ttlMs, partition);
      return null;
    case 'artifact.take': {
      const payload = store.get('artifact', op.id) as string | undefined;
      if (payload === undefined) return null;
      store.delete('artifact', op.id, partition);
      return payload;
    }
    case 'value.put':
      store.set(op.space, op.key, op.value, now + op.ttlMs, partition);
      return null;
    case 'value.get': {
      const v = store.get(op.space, op.key);
      return v === undefined ? null : v;
    }
    case 'value.delete':
      return store.delete(op.space, op.key, partition);
    case 'bucket.take': {
      const key = `${op.policy}\u0000${op.key}`;
      const r = takeToken(store.get('bucket', key) as { tokens: number; updatedAt: number } | undefined, op.limits, now, op.count ?? 1);
      // A full bucket is the same as none: expire the record once it would have refilled.
      const refillMs = ((op.limits.capacity - r.bucket.tokens) / op.limits.refillPerSecond) * 1000;
      store.set('bucket', key, r.bucket, now + Math.ceil(refillMs) + 1, partition);
      return { allowed: r.allowed, remaining: r.remaining, granted: r.granted };
    }
  }
}

/** The live sessions filed under `subject` in `partition` (the subject's: its sessions are placed by it), in no particular order. */
function subjectSessions(store: GridStore, subject: string, partition: number): Session[] {
  return store
    .keysByIndex('session', subject, partition)
    .map((id) => sessionOf(store, id))
    .filter((s): s is Session => s !== undefined);
}

/**
 * What the grid stores of a session, as JSON: `[attributes, createdAt, lastAccessAt,
 * idleTimeoutMs, maxLifetimeMs]`. Its id is the record's key, its subject the record's index
 * and its expiry the record's own, and the other fields go by position: about 160 bytes less
 * than the session's own JSON for every session held, in memory, on the wire and in the saved
 * state (a session of 256 bytes of attributes is held in about 630 bytes in all instead of 800).
 */
type StoredSession = [attributes: Session['attributes'], createdAt: number, lastAccessAt: number, idleTimeoutMs: number, maxLifetimeMs: number];

function storedSession(s: Session): StoredSession {
  return [s.attributes, s.createdAt, s.lastAccessAt, s.idleTimeoutMs, s.maxLifetimeMs];
}

/** The session a record holds, whole again; a session stored whole (as earlier versions did) reads the same. */
function sessionFrom(id: string, r: StoredRecord): Session {
  const stored = JSON.parse(r.json) as StoredSession | Session;
  if (!Array.isArray(stored)) return stored;
  const [attributes, createdAt, lastAccessAt, idleTimeoutMs, maxLifetimeMs] = stored;
  return { id, subject: r.index!, attributes, createdAt, lastAccessAt, idleTimeoutMs, maxLifetimeMs, expiresAt: r.expiresAt };
}

function sessionOf(store: GridStore, id: string): Session | undefined {
  const r = store.record('session', id);
  return r === undefined ? undefined : sessionFrom(id, r);
}
