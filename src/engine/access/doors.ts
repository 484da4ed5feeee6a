/**
 * The sideband front doors on the runtime port: where proxies and gateways ask for a
 * decision. The calling gateway authenticates with an API key in `X-Cohort-Key` (scope
 * `runtime` or `gateway`, or one of `[http] api_keys`), because the client's own
 * `Authorization` header passes through untouched. Every answer, errors included, carries
 * `X-Cohort-Decision-Id` and `X-Cohort-Reason`.
 *
 * - `/authz/forward` (any method): forward-auth proxies; the original request comes from the
 *   X-Forwarded-* / X-Original-* headers. Allow: 200, empty body, identity headers. Deny: 401
 *   with WWW-Authenticate for a missing or invalid credential, 403 for every other reason (a
 *   proxy doing sub-request auth treats other statuses as errors); `?statuses=full` answers the
 *   reason's own status (429 with Retry-After, 503, 400, 405).
 * - `/authz/envoy/<original path>` (any method): an external-authorization HTTP service;
 *   exactly 200 on allow, the deny status with the JSON error body.
 * - `POST /runtime/v1/decide` and `/decide/response`: JSON, for gateways and enforcers.
 */
import type { IncomingHttpHeaders } from 'node:http';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { CohortError, ERROR_CODES, type ErrorCode } from '../../core/errors.js';
import { correlationId } from '../../core/ids.js';
import { then, type MaybePromise } from '../../core/maybe-async.js';
import { MatchedKeys } from '../../http/bearer-auth.js';
import { addFastLane, hasBody, laneQuery, settleLane, type LaneAnswer } from '../../http/fast-lane.js';
import { doorClientAddress, trustedProxies } from './client-address.js';
import { asHeaderBytes } from './header-bytes.js';
import type { Headers } from './credentials.js';
import { decide, type AccessRequest, type Decision } from './decide.js';
import type { DecisionFrontOptions } from './front-options.js';
import { logDecision } from './decision-log.js';
import { ACCESS_REASONS, isCredentialReason } from './reasons.js';

/**
 * A request described in JSON (`POST /runtime/v1/decide`, and the console's dry run of a
 * decision): what the client sent, as a gateway saw it.
 */
export const DESCRIBED_REQUEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['method', 'url', 'sourceIp', 'headers'],
  properties: {
    method: { type: 'string', maxLength: 20 },
    url: { type: 'string', maxLength: 8192, description: 'Path and query as the client sent them (percent-encoded).' },
    host: { type: 'string', maxLength: 300 },
    sourceIp: { type: 'string', maxLength: 64 },
    headers: {
      type: 'object',
      maxProperties: 200,
      description: 'The client\'s headers; names in any case.',
      additionalProperties: { anyOf: [{ type: 'string', maxLength: 16384 }, { type: 'array', maxItems: 50, items: { type: 'string', maxLength: 16384 } }] },
    },
  },
} as const;
import { RecentDecisions } from './recent-decisions.js';
import { RelyingParties } from '../oidc/relying-party.js';
import { loginRoute, serveLoginRoute, serveSignInStart, wantsSignIn, type WebAnswer, type WebRequest } from '../oidc/sign-in.js';

export interface AccessDoorOptions extends DecisionFrontOptions {
  /** Hashes of `[http] api_keys`: they open the doors too. */
  nodeKeyHashes: Buffer[];
}

const DOOR_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];
/** A forward-auth or Envoy request's own body is never used: read up to this much and dropped. */
const DOOR_BODY_BYTES = 64 * 1024;
const DECIDE_BODY_BYTES = 64 * 1024;
const KEY_HEADER = 'x-cohort-key';

const DOOR_ERRORS: readonly ErrorCode[] = ['AUTH_MISSING_CREDENTIAL', 'AUTH_INVALID_CREDENTIAL', 'AUTH_NO_API_KEYS', 'HTTP_BAD_REQUEST', 'HTTP_BODY_TOO_LARGE', 'HTTP_INTERNAL'];

/** The error answers of `codes`, grouped by status (OpenAPI). */
function errorResponses(codes: readonly ErrorCode[]): Record<number, object> {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of codes) byStatus.set(ERROR_CODES[code].status, [...(byStatus.get(ERROR_CODES[code].status) ?? []), code]);
  return Object.fromEntries([...byStatus].map(([status, list]) => [status, {
    description: list.map((c) => `${c}: ${ERROR_CODES[c].summary}`).join(' '),
    type: 'object',
    required: ['error'],
    properties: { error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string', enum: list }, message: { type: 'string' } } } },
  }]));
}

const emptyAllow = { description: 'Allowed: empty body; the identity headers are set for the upstream, with X-Cohort-Decision-Id, X-Cohort-Reason and, in monitor mode, X-Cohort-Would-Deny.', type: 'null' } as const;
const denyReasons = ACCESS_REASONS.filter((r) => r !== 'ACCESS_ALLOWED');

export function registerAccessDoors(app: FastifyInstance, o: AccessDoorOptions): void {
  const recent = new RecentDecisions(o.clock);
  const parties = new RelyingParties(o.clock);
  const trusted = trustedProxies(o.trustedProxies ?? []);
  const forwardedFor = (h: Headers): string | undefined => doorClientAddress(h['x-forwarded-for'], h['x-real-ip'], trusted);

  /** Decides, remembers and logs: at once when the decision is (decide.ts), else a promise. */
  function run(request: AccessRequest): MaybePromise<Decision> {
    const settings = o.settings();
    return then(decide(request, settings.access, { provider: o.provider, lockoutPolicy: settings.lockoutPolicy, rateLimit: settings.rateLimit, caches: o.caches }, o.clock), (d) => {
      recent.remember(d);
      logDecision(o.log, o.decisionLog, o.engineId, d, o.observeDecision);
      return d;
    });
  }

  function decisionHeaders(reply: FastifyReply, d: Decision): void {
    reply.headers(decisionHeaderValues(d));
  }

  const matchedKeys = new MatchedKeys();
  /** The gateway's key check: undefined when the key opens the doors, else the refusal. */
  function gatewayRefusal(raw: string | string[] | undefined): CohortError | undefined {
    const gateway = o.settings().gatewayKeyHashes;
    if (o.nodeKeyHashes.length === 0 && gateway.length === 0) return new CohortError('AUTH_NO_API_KEYS', 'this engine has no gateway key: none in [http] api_keys, none of scope runtime or gateway issued by the console');
    const key = Array.isArray(raw) ? raw[0] : raw;
    if (key === undefined || key === '') return new CohortError('AUTH_MISSING_CREDENTIAL', 'missing X-Cohort-Key: <API key>');
    return matchedKeys.matches(key, o.nodeKeyHashes, gateway) ? undefined : new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid X-Cohort-Key');
  }

  /** The request a forward-auth call describes: the original method, URI and host, the client's address and headers. */
  function forwardedRequest(h: IncomingHttpHeaders, doorMethod: string): AccessRequest {
    const method = firstValue(h['x-forwarded-method']) ?? firstValue(h['x-original-method']) ?? doorMethod;
    const url = firstValue(h['x-forwarded-uri']) ?? firstValue(h['x-original-uri']) ?? '';
    const host = firstValue(h['x-forwarded-host']) ?? h.host;
    // The door's headers as they came, the gateway's X-Cohort-Key among them: a decision reads a
    // credential only from the headers it names (Cookie, Authorization, X-Api-Key), and a copy
    // without the key cost more than the rest of the request's reading.
    return { method, url, host, sourceIp: forwardedFor(h) ?? '', headers: h };
  }

  // The forward-auth door's lane (http/fast-lane.ts): a request with a valid key, no body, and
  // no query but `statuses=full` is decided here; everything else takes the route below.
  addFastLane(app, (req, res) => {
    const query = laneQuery(req.url, '/authz/forward', FORWARD_LANE_QUERIES);
    if (query === undefined || !LANE_METHODS.has(req.method!)) return false;
    const h = req.headers;
    if (hasBody(req) || gatewayRefusal(h[KEY_HEADER]) !== undefined) return false;
    const full = query === '?statuses=full';
    const decided = () => then(run(forwardedRequest(h, req.method!)), (d) => forwardAnswer(d, full));
    // An error answer still carries an id and a reason, as the route's onSend hook gives it.
    settleLane(app, req, res, FORWARD_ROUTE, decided, (a) => ({ ...a, headers: { ...a.headers, 'x-cohort-decision-id': correlationId(), 'x-cohort-reason': (JSON.parse(a.body!) as { error: { code: string } }).error.code } }));
    return true;
  });

  app.register(async (doors) => {
    // Answers that carry no decision (a refused gateway key, a malformed JSON body) still
    // carry an id and a reason, so a gateway's logs can always quote both.
    // Both hooks run on every door request: callback style, so neither costs a promise.
    doors.addHook('onSend', (_request, reply, payload, done) => {
      if (!reply.hasHeader('x-cohort-decision-id')) {
        let code = 'HTTP_INTERNAL';
        try {
          code = (JSON.parse(String(payload)) as { error: { code: string } }).error.code;
        } catch {
          // Not an error body: keep the generic code.
        }
        reply.header('x-cohort-decision-id', correlationId()).header('x-cohort-reason', code);
      }
      done(null, payload);
    });
    doors.addHook('onRequest', (request, _reply, done) => done(gatewayRefusal(request.headers[KEY_HEADER])));

    // ---- forward auth and Envoy: the original request's body is never read into a decision.
    doors.register(async (sub) => {
      sub.removeAllContentTypeParsers();
      sub.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: DOOR_BODY_BYTES }, (_request, _body, done) => done(null, undefined));

      sub.route<{ Querystring: { statuses?: 'full'; redirect?: 'true' } }>({
        method: DOOR_METHODS,
        url: '/authz/forward',
        exposeHeadRoute: false,
        bodyLimit: DOOR_BODY_BYTES,
        schema: {
          tags: ['access decisions'],
          summary: 'Forward auth: decide on the request described by the X-Forwarded-* / X-Original-* headers',
          security: [{ gatewayKey: [] }],
          querystring: { type: 'object', additionalProperties: true, properties: {
            statuses: { type: 'string', enum: ['full'], description: 'full: deny with the reason\'s own status (429, 503, 400, 405) instead of 403.' },
            redirect: { type: 'string', enum: ['true', 'false'], description: 'true (proxies that pass a 302 on to the browser): a browser without a session at an API with login gets 302 to its OpenID provider, and the API\'s /_cohort/callback and /_cohort/logout are answered here (302 with Set-Cookie).' },
          } },
          response: {
            ...errorResponses([...DOOR_ERRORS, ...denyReasons, ...SIGN_IN_ERRORS]),
            200: emptyAllow,
            302: { description: 'With redirect=true: to the OpenID provider (sign-in), or back to the original path with the session cookie (callback), or to the provider\'s end-session endpoint (logout).', type: 'null' },
          },
        },
        handler: async (request, reply) => {
          const described = forwardedRequest(request.headers, request.method);
          const { method, url, host } = described;
          const redirect = request.query.redirect === 'true';
          const web: WebRequest = { method, url, host, secure: firstValue(request.headers['x-forwarded-proto']) === 'https', headers: described.headers };
          const settings = o.settings();
          const signIn = { provider: o.provider, settings, parties, clock: o.clock, log: o.log };
          if (redirect) {
            const route = loginRoute(settings.access.apis, method, url, host);
            if (route) return webAnswer(reply, await serveLoginRoute(route.route, route.api, web, signIn));
          }
          const d = await run(described);
          if (redirect && !d.allow) {
            const api = settings.access.apis.find((a) => a.id === d.api);
            if (wantsSignIn(api, d, web)) {
              decisionHeaders(reply, d);
              return webAnswer(reply, await serveSignInStart(api, web, signIn));
            }
          }
          const answer = forwardAnswer(d, request.query.statuses === 'full');
          reply.code(answer.status).headers(answer.headers);
          return answer.body === undefined ? reply.send() : reply.type('application/json; charset=utf-8').send(answer.body);
        },
      });

      sub.route<{ Params: { '*': string } }>({
        method: DOOR_METHODS,
        url: '/authz/envoy/*',
        exposeHeadRoute: false,
        bodyLimit: DOOR_BODY_BYTES,
        schema: {
          tags: ['access decisions'],
          summary: 'External authorization: decide on the request whose method, path (after /authz/envoy), Host and headers these are',
          security: [{ gatewayKey: [] }],
          response: { ...errorResponses([...DOOR_ERRORS, ...denyReasons]), 200: emptyAllow },
        },
        handler: async (request, reply) => {
          const url = request.url.slice('/authz/envoy'.length);
          const host = request.headers.host;
          const d = await run({ method: request.method, url, host, sourceIp: forwardedFor(request.headers) ?? '', headers: request.headers });
          decisionHeaders(reply, d);
          if (d.allow) return reply.code(200).send();
          const status = d.reason === 'ACCESS_METHOD_NOT_ALLOWED' ? 403 : d.status;
          if (status === 401) reply.header('www-authenticate', wwwAuthenticate(d));
          return reply.code(status).send(denyBody(d));
        },
      });
    });

    // ---- JSON
    doors.post<{ Body: { method: string; url: string; host?: string; sourceIp: string; headers: Headers } }>('/runtime/v1/decide', {
      bodyLimit: Math.min(app.initialConfig.bodyLimit ?? DECIDE_BODY_BYTES, DECIDE_BODY_BYTES),
      schema: {
        tags: ['access decisions'],
        summary: 'Decide on a request described in JSON (the request phase)',
        security: [{ gatewayKey: [] }],
        body: DESCRIBED_REQUEST_SCHEMA,
        response: {
          ...errorResponses([...DOOR_ERRORS, 'HTTP_UNSUPPORTED_MEDIA_TYPE']),
          200: {
            description: 'The decision (a deny too is a 200: its status is in the body).',
            type: 'object',
            required: ['decision', 'reason', 'decisionId'],
            properties: {
              decision: { type: 'string', enum: ['allow', 'deny'] },
              status: { type: 'integer', description: 'Deny: the status to answer the client with.' },
              reason: { type: 'string', enum: [...ACCESS_REASONS] },
              decisionId: { type: 'string' },
              api: { type: 'string' },
              subject: { type: 'string' },
              sessionId: { type: 'string' },
              wouldDeny: { type: 'string', enum: [...denyReasons], description: 'Monitor mode: what the request would have been denied for.' },
              retryAfterSeconds: { type: 'integer' },
              upstreamHeaders: { type: 'object', additionalProperties: { type: 'string' } },
            },
          },
        },
      },
    }, async (request, reply) => {
      const b = request.body;
      const headers: Headers = {};
      for (const [name, value] of Object.entries(b.headers)) headers[name.toLowerCase()] = value;
      const d = await run({ method: b.method, url: b.url, ...(b.host !== undefined ? { host: b.host } : {}), sourceIp: b.sourceIp, headers });
      decisionHeaders(reply, d);
      if (d.allow) {
        return {
          decision: 'allow',
          reason: d.reason,
          decisionId: d.decisionId,
          ...(d.api !== undefined ? { api: d.api } : {}),
          ...(d.identity?.subject !== undefined ? { subject: d.identity.subject } : {}),
          ...(d.identity?.sessionId !== undefined ? { sessionId: d.identity.sessionId } : {}),
          ...(d.wouldDeny ? { wouldDeny: d.wouldDeny } : {}),
          upstreamHeaders: d.upstreamHeaders,
        };
      }
      return { decision: 'deny', status: d.status, reason: d.reason, decisionId: d.decisionId, ...(d.retryAfterSeconds !== undefined ? { retryAfterSeconds: d.retryAfterSeconds } : {}) };
    });

    doors.post<{ Body: { decisionId: string; status: number } }>('/runtime/v1/decide/response', {
      bodyLimit: 4096,
      schema: {
        tags: ['access decisions'],
        summary: 'Report the upstream\'s status for a decision (the response phase)',
        security: [{ gatewayKey: [] }],
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['decisionId', 'status'],
          properties: { decisionId: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' }, status: { type: 'integer', minimum: 100, maximum: 599 } },
        },
        response: { ...errorResponses([...DOOR_ERRORS, 'HTTP_UNSUPPORTED_MEDIA_TYPE', 'STATE_UNAVAILABLE']), 204: { description: 'Noted; no body.', type: 'null' } },
      },
    }, async (request, reply) => {
      const key = recent.take(request.body.decisionId);
      // The upstream refused the credential: a lock-out failure of the address or subject.
      if (key !== undefined && (request.body.status === 401 || request.body.status === 403)) {
        const settings = o.settings();
        await o.provider.lockout.recordFailure(key, settings.lockoutPolicy);
      }
      reply.header('x-cohort-decision-id', request.body.decisionId).header('x-cohort-reason', 'ACCESS_ALLOWED');
      return reply.code(204).send();
    });
  });
}

/** The route the forward-auth lane stands for (metrics name answers by route). */
const FORWARD_ROUTE = '/authz/forward';
/** The queries the forward-auth lane takes; any other is the route's to validate. */
const FORWARD_LANE_QUERIES = ['', '?statuses=full'];
/** HEAD is left to the route: its answer has no body, which the lane does not special-case. */
const LANE_METHODS = new Set(DOOR_METHODS.filter((m) => m !== 'HEAD'));

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

function denyBody(d: Decision): { error: { code: string; message: string } } {
  return { error: { code: d.reason, message: ERROR_CODES[d.reason].summary } };
}

/** The decision's own headers: its id and reason, the monitor-mode verdict, and the identity headers (allow) or Retry-After (deny). */
function decisionHeaderValues(d: Decision): Record<string, string> {
  const headers: Record<string, string> = { 'x-cohort-decision-id': d.decisionId, 'x-cohort-reason': d.reason };
  if (d.wouldDeny) headers['x-cohort-would-deny'] = d.wouldDeny;
  // Names in lower case, as Fastify's reply writes them: an identity header of the same name
  // as a decision header (X-Cohort-Decision-Id is one by default) is then one header, not two.
  if (d.allow) for (const name in d.upstreamHeaders) headers[name.toLowerCase()] = asHeaderBytes(d.upstreamHeaders[name]!);
  else if (d.retryAfterSeconds !== undefined && (d.status === 429 || d.status === 503 || d.reason === 'ACCESS_LOCKED')) headers['retry-after'] = String(d.retryAfterSeconds);
  return headers;
}

/**
 * The forward-auth answer to a decision (the route and its lane both answer with it): 200
 * with no body on allow; 401 with WWW-Authenticate for a credential reason; 403 for the rest,
 * or with `full`, the reason's own status (but 403 for a method not allowed).
 */
export function forwardAnswer(d: Decision, full: boolean): LaneAnswer {
  const headers = decisionHeaderValues(d);
  if (d.allow) return { status: 200, headers };
  const status = isCredentialReason(d.reason) ? 401 : full && d.reason !== 'ACCESS_METHOD_NOT_ALLOWED' ? d.status : 403;
  if (status === 401) headers['www-authenticate'] = wwwAuthenticate(d);
  return { status, headers, body: JSON.stringify(denyBody(d)) };
}

const SIGN_IN_ERRORS: readonly ErrorCode[] = ['LOGIN_STATE_INVALID', 'LOGIN_DENIED_BY_PROVIDER', 'LOGIN_CODE_REFUSED', 'LOGIN_ID_TOKEN_INVALID', 'LOGIN_PROVIDER_UNAVAILABLE', 'STATE_UNAVAILABLE', 'STATE_NOT_REPLICATED'];

function webAnswer(reply: FastifyReply, a: WebAnswer): FastifyReply {
  for (const [name, value] of Object.entries(a.headers)) reply.header(name, value);
  reply.header('x-cohort-reason', a.reason);
  if (!reply.hasHeader('x-cohort-decision-id')) reply.header('x-cohort-decision-id', correlationId());
  reply.code(a.status);
  if (a.html !== undefined) return reply.send(a.html);
  return a.body === undefined ? reply.send() : reply.send(a.body);
}

export function wwwAuthenticate(d: Decision): string {
  const realm = d.api ?? 'cohort';
  return d.reason === 'ACCESS_NO_CREDENTIAL' ? `Bearer realm="${realm}"` : `Bearer realm="${realm}", error="invalid_token"`;
}
