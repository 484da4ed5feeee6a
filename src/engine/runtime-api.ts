/**
 * The runtime API of SPEC section 8 (engines, `[http] runtime`): the state services over
 * HTTP for the identity services in front of Cohort. JSON in and out, a schema on every
 * route (bad input: 400 HTTP_BAD_REQUEST, nothing changed), errors as `{error: {code,
 * message}}`, durations in seconds on the wire and milliseconds inside.
 *
 * Authentication: `Authorization: Bearer <API key>`, checked against the hashes of the keys
 * the engine holds. The health routes need none (load balancers call them).
 */
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CohortError } from '../core/errors.js';
import { bearerToken, sha256 } from '../http/bearer-auth.js';
import type { LockoutStatus, Session, StateProvider } from '../state/services.js';
import { runtimeSettings, type RuntimeSettings } from './runtime-settings.js';

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
}
/** The `writes` field of /health/ready: whether the engine accepts changes, and why not. */
function writeStatus(refusal: string | undefined): { writes: { accepted: boolean; reason?: string } } {
  return { writes: refusal === undefined ? { accepted: true } : { accepted: false, reason: refusal } };
}

const MAX_TTL_SECONDS = 30 * 24 * 3600;

const id = { type: 'string', minLength: 1, maxLength: 256 } as const;
const ttlSeconds = { type: 'integer', minimum: 1, maximum: MAX_TTL_SECONDS } as const;
const idParams = { type: 'object', properties: { id }, required: ['id'] } as const;
const keyParams = { type: 'object', properties: { key: id }, required: ['key'] } as const;

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
    createdAt: { type: 'string' },
    lastAccessAt: { type: 'string' },
    expiresAt: { type: 'string' },
    idleTimeoutSeconds: { type: 'integer' },
    maxLifetimeSeconds: { type: 'integer' },
  },
} as const;

/** A session as the API shows it: times as ISO 8601, durations in seconds. */
function sessionView(s: Session) {
  return {
    id: s.id,
    subject: s.subject,
    attributes: s.attributes,
    createdAt: new Date(s.createdAt).toISOString(),
    lastAccessAt: new Date(s.lastAccessAt).toISOString(),
    expiresAt: new Date(s.expiresAt).toISOString(),
    idleTimeoutSeconds: Math.round(s.idleTimeoutMs / 1000),
    maxLifetimeSeconds: Math.round(s.maxLifetimeMs / 1000),
  };
}

function lockoutView(s: LockoutStatus) {
  return { locked: s.locked, failures: s.failures, retryAfterSeconds: Math.ceil(s.retryAfterMs / 1000) };
}

const notFound = (what: string): CohortError => new CohortError('STATE_NOT_FOUND', `${what} not found (never created, expired, revoked or already used)`);

export function registerRuntimeApi(app: FastifyInstance, options: RuntimeApiOptions): void {
  const { provider } = options;
  const defaults = runtimeSettings();
  const settings = options.settings ?? (() => defaults);

  app.get('/health/live', async () => ({ status: 'live' }));
  app.get('/health/ready', async (_request, reply) => {
    const reasons = options.notReadyReasons();
    // An engine that sees no majority of the cluster still answers reads (ready), but says
    // that it refuses writes, so an operator or a balancer can tell.
    const writes = options.writeRefusal ? writeStatus(options.writeRefusal()) : {};
    if (reasons.length > 0) return reply.code(503).send({ status: 'not-ready', reasons, ...writes });
    return { status: 'ready', ...writes };
  });

  app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      const issued = settings().apiKeyHashes;
      if (options.apiKeyHashes.length === 0 && issued.length === 0) {
        throw new CohortError('AUTH_NO_API_KEYS', 'this engine has no API key: none in [http] api_keys, none issued by the console');
      }
      const token = bearerToken(request);
      if (token === undefined) throw new CohortError('AUTH_MISSING_CREDENTIAL', 'missing Authorization: Bearer <API key>');
      const hash = sha256(token);
      // Every key is compared (constant time each), so timing says nothing about which matched.
      let ok = false;
      for (const expected of options.apiKeyHashes) ok = timingSafeEqual(hash, expected) || ok;
      for (const expected of issued) ok = timingSafeEqual(hash, expected) || ok;
      if (!ok) throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid API key');
    });

    // ---- sessions
    api.post<{ Body: { subject: string; attributes?: Record<string, unknown>; idleTimeoutSeconds?: number; maxLifetimeSeconds?: number } }>('/runtime/v1/sessions', {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['subject'],
          properties: { subject: id, attributes: { type: 'object' }, idleTimeoutSeconds: ttlSeconds, maxLifetimeSeconds: ttlSeconds },
        },
      },
    }, async (request, reply) => {
      const b = request.body;
      const session = await provider.sessions.create({
        subject: b.subject,
        attributes: b.attributes ?? {},
        idleTimeoutMs: (b.idleTimeoutSeconds ?? settings().sessionIdleTimeoutSeconds) * 1000,
        maxLifetimeMs: (b.maxLifetimeSeconds ?? settings().sessionMaxLifetimeSeconds) * 1000,
      });
      return reply.code(201).send(sessionView(session));
    });

    api.get<{ Params: { id: string }; Querystring: { touch?: 'true' | 'false' } }>('/runtime/v1/sessions/:id', {
      schema: {
        params: idParams,
        querystring: { type: 'object', additionalProperties: false, properties: { touch: { type: 'string', enum: ['true', 'false'] } } },
        response: { 200: sessionResponse },
      },
    }, async (request) => {
      const s = await provider.sessions.get(request.params.id, { touch: request.query.touch === 'true' });
      if (!s) throw notFound('session');
      return sessionView(s);
    });

    api.get<{ Params: { key: string } }>('/runtime/v1/subjects/:key/sessions', {
      schema: { params: keyParams, response: { 200: { type: 'object', properties: { sessions: { type: 'array', items: sessionResponse } } } } },
    }, async (request) => ({
      sessions: (await provider.sessions.listBySubject(request.params.key)).map(sessionView),
    }));

    api.delete<{ Params: { id: string } }>('/runtime/v1/sessions/:id', { schema: { params: idParams } }, async (request, reply) => {
      await provider.sessions.delete(request.params.id);
      return reply.code(204).send();
    });

    // ---- revocation
    api.post<{ Body: { id: string } }>('/runtime/v1/revocations', {
      schema: { body: { type: 'object', additionalProperties: false, required: ['id'], properties: { id } } },
    }, async (request, reply) => {
      await provider.revocations.revoke(request.body.id);
      return reply.code(204).send();
    });

    api.get<{ Params: { id: string } }>('/runtime/v1/revocations/:id', { schema: { params: idParams } }, async (request) => ({
      revoked: await provider.revocations.isRevoked(request.params.id),
    }));

    // ---- account locking
    api.post<{ Params: { key: string } }>('/runtime/v1/lockout/:key/failures', { schema: { params: keyParams } }, async (request) =>
      lockoutView(await provider.lockout.recordFailure(request.params.key, settings().lockoutPolicy)),
    );
    api.get<{ Params: { key: string } }>('/runtime/v1/lockout/:key', { schema: { params: keyParams } }, async (request) =>
      lockoutView(await provider.lockout.status(request.params.key, settings().lockoutPolicy)),
    );
    api.delete<{ Params: { key: string } }>('/runtime/v1/lockout/:key', { schema: { params: keyParams } }, async (request) => {
      await provider.lockout.reset(request.params.key);
      return lockoutView({ locked: false, failures: 0, retryAfterMs: 0 });
    });

    // ---- replay prevention
    api.post<{ Body: { id: string; ttlSeconds: number } }>('/runtime/v1/replay', {
      schema: { body: { type: 'object', additionalProperties: false, required: ['id', 'ttlSeconds'], properties: { id, ttlSeconds } } },
    }, async (request, reply) => {
      const fresh = await provider.replay.checkAndInsert(request.body.id, request.body.ttlSeconds * 1000);
      if (!fresh) throw new CohortError('STATE_REPLAY_DETECTED', `id ${request.body.id} was seen before`);
      return reply.code(201).send({ id: request.body.id, accepted: true });
    });

    // ---- artifacts
    api.put<{ Params: { id: string }; Body: { payload: string; ttlSeconds?: number } }>('/runtime/v1/artifacts/:id', {
      schema: {
        params: idParams,
        body: { type: 'object', additionalProperties: false, required: ['payload'], properties: { payload: { type: 'string' }, ttlSeconds } },
      },
    }, async (request, reply) => {
      await provider.artifacts.put(request.params.id, request.body.payload, (request.body.ttlSeconds ?? settings().artifactTtlSeconds) * 1000);
      return reply.code(204).send();
    });
    api.post<{ Params: { id: string } }>('/runtime/v1/artifacts/:id/resolve', { schema: { params: idParams } }, async (request) => {
      const payload = await provider.artifacts.resolve(request.params.id);
      if (payload === undefined) throw notFound('artifact');
      return { payload };
    });

    // ---- inter-request state and the token cache
    for (const [path, service] of [['state', provider.requestState], ['tokens', provider.tokens]] as const) {
      api.put<{ Params: { key: string }; Body: { value: unknown; ttlSeconds?: number } }>(`/runtime/v1/${path}/:key`, {
        schema: { params: keyParams, body: { type: 'object', additionalProperties: false, required: ['value'], properties: { value: {}, ttlSeconds } } },
      }, async (request, reply) => {
        const ttl = request.body.ttlSeconds ?? (path === 'state' ? settings().stateTtlSeconds : settings().tokenTtlSeconds);
        await service.put(request.params.key, request.body.value, ttl * 1000);
        return reply.code(204).send();
      });
      api.get<{ Params: { key: string } }>(`/runtime/v1/${path}/:key`, { schema: { params: keyParams } }, async (request) => {
        const value = await service.get(request.params.key);
        if (value === undefined) throw notFound(path === 'state' ? 'state' : 'token');
        return { value };
      });
      api.delete<{ Params: { key: string } }>(`/runtime/v1/${path}/:key`, { schema: { params: keyParams } }, async (request, reply: FastifyReply) => {
        if (!(await service.delete(request.params.key))) throw notFound(path === 'state' ? 'state' : 'token');
        return reply.code(204).send();
      });
    }

    // ---- rate limits
    api.post<{ Params: { policy: string; key: string } }>('/runtime/v1/ratelimit/:policy/:key', {
      schema: { params: { type: 'object', properties: { policy: id, key: id }, required: ['policy', 'key'] } },
    }, async (request, reply) => {
      const r = await provider.rateLimits.take(request.params.policy, request.params.key, settings().rateLimit(request.params.policy));
      if (!r.allowed) {
        return reply.code(429).send({ allowed: false, remaining: 0, error: { code: 'STATE_RATE_LIMITED', message: `rate limit of policy ${request.params.policy} reached for this key` } });
      }
      return { allowed: true, remaining: r.remaining };
    });
  });
}
