/**
 * The admin API of the console and the replica, on `[http] admin`.
 *
 * Every route but login and the OpenAPI document needs `Authorization: Bearer <token>` from
 * `POST /admin/v1/login` (or, for the web console, the HttpOnly session cookie that a login
 * with `cookie: true` sets, plus the CSRF header on changes: admin-session.ts): 401 without a
 * valid one; 403 AUTH_FORBIDDEN when an auditor tries to change anything. Bodies are checked against the route's schema (400 HTTP_BAD_REQUEST,
 * values never coerced) and configuration documents against their section's schema (400
 * CONSOLE_DOCUMENT_INVALID); a refused request changes nothing.
 */
import swagger from '@fastify/swagger';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { CohortError } from '../core/errors.js';
import { COHORT_VERSION } from '../core/version.js';
import { isoTime } from '../core/time-text.js';
import { runViews } from '../scheduler/scheduler.js';
import { adminCredential, checkCsrf, clearedSessionCookie, csrfTokenFor, sessionCookie } from './admin-session.js';
import type { ClusterEvents } from './cluster-events.js';
import { SECURITY_HEADERS } from './web-console.js';
import type { AuditRecord, Repository } from '../repository/repository.js';
import type { AdminAuth, Principal } from './admin-auth.js';
import { configSection } from './config-sections.js';
import { API_KEY_SCOPES, CONFIG_SECTIONS, type ApiKeyScope } from '../policy/config-sections.js';
import { secretViewOf, type ConfigService } from './config-service.js';
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
  /** The snapshots of `GET /admin/v1/events`; absent: the route answers 404. */
  events?: ClusterEvents;
}

/** POST routes any signed-in user may call: they change nothing, or only the caller's own session. */
const ANY_ROLE_POSTS = new Set(['/admin/v1/apis/test', '/admin/v1/logout']);

/** Audit records looked at, at most, for one filtered page (the answer says where to go on). */
const AUDIT_SCAN_LIMIT = 5000;
const AUDIT_SCAN_PAGE = 500;

const principals = new WeakMap<FastifyRequest, Principal>();

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

  app.post<{ Body: { user: string; password: string; cookie?: boolean } }>('/admin/v1/login', {
    schema: {
      security: [],
      description: 'Gives a bearer token. With cookie: true (the web console), the token goes into an HttpOnly session cookie instead of the body, and the answer carries the csrfToken that every change must send as X-Cohort-CSRF.',
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['user', 'password'],
        properties: { user: { type: 'string', minLength: 1, maxLength: 64 }, password: { type: 'string', minLength: 1, maxLength: 1024 }, cookie: { type: 'boolean' } },
      },
      response: {
        200: { type: 'object', properties: { token: { type: 'string' }, expiresAt: { type: 'string' }, role: { type: 'string' }, user: { type: 'string' }, csrfToken: { type: 'string' } } },
        401: errorBody,
        429: errorBody,
      },
    },
  }, async (request, reply) => {
    const { user, password, cookie } = request.body;
    // The socket's address (no proxy header is trusted) is the budget and lock-out key.
    const { token, expiresAt, role } = await o.auth.login(user, password, request.socket.remoteAddress ?? request.ip);
    if (cookie !== true) return { token, expiresAt: isoTime(expiresAt), role };
    // The token never reaches the page's scripts: it lives in the HttpOnly cookie only.
    // A browser-session cookie (no Max-Age): the token's own expiry is enforced by the console.
    reply.header('set-cookie', sessionCookie(token, request.protocol === 'https'));
    return { user, expiresAt: isoTime(expiresAt), role, csrfToken: csrfTokenFor(token) };
  });

  await app.register(async (api) => {
    /** The token each authenticated request came with (its session: /session, /logout, /events). */
    const tokens = new WeakMap<FastifyRequest, string>();
    api.addHook('onRequest', async (request) => {
      const credential = adminCredential(request);
      if (credential === undefined) throw new CohortError('AUTH_MISSING_CREDENTIAL', 'missing Authorization: Bearer <token> (POST /admin/v1/login gives one)');
      const principal = await o.auth.authenticate(credential.token);
      checkCsrf(request, credential);
      if (request.method !== 'GET' && principal.role !== 'admin' && !ANY_ROLE_POSTS.has(request.routeOptions.url ?? '')) throw new CohortError('AUTH_FORBIDDEN', `user ${principal.user} is an ${principal.role}: read-only`);
      principals.set(request, principal);
      tokens.set(request, credential.token);
    });
    const who = (request: FastifyRequest): Principal => principals.get(request)!;

    // ---- the caller's own session (the web console: who is signed in, and signing out)
    api.get('/admin/v1/session', {
      schema: { description: 'The signed-in user, role and expiry, with the CSRF value that changes made with the session cookie must send as X-Cohort-CSRF.' },
    }, async (request) => {
      const token = tokens.get(request)!;
      const { user, role, expiresAt } = await o.auth.session(token);
      return { user, role, expiresAt: isoTime(expiresAt), csrfToken: csrfTokenFor(token) };
    });

    api.post('/admin/v1/logout', { schema: { description: 'Ends the caller\'s session: the token (bearer or cookie) opens nothing any more, also after a restart or a promotion, and the cookie is cleared.' } }, async (request, reply) => {
      await o.auth.logout(tokens.get(request)!);
      return reply.header('set-cookie', clearedSessionCookie(request.protocol === 'https')).code(204).send();
    });

    // ---- live cluster snapshots as server-sent events (cluster-events.ts)
    api.get('/admin/v1/events', {
      schema: { description: 'Server-sent events: `cluster` (the GET /admin/v1/cluster view, at once and on every change), `heartbeat`, and `signed-out` when the session ends. Authenticated like every route; browsers use the session cookie (EventSource cannot set headers).' },
    }, (request, reply) => {
      if (!o.events) throw new CohortError('HTTP_NOT_FOUND', 'this node serves no event stream');
      const token = tokens.get(request)!;
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        ...SECURITY_HEADERS,
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        // Proxies such as nginx must pass each event on at once, not buffer the stream.
        'x-accel-buffering': 'no',
      });
      // The browser reconnects 1 s after a lost connection (the default is 3 s).
      res.write('retry: 1000\n\n');
      const unsubscribe = o.events.subscribe({
        snapshot: (json) => res.write(`event: cluster\ndata: ${json}\n\n`),
        heartbeat: () => res.write('event: heartbeat\ndata: {}\n\n'),
        stillValid: () => o.auth.session(token).then(() => true, () => false),
        ended: (reason) => {
          res.end(`event: ${reason}\ndata: {}\n\n`);
        },
      });
      request.raw.on('close', unsubscribe);
      res.on('close', unsubscribe);
    });

    api.get('/admin/v1/cluster', async () => o.cluster());

    // Secrets (client secrets of apis, headers of schedules) in clear for admins only: auditors
    // read them redacted, in every answer below.
    api.get<{ Params: { section: string } }>('/admin/v1/config/:section', { schema: { params: sectionParams, response: { 200: sectionView } } }, async (request) =>
      o.config.get(configSection(request.params.section), secretViewOf(who(request))),
    );

    api.put<{ Params: { section: string }; Body: unknown }>('/admin/v1/config/:section', {
      schema: { params: sectionParams, body: { type: 'object' }, response: { 200: sectionView } },
    }, async (request) => {
      const section = configSection(request.params.section);
      await o.config.put(section, request.body, who(request));
      return o.config.get(section, secretViewOf(who(request)));
    });

    api.get<{ Querystring: { section?: string; limit?: string; beforeVersion?: string } }>('/admin/v1/config/versions', {
      schema: {
        querystring: { type: 'object', additionalProperties: false, properties: { section: { type: 'string', enum: [...CONFIG_SECTIONS] }, limit: countQuery, beforeVersion: countQuery } },
      },
    }, async (request) => ({
      versions: await o.repository.listConfigVersions({ section: request.query.section, limit: optionalNumber(request.query.limit), beforeVersion: optionalNumber(request.query.beforeVersion) }),
    }));

    api.get<{ Params: { version: string } }>('/admin/v1/config/versions/:version', {
      schema: {
        description: 'One version of a section, with its content (for a diff between any two).',
        params: { type: 'object', required: ['version'], properties: { version: countQuery } },
      },
    }, async (request) => o.config.version(Number(request.params.version), secretViewOf(who(request))));

    api.get<{ Querystring: { limit?: string; beforeId?: string; user?: string; section?: string; action?: string } }>('/admin/v1/audit', {
      schema: {
        description: 'Audit records, newest first. user, section and action filter by exact value; a filtered page looks at most 5000 records: nextBeforeId says where the next page starts (null: no older record).',
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { limit: countQuery, beforeId: countQuery, user: { type: 'string', maxLength: 200 }, section: { type: 'string', maxLength: 64 }, action: { type: 'string', maxLength: 64 } },
        },
      },
    }, async (request) => {
      const { user, section, action } = request.query;
      const limit = Math.min(1000, optionalNumber(request.query.limit) ?? 100);
      const filtered = user !== undefined || section !== undefined || action !== undefined;
      if (!filtered) {
        const records = await o.repository.listAudit({ limit, beforeId: optionalNumber(request.query.beforeId) });
        return { records: records.map((r) => ({ ...r, at: isoTime(r.at) })), nextBeforeId: records.length === limit ? records[records.length - 1]!.id : null };
      }
      // The repository pages by id only: filtered pages are gathered from a bounded scan.
      const matches: AuditRecord[] = [];
      let beforeId = optionalNumber(request.query.beforeId);
      let scanned = 0;
      let more = true;
      while (matches.length < limit && scanned < AUDIT_SCAN_LIMIT) {
        const page = await o.repository.listAudit({ limit: AUDIT_SCAN_PAGE, beforeId });
        let i = 0;
        for (; i < page.length && matches.length < limit; i++) {
          const r = page[i]!;
          scanned++;
          beforeId = r.id;
          if ((user === undefined || r.user === user) && (section === undefined || r.section === section) && (action === undefined || r.action === action)) matches.push(r);
        }
        if (page.length < AUDIT_SCAN_PAGE && i === page.length) {
          more = false;
          break;
        }
      }
      return { records: matches.map((r) => ({ ...r, at: isoTime(r.at) })), nextBeforeId: more && beforeId !== undefined ? beforeId : null };
    });

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
            scope: { type: 'string', enum: API_KEY_SCOPES, description: 'runtime (default): the runtime API; gateway: the access-decision front doors; client: a credential of API callers; read: the runtime API\'s reads of single records only.' },
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
      // Redacted: a decision never reads a client secret, and auditors may run this too.
      const [runtime, keys, current] = await Promise.all([o.config.get('runtime', 'redacted'), o.config.get('api-keys', 'redacted'), o.config.get('apis', 'redacted')]);
      return dryRunDecision({ ...described, headers }, { runtime: runtime.content, 'api-keys': keys.content, apis: current.content }, apis);
    });

    // ---- schedules (scheduler/): definitions in the `schedules` section, queue state and runs in the repository
    const scheduleParams = { type: 'object', required: ['id'], properties: { id: { type: 'string', minLength: 1, maxLength: 64 } } } as const;

    api.get('/admin/v1/schedules', async (request) => ({ schedules: await o.config.schedules(secretViewOf(who(request))) }));

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
      if (runs.length === 0 && !(await o.config.schedules('redacted')).some((d) => d.id === request.params.id)) {
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
