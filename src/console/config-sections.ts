/**
 * The sections of the cluster configuration the console keeps, each a JSON
 * document validated by its own JSON Schema before it is saved: a document that does not
 * match is refused with every place it is wrong, and nothing is stored.
 *
 * - `runtime`: how engines apply the state services: lock-out policy, rate-limit policies.
 * - `services`: per-service defaults (session timeouts, TTLs) and the longest revocation.
 * - `apis`: API definitions for access decisions (not enforced yet).
 * - `api-keys`: hashes of the runtime API keys; written through /admin/v1/api-keys only.
 * - `schedules`: persistent schedules; written through /admin/v1/schedules only.
 *
 * Engines receive every section; nothing secret is in them (API keys are SHA-256 hashes).
 */
import { Ajv, type ErrorObject } from 'ajv';
import { CohortError } from '../core/errors.js';
import { MAX_SESSION_LIFETIME_MS } from '../state/services.js';

export const CONFIG_SECTIONS = ['runtime', 'services', 'apis', 'api-keys', 'schedules'] as const;
export type ConfigSection = (typeof CONFIG_SECTIONS)[number];

/** Sections written through their own API, never by PUT on the section. */
export const MANAGED_SECTIONS: Partial<Record<ConfigSection, string>> = {
  'api-keys': '/admin/v1/api-keys',
  schedules: '/admin/v1/schedules',
};

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
      artifacts: ttl,
      state: ttl,
      tokens: ttl,
      // The longest a revocation is kept: caps the ttlSeconds a caller gives (a JWT's exp).
      revocations: { type: 'object', additionalProperties: false, properties: { maxTtlSeconds: seconds(MAX_SESSION_LIFETIME_MS / 1000) } },
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

const ajv = new Ajv({ allErrors: true, strict: true });
const validators = Object.fromEntries(CONFIG_SECTIONS.map((s) => [s, ajv.compile(SECTION_SCHEMAS[s])])) as Record<ConfigSection, ReturnType<Ajv['compile']>>;

export function isConfigSection(section: string): section is ConfigSection {
  return (CONFIG_SECTIONS as readonly string[]).includes(section);
}

/** The section named `section`; CONSOLE_SECTION_UNKNOWN otherwise. */
export function configSection(section: string): ConfigSection {
  if (!isConfigSection(section)) {
    throw new CohortError('CONSOLE_SECTION_UNKNOWN', `no configuration section ${JSON.stringify(section)}; sections: ${CONFIG_SECTIONS.join(', ')}`);
  }
  return section;
}

/** Throws CONSOLE_DOCUMENT_INVALID, listing every place `content` breaks the section's schema. */
export function validateSection(section: ConfigSection, content: unknown): void {
  const validate = validators[section];
  if (validate(content)) return;
  const errors = (validate.errors ?? []).map(describeError);
  throw new CohortError('CONSOLE_DOCUMENT_INVALID', `the ${section} document is not valid: ${errors.join('; ')}`, { section, errors });
}

function describeError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(document)' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  return `${where}: ${e.message ?? 'invalid'}`;
}

/** A one-line summary of what changed between two versions of a section, for the audit. */
export function summarizeChange(section: ConfigSection, before: unknown, after: unknown): string {
  if (before === undefined) return `${section}: first version`;
  const a = (before ?? {}) as Record<string, unknown>;
  const b = (after ?? {}) as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  const changed = keys.filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
  if (changed.length === 0) return `${section}: saved unchanged`;
  const parts = changed.map((k) => (!(k in a) ? `added ${k}` : !(k in b) ? `removed ${k}` : `changed ${k}`));
  return `${section}: ${parts.join(', ')}`;
}
