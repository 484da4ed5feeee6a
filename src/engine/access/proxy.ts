/**
 * The inline proxy (`[node] mode = inline`, on `[http] proxy`): the engine is the reverse
 * proxy. Every request gets a decision from the same function the sideband doors use; an
 * allowed one is forwarded to its API's `upstream` with @fastify/reply-from (undici), a denied
 * one is answered with the JSON error and the deny status.
 *
 * Forwarding: the body is streamed, never parsed (a content-type parser hands the raw stream
 * on, so neither `[http] body_limit` nor the parser's buffering applies); hop-by-hop headers
 * are dropped; every client-supplied `X-Cohort-*` header and every header named like one of
 * the API's identity headers is removed before the decision's identity headers are added, so a
 * client cannot pose as a subject; `X-Forwarded-For` gets the connection's address appended and
 * `X-Forwarded-Proto` / `X-Forwarded-Host` say what the client asked for; `stripPrefix`
 * removes the API's path prefix. An upstream that does not answer within the API's
 * `timeoutMs` gives 504 PROXY_UPSTREAM_TIMEOUT, one that cannot be reached 502
 * PROXY_UPSTREAM_FAILED. The client's address (for deny lists, lock-out and rate limits by
 * address) is the connection's, or, when the connection comes from one of `[http]
 * trusted_proxies`, the rightmost untrusted X-Forwarded-For entry (client-address.ts). An upstream 401 or 403 counts as a lock-out failure when the API has
 * `lockout` (the response phase of a sideband gateway). Every answer carries `X-Cohort-Decision-Id` and `X-Cohort-Reason`.
 */
import replyFrom, { type FastifyReplyFromHooks } from '@fastify/reply-from';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { IncomingHttpHeaders as Http2IncomingHttpHeaders } from 'node:http2';
import { ERROR_CODES, type ErrorCode } from '../../core/errors.js';
import { correlationId } from '../../core/ids.js';
import { decide, type Decision } from './decide.js';
import { isPromise } from '../../core/maybe-async.js';
import type { LockoutPolicy } from '../../state/services.js';
import type { RuntimeSettings } from '../runtime-settings.js';
import type { DecisionFrontOptions } from './front-options.js';
import { logDecision } from './decision-log.js';
import { inlineClientAddress, plainAddress, trustedProxies } from './client-address.js';
import type { CompiledApi } from './definitions.js';
import { asHeaderBytes } from './header-bytes.js';
import { wwwAuthenticate } from './doors.js';
import { RelyingParties } from '../oidc/relying-party.js';
import { loginRoute, serveLoginRoute, serveSignInStart, wantsSignIn, type SignInContext, type WebAnswer, type WebRequest } from '../oidc/sign-in.js';
import { UpstreamTokens } from '../oidc/upstream-token.js';

/** The inline proxy needs nothing beyond what every front of the decision gets. */
export type InlineProxyOptions = DecisionFrontOptions;

/** Headers that describe one connection, not the request: never forwarded (RFC 9110 7.6.1), either way. */
const HOP_BY_HOP = ['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'expect'];
const HOP_BY_HOP_NAMES = new Set(HOP_BY_HOP);

/** The path of `rawPath` (as the client sent it) without the first segments the prefix has. */
export function stripPathPrefix(rawPath: string, prefix: string): string {
  const segments = prefix.split('/').filter((s) => s !== '').length;
  const rest = rawPath.split('/').slice(1 + segments);
  return `/${rest.join('/')}`;
}

/** Where an allowed request goes: the upstream, the (stripped) path as the client sent it, the query. */
export function upstreamUrl(api: CompiledApi & { upstream: string }, url: string): string {
  const q = url.indexOf('?');
  const rawPath = q < 0 ? url : url.slice(0, q);
  const query = q < 0 ? '' : url.slice(q);
  return `${api.upstream}${api.stripPrefix ? stripPathPrefix(rawPath, api.pathPrefix) : rawPath}${query}`;
}

/**
 * What the forwarding callbacks of one allowed request need, kept on the request (a decorator,
 * so every request object keeps one shape): the callbacks are made once per server rather
 * than four closures per request.
 */
interface Forwarding {
  api: CompiledApi & { upstream: string };
  decision: Decision;
  upstreamToken: string | undefined;
  lockoutPolicy: LockoutPolicy;
}
const FORWARDING = Symbol('cohort.forwarding');
type ForwardingRequest = FastifyRequest & { [FORWARDING]: Forwarding | null };

export function registerInlineProxy(app: FastifyInstance, o: InlineProxyOptions): void {
  // Web sign-in and token mediation (src/engine/oidc/): the provider configurations and
  // in-flight token fetches of this engine.
  const parties = new RelyingParties(o.clock);
  const upstreamTokens = new UpstreamTokens(o.provider, o.clock);
  const trusted = trustedProxies(o.trustedProxies ?? []);
  /** The client's address: the connection's, or behind a trusted balancer the one it forwarded. */
  const clientAddress = (request: FastifyRequest): string => inlineClientAddress(plainAddress(request.socket.remoteAddress), request.headers['x-forwarded-for'], trusted);
  const webRequest = (request: FastifyRequest): WebRequest => ({ method: request.method, url: request.url, host: request.headers.host, secure: request.protocol === 'https', headers: request.headers });
  const signInContext = (settings: RuntimeSettings): SignInContext => ({ provider: o.provider, settings, parties, clock: o.clock, log: o.log });

  const forwarding = (request: FastifyRequest): Forwarding => (request as ForwardingRequest)[FORWARDING]!;
  type Hooks = Required<FastifyReplyFromHooks>;
  const rewriteRequestHeaders: Hooks['rewriteRequestHeaders'] = (request, headers) => {
    const f = forwarding(request as FastifyRequest);
    const out = upstreamHeaders(request as FastifyRequest, headers as IncomingHttpHeaders, f.api, f.decision);
    // The upstream's own token replaces whatever Authorization the client sent (its session id, say).
    if (f.upstreamToken !== undefined) out.authorization = `Bearer ${f.upstreamToken}`;
    return out;
  };
  // The response phase, done here: an upstream that refuses the credential (401, 403) counts
  // as a lock-out failure of the address or subject, as a report through
  // /runtime/v1/decide/response does for a sideband gateway. Only requests with a lock-out key
  // pass it; the others are sent on as reply-from sends them.
  const onResponse: Hooks['onResponse'] = (request, reply, res) => {
    const { decision: d, lockoutPolicy } = forwarding(request as FastifyRequest);
    if (res.statusCode === 401 || res.statusCode === 403) {
      o.provider.lockout.recordFailure(d.lockoutKey!, lockoutPolicy).catch((err: unknown) => o.log.warn({ err, decisionId: d.decisionId }, 'inline proxy: the upstream\'s refusal could not be counted as a lock-out failure'));
    }
    void reply.send(res.stream);
  };
  const onError: Hooks['onError'] = (r, { error: err }) => {
    const reply = r as FastifyReply;
    const { api, decision: d } = forwarding(reply.request);
    const timedOut = (err as { statusCode?: number }).statusCode === 504;
    o.log.warn({ decisionId: d.decisionId, api: api.id, upstream: api.upstream, err: (err as { cause?: unknown }).cause ?? err }, timedOut ? 'inline proxy: upstream timed out' : 'inline proxy: upstream failed');
    if (timedOut) void error(reply, 'PROXY_UPSTREAM_TIMEOUT', `the upstream of API ${api.id} did not answer within ${api.timeoutMs} ms`);
    else void error(reply, 'PROXY_UPSTREAM_FAILED', `the upstream of API ${api.id} could not be reached`);
  };

  /** Forwards an allowed request to its API's upstream. */
  const forward = (request: FastifyRequest, reply: FastifyReply, f: Forwarding): FastifyReply => {
    (request as ForwardingRequest)[FORWARDING] = f;
    return reply.from(upstreamUrl(f.api, request.url), {
      timeout: f.api.timeoutMs,
      rewriteRequestHeaders,
      rewriteHeaders: responseHeaders,
      ...(f.decision.lockoutKey !== undefined ? { onResponse } : {}),
      onError,
    });
  };

  /** After the decision: the deny, the sign-in, or the forward (with the upstream's token first where the API mediates one). */
  const answerDecision = (request: FastifyRequest, reply: FastifyReply, settings: RuntimeSettings, d: Decision): FastifyReply | Promise<FastifyReply> => {
    logDecision(o.log, o.decisionLog, o.engineId, d, o.observeDecision);
    reply.header('x-cohort-decision-id', d.decisionId).header('x-cohort-reason', d.reason);
    if (d.wouldDeny) reply.header('x-cohort-would-deny', d.wouldDeny);
    const api = d.api === undefined ? undefined : settings.access.apis.find((a) => a.id === d.api);
    if (!d.allow) {
      const web = webRequest(request);
      return wantsSignIn(api, d, web) ? serveSignInStart(api, web, signInContext(settings)).then((a) => answer(reply, a)) : deny(reply, d);
    }
    if (api?.upstream === undefined) return error(reply, 'PROXY_NO_UPSTREAM', d.api === undefined ? 'the request matched no API, so it has no upstream' : `API ${d.api} has no upstream`);
    const target = api as CompiledApi & { upstream: string };
    if (api.upstreamToken === undefined) return forward(request, reply, { api: target, decision: d, upstreamToken: undefined, lockoutPolicy: settings.lockoutPolicy });
    return upstreamTokens.tokenFor(api as CompiledApi & { upstreamToken: NonNullable<CompiledApi['upstreamToken']> }, d.identity).then(
      (upstreamToken) => forward(request, reply, { api: target, decision: d, upstreamToken, lockoutPolicy: settings.lockoutPolicy }),
      (err: unknown) => {
        const e = err as { code?: string; message: string };
        o.log.warn({ decisionId: d.decisionId, api: api.id, err: e.message }, 'inline proxy: no token for the upstream');
        return error(reply, e.code === 'UPSTREAM_TOKEN_FAILED' ? 'UPSTREAM_TOKEN_FAILED' : 'STATE_UNAVAILABLE', e.message);
      },
    );
  };

  app.register(async (proxy) => {
    // No retries (a request with a body cannot be replayed, and a GET retried behind the
    // client's back would double its effects on the upstream); one connection pool per upstream.
    await proxy.register(replyFrom, { disableRequestLogging: true, retryMethods: [] });
    proxy.removeAllContentTypeParsers();
    proxy.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
    proxy.decorateRequest(FORWARDING, null);

    proxy.route({
      method: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
      url: '*',
      exposeHeadRoute: false,
      // Not async: a decision at hand (the usual case) is answered without a promise, and
      // without Fastify waiting on the reply's end, which it does for whatever a handler returns.
      handler: (request, reply) => {
        const settings = o.settings();
        const host = request.headers.host;
        // The callback and logout paths of an API with login are the engine's own, not the upstream's.
        const route = loginRoute(settings.access.apis, request.method, request.url, host);
        if (route) return serveLoginRoute(route.route, route.api, webRequest(request), signInContext(settings)).then((a) => answer(reply, a));
        const d = decide(
          // Plain literals: spreads of conditional parts cost a slow copy on every request.
          { method: request.method, url: request.url, host, sourceIp: clientAddress(request), headers: request.headers },
          settings.access,
          { provider: o.provider, lockoutPolicy: settings.lockoutPolicy, rateLimit: settings.rateLimit, caches: o.caches },
          o.clock,
        );
        if (isPromise(d)) return d.then((decision) => answerDecision(request, reply, settings, decision));
        const answered = answerDecision(request, reply, settings, d);
        // A promise resolves to the reply, which Fastify waits for (it is a thenable that settles
        // when the answer has gone); a reply answered or being forwarded needs no waiting on.
        return isPromise(answered) ? answered : undefined;
      },
    });
  });
}

/** The upstream's answer headers, less hop-by-hop ones and the decision's own (set by the engine, whatever the upstream says). */
function responseHeaders(headers: IncomingHttpHeaders | Http2IncomingHttpHeaders): IncomingHttpHeaders | Http2IncomingHttpHeaders {
  // The object is undici's own, made for this response: changed in place.
  for (const name of HOP_BY_HOP) if (headers[name] !== undefined) delete headers[name];
  if (headers['x-cohort-decision-id'] !== undefined) delete headers['x-cohort-decision-id'];
  if (headers['x-cohort-reason'] !== undefined) delete headers['x-cohort-reason'];
  return headers;
}

function deny(reply: FastifyReply, d: Decision): FastifyReply {
  if (d.status === 401) reply.header('www-authenticate', wwwAuthenticate(d));
  if (d.retryAfterSeconds !== undefined && (d.status === 429 || d.status === 503 || d.reason === 'ACCESS_LOCKED')) reply.header('retry-after', String(d.retryAfterSeconds));
  return reply.code(d.status).send({ error: { code: d.reason, message: ERROR_CODES[d.reason].summary } });
}

function answer(reply: FastifyReply, a: WebAnswer): FastifyReply {
  for (const [name, value] of Object.entries(a.headers)) reply.header(name, value);
  reply.header('x-cohort-reason', a.reason);
  if (!reply.hasHeader('x-cohort-decision-id')) reply.header('x-cohort-decision-id', correlationId());
  reply.code(a.status);
  if (a.html !== undefined) return reply.send(a.html);
  return a.body === undefined ? reply.send() : reply.header('content-type', 'application/json; charset=utf-8').send(a.body);
}

function error(reply: FastifyReply, code: ErrorCode, message: string): FastifyReply {
  return reply.code(ERROR_CODES[code].status).header('content-type', 'application/json; charset=utf-8').send({ error: { code, message } });
}

function upstreamHeaders(request: FastifyRequest, headers: IncomingHttpHeaders, api: CompiledApi, d: Decision): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const name in headers) {
    if (name.startsWith('x-cohort-') || api.identityHeaderNames.has(name) || HOP_BY_HOP_NAMES.has(name)) continue;
    out[name] = headers[name];
  }
  // As every proxy does: the list it got, plus the peer it saw (the upstream judges what to believe).
  const forwardedFor = request.headers['x-forwarded-for'];
  const prior = Array.isArray(forwardedFor) ? forwardedFor.join(', ') : forwardedFor;
  const peer = plainAddress(request.socket.remoteAddress);
  out['x-forwarded-for'] = prior ? `${prior}, ${peer}` : peer;
  out['x-forwarded-proto'] = request.protocol;
  if (request.headers.host !== undefined) out['x-forwarded-host'] = request.headers.host;
  for (const name in d.upstreamHeaders) out[name.toLowerCase()] = asHeaderBytes(d.upstreamHeaders[name]!);
  return out;
}
