/**
 * JWTs already verified by this engine, so that a client repeating its token (every request
 * of a session of an API) costs no signature check: the claims of a token whose signature,
 * issuer, audience and times checked out are kept, keyed by the SHA-256 of the token text and
 * by the verifier (one per API definition as applied: a new configuration or key set starts
 * afresh).
 *
 * Invariants:
 * - A kept token is used only while it has not expired (`exp` plus the API's clock tolerance,
 *   checked on every use) and for at most JWT_CACHE_MAX_AGE_MS after it was verified (as long
 *   as a fetched key set is used before it is fetched again).
 * - Only verification is saved: revocation of `jti` / `sid`, deny lists, single-use tokens
 *   (replay prevention) and lock-out are checked by the decision on every use.
 * - Refused tokens are not kept (garbage cannot fill the cache); at most `maxEntries` tokens
 *   are kept, the oldest verified dropped first.
 */
import { hash } from 'node:crypto';
import type { JWTPayload } from 'jose';
import type { MaybePromise } from '../../core/maybe-async.js';
import type { JwtResult, JwtVerifier } from './jwt.js';

/** A kept token is verified again after this long (ms), whatever its expiry. */
export const JWT_CACHE_MAX_AGE_MS = 10 * 60_000;

interface Kept {
  verifier: JwtVerifier;
  claims: JWTPayload;
  /** Usable while now < until (ms). */
  until: number;
}

/** Until when (ms) verified `claims` may be used without a new check (pure). */
export function keptUntil(claims: JWTPayload, verifiedAtMs: number, clockToleranceSeconds: number): number {
  const maxAge = verifiedAtMs + JWT_CACHE_MAX_AGE_MS;
  return typeof claims.exp === 'number' ? Math.min(maxAge, (claims.exp + clockToleranceSeconds) * 1000) : maxAge;
}

export class VerifiedJwtCache {
  private readonly kept = new Map<string, Kept>();

  constructor(private readonly maxEntries: number) {}

  get size(): number {
    return this.kept.size;
  }

  /** The token's verdict: at once for a kept token, else a promise (the signature is checked). */
  verify(verifier: JwtVerifier, token: string, nowMs: number): MaybePromise<JwtResult> {
    if (this.maxEntries <= 0) return verifier.verify(token, nowMs);
    // One-shot: a Hash object per request cost more than the rest of a kept token's check.
    const digest = hash('sha256', token, 'base64');
    const hit = this.kept.get(digest);
    if (hit !== undefined && hit.verifier === verifier) {
      if (nowMs < hit.until) return { ok: true, claims: hit.claims };
      this.kept.delete(digest);
    }
    return this.verifyAndKeep(verifier, token, nowMs, digest);
  }

  private async verifyAndKeep(verifier: JwtVerifier, token: string, nowMs: number, digest: string): Promise<JwtResult> {
    const result = await verifier.verify(token, nowMs);
    if (result.ok) {
      // Frozen: every decision that uses the token reads the same claims.
      const claims = Object.freeze(result.claims);
      this.kept.delete(digest);
      this.kept.set(digest, { verifier, claims, until: keptUntil(claims, nowMs, verifier.clockToleranceSeconds) });
      while (this.kept.size > this.maxEntries) this.kept.delete(this.kept.keys().next().value as string);
    }
    return result;
  }
}
