/**
 * What the runtime API takes from the replicated configuration (console sections `runtime`,
 * `services`, `api-keys`, `apis`), with the defaults that hold before any is saved. Pure: the engine
 * computes these once per applied configuration, and every request reads the current ones.
 */
import { compileApis, type AccessDefinitions } from './access/definitions.js';
import type { ApiKeyScope } from '../policy/config-sections.js';
import { DEFAULT_LOCKOUT_POLICY, DEFAULT_RATE_LIMIT, MAX_SESSION_LIFETIME_MS, type LockoutPolicy, type RateLimitPolicy } from '../state/services.js';

export interface RuntimeSettings {
  lockoutPolicy: LockoutPolicy;
  rateLimit(policy: string): RateLimitPolicy;
  sessionIdleTimeoutSeconds: number;
  sessionMaxLifetimeSeconds: number;
  artifactTtlSeconds: number;
  stateTtlSeconds: number;
  tokenTtlSeconds: number;
  /** Longest a revocation is kept (`services.revocations.maxTtlSeconds`): caps a caller's `ttlSeconds`. */
  revocationMaxTtlSeconds: number;
  /** SHA-256 of the console-issued keys of scope `runtime` (besides those of `[http] api_keys`): the runtime API. */
  apiKeyHashes: Buffer[];
  /** SHA-256 of the issued keys of scope `read`: the runtime API's reads, nothing else. */
  readKeyHashes: Buffer[];
  /** SHA-256 of the console-issued keys the access-decision front doors accept: scopes `runtime` and `gateway`. */
  gatewayKeyHashes: Buffer[];
  /** Console-issued keys of scope `client`, by SHA-256 (hex): API callers' credentials, checked by decisions. */
  clientKeys: Map<string, { id: string }>;
  /** Whether a request that matches no API definition is allowed (`runtime.unmatchedRequests`). */
  allowUnmatched: boolean;
  /** The `apis` section compiled for access decisions, with the client keys and the unmatched rule. */
  access: AccessDefinitions;
  /** Why API definitions could not be compiled (each such API denies what it matches). */
  accessErrors: string[];
}

export const DEFAULT_IDLE_TIMEOUT_SECONDS = 1800;
export const DEFAULT_MAX_LIFETIME_SECONDS = 8 * 3600;
/** By default a revocation may last as long as the longest session the configuration allows. */
export const DEFAULT_REVOCATION_MAX_TTL_SECONDS = MAX_SESSION_LIFETIME_MS / 1000;

interface Bucket {
  capacity: number;
  refillPerSecond: number;
}
interface RuntimeSection {
  lockout?: { maxFailures: number; windowSeconds: number; lockSeconds: number };
  defaultRateLimit?: Bucket;
  rateLimits?: Record<string, Bucket>;
  unmatchedRequests?: 'deny' | 'allow';
}
interface ServicesSection {
  sessions?: { idleTimeoutSeconds?: number; maxLifetimeSeconds?: number };
  artifacts?: { defaultTtlSeconds?: number };
  state?: { defaultTtlSeconds?: number };
  tokens?: { defaultTtlSeconds?: number };
  revocations?: { maxTtlSeconds?: number };
}

/** Settings from the sections' contents (undefined: never saved). */
export function runtimeSettings(sections: { runtime?: unknown; services?: unknown; 'api-keys'?: unknown; apis?: unknown } = {}): RuntimeSettings {
  const runtime = (sections.runtime ?? {}) as RuntimeSection;
  const services = (sections.services ?? {}) as ServicesSection;
  const keys = ((sections['api-keys'] ?? { keys: [] }) as { keys: Array<{ id: string; hash: string; scope?: ApiKeyScope }> }).keys;
  // Keys issued before scopes existed are runtime keys.
  const scoped = (...scopes: ApiKeyScope[]) => keys.filter((k) => scopes.includes(k.scope ?? 'runtime'));
  const defaultBucket = runtime.defaultRateLimit ?? DEFAULT_RATE_LIMIT;
  const buckets = new Map(Object.entries(runtime.rateLimits ?? {}));
  const clientKeys = new Map(scoped('client').map((k) => [k.hash, { id: k.id }]));
  const allowUnmatched = runtime.unmatchedRequests === 'allow';
  const { errors: accessErrors, ...access } = compileApis(sections.apis, { allowUnmatched, clientKeys });
  return {
    lockoutPolicy: runtime.lockout
      ? { maxFailures: runtime.lockout.maxFailures, windowMs: runtime.lockout.windowSeconds * 1000, lockMs: runtime.lockout.lockSeconds * 1000 }
      : DEFAULT_LOCKOUT_POLICY,
    rateLimit: (policy) => buckets.get(policy) ?? defaultBucket,
    sessionIdleTimeoutSeconds: services.sessions?.idleTimeoutSeconds ?? DEFAULT_IDLE_TIMEOUT_SECONDS,
    sessionMaxLifetimeSeconds: services.sessions?.maxLifetimeSeconds ?? DEFAULT_MAX_LIFETIME_SECONDS,
    artifactTtlSeconds: services.artifacts?.defaultTtlSeconds ?? 60,
    stateTtlSeconds: services.state?.defaultTtlSeconds ?? 300,
    tokenTtlSeconds: services.tokens?.defaultTtlSeconds ?? 300,
    revocationMaxTtlSeconds: services.revocations?.maxTtlSeconds ?? DEFAULT_REVOCATION_MAX_TTL_SECONDS,
    apiKeyHashes: scoped('runtime').map((k) => Buffer.from(k.hash, 'hex')),
    readKeyHashes: scoped('read').map((k) => Buffer.from(k.hash, 'hex')),
    gatewayKeyHashes: scoped('runtime', 'gateway').map((k) => Buffer.from(k.hash, 'hex')),
    clientKeys,
    allowUnmatched,
    access,
    accessErrors,
  };
}
