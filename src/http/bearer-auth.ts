import { hash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { constantTimeEqual } from '../core/constant-time.js';
import { CohortError } from '../core/errors.js';

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
export function bearerToken(request: Pick<FastifyRequest, 'headers'>): string | undefined {
  const header = request.headers.authorization;
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** SHA-256 of a presented key, once per request: the one-shot form costs a third less than a Hash object. */
export function sha256(text: string): Buffer {
  return hash('sha256', text, 'buffer') as unknown as Buffer;
}

/**
 * Checks a bearer token against one expected secret's hash. The token is hashed first, so
 * the comparison is constant-time whatever its length; an expected hash of the wrong length
 * refuses the token rather than failing the request.
 */
export function requireBearer(request: FastifyRequest, expectedHash: Buffer): void {
  const token = bearerToken(request);
  if (token === undefined) throw new CohortError('AUTH_MISSING_CREDENTIAL', 'missing Authorization: Bearer credential');
  if (!constantTimeEqual(sha256(token), expectedHash)) throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid credential');
}

/**
 * Whether `hash` equals any of the expected hashes. Every one is compared (constant time each),
 * so timing says nothing about which matched; a damaged hash in the configuration only ever
 * fails to match.
 */
export function hashMatchesAny(hash: Buffer, ...lists: ReadonlyArray<readonly Buffer[]>): boolean {
  let ok = false;
  for (const list of lists) for (const expected of list) ok = constantTimeEqual(hash, expected) || ok;
  return ok;
}

/** Most keys a MatchedKeys remembers; past it, it forgets them all and starts again. */
const MATCHED_KEYS_MAX = 256;

/**
 * `hashMatchesAny` for a key presented again and again (a gateway sends its key with every
 * request): the keys that matched lately are remembered, so the hash is paid once per key, not
 * once per request. Only matches are kept: a wrong key is always hashed and compared in
 * constant time, and no one can fill the memory without holding a valid key. The memory is
 * emptied whenever the expected hashes change (a key issued or revoked on the console), so a
 * revoked key is refused from the first request after the change.
 */
export class MatchedKeys {
  private lists: ReadonlyArray<readonly Buffer[]> = [];
  private readonly known = new Set<string>();

  matches(key: string, ...lists: ReadonlyArray<readonly Buffer[]>): boolean {
    let same = lists.length === this.lists.length;
    for (let i = 0; same && i < lists.length; i++) same = lists[i] === this.lists[i];
    if (!same) {
      this.known.clear();
      this.lists = lists;
    }
    if (this.known.has(key)) return true;
    const ok = hashMatchesAny(sha256(key), ...lists);
    if (ok) {
      if (this.known.size >= MATCHED_KEYS_MAX) this.known.clear();
      this.known.add(key);
    }
    return ok;
  }
}
