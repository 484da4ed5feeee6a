/**
 * What an engine keeps between decisions so that a decision costs no round trip when it need
 * not (the `[access]` keys): session records (session-cache.ts), local rate-limit allotments
 * (rate-allotments.ts) and verified JWTs (verified-jwts.ts). One set per engine, shared by
 * every door and the inline proxy, so a request gets the same answer whichever it reaches.
 */
import type { Clock } from '../../core/clock.js';
import type { StateProvider } from '../../state/services.js';
import { RateAllotments } from './rate-allotments.js';
import { SESSION_CACHE_MAX_ENTRIES, SessionCache } from './session-cache.js';
import { VerifiedJwtCache } from './verified-jwts.js';

export interface DecisionCacheSettings {
  /** `[access] session_cache_ttl` (ms). */
  sessionCacheTtlMs: number;
  /** `[access] session_touch_interval` (ms). */
  sessionTouchIntervalMs: number;
  /** `[access] rate_limit_allotment` (tokens). */
  rateLimitAllotment: number;
  /** `[access] jwt_cache_size` (tokens). */
  jwtCacheSize: number;
}

export interface DecisionCaches {
  sessions: SessionCache;
  rateLimits: RateAllotments;
  jwts: VerifiedJwtCache;
}

export function decisionCaches(provider: StateProvider, clock: Clock, settings: DecisionCacheSettings): DecisionCaches {
  return {
    sessions: new SessionCache(provider, clock, { ttlMs: settings.sessionCacheTtlMs, touchIntervalMs: settings.sessionTouchIntervalMs, maxEntries: SESSION_CACHE_MAX_ENTRIES }),
    rateLimits: new RateAllotments(provider, clock, settings.rateLimitAllotment),
    jwts: new VerifiedJwtCache(settings.jwtCacheSize),
  };
}
