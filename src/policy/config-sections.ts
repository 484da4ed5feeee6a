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
 * Engines receive every section but `schedules`. API keys are SHA-256 hashes; the client
 * secrets of `apis` (web sign-in, token mediation) are secrets engines need in clear: the
 * repository holds them sealed, the console opens them for the engines (over the cluster
 * channel) and shows them redacted to auditors (SECTION_SECRETS, core/sealed-secrets.ts).
 */
import { isIP } from 'node:net';
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { OWN_SCHEMA_OPTIONS } from '../core/own-schemas.js';
import type { SecretWalker } from '../core/sealed-secrets.js';
import { scheduleSecrets } from '../scheduler/schedule-secrets.js';
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
/**
 * What an issued API key may do; keys without a scope are `runtime` keys. `runtime`: the runtime
 * API; `gateway`: the access-decision doors; `client`: a credential of API callers, checked by
 * decisions; `read`: the runtime API's reads of single records (GET), not listings of a
 * subject's sessions and not reads that change state (`?touch=true`).
 */
export const API_KEY_SCOPES = ['runtime', 'gateway', 'client', 'read'] as const;
export type ApiKeyScope = (typeof API_KEY_SCOPES)[number];

/**
 * JWT signature algorithms an API may accept: asymmetric only, so a token signed with HMAC
 * using a public key as the secret (algorithm confusion) and `alg: none` can never verify.
 */
export const JWT_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA'] as const;

const shortText = (max: number) => ({ type: 'string', minLength: 1, maxLength: max }) as const;
const headerName = { type: 'string', pattern: '^[A-Za-z0-9-]{1,64}$' } as const;

/** One protected API (docs/configuration.md, "Access decisions"). */
const apiDefinition = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'pathPrefix'],
  properties: {
    id: name,
    pathPrefix: { type: 'string', pattern: '^/', maxLength: 1024 },
    hosts: { type: 'array', maxItems: 100, items: { type: 'string', pattern: '^[A-Za-z0-9.:\\[\\]-]{1,255}$' } },
    methods: { type: 'array', maxItems: 20, items: { type: 'string', pattern: '^[A-Za-z]{1,20}$' } },
    publicPaths: { type: 'array', maxItems: 100, items: { type: 'string', pattern: '^/', maxLength: 1024 } },
    credentials: { type: 'array', maxItems: 3, uniqueItems: true, items: { type: 'string', enum: ['session', 'apiKey', 'jwt'] } },
    sessionCookie: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' },
    jwt: {
      type: 'object',
      additionalProperties: false,
      properties: {
        issuer: shortText(1024),
        audiences: { type: 'array', maxItems: 20, items: shortText(1024) },
        jwksUrl: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        keys: { type: 'array', maxItems: 50, items: { type: 'object', required: ['kty'], properties: { kty: { type: 'string', enum: ['RSA', 'EC', 'OKP'] } } } },
        algorithms: { type: 'array', minItems: 1, uniqueItems: true, items: { type: 'string', enum: JWT_ALGORITHMS } },
        clockToleranceSeconds: { type: 'integer', minimum: 0, maximum: 600 },
      },
    },
    checkRevocation: { type: 'boolean' },
    singleUseTokens: { type: 'boolean' },
    rateLimit: {
      type: 'object',
      additionalProperties: false,
      required: ['policy', 'by'],
      properties: { policy: name, by: { type: 'string', enum: ['ip', 'subject', 'apiKey'] } },
    },
    lockout: { type: 'object', additionalProperties: false, required: ['by'], properties: { by: { type: 'string', enum: ['ip', 'subject'] } } },
    denyList: { type: 'array', maxItems: 10_000, items: { type: 'string', pattern: '^(ip|subject|apiKey|session):.{1,256}$' } },
    enforce: { type: 'boolean' },
    identityHeaders: {
      type: 'object',
      propertyNames: headerName,
      maxProperties: 50,
      additionalProperties: { type: 'string', pattern: '^(subject|sessionId|apiKeyId|api|decisionId|claim:[A-Za-z0-9_.:-]{1,128})$' },
    },
    upstream: { type: 'string', pattern: '^https?://', maxLength: 2048 },
    stripPrefix: { type: 'boolean' },
    timeoutMs: { type: 'integer', minimum: 1, maximum: 600_000 },
    onStateUnavailable: { type: 'string', enum: ['deny', 'allow'] },
    // Web sign-in: a browser without a session is sent through an OpenID Connect
    // authorization-code flow with PKCE to `issuer` (docs/web-sign-in.md).
    login: {
      type: 'object',
      additionalProperties: false,
      required: ['issuer', 'clientId', 'clientSecret'],
      properties: {
        issuer: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        clientId: shortText(512),
        clientSecret: shortText(2048),
        scopes: { type: 'array', maxItems: 50, uniqueItems: true, items: { type: 'string', pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,128}$' } },
        claims: { type: 'array', maxItems: 50, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9_.:-]{1,128}$' } },
        postLogoutRedirect: { type: 'string', pattern: '^/', maxLength: 2048 },
      },
    },
    // Token mediation (inline mode): a token for the upstream from a token endpoint, shared
    // through the token cache.
    upstreamToken: {
      type: 'object',
      additionalProperties: false,
      required: ['tokenEndpoint', 'clientId', 'clientSecret', 'grant'],
      properties: {
        tokenEndpoint: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        clientId: shortText(512),
        clientSecret: shortText(2048),
        grant: { type: 'string', enum: ['token-exchange', 'client-credentials'] },
        audience: shortText(1024),
        scope: shortText(1024),
      },
    },
  },
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
      // A request that matches no API definition: denied (ACCESS_NO_API) unless `allow`.
      unmatchedRequests: { type: 'string', enum: ['deny', 'allow'] },
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
    properties: { apis: { type: 'array', maxItems: 1000, items: apiDefinition } },
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
            // runtime (the state services; the default, as keys issued before scopes existed),
            // gateway (the access-decision front doors), client (a credential of API callers).
            scope: { type: 'string', enum: API_KEY_SCOPES },
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

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The fields of an API definition that hold a client secret: web sign-in and token mediation. */
const API_SECRET_FIELDS = ['login', 'upstreamToken'] as const;

/**
 * The secrets of the `apis` section: `login.clientSecret` and `upstreamToken.clientSecret` of
 * every API, placed by API id (so they follow an API moved in the list).
 */
export const apiSecrets: SecretWalker = (content, fn) => {
  if (!isObject(content) || !Array.isArray(content.apis)) return content;
  return {
    ...content,
    apis: content.apis.map((api: unknown, i) => {
      if (!isObject(api) || typeof api.id !== 'string') return api;
      const out: Record<string, unknown> = { ...api };
      for (const field of API_SECRET_FIELDS) {
        const part = api[field];
        if (isObject(part) && typeof part.clientSecret === 'string') {
          out[field] = { ...part, clientSecret: fn(part.clientSecret, `apis/${api.id}/${field}/clientSecret`, `/apis/${i}/${field}/clientSecret`) };
        }
      }
      return out;
    }),
  };
};

/** The sections that hold secrets, and where (stored sealed, shown redacted to auditors). */
export const SECTION_SECRETS: Partial<Record<ConfigSection, SecretWalker>> = {
  apis: apiSecrets,
  schedules: scheduleSecrets,
};

let ajv: Ajv | undefined;
const validators = new Map<ConfigSection, ValidateFunction>();

/** Compiled at first use: an engine compiles only the sections it checks. */
function validator(section: ConfigSection): ValidateFunction {
  let v = validators.get(section);
  if (!v) {
    ajv ??= new Ajv({ allErrors: true, strict: true, ...OWN_SCHEMA_OPTIONS });
    v = ajv.compile(SECTION_SCHEMAS[section]);
    validators.set(section, v);
  }
  return v;
}

export function isConfigSection(section: string): section is ConfigSection {
  return (CONFIG_SECTIONS as readonly string[]).includes(section);
}

/** Every place `content` breaks the section's schema (or a rule a schema cannot say), one line each; empty when it matches. */
export function sectionErrors(section: ConfigSection, content: unknown): string[] {
  const validate = validator(section);
  if (!validate(content)) return (validate.errors ?? []).map(describeError);
  return section === 'apis' ? apiRuleErrors(content as { apis: ApiRuleView[] }) : [];
}

/**
 * Header names an API's identity headers may not use: they frame the answer or the
 * connection, or carry the decision's own meaning to the gateway.
 */
const RESERVED_HEADERS = new Set([
  'content-length', 'content-type', 'content-encoding', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'host',
  'proxy-authenticate', 'proxy-authorization', 'www-authenticate', 'retry-after', 'set-cookie', 'location', 'date',
  'x-cohort-reason', 'x-cohort-would-deny', 'x-cohort-key',
]);

interface ApiRuleView {
  id: string;
  identityHeaders?: Record<string, string>;
  credentials?: string[];
  jwt?: { jwksUrl?: string; keys?: unknown[] };
  denyList?: string[];
  login?: { issuer: string };
  upstreamToken?: { tokenEndpoint: string; grant: string };
}

/**
 * What the `apis` schema cannot say: ids are unique, a `jwt` credential has keys (inline or
 * a URL, not both), identity headers use no reserved name, and every `ip:` deny entry is an
 * address or a CIDR range, so an engine never receives an API it cannot enforce.
 */
function apiRuleErrors(content: { apis: ApiRuleView[] }): string[] {
  const errors: string[] = [];
  const seen = new Set<string>();
  content.apis.forEach((api, i) => {
    const where = `/apis/${i}`;
    if (seen.has(api.id)) errors.push(`${where}/id: ${JSON.stringify(api.id)} is used by another API`);
    seen.add(api.id);
    const keys = api.jwt?.keys !== undefined;
    const url = api.jwt?.jwksUrl !== undefined;
    if ((api.credentials ?? []).includes('jwt') && !keys && !url) errors.push(`${where}/jwt: the jwt credential needs jwt.jwksUrl or jwt.keys`);
    if (keys && url) errors.push(`${where}/jwt: give jwt.jwksUrl or jwt.keys, not both`);
    for (const name of Object.keys(api.identityHeaders ?? {})) {
      if (RESERVED_HEADERS.has(name.toLowerCase())) errors.push(`${where}/identityHeaders: ${name} is reserved (it frames the answer or carries the decision)`);
    }
    if (api.login !== undefined) {
      if (!(api.credentials ?? ['session']).includes('session')) errors.push(`${where}/login: web sign-in creates sessions, so credentials must include session`);
      if (!isHttpsOrLoopback(api.login.issuer)) errors.push(`${where}/login/issuer: ${JSON.stringify(api.login.issuer)} must be https (plain http only on a loopback address)`);
    }
    if (api.upstreamToken !== undefined) {
      if (!isHttpsOrLoopback(api.upstreamToken.tokenEndpoint)) errors.push(`${where}/upstreamToken/tokenEndpoint: ${JSON.stringify(api.upstreamToken.tokenEndpoint)} must be https (plain http only on a loopback address)`);
      if (api.upstreamToken.grant === 'token-exchange' && api.login === undefined) errors.push(`${where}/upstreamToken: grant token-exchange exchanges the signed-in user's token, so the API needs login`);
    }
    (api.denyList ?? []).forEach((entry, j) => {
      if (entry.startsWith('ip:') && !isAddressOrRange(entry.slice(3))) errors.push(`${where}/denyList/${j}: ${JSON.stringify(entry)} is not an IPv4 or IPv6 address or CIDR range`);
    });
  });
  return errors;
}

/**
 * Whether `url` may be fetched: https anywhere, plain http only to a loopback address (a
 * provider on the same host, as in tests and development), never silently to the world.
 */
export function isHttpsOrLoopback(url: string): boolean {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return false;
  }
  if (parsed.protocol === 'https:') return true;
  return parsed.protocol === 'http:' && isLoopbackHost(parsed.hostname);
}

export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function isAddressOrRange(text: string): boolean {
  const [address = '', prefix, extra] = text.split('/');
  const family = isIP(address);
  if (family === 0 || extra !== undefined) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}

function describeError(e: ErrorObject): string {
  const where = e.instancePath === '' ? '(document)' : e.instancePath;
  if (e.keyword === 'additionalProperties') return `${where}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`;
  return `${where}: ${e.message ?? 'invalid'}`;
}
