/**
 * The schema of an `Operation` (operations.ts) arriving from another engine (`grid.execute`,
 * `grid.read`): the operation's type and the fields `applyOperation` reads, with their types,
 * so a malformed operation is refused at the boundary (RPC_BAD_REQUEST) instead of throwing,
 * or storing nonsense, deep in the store. Fields the store passes through (a session's
 * attributes, a value) are checked only for presence where they must be JSON objects.
 * Append-only like the operations: a new operation type gets a variant here.
 */
import { anything, anyObject, bool, literal, num, object, str, taggedUnion, type BodySchema } from '../../rpc/body-schema.js';
import type { Operation } from './operations.js';

const session = object({
  id: str,
  subject: str,
  attributes: anyObject,
  createdAt: num,
  lastAccessAt: num,
  idleTimeoutMs: num,
  maxLifetimeMs: num,
  expiresAt: num,
});
const sessionCursor = object({ createdAt: num, id: str });
const lockoutPolicy = object({ maxFailures: num, windowMs: num, lockMs: num });
const rateLimitPolicy = object({ capacity: num, refillPerSecond: num });
const space = literal('state', 'token');

export const operationSchema: BodySchema<Operation> = taggedUnion<Operation, 't'>('t', {
  'session.put': object({ session }),
  'session.get': object({ id: str, touch: bool }, { touchAfterMs: num }),
  'session.list': object({ subject: str }),
  'session.page': object({ subject: str, limit: num, maxBytes: num }, { after: sessionCursor }),
  'session.delete': object({ id: str }),
  'revocation.put': object({ id: str, expiresAt: num }),
  'revocation.get': object({ id: str }),
  'lockout.fail': object({ key: str, policy: lockoutPolicy }),
  'lockout.get': object({ key: str, policy: lockoutPolicy }),
  'lockout.reset': object({ key: str }),
  'replay.insert': object({ id: str, ttlMs: num }),
  'artifact.put': object({ id: str, payload: str, ttlMs: num }),
  'artifact.take': object({ id: str }),
  // A value is any JSON (the runtime API checked its size); JSON drops an undefined one.
  'value.put': object({ space, key: str, ttlMs: num }, { value: anything }),
  'value.get': object({ space, key: str }),
  'value.delete': object({ space, key: str }),
  'bucket.take': object({ policy: str, key: str, limits: rateLimitPolicy }, { count: num }),
});
