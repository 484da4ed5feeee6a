/**
 * The sections of the cluster configuration, each a JSON document with its own JSON Schema.
 * The console validates every save against them; engines validate every copy they receive
 * from the console and the copy they saved at their last run, so a document that does not
 * match is never applied, whichever way it arrived.
 *
 * - `runtime`: how engines apply the state services: lock-out policy, rate-limit policies.
 * - `services`: per-service defaults (session timeouts, TTLs).
 * - `apis`: API definitions for access decisions.
 * - `api-keys`: hashes of the runtime API keys; written through /admin/v1/api-keys only.
 * - `schedules`: persistent schedules; written through /admin/v1/schedules only.
 *
 * Engines receive every section but `schedules`; nothing secret is in them (API keys are
 * SHA-256 hashes).
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { MAX_SESSION_LIFETIME_MS } from '../state/services.js';

export const CONFIG_SECTIONS = ['runtime', 'services', 'apis', 'api-keys', 'schedules'] as const;
export type ConfigSection = (typeof CONFIG_SECTIONS)[number];

const seconds = (max: number) => ({ type: 'integer', minimum: 1, maximum: max }) as const;
const DAY = 86_400;
const name = { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' } as const;
const bucket = {
  type: 'object',
  additionalProperties: false,
  required: ['capacity', 'refillPerSecond'],
  properties: { capacity: { type: 'integer', minimum: 1, maximum: 1_000_000_000 }, refillPerSecond: { type: 'number', exclusiveMinimum: 0, maximum: 1_000_000_000 } },
} as const;
const ttl = { type: 'object', additionalProperties: false, properties: { defaultTtlSeconds: seconds(30 * DAY) } } as const;

export const SECTION_SCHEMAS: Record<ConfigSection, object> = {
  runtime: {
    type: 'object',
    additionalProperties: false,
    properties: {
      lockout: {
        type: 'object',
        additionalProperties: false,
        required: ['maxFailures', 'windowSeconds', 'lockSeconds'],
        properties: { maxFailures: { type: 'integer', minimum: 1, maximum: 1000 }, windowSeconds: seconds(30 * DAY), lockSeconds: seconds(30 * DAY) },
      },
      defaultRateLimit: bucket,
      rateLimits: { type: 'object', propertyNames: name, additionalProperties: bucket, maxProperties: 1000 },
    },
  },
  services: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sessions: { type: 'object', additionalProperties: false, properties: { idleTimeoutSeconds: seconds(30 * DAY), maxLifetimeSeconds: seconds(MAX_SESSION_LIFETIME_MS / 1000) } },
      // The longest a revocation is kept: caps the ttlSeconds a caller gives (a JWT's exp).
      revocations: { type: 'object', additionalProperties: false, properties: { maxTtlSeconds: seconds(MAX_SESSION_LIFETIME_MS / 1000) } },
      artifacts: ttl,
      state: ttl,
      tokens: ttl,
    },
  },
  apis: {
    type: 'object',
    additionalProperties: false,
    required: ['apis'],
    properties: {
      apis: {
        type: 'array',
        maxItems: 1000,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'pathPrefix'],
          properties: {
            id: name,
            pathPrefix: { type: 'string', pattern: '^/', maxLength: 1024 },
            requireSession: { type: 'boolean' },
            checkRevocation: { type: 'boolean' },
            rateLimitPolicy: name,
            denyList: { type: 'array', maxItems: 10_000, items: { type: 'string', minLength: 1, maxLength: 64 } },
          },
        },
      },
    },
  },
  'api-keys': {
    type: 'object',
    additionalProperties: false,
    required: ['keys'],
    properties: {
      keys: {
        type: 'array',
        maxItems: 10_000,
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['id', 'name', 'hash', 'createdAt', 'createdBy'],
          properties: {
            id: name,
            name: { type: 'string', minLength: 1, maxLength: 200 },
            hash: { type: 'string', pattern: '^[0-9a-f]{64}$' },
            createdAt: { type: 'integer', minimum: 0 },
            createdBy: { type: 'string', maxLength: 200 },
          },
        },
      },
    },
  },
  schedules: {
    type: 'object',
    additionalProperties: false,
    required: ['schedules'],
    properties: { schedules: { type: 'array', maxItems: 10_000, items: { type: 'object' } } },
  },
};


let ajv: Ajv | undefined;
const validators = new Map<ConfigSection, ValidateFunction>();

/** Compiled at first use: an engine compiles only the sections it checks. */
function validator(section: ConfigSection): ValidateFunction {
  let v = validators.get(section);
  if (!v) {
    ajv ??= new Ajv({ allErrors: true, strict: true });
    v = ajv.compile(SECTION_SCHEMAS[section]);
    validators.set(section, v);
  }
  return v;
}

export function isConfigSection(section: string): section is ConfigSection {
  return (CONFIG_SECTIONS as readonly string[]).includes(section);
}

/** Every place `content` breaks the section's schema, one line each; empty when it matches. */
export function sectionErrors(section: ConfigSection, content: unknown): string[] {
  const validate = validator(section);
  if (validate(content)) return [];
  return (validate.errors ?? []).map(describeError);
}

function describeError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(document)' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  return `${where}: ${e.message ?? 'invalid'}`;
}
