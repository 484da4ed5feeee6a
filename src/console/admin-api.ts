/**
 * The admin API of the console and the replica, on `[http] admin`.
 *
 * Every route but login and the OpenAPI document needs `Authorization: Bearer <token>` from
 * `POST /admin/v1/login`: 401 without a valid one; 403 AUTH_FORBIDDEN when an auditor tries
 * to change anything. Bodies are checked against the route's schema (400 HTTP_BAD_REQUEST,
 * values never coerced) and configuration documents against their section's schema (400
 * CONSOLE_DOCUMENT_INVALID); a refused request changes nothing.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CohortError } from '../core/errors.js';
import { COHORT_VERSION } from '../core/version.js';
import { isoTime } from '../core/time-text.js';
import { runViews, savedSchedules, scheduleViews } from '../scheduler/scheduler.js';
import { bearerToken } from '../http/bearer-auth.js';
import type { Repository } from '../repository/repository.js';
import type { AdminAuth, Principal } from './admin-auth.js';
import { configSection } from './config-sections.js';
import { API_KEY_SCOPES, CONFIG_SECTIONS, type ApiKeyScope } from '../policy/config-sections.js';
import type { ConfigService } from './config-service.js';
import { dryRunDecision } from './access-dry-run.js';
import { DESCRIBED_REQUEST_SCHEMA } from '../engine/access/doors.js';

/** The cluster as the console shows it (`GET /admin/v1/cluster`). */
export interface ConsoleClusterView {
  clusterId: string;
  /** This node: `console`, `replica`, or `demoted` (a console that saw a higher epoch). */
  role: 'console' | 'replica' | 'demoted';
  epoch: number;
  configVersion: number;
  mixedVersions: boolean;
  versions: string[];
  nodes: Array<{
    id: string;
    address: string;
    role: string;
    version: string;
    state: string;
    group: string | null;
    /** Scheduler state from the node's check-ins: `running`, `recovering`, `down`; null for a node that runs no scheduler. */
    scheduler: string | null;
    health: 'green' | 'yellow' | 'red' | null;
    lastUpdated: string | null;
    configVersion: number | null;
    configAppliedAt: string | null;
    replication: 'in-sync' | 'out-of-date' | 'failed' | null;
  }>;
  notes: string[];
}

export interface AdminApiOptions {
  auth: AdminAuth;
  config: ConfigService;
  repository: Repository;
  cluster(): Promise<ConsoleClusterView>;
  /** `POST /admin/v1/replica/promote`; absent on a node that cannot be promoted. */
  promote?(force: boolean, by: Principal): Promise<{ epoch: number }>;
}

/** POST routes that change nothing, so auditors may use them too. */
const READ_ONLY_POSTS = new Set(['/admin/v1/apis/test', '/admin/v1/logout']);

const principals = new WeakMap<FastifyRequest, Principal>();
/** The token each request was authenticated with, for sign-out whatever carried it. */
const requestTokens = new WeakMap<FastifyRequest, string>();

const errorBody = { type: 'object', properties: { error: { type: 'object', properties: { code: { type: 'string' }, message: { type: 'string' } } } } } as const;
/** Query values are strings (never coerced by the server): whole numbers are checked by pattern. */
const countQuery = { type: 'string', pattern: '^[1-9][0-9]{0,14}$' } as const;
const optionalNumber = (v: string | undefined): number | undefined => (v === undefined ? undefined : Number(v));
const sectionParams = { type: 'object', required: ['section'], properties: { section: { type: 'string', maxLength: 64 } } } as const;
const sectionView = {
  type: 'object',
  properties: {
    section: { type: 'string' },
    version: { type: ['integer', 'null'] },
    epoch: { type: ['integer', 'null'] },
    hash: { type: ['string', 'null'] },
    createdAt: { type: ['integer', 'null'] },
    author: { type: ['string', 'null'] },
    content: {},
  },
} as const;

export async function registerAdminApi(app: FastifyInstance, o: AdminApiOptions): Promise<void> {
  await app.register(swagger, {
    openapi: {
      info: { title: 'Cohort admin API', version: COHORT_VERSION },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });

  app.get('/admin/v1/openapi.json', { schema: { hide: true } }, async () => app.swagger());

  app.post<{ Body: { user: string; password: string } }>('/admin/v1/login', {
    schema: {
      security: [],
      body: { type: 'object', additionalProperties: false, required: ['user', 'password'], properties: { user: { type: 'string', minLength: 1, maxLength: 64 }, password: { type: 'string', minLength: 1, maxLength: 1024 } } },
      response: { 200: { type: 'object', properties: { token: { type: 'string' }, expiresAt: { type: 'string' }, role: { type: 'string' } } }, 401: errorBody, 429: errorBody },
    },
  }, async (request) => {
    // The socket's address (no proxy header is trusted): the budget and lock-out key.
    const { token, expiresAt, role } = await o.auth.login(request.body.user, request.body.password, request.socket.remoteAddress ?? request.ip);
    return { token, expiresAt: isoTime(expiresAt), role };
  });

  await app.register(async (api) => {
    api.addHook('onRequest', async (request) => {
      const token = bearerToken(request);
      if (token === undefined) throw new CohortError('AUTH_MISSING_CREDENTIAL', 'missing Authorization: Bearer <token> (POST /admin/v1/login gives one)');
      const principal = await o.auth.authenticate(token);
      if (request.method !== 'GET' && principal.role !== 'admin' && !READ_ONLY_POSTS.has(request.routeOptions.url ?? '')) throw new CohortError('AUTH_FORBIDDEN', `user ${principal.user} is an ${principal.role}: read-only`);
      principals.set(request, principal);
      requestTokens.set(request, token);
    });
    const who = (request: FastifyRequest): Principal => principals.get(request)!;

    api.post('/admin/v1/logout', {
      schema: { summary: 'Signs the bearer token out: it is refused from then on, also after a restart or a promotion', response: { 204: { type: 'null' } } },
    }, async (request, reply) => {
      await o.auth.logout(requestTokens.get(request)!);
      return reply.code(204).send();
    });

    api.get('/admin/v1/cluster', async () => o.cluster());

    api.get<{ Params: { section: string } }>('/admin/v1/config/:section', { schema: { params: sectionParams, response: { 200: sectionView } } }, async (request) =>
      o.config.get(configSection(request.params.section)),
    );

    api.put<{ Params: { section: string }; Body: unknown }>('/admin/v1/config/:section', {
      schema: { params: sectionParams, body: { type: 'object' }, response: { 200: sectionView } },
    }, async (request) => {
      const section = configSection(request.params.section);
      await o.config.put(section, request.body, who(request));
      return o.config.get(section);
    });

    api.get<{ Querystring: { section?: string; limit?: string; beforeVersion?: string } }>('/admin/v1/config/versions', {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { section: { type: 'string', enum: [...CONFIG_SECTIONS] }, limit: countQuery, beforeVersion: countQuery } },
      },
    }, async (request) => ({
      versions: await o.repository.listConfigVersions({ section: request.query.section, limit: optionalNumber(request.query.limit), beforeVersion: optionalNumber(request.query.beforeVersion) }),
    }));

    api.get<{ Querystring: { limit?: string; beforeId?: string } }>('/admin/v1/audit', {
      schema: { querystring: { type: 'object', additionalProperties: false, properties: { limit: countQuery, beforeId: countQuery } } },
    }, async (request) => ({
      records: (await o.repository.listAudit({ limit: optionalNumber(request.query.limit), beforeId: optionalNumber(request.query.beforeId) })).map((r) => ({ ...r, at: isoTime(r.at) })),
    }));

    api.get('/admin/v1/api-keys', async () => ({
      keys: (await o.config.listApiKeys()).map((k) => ({ ...k, createdAt: isoTime(k.createdAt) })),
    }));

    api.post<{ Body: { name: string; scope?: ApiKeyScope } }>('/admin/v1/api-keys', {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['name'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200 },
            scope: { type: 'string', enum: API_KEY_SCOPES, description: 'runtime (default): the runtime API; gateway: the access-decision front doors; client: a credential of API callers.' },
          },
        },
      },
    }, async (request, reply) => {
      const created = await o.config.createApiKey(request.body.name, who(request), request.body.scope);
      // The key is shown this once; the console keeps only its hash.
      return reply.code(201).send({ ...created, createdAt: isoTime(created.createdAt) });
    });

    api.delete<{ Params: { id: string } }>('/admin/v1/api-keys/:id', {
      schema: { params: { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } },
    }, async (request, reply) => {
      await o.config.deleteApiKey(request.params.id, who(request));
      return reply.code(204).send();
    });

    // ---- dry run of an access decision: nothing is stored, counted or taken (access-dry-run.ts)
    api.post<{ Body: { request: { method: string; url: string; host?: string; sourceIp: string; headers: Record<string, string | string[]> }; apis?: unknown } }>('/admin/v1/apis/test', {
      schema: {
        summary: 'The decision a request would get on the current or a proposed apis document, touching no state',
        description: 'State checks (session lookup, revocation, lock-out, replay, rate limit) are not made: the answer lists them in skipped. Admin and auditor.',
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['request'],
          properties: {
            request: DESCRIBED_REQUEST_SCHEMA,
            apis: { type: 'object', description: 'A proposed apis document ({"apis": [...]}), checked against the section\'s schema; absent: the current one.' },
          },
        },
        response: {
          200: {
            type: 'object',
            properties: {
              decision: { type: 'string', enum: ['allow', 'deny'] },
              status: { type: 'integer' },
              reason: { type: 'string' },
              wouldDeny: { type: 'string' },
              api: { type: 'string' },
              subject: { type: 'string' },
              sessionId: { type: 'string' },
              apiKeyId: { type: 'string' },
              retryAfterSeconds: { type: 'integer' },
              upstreamHeaders: { type: 'object', additionalProperties: { type: 'string' } },
              document: { type: 'string', enum: ['current', 'proposed'] },
              skipped: { type: 'array', items: { type: 'string' } },
              definitionErrors: { type: 'array', items: { type: 'string' } },
              detail: { type: 'string' },
            },
          },
          400: errorBody,
        },
      },
    }, async (request) => {
      const { request: described, apis } = request.body;
      // Decisions read header names in lower case, as Node hands them to the doors.
      const headers: Record<string, string | string[]> = {};
      for (const [name, value] of Object.entries(described.headers)) headers[name.toLowerCase()] = value;
      const [runtime, keys, current] = await Promise.all([o.config.get('runtime'), o.config.get('api-keys'), o.config.get('apis')]);
      return dryRunDecision({ ...described, headers }, { runtime: runtime.content, 'api-keys': keys.content, apis: current.content }, apis);
    });

    // ---- schedules (scheduler/): definitions in the `schedules` section, queue state and runs in the repository
    const scheduleParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } as const;

    api.get('/admin/v1/schedules', async () => ({ schedules: await scheduleViews(o.repository) }));

    api.put<{ Params: { id: string }; Body: unknown }>('/admin/v1/schedules/:id', { schema: { params: scheduleParams, body: { type: 'object' } } }, async (request) =>
      o.config.putSchedule(request.params.id, request.body, who(request)),
    );

    api.delete<{ Params: { id: string } }>('/admin/v1/schedules/:id', { schema: { params: scheduleParams } }, async (request, reply) => {
      await o.config.deleteSchedule(request.params.id, who(request));
      return reply.code(204).send();
    });

    api.get<{ Params: { id: string }; Querystring: { limit?: string } }>('/admin/v1/schedules/:id/runs', {
      schema: { params: scheduleParams, querystring: { type: 'object', additionalProperties: false, properties: { limit: countQuery } } },
    }, async (request) => {
      const runs = await runViews(o.repository, request.params.id, Math.min(1000, optionalNumber(request.query.limit) ?? 100));
      if (runs.length === 0 && !(await savedSchedules(o.repository)).some((d) => d.id === request.params.id)) {
        throw new CohortError('SCHEDULE_NOT_FOUND', `no schedule ${request.params.id}`);
      }
      return { runs };
    });

    api.post<{ Body: { force?: boolean } }>('/admin/v1/replica/promote', {
      schema: { body: { type: 'object', additionalProperties: false, properties: { force: { type: 'boolean' } } } },
    }, async (request) => {
      if (!o.promote) throw new CohortError('CONSOLE_PROMOTE_REFUSED', 'this node is not a replica');
      return o.promote(request.body?.force === true, who(request));
    });
  });
}
