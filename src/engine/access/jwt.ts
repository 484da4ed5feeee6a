/**
 * JWT credentials, verified with jose against an API's issuer, audiences, algorithm
 * allow-list and clock tolerance. Only asymmetric algorithms are accepted (the section's
 * schema lists them), so neither `alg: none` nor an HMAC token keyed with a public key
 * (algorithm confusion) can verify; jose also checks that the key's type fits the algorithm.
 *
 * Remote key sets (`jwksUrl`) use jose's createRemoteJWKSet: the set is cached, and a token
 * whose `kid` the cached set lacks triggers a refetch at most every 30 s (its cooldown).
 * Verifiers are shared by key-set URL, so a new configuration does not empty the cache.
 */
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';

/** Tokens longer than this are refused unread (a bearer header is no place for a novel). */
export const MAX_JWT_LENGTH = 16 * 1024;
/** Least time between two fetches of a remote key set for an unknown key id. */
export const JWKS_REFETCH_COOLDOWN_MS = 30_000;
/** A fetched key set is used this long before it is fetched again. */
export const JWKS_MAX_AGE_MS = 10 * 60_000;
const JWKS_TIMEOUT_MS = 5_000;

export interface JwtSettings {
  issuer?: string;
  audiences?: string[];
  jwksUrl?: string;
  keys?: JWK[];
  algorithms: string[];
  clockToleranceSeconds: number;
}

export type JwtResult = { ok: true; claims: JWTPayload } | { ok: false; why: string; unavailable?: boolean };

export interface JwtVerifier {
  verify(token: string, nowMs: number): Promise<JwtResult>;
  /** The API's clock tolerance: how long past `exp` a token is still accepted (s). */
  readonly clockToleranceSeconds: number;
}

const remoteSets = new Map<string, JWTVerifyGetKey>();

function remoteSet(url: string): JWTVerifyGetKey {
  let set = remoteSets.get(url);
  if (!set) {
    set = createRemoteJWKSet(new URL(url), { cooldownDuration: JWKS_REFETCH_COOLDOWN_MS, cacheMaxAge: JWKS_MAX_AGE_MS, timeoutDuration: JWKS_TIMEOUT_MS });
    remoteSets.set(url, set);
  }
  return set;
}

/** Whether `token` has the shape of a compact JWS (three base64url parts): tells a JWT from a session id. */
export function looksLikeJwt(token: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(token);
}

export function jwtVerifierFor(settings: JwtSettings): JwtVerifier {
  const keys: JWTVerifyGetKey = settings.keys ? createLocalJWKSet({ keys: settings.keys }) : remoteSet(settings.jwksUrl ?? '');
  return {
    clockToleranceSeconds: settings.clockToleranceSeconds,
    async verify(token, nowMs) {
      if (token.length > MAX_JWT_LENGTH) return { ok: false, why: `token longer than ${MAX_JWT_LENGTH} characters` };
      if (!looksLikeJwt(token)) return { ok: false, why: 'not a compact JWT' };
      try {
        const { payload } = await jwtVerify(token, keys, {
          algorithms: settings.algorithms,
          ...(settings.issuer !== undefined ? { issuer: settings.issuer } : {}),
          ...(settings.audiences !== undefined && settings.audiences.length > 0 ? { audience: settings.audiences } : {}),
          clockTolerance: settings.clockToleranceSeconds,
          currentDate: new Date(nowMs),
        });
        return { ok: true, claims: payload };
      } catch (err) {
        const code = (err as { code?: string }).code ?? '';
        // A remote key set that cannot be fetched (unreachable, timed out, not a 200, not a
        // key set) is the key service's failure, not the caller's: the decision fails closed
        // as for unreachable state. A token is parsed and its algorithm checked before any
        // fetch, so garbage never gets here as "unavailable".
        const unavailable = settings.keys === undefined && (code === '' || code === 'ERR_JWKS_TIMEOUT' || code === 'ERR_JOSE_GENERIC' || code === 'ERR_JWKS_INVALID');
        return { ok: false, why: code === '' ? (err as Error).message : code, ...(unavailable ? { unavailable } : {}) };
      }
    },
  };
}
