/**
 * The runtime API (engines, `[http] runtime`): the state services over HTTP for the identity
 * services in front of Cohort. JSON in and out, a schema on every route (bad input: 400
 * HTTP_BAD_REQUEST, nothing changed), errors as `{error: {code, message}}`, durations in
 * seconds on the wire and milliseconds inside. docs/runtime-api.md describes every route; the
 * engine serves the OpenAPI document generated from the same schemas at
 * `GET /runtime/v1/openapi.json`.
 *
 * Authentication: `Authorization: Bearer <API key>`, checked against the hashes of the keys
 * the engine holds. The health routes and the OpenAPI document need none (load balancers and
 * tools call them).
 *
 * Bounds, all checked before anything is stored: ids are 1 to 256 printable ASCII characters
 * (no space; 400 RUNTIME_INVALID_ID), so two different ids can never become one key; stored
 * values have caps on their serialized JSON (413 STATE_VALUE_TOO_LARGE) and each route's body
 * limit follows its cap; a subject's sessions come in pages.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DEFAULT_VALUE_CAPS, type DecisionLog, type ValueCaps } from '../config/schema.js';
import { systemClock, type Clock } from '../core/clock.js';
import { CohortError, ERROR_CODES, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { then, type MaybePromise } from '../core/maybe-async.js';
import { isoText } from '../core/time-text.js';
import { COHORT_VERSION } from '../core/version.js';
import { bearerToken, MatchedKeys } from '../http/bearer-auth.js';
import { addFastLane, hasBody, settleLane, type LaneAnswer } from '../http/fast-lane.js';
import { setBadUrlCode, syncHook } from '../http/server.js';
import type { LockoutStatus, Session, SessionCursor, StateProvider } from '../state/services.js';
import type { DecisionCaches } from './access/decision-caches.js';
import { registerAccessDoors } from './access/doors.js';
import { registerBackchannelLogout } from './oidc/backchannel-route.js';
import type { DecisionObserver } from './access/decision-log.js';
import { runtimeSettings, type RuntimeSettings } from './runtime-settings.js';

/** The caps on stored values, in bytes of serialized JSON (`[state] max_*_bytes`). */
export type RuntimeLimits = ValueCaps;

export interface RuntimeApiOptions {
  provider: StateProvider;
  /** Hashes (sha256) of the API keys of the node configuration (`[http] api_keys`). */
  apiKeyHashes: Buffer[];
  /** Why the engine is not ready (empty: ready). Called on every readiness check. */
  notReadyReasons(): string[];
  /** Why changes to the runtime state are refused now (undefined: accepted); shown by /health/ready. */
  writeRefusal?(): string | undefined;
  /** The settings of the configuration applied now (policies, defaults, console-issued keys); read on every request. */
  settings?(): RuntimeSettings;
  /** Caps on stored values (default: the defaults of the `[state] max_*_bytes` keys). */
  limits?: RuntimeLimits;
  /** The clock of access decisions (default: the system clock). */
  clock?: Clock;
  /** `[access] decision_log` (default `deny`). */
  decisionLog?: DecisionLog;
  /** This engine's node id, in the decision log. */
  engineId?: string;
  /** `[http] trusted_proxies` (default none): balancers the doors skip in X-Forwarded-For to find the client. */
  trustedProxies?: readonly string[];
  /** The engine's decision caches (`[access]` keys), shared with the inline proxy. */
  accessCaches?: DecisionCaches;
  /** Counts every access decision (the node's metrics). */
  observeDecision?: DecisionObserver;
}
/** The `writes` field of /health/ready: whether the engine accepts changes, and why not. */
function writeStatus(refusal: string | undefined): { writes: { accepted: boolean; reason?: string } } {
  return { writes: refusal === undefined ? { accepted: true } : { accepted: false, reason: refusal } };
}

/** The `writes` field of /health/ready in the OpenAPI document. */
const writesSchema = {
  type: 'object',
  description: 'Whether the engine accepts changes to the runtime state: refused while it sees no majority of the cluster (docs/operations.md, "Write majority").',
  properties: { accepted: { type: 'boolean' }, reason: { type: 'string' } },
  required: ['accepted'],
} as const;


/** Longest idle timeout, session lifetime or time to live a caller may ask for. */
const MAX_TTL_SECONDS = 30 * 24 * 3600;
/** A revocation's ttlSeconds may be anything sane; the configured maximum then caps it. */
const MAX_REVOCATION_TTL_SECONDS = 2 ** 31 - 1;
/** Body limit of routes that store no capped value: an id and a time to live, with room for escapes. */
const SMALL_BODY_BYTES = 4096;
/**
 * Body limit of a route that stores a capped value: the cap is checked on the value's JSON as
 * the engine serializes it, and a client's JSON may be longer (escapes, whitespace), so the
 * body may be twice the cap plus the envelope; anything larger is not even read.
 */
const bodyLimitFor = (cap: number): number => 2 * cap + SMALL_BODY_BYTES;

const PAGE_DEFAULT = 100;
const PAGE_MAX = 1000;

/** Ids, keys and subjects: printable ASCII without space (emails, URNs, IPv6, JWT ids, session ids). */
const ID_PATTERN = '^[\\x21-\\x7E]{1,256}$';
const ID = new RegExp(ID_PATTERN);
/** Rate-limit policy names, as the `runtime` configuration section names its policies. */
const POLICY_PATTERN = '^[A-Za-z0-9_.-]{1,64}$';
const POLICY = new RegExp(POLICY_PATTERN);
const ID_RULE = '1 to 256 printable ASCII characters, no space';

const id = { type: 'string', pattern: ID_PATTERN, description: `An id: ${ID_RULE}.` } as const;
const policyName = { type: 'string', pattern: POLICY_PATTERN, description: 'A rate-limit policy name: letters, digits, _ . - (1 to 64).' } as const;
const ttlSeconds = { type: 'integer', minimum: 1, maximum: MAX_TTL_SECONDS } as const;
const idParams = { type: 'object', properties: { id }, required: ['id'] } as const;
const keyParams = { type: 'object', properties: { key: id }, required: ['key'] } as const;
const noContent = { description: 'Done; no body.', type: 'null' } as const;

/** The error answers `codes` can give, grouped by status, each listing its codes (OpenAPI). */
function errorResponses(codes: readonly ErrorCode[]): Record<number, object> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_CODES[code].status, [...(byStatus.get(ERROR_CODES[code].status) ?? []), code]);
  return Object.fromEntries(
    [...byStatus].map(([status, list]) => [
      status,
      {
        description: list.map((c) => `${c}: ${ERROR_CODES[c].summary}`).join(' '),
        type: 'object',
        required: ['error'],
        properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: list }, message: { type: 'string' } } } },
      },
    ]),
  );
}

/** What every route behind the API key can answer. */
const COMMON_ERRORS: readonly ErrorCode[] = [
  'HTTP_BAD_REQUEST',
  'RUNTIME_INVALID_ID',
  'AUTH_MISSING_CREDENTIAL',
  'AUTH_INVALID_CREDENTIAL',
  'AUTH_NO_API_KEYS',
  'STATE_UNAVAILABLE',
  'STATE_NOT_REPLICATED',
  'STATE_PLACEMENT_CHANGING',
  'HTTP_INTERNAL',
];
/** What a route taking a body can answer besides. */
const BODY_ERRORS: readonly ErrorCode[] = ['HTTP_BODY_TOO_LARGE', 'HTTP_UNSUPPORTED_MEDIA_TYPE'];

/** The responses of a route behind the API key: its answers, the common errors and its own. */
function responses(answers: Record<number, object>, own: readonly ErrorCode[] = [], hasBody = false): Record<number, object> {
  return { ...errorResponses([...COMMON_ERRORS, ...(hasBody ? BODY_ERRORS : []), ...own]), ...answers };
}

/**
 * The session answer's schema: Fastify compiles it into a serializer much faster than
 * JSON.stringify (lookups are the runtime's hot path); attributes are free-form.
 */
const sessionResponse = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    subject: { type: 'string' },
    attributes: { type: 'object', additionalProperties: true },
    createdAt: { type: 'string', format: 'date-time' },
    lastAccessAt: { type: 'string', format: 'date-time' },
    expiresAt: { type: 'string', format: 'date-time' },
    idleTimeoutSeconds: { type: 'integer' },
    maxLifetimeSeconds: { type: 'integer' },
  },
} as const;
const lockoutResponse = {
  type: 'object',
  properties: { locked: { type: 'boolean' }, failures: { type: 'integer' }, retryAfterSeconds: { type: 'integer' } },
} as const;

/** The session lookup route, and the prefix of the URLs its lane takes. */
const SESSION_ROUTE = '/runtime/v1/sessions/:id';
const SESSION_LANE_PREFIX = '/runtime/v1/sessions/';
/** Characters the router reads in a URL (a path separator, an escape, a query, a fragment): an id with one is the route's. */
const LANE_UNSAFE_ID = /[/%?#;]/;

/** A session as the API shows it: times as ISO 8601, durations in seconds. */
function sessionView(s: Session) {
  return {
    id: s.id,
    subject: s.subject,
    attributes: s.attributes,
    createdAt: isoText(s.createdAt),
    lastAccessAt: isoText(s.lastAccessAt),
    expiresAt: isoText(s.expiresAt),
    idleTimeoutSeconds: Math.round(s.idleTimeoutMs / 1000),
    maxLifetimeSeconds: Math.round(s.maxLifetimeMs / 1000),
  };
}

function lockoutView(s: LockoutStatus) {
  return { locked: s.locked, failures: s.failures, retryAfterSeconds: Math.ceil(s.retryAfterMs / 1000) };
}

const notFound = (what: string): CohortError => new CohortError('STATE_NOT_FOUND', `${what} not found (never created, expired, revoked or already used)`);

/** The opaque `nextCursor` of a page: where it ended. */
function encodeCursor(c: SessionCursor): string {
  return Buffer.from(JSON.stringify([c.createdAt, c.id])).toString('base64url');
}

function decodeCursor(text: string): SessionCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(text, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[0]) && parsed[0] >= 0 && typeof parsed[1] === 'string' && ID.test(parsed[1])) {
    return { createdAt: parsed[0] as number, id: parsed[1] };
  }
  throw new CohortError('HTTP_BAD_REQUEST', 'cursor is not one this API answered (pass nextCursor as it came)');
}

/** Refuses `value` when its serialized JSON is larger than `cap` bytes. */
function checkSize(value: unknown, cap: number, what: string, key: string): void {
  const bytes = Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8');
  if (bytes > cap) throw new CohortError('STATE_VALUE_TOO_LARGE', `${what} is ${bytes} bytes as JSON, more than the ${cap} allowed ([state] ${key}); nothing was stored`);
}

/**
 * Routes a `read` key may not use although they are GETs: a listing of every session id of a
 * subject (session ids are bearer credentials) needs the runtime scope.
 */
const RUNTIME_SCOPE_READS = new Set(['/runtime/v1/subjects/:subject/sessions']);

/** A `read`-scoped key reads single records: no write, no listing, no read that changes state. */
function checkReadScope(request: FastifyRequest): void {
  const route = request.routeOptions.url ?? '';
  const touches = (request.query as { touch?: string } | undefined)?.touch === 'true';
  if ((request.method === 'GET' || request.method === 'HEAD') && !RUNTIME_SCOPE_READS.has(route) && !touches) return;
  throw new CohortError('AUTH_FORBIDDEN', `an API key of scope read may not ${request.method} ${route || request.url.split('?')[0]}${touches ? ' with touch=true' : ''}: that needs scope runtime`);
}

/**
 * Refuses malformed ids before the schema is checked (and so before anything is stored):
 * every path parameter is an id (or a policy name), and so are the `id` and `subject` of a
 * body. Bodies that are not valid UTF-8 never get here (the HTTP layer refuses them), nor do
 * URLs whose percent-encoding is not.
 */
function checkIds(request: FastifyRequest): void {
  for (const [name, value] of Object.entries((request.params ?? {}) as Record<string, string>)) checkId(name, value);
  const body = request.body as Record<string, unknown> | undefined;
  if (body !== null && typeof body === 'object') {
    for (const name of ['id', 'subject']) if (typeof body[name] === 'string') checkId(name, body[name]);
  }
}

function checkId(name: string, value: string): void {
  if (name === 'policy' ? POLICY.test(value) : ID.test(value)) return;
  const rule = name === 'policy' ? 'letters, digits, _ . - (1 to 64)' : ID_RULE;
  throw new CohortError('RUNTIME_INVALID_ID', `${name} must be ${rule}`);
}

export function registerRuntimeApi(app: FastifyInstance, options: RuntimeApiOptions): void {
  const { provider } = options;
  const defaults = runtimeSettings();
  const settings = options.settings ?? (() => defaults);
  const limits = options.limits ?? DEFAULT_VALUE_CAPS;
  // The node's [http] body_limit stays the ceiling of every route.
  const bodyLimit = (bytes: number): number => Math.min(app.initialConfig.bodyLimit ?? bytes, bytes);
  /** The longest a session may live under the configuration applied now (30 days, or more by the services section). */
  const longestSessionMs = (): number => Math.max(MAX_TTL_SECONDS, settings().sessionMaxLifetimeSeconds) * 1000;
  setBadUrlCode(app, 'RUNTIME_INVALID_ID');

  app.register(swagger, {
    openapi: {
      info: {
        title: 'Cohort runtime API',
        version: COHORT_VERSION,
        description: 'The state services of a Cohort engine: sessions, revocations, lock-out, replay prevention, artifacts, inter-request state, the token cache and rate limits; and its access-decision front doors.',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API key: [http] api_keys, or issued by the console with scope runtime (everything) or read (GETs of single records: not a subject\'s session list, not touch=true).' },
          gatewayKey: { type: 'apiKey', in: 'header', name: 'X-Cohort-Key', description: 'The calling gateway\'s API key at the access-decision doors: [http] api_keys, or issued by the console with scope runtime or gateway.' },
        },
      },
      security: [{ bearer: [] }],
    },
  });

  app.register(async (open) => {
    open.get('/health/live', {
      schema: { tags: ['health'], summary: 'The process runs', security: [], response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['live'] } } } } },
    }, async () => ({ status: 'live' }));
    open.get('/health/ready', {
      schema: {
        tags: ['health'],
        summary: 'The engine serves requests',
        security: [],
        response: {
          200: { type: 'object', properties: { status: { type: 'string', enum: ['ready'] }, writes: writesSchema } },
          503: { description: 'Not ready: stopping, waiting for the configuration, or the state provider cannot serve.', type: 'object', properties: { status: { type: 'string', enum: ['not-ready'] }, reasons: { type: 'array', items: { type: 'string' } }, writes: writesSchema } },
        },
      },
    }, async (_request, reply) => {
      const reasons = options.notReadyReasons();
      // An engine that sees no majority of the cluster still answers reads (ready), but says
      // that it refuses writes, so an operator or a balancer can tell.
      const writes = options.writeRefusal ? writeStatus(options.writeRefusal()) : {};
      if (reasons.length > 0) return reply.code(503).send({ status: 'not-ready', reasons, ...writes });
      return { status: 'ready', ...writes };
    });
    open.get('/runtime/v1/openapi.json', {
      schema: { tags: ['documentation'], summary: 'This API\'s OpenAPI 3 document', security: [], response: { 200: { description: 'The OpenAPI document.', type: 'object', additionalProperties: true } } },
    }, async () => app.swagger());
  });

  registerAccessDoors(app, {
    provider,
    settings,
    nodeKeyHashes: options.apiKeyHashes,
    clock: options.clock ?? systemClock,
    log: app.log as unknown as Logger,
    decisionLog: options.decisionLog ?? 'deny',
    engineId: options.engineId ?? '',
    trustedProxies: options.trustedProxies ?? [],
    ...(options.accessCaches ? { caches: options.accessCaches } : {}),
    ...(options.observeDecision ? { observeDecision: options.observeDecision } : {}),
  });

  registerBackchannelLogout(app, { provider, settings, clock: options.clock ?? systemClock, log: app.log as unknown as Logger });

  // Keys of scope runtime (and [http] api_keys) and keys of scope read, each checked once per key while the keys stay the same.
  const runtimeKeys = new MatchedKeys();
  const readKeys = new MatchedKeys();
  /** The scope the request's bearer key has: `runtime`, `read`, or the refusal. */
  const keyScope = (request: Pick<FastifyRequest, 'headers'>): 'runtime' | 'read' | CohortError => {
    const { apiKeyHashes: issued, readKeyHashes } = settings();
    if (options.apiKeyHashes.length === 0 && issued.length === 0) {
      return new CohortError('AUTH_NO_API_KEYS', 'this engine has no API key: none in [http] api_keys, none issued by the console');
    }
    const token = bearerToken(request);
    if (token === undefined) return new CohortError('AUTH_MISSING_CREDENTIAL', 'missing Authorization: Bearer <API key>');
    if (runtimeKeys.matches(token, options.apiKeyHashes, issued)) return 'runtime';
    if (readKeys.matches(token, readKeyHashes)) return 'read';
    return new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid API key');
  };

  // The session lookup's lane (http/fast-lane.ts), the runtime API's hot path: a GET of one
  // session by a plain id (no percent-encoding, nothing the router would read otherwise) with
  // a key whose scope allows it; everything else takes the route below.
  addFastLane(app, (req, res) => {
    const url = req.url;
    if (req.method !== 'GET' || url === undefined || !url.startsWith(SESSION_LANE_PREFIX)) return false;
    const q = url.indexOf('?');
    const sessionId = url.slice(SESSION_LANE_PREFIX.length, q === -1 ? undefined : q);
    const query = q === -1 ? '' : url.slice(q);
    if (query !== '' && query !== '?touch=true' && query !== '?touch=false') return false;
    if (!ID.test(sessionId) || LANE_UNSAFE_ID.test(sessionId)) return false;
    if (hasBody(req)) return false;
    const scope = keyScope(req);
    if (scope !== 'runtime' && (scope !== 'read' || query === '?touch=true')) return false;
    // At once where the provider holds the session here (the grid: no promise per lookup).
    const sessions = provider.sessions;
    const options = { touch: query === '?touch=true' };
    const lookup = (): MaybePromise<LaneAnswer> => then(sessions.getNow ? sessions.getNow(sessionId, options) : sessions.get(sessionId, options), (s): LaneAnswer => {
      if (!s) throw notFound('session');
      return { status: 200, headers: {}, body: JSON.stringify(sessionView(s)) };
    });
    settleLane(app, req, res, SESSION_ROUTE, lookup);
    return true;
  });

  app.register(async (api) => {
    const authenticate = (request: FastifyRequest): void => {
      const scope = keyScope(request);
      if (scope instanceof CohortError) throw scope;
      if (scope === 'read') checkReadScope(request);
    };
    api.addHook('onRequest', syncHook(authenticate));
    api.addHook('preValidation', syncHook(checkIds));

    // ---- sessions
    api.post<{ Body: { subject: string; attributes?: Record<string, unknown>; idleTimeoutSeconds?: number; maxLifetimeSeconds?: number } }>('/runtime/v1/sessions', {
      bodyLimit: bodyLimit(bodyLimitFor(limits.sessionAttributesBytes)),
      schema: {
        tags: ['sessions'],
        summary: 'Create a session',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['subject'],
          properties: { subject: id, attributes: { type: 'object', additionalProperties: true }, idleTimeoutSeconds: ttlSeconds, maxLifetimeSeconds: ttlSeconds },
        },
        response: responses({ 201: { description: 'The new session.', ...sessionResponse } }, ['STATE_VALUE_TOO_LARGE'], true),
      },
    }, async (request, reply) => {
      const b = request.body;
      const attributes = b.attributes ?? {};
      checkSize(attributes, limits.sessionAttributesBytes, 'attributes', 'max_session_attributes_bytes');
      const session = await provider.sessions.create({
        subject: b.subject,
        attributes,
        idleTimeoutMs: (b.idleTimeoutSeconds ?? settings().sessionIdleTimeoutSeconds) * 1000,
        maxLifetimeMs: (b.maxLifetimeSeconds ?? settings().sessionMaxLifetimeSeconds) * 1000,
      });
      return reply.code(201).send(sessionView(session));
    });

    api.get<{ Params: { id: string }; Querystring: { touch?: 'true' | 'false' } }>('/runtime/v1/sessions/:id', {
      schema: {
        tags: ['sessions'],
        summary: 'Read a session (touch=true extends its idle time)',
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { touch: { type: 'string', enum: ['true', 'false'] } } },
        response: responses({ 200: sessionResponse }, ['STATE_NOT_FOUND']),
      },
    }, async (request) => {
      const s = await provider.sessions.get(request.params.id, { touch: request.query.touch === 'true' });
      if (!s) throw notFound('session');
      return sessionView(s);
    });

    api.get<{ Params: { subject: string }; Querystring: { limit?: string; cursor?: string } }>('/runtime/v1/subjects/:subject/sessions', {
      schema: {
        tags: ['sessions'],
        summary: 'A subject\'s live sessions, oldest first, a page at a time',
        params: { type: 'object', properties: { subject: id }, required: ['subject'] },
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            // Query values are strings (never coerced): the range 1 to 1000 is a pattern.
            limit: { type: 'string', pattern: '^([1-9][0-9]{0,2}|1000)$', description: `Sessions per page, 1 to ${PAGE_MAX} (default ${PAGE_DEFAULT}).` },
            cursor: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,1024}$', description: 'The nextCursor of the previous page.' },
          },
        },
        response: responses({
          200: {
            type: 'object',
            properties: {
              sessions: { type: 'array', items: sessionResponse },
              nextCursor: { type: 'string', description: 'Present when more sessions may follow: pass it as cursor. A page may hold fewer than limit sessions (revoked ones are left out).' },
            },
          },
        }),
      },
    }, async (request) => {
      const limit = request.query.limit === undefined ? PAGE_DEFAULT : Number(request.query.limit);
      const after = request.query.cursor === undefined ? undefined : decodeCursor(request.query.cursor);
      const page = await provider.sessions.pageBySubject(request.params.subject, { limit, ...(after ? { after } : {}) });
      return { sessions: page.sessions.map(sessionView), ...(page.next ? { nextCursor: encodeCursor(page.next) } : {}) };
    });

    api.delete<{ Params: { id: string } }>('/runtime/v1/sessions/:id', {
      schema: { tags: ['sessions'], summary: 'Log out: delete a session and revoke its id', params: idParams, response: responses({ 204: noContent }) },
    }, async (request, reply) => {
      // An id not found may still be in use elsewhere (a stale copy, a subcluster out of
      // reach): it stays revoked as long as any session could live.
      await provider.sessions.delete(request.params.id, { unknownRevocationMs: longestSessionMs() });
      return reply.code(204).send();
    });

    // ---- revocation
    api.post<{ Body: { id: string; ttlSeconds?: number } }>('/runtime/v1/revocations', {
      bodyLimit: bodyLimit(SMALL_BODY_BYTES),
      schema: {
        tags: ['revocations'],
        summary: 'Revoke an id (a token, a session) on every engine',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['id'],
          properties: {
            id,
            ttlSeconds: { type: 'integer', minimum: 1, maximum: MAX_REVOCATION_TTL_SECONDS, description: 'How long to keep the revocation (a JWT\'s remaining life); capped by services.revocations.maxTtlSeconds, which is also the default.' },
          },
        },
        response: responses({ 204: noContent }, [], true),
      },
    }, async (request, reply) => {
      const max = settings().revocationMaxTtlSeconds;
      await provider.revocations.revokeFor(request.body.id, Math.min(request.body.ttlSeconds ?? max, max) * 1000);
      return reply.code(204).send();
    });

    api.get<{ Params: { id: string } }>('/runtime/v1/revocations/:id', {
      schema: { tags: ['revocations'], summary: 'Is an id revoked?', params: idParams, response: responses({ 200: { type: 'object', properties: { revoked: { type: 'boolean' } } } }) },
    }, async (request) => ({
      revoked: await provider.revocations.isRevoked(request.params.id),
    }));

    // ---- account locking
    api.post<{ Params: { key: string } }>('/runtime/v1/lockout/:key/failures', {
      bodyLimit: bodyLimit(SMALL_BODY_BYTES),
      schema: { tags: ['lock-out'], summary: 'Count one failure (a wrong password)', params: keyParams, response: responses({ 200: lockoutResponse }, [], true) },
    }, async (request) => lockoutView(await provider.lockout.recordFailure(request.params.key, settings().lockoutPolicy)));
    api.get<{ Params: { key: string } }>('/runtime/v1/lockout/:key', {
      schema: { tags: ['lock-out'], summary: 'Whether a key is locked', params: keyParams, response: responses({ 200: lockoutResponse }) },
    }, async (request) => lockoutView(await provider.lockout.status(request.params.key, settings().lockoutPolicy)));
    api.delete<{ Params: { key: string } }>('/runtime/v1/lockout/:key', {
      schema: { tags: ['lock-out'], summary: 'A success: forget the failures and any lock', params: keyParams, response: responses({ 200: lockoutResponse }) },
    }, async (request) => {
      await provider.lockout.reset(request.params.key);
      return lockoutView({ locked: false, failures: 0, retryAfterMs: 0 });
    });

    // ---- replay prevention
    api.post<{ Body: { id: string; ttlSeconds: number } }>('/runtime/v1/replay', {
      bodyLimit: bodyLimit(SMALL_BODY_BYTES),
      schema: {
        tags: ['replay'],
        summary: 'Accept an id once (an assertion id, a nonce)',
        body: { type: 'object', additionalProperties: false, required: ['id', 'ttlSeconds'], properties: { id, ttlSeconds } },
        response: responses({ 201: { description: 'First time seen.', type: 'object', properties: { id: { type: 'string' }, accepted: { type: 'boolean' } } } }, ['STATE_REPLAY_DETECTED'], true),
      },
    }, async (request, reply) => {
      const fresh = await provider.replay.checkAndInsert(request.body.id, request.body.ttlSeconds * 1000);
      if (!fresh) throw new CohortError('STATE_REPLAY_DETECTED', `id ${request.body.id} was seen before`);
      return reply.code(201).send({ id: request.body.id, accepted: true });
    });

    // ---- artifacts
    api.put<{ Params: { id: string }; Body: { payload: string; ttlSeconds?: number } }>('/runtime/v1/artifacts/:id', {
      bodyLimit: bodyLimit(bodyLimitFor(limits.artifactBytes)),
      schema: {
        tags: ['artifacts'],
        summary: 'Store an artifact, to be resolved once',
        params: idParams,
        body: { type: 'object', additionalProperties: false, required: ['payload'], properties: { payload: { type: 'string' }, ttlSeconds } },
        response: responses({ 204: noContent }, ['STATE_VALUE_TOO_LARGE'], true),
      },
    }, async (request, reply) => {
      checkSize(request.body.payload, limits.artifactBytes, 'payload', 'max_artifact_bytes');
      await provider.artifacts.put(request.params.id, request.body.payload, (request.body.ttlSeconds ?? settings().artifactTtlSeconds) * 1000);
      return reply.code(204).send();
    });
    api.post<{ Params: { id: string } }>('/runtime/v1/artifacts/:id/resolve', {
      bodyLimit: bodyLimit(SMALL_BODY_BYTES),
      schema: {
        tags: ['artifacts'],
        summary: 'Resolve an artifact: its payload, once',
        params: idParams,
        response: responses({ 200: { type: 'object', properties: { payload: { type: 'string' } } } }, ['STATE_NOT_FOUND'], true),
      },
    }, async (request) => {
      const payload = await provider.artifacts.resolve(request.params.id);
      if (payload === undefined) throw notFound('artifact');
      return { payload };
    });

    // ---- inter-request state and the token cache
    const spaces = [
      { path: 'state', tag: 'inter-request state', service: provider.requestState, cap: limits.stateValueBytes, capKey: 'max_state_value_bytes', what: 'state' },
      { path: 'tokens', tag: 'token cache', service: provider.tokens, cap: limits.tokenBytes, capKey: 'max_token_bytes', what: 'token' },
    ] as const;
    for (const space of spaces) {
      const ttlOf = (s: RuntimeSettings): number => (space.path === 'state' ? s.stateTtlSeconds : s.tokenTtlSeconds);
      api.put<{ Params: { key: string }; Body: { value: unknown; ttlSeconds?: number } }>(`/runtime/v1/${space.path}/:key`, {
        bodyLimit: bodyLimit(bodyLimitFor(space.cap)),
        schema: {
          tags: [space.tag],
          summary: `Store a ${space.what} value (any JSON) with a time to live`,
          params: keyParams,
          body: { type: 'object', additionalProperties: false, required: ['value'], properties: { value: {}, ttlSeconds } },
          response: responses({ 204: noContent }, ['STATE_VALUE_TOO_LARGE'], true),
        },
      }, async (request, reply) => {
        checkSize(request.body.value, space.cap, 'value', space.capKey);
        const ttl = request.body.ttlSeconds ?? ttlOf(settings());
        await space.service.put(request.params.key, request.body.value, ttl * 1000);
        return reply.code(204).send();
      });
      api.get<{ Params: { key: string } }>(`/runtime/v1/${space.path}/:key`, {
        schema: { tags: [space.tag], summary: `Read a ${space.what} value`, params: keyParams, response: responses({ 200: { type: 'object', properties: { value: {} } } }, ['STATE_NOT_FOUND']) },
      }, async (request) => {
        const value = await space.service.get(request.params.key);
        if (value === undefined) throw notFound(space.what);
        return { value };
      });
      api.delete<{ Params: { key: string } }>(`/runtime/v1/${space.path}/:key`, {
        schema: { tags: [space.tag], summary: `Delete a ${space.what} value`, params: keyParams, response: responses({ 204: noContent }, ['STATE_NOT_FOUND']) },
      }, async (request, reply: FastifyReply) => {
        if (!(await space.service.delete(request.params.key))) throw notFound(space.what);
        return reply.code(204).send();
      });
    }

    // ---- rate limits
    api.post<{ Params: { policy: string; key: string } }>('/runtime/v1/ratelimit/:policy/:key', {
      bodyLimit: bodyLimit(SMALL_BODY_BYTES),
      schema: {
        tags: ['rate limits'],
        summary: 'Take one token from the bucket of (policy, key)',
        params: { type: 'object', properties: { policy: policyName, key: id }, required: ['policy', 'key'] },
        response: {
          ...responses({ 200: { type: 'object', properties: { allowed: { type: 'boolean', enum: [true] }, remaining: { type: 'integer' } } } }, [], true),
          429: {
            description: `STATE_RATE_LIMITED: ${ERROR_CODES.STATE_RATE_LIMITED.summary}`,
            type: 'object',
            properties: {
              allowed: { type: 'boolean', enum: [false] },
              remaining: { type: 'integer' },
              error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: ['STATE_RATE_LIMITED'] }, message: { type: 'string' } } },
            },
          },
        },
      },
    }, async (request, reply) => {
      const r = await provider.rateLimits.take(request.params.policy, request.params.key, settings().rateLimit(request.params.policy));
      if (!r.allowed) {
        return reply.code(429).send({ allowed: false, remaining: 0, error: { code: 'STATE_RATE_LIMITED', message: `rate limit of policy ${request.params.policy} reached for this key` } });
      }
      return { allowed: true, remaining: r.remaining };
    });
  });
}
