import { isUtf8 } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { ServerOptions as HttpsServerOptions } from 'node:https';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyError, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Logger } from '../core/logger.js';
import { systemClock, type Clock } from '../core/clock.js';
import { CohortError, ERROR_CODES, type ErrorCode } from '../core/errors.js';
import { OWN_SCHEMA_OPTIONS } from '../core/own-schemas.js';
import { WarningLimiter } from '../core/warning-limiter.js';
import { formatAddress, type Address } from '../config/values.js';
import { installFastLanes } from './fast-lane.js';
import { serializersOnFirstUse, validatorsOnFirstUse } from './route-compilers.js';

export interface HttpServerOptions {
  logger: Logger;
  /** Largest accepted request body in bytes. */
  bodyLimit: number;
  /** Name used in log lines ("manage", "runtime", "admin"). */
  name: string;
  /** HTTPS: certificate, key, CA and client-certificate options (http/tls.ts); absent: plain HTTP. */
  tls?: HttpsServerOptions | undefined;
  /**
   * What `close()` does with open connections: `all` (default) ends them at once; `idle` ends
   * the idle ones and lets requests in flight finish (a draining engine's client traffic).
   */
  closeConnections?: 'all' | 'idle';
  /** HTTPS: the clock that bounds the log of failed handshakes (default: the system's). */
  clock?: Clock;
  /** false: every request goes through Fastify's route, none through a fast lane (http/fast-lane.ts; tests compare the two). */
  fastLanes?: boolean;
}

/**
 * Why a TLS handshake failed, as logged: `not-tls` (plain HTTP or other bytes that are not
 * TLS), `no-client-certificate` and `bad-client-certificate` (a listener that requires client
 * certificates), `protocol` (no TLS version or cipher in common), `client-alert` (the client
 * gave up, e.g. it does not trust this node's certificate), `timeout`, `other`.
 */
export type TlsFailureReason = 'not-tls' | 'no-client-certificate' | 'bad-client-certificate' | 'protocol' | 'client-alert' | 'timeout' | 'other';

/**
 * The reason of a `tlsClientError`, or undefined for a client that only hung up before the
 * handshake ended (a TCP health check, a port scan): not a failure worth counting. A client
 * certificate refused by verification also shows as a hang-up (Node destroys the socket
 * itself), told apart by the socket's authorizationError.
 */
export function tlsFailureReason(err: NodeJS.ErrnoException, socket: Pick<TLSSocket, 'authorizationError'>): TlsFailureReason | undefined {
  const code = err.code ?? '';
  if (code === 'ECONNRESET' || code === 'EPIPE') return socket.authorizationError ? 'bad-client-certificate' : undefined;
  if (code === 'ERR_TLS_HANDSHAKE_TIMEOUT') return 'timeout';
  if (code === 'ERR_SSL_PEER_DID_NOT_RETURN_A_CERTIFICATE') return 'no-client-certificate';
  if (/HTTP_REQUEST|HTTPS_PROXY_REQUEST|WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|RECORD_LENGTH_MISMATCH|UNKNOWN_PROTOCOL/.test(code)) return 'not-tls';
  if (/ALERT/.test(code)) return 'client-alert';
  if (/UNSUPPORTED_PROTOCOL|NO_SHARED_CIPHER|NO_PROTOCOLS_AVAILABLE|VERSION_TOO_LOW|INAPPROPRIATE_FALLBACK/.test(code)) return 'protocol';
  if (/CERTIFICATE|CERT_/.test(code)) return 'bad-client-certificate';
  return 'other';
}

/** Failed TLS handshakes of each HTTPS server so far (node/metric-sources.ts reads them at scrape time). */
const tlsFailures = new WeakMap<FastifyInstance, { count: number }>();

/** How many TLS handshakes `app` failed (0 for a plain HTTP server). */
export function tlsHandshakeFailures(app: FastifyInstance): number {
  return tlsFailures.get(app)?.count ?? 0;
}

/** Fastify's own error codes that map onto a stable Cohort code. */
const FASTIFY_CODES: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'HTTP_BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'HTTP_UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'HTTP_BAD_REQUEST',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'HTTP_BAD_REQUEST',
};

/** The code a URL whose percent-encoding does not decode is refused with, per server. */
const badUrlCodes = new WeakMap<FastifyInstance, ErrorCode>();

/**
 * Refuses URLs whose percent-encoding does not decode to valid UTF-8 with `code` on `app`
 * (default HTTP_BAD_REQUEST): on an API whose path parameters are all ids, a more precise code.
 */
export function setBadUrlCode(app: FastifyInstance, code: ErrorCode): void {
  badUrlCodes.set(app, code);
}

/** Ajv options of the route validators (Fastify's `ajv.customOptions`); the tests compile every route schema with them. */
export const ROUTE_AJV_OPTIONS = { removeAdditional: false, coerceTypes: false, allErrors: false, ...OWN_SCHEMA_OPTIONS } as const;

/**
 * A Fastify instance with the conventions every Cohort API shares: errors answered as
 * `{ error: { code, message } }` with a code from core/errors.ts, a body size limit, schema
 * validation failures as 400 HTTP_BAD_REQUEST, JSON bodies and URLs that must be valid UTF-8
 * (decoding would turn every invalid byte into U+FFFD, so two different ids could become
 * one key), and no per-request logging (it would cost more than the request on the runtime
 * hot path). Refused requests are logged once at warn with their code, request id, method and
 * URL; only faults (500) at error, with their stack. Requests share the API's logger instead
 * of getting a child logger each, for the same reason.
 */
export function createHttpServer(options: HttpServerOptions): FastifyInstance {
  // One shape for both: routes and hooks never depend on whether the listener speaks TLS (the
  // HTTPS server is a subclass of the TLS server, whose secure context node/tls-reloader.ts replaces).
  const app = Fastify({
    ...(options.tls ? { https: options.tls, http2: false as const } : {}),
    bodyLimit: options.bodyLimit,
    logController: new LogController({ disableRequestLogging: true }),
    // Fastify logs through our logger so lines carry the node's bindings.
    loggerInstance: options.logger.child({ api: options.name }) as FastifyBaseLogger,
    // No type coercion: a body field of the wrong type is refused, never quietly converted
    // (query strings and path parameters are declared as strings for the same reason).
    // Route schemas are this code's own, checked against the meta-schema by the tests (core/own-schemas.ts).
    ajv: { customOptions: ROUTE_AJV_OPTIONS },
    // Each route's schemas are compiled when the route is first used (http/route-compilers.ts).
    schemaController: { compilersFactory: { buildValidator: validatorsOnFirstUse, buildSerializer: serializersOnFirstUse } },
    // Path parameters carry host:port addresses and keys; host names may be 253 characters.
    routerOptions: { maxParamLength: 300 },
    childLoggerFactory: (logger) => logger,
    // A draining engine answers what reaches it on connections already open while it closes
    // (with Connection: close), rather than 503: the balancer sent those before it knew.
    return503OnClosing: options.closeConnections !== 'idle',
    forceCloseConnections: options.closeConnections === 'idle' ? 'idle' : true,
    // The router refuses a URL whose percent-encoding is not valid UTF-8 before any route
    // or error handler sees it; it is answered in the shape of every other error.
    frameworkErrors: (err, request, reply) => {
      const [code, message]: [ErrorCode, string] =
        err.code === 'FST_ERR_BAD_URL'
          ? [badUrlCodes.get(app) ?? 'HTTP_BAD_REQUEST', 'the URL\'s percent-encoding is not valid UTF-8']
          : err.code === 'FST_ERR_MAX_PARAM_LENGTH'
            ? ['HTTP_URI_TOO_LONG', 'a path segment of the URL is too long']
            : // Fastify's message may quote the whole URL; a refusal never echoes it.
              ['HTTP_BAD_REQUEST', 'the request URL cannot be routed'];
      refused(request.log, requestFields(request), code, message);
      return (reply as FastifyReply).code(ERROR_CODES[code].status).send({ error: { code, message } });
    },
    // What Node's HTTP parser refuses before Fastify sees a request (a header block over the
    // limit, a malformed request line, a client too slow) is answered in the same coded shape.
    clientErrorHandler: (err: NodeJS.ErrnoException, socket) => {
      if (err.code === 'ECONNRESET' || socket.destroyed) return;
      const code: ErrorCode =
        err.code === 'HPE_HEADER_OVERFLOW' ? 'HTTP_HEADERS_TOO_LARGE' : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 'HTTP_REQUEST_TIMEOUT' : 'HTTP_BAD_REQUEST';
      const body = JSON.stringify({ error: { code, message: ERROR_CODES[code].summary } });
      if (socket.writable) {
        socket.write(
          `HTTP/1.1 ${ERROR_CODES[code].status} ${STATUS_CODES[ERROR_CODES[code].status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nConnection: close\r\n\r\n${body}`,
        );
      }
      socket.destroy();
    },
  }) as unknown as FastifyInstance;

  if (options.tls) watchTlsFailures(app, options);
  installFastLanes(app, {
    disabled: options.fastLanes === false,
    answerError: (err, fields) => {
      const a = errorAnswer(err, app.log, fields);
      return { status: a.status, headers: a.headers, body: JSON.stringify(a.body) };
    },
  });
  // Requests share the server's logger (childLoggerFactory above), so the bound is found by it.
  refusalLogs.set(app.log, { limiter: new WarningLimiter(REFUSAL_LOG_WINDOW_MS), clock: options.clock ?? systemClock });

  const json = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
    // Many clients send `Content-Type: application/json` on a DELETE or GET with no body at
    // all: an empty body is no body, whatever its type; routes that need one say so in their
    // schema and refuse it there with the usual coded error.
    if ((body as Buffer).length === 0) return done(null, undefined);
    if (!isUtf8(body as Buffer)) return done(new CohortError('HTTP_BAD_REQUEST', 'the request body is not valid UTF-8'), undefined);
    // The default parser answers through `done` (and guards against prototype poisoning).
    void json(request, (body as Buffer).toString('utf8'), done);
  });

  // A body whose every field is optional may be left out: the route then sees `{}`, so an empty
  // request is not refused as "body must be object" merely for carrying a JSON content type.
  // Added to those routes alone when they are declared, so no other request pays for a hook.
  app.addHook('onRoute', (route) => {
    const schema = route.schema?.body as { type?: string; required?: unknown[] } | undefined;
    if (schema?.type !== 'object' || (schema.required !== undefined && schema.required.length > 0)) return;
    const existing = route.preValidation === undefined ? [] : Array.isArray(route.preValidation) ? route.preValidation : [route.preValidation];
    route.preValidation = [emptyBodyAsObject, ...existing];
  });

  app.setErrorHandler((err: FastifyError | CohortError, request, reply) => {
    const answer = errorAnswer(err, request.log, requestFields(request));
    for (const [name, value] of Object.entries(answer.headers)) if (!reply.hasHeader(name)) void reply.header(name, value);
    return reply.code(answer.status).send(answer.body);
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ error: { code: 'HTTP_NOT_FOUND', message: `no route for ${request.method} ${request.url.split('?')[0]}` } }),
  );
  return app;
}

/**
 * How a failed request is answered and logged (the error handler of every server, and the
 * fast lanes, http/fast-lane.ts): a CohortError with its own status and code; Fastify's
 * refusals (validation, body limits, media types) as their Cohort codes; anything else as 500
 * HTTP_INTERNAL, logged with its stack. Refusals are logged once at warn.
 */
export function errorAnswer(err: FastifyError | CohortError | Error, log: Pick<FastifyBaseLogger, 'warn' | 'error'>, fields: RequestFields): { status: number; body: { error: { code: string; message: string } }; headers: Record<string, string> } {
  if (err instanceof CohortError) {
    if (err.status === 500) log.error({ err, code: err.code, ...fields }, 'request failed');
    else refused(log, fields, err.code, err.message);
    // A refusal that says when to come back says it in the standard header too.
    const retryAfter = err.details?.retryAfterSeconds;
    const headers: Record<string, string> = typeof retryAfter === 'number' && Number.isFinite(retryAfter) ? { 'retry-after': String(Math.max(0, Math.ceil(retryAfter))) } : {};
    return { status: err.status, body: err.toBody() as { error: { code: string; message: string } }, headers };
  }
  const f = err as FastifyError;
  const mapped = f.code ? FASTIFY_CODES[f.code] : undefined;
  if (f.validation || mapped || (f.statusCode !== undefined && f.statusCode >= 400 && f.statusCode < 500)) {
    const code: ErrorCode = mapped ?? 'HTTP_BAD_REQUEST';
    refused(log, fields, code, err.message);
    return { status: ERROR_CODES[code].status, body: { error: { code, message: err.message } }, headers: {} };
  }
  log.error({ err, ...fields }, 'request failed');
  return { status: 500, body: { error: { code: 'HTTP_INTERNAL', message: 'internal error; see the node log' } }, headers: {} };
}

/**
 * A request hook from a check that throws a coded error to refuse: callback style, so a hook
 * that runs on every request costs no promise.
 */
export function syncHook(check: (request: FastifyRequest) => void): (request: FastifyRequest, reply: FastifyReply, done: (err?: Error) => void) => void {
  return (request, _reply, done) => {
    try {
      check(request);
    } catch (err) {
      return done(err as Error);
    }
    done();
  };
}

/**
 * Counts every failed TLS handshake of `app` and logs it (HTTP_TLS_HANDSHAKE_FAILED) at most
 * once a minute per source address and reason, with one line a minute summing what was held
 * back: anyone can send plain HTTP to a TLS port as often as they like, and the log must not
 * grow with it (core/warning-limiter.ts). The source is the socket's, never anything a client
 * sends.
 */
function watchTlsFailures(app: FastifyInstance, options: HttpServerOptions): void {
  const stats = { count: 0 };
  tlsFailures.set(app, stats);
  const limiter = new WarningLimiter();
  const clock = options.clock ?? systemClock;
  const log = options.logger;
  // A refused client certificate reaches tlsClientError on a socket Node already destroyed,
  // whose address is gone unless read before: read at connection (one getpeername, cached by
  // the socket), it is found through the connection the TLS socket wraps.
  app.server.on('connection', (raw: Socket) => void raw.remoteAddress);
  app.server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
    const reason = tlsFailureReason(err, socket);
    if (reason === undefined) return;
    stats.count++;
    const source = socket.remoteAddress ?? (socket as TLSSocket & { _parent?: Socket })._parent?.remoteAddress ?? 'unknown';
    const verdict = limiter.check(`${source} ${reason}`, clock.now());
    if (verdict.log) {
      log.warn({ code: 'HTTP_TLS_HANDSHAKE_FAILED', server: options.name, source, reason, error: err.code ?? err.message }, `TLS handshake refused on the ${options.name} listener (${reason})`);
    } else if (verdict.summary) {
      log.warn({ code: 'HTTP_TLS_HANDSHAKE_FAILED', server: options.name, suppressed: verdict.summary.suppressed }, `${verdict.summary.suppressed} more failed TLS handshakes on the ${options.name} listener were not logged one by one (at most one line per source and reason every ${verdict.summary.windowMs / 1000} s)`);
    }
  });
}

function emptyBodyAsObject(request: FastifyRequest, _reply: FastifyReply, done: (err?: Error) => void): void {
  if (request.body === undefined) request.body = {};
  done();
}

/**
 * A refused request (the client's mistake, a missing key, a record not found, state that
 * cannot be reached for now): one warning with its code, no stack trace, which would only
 * show where the refusal was decided and bury real faults in the log.
 */
function refused(log: Pick<FastifyBaseLogger, 'warn'>, fields: RequestFields, code: ErrorCode, reason: string): void {
  const bound = refusalLogs.get(log);
  if (bound === undefined) return void log.warn({ code, reason, ...fields }, 'request refused');
  const verdict = bound.limiter.check(`${fields.source} ${code}`, bound.clock.now());
  if (verdict.log) log.warn({ code, reason, ...fields }, 'request refused');
  else if (verdict.summary) {
    log.warn({ code: 'HTTP_REFUSALS_NOT_LOGGED', suppressed: verdict.summary.suppressed }, `${verdict.summary.suppressed} more refused requests were not logged one by one (at most one line per source address and code every ${verdict.summary.windowMs / 1000} s)`);
  }
}

/**
 * Anyone can send refused requests as fast as they like (a scanner, a client with a wrong
 * key): each server logs at most one line per source address and code in this window, and
 * one line summing what it held back (core/warning-limiter.ts).
 */
export const REFUSAL_LOG_WINDOW_MS = 10_000;
/** Each server's refusal log bound, by the logger its requests log through. */
const refusalLogs = new WeakMap<object, { limiter: WarningLimiter; clock: Clock }>();

/** What a log line about a request names: its id, method and path (never its query, which may carry secrets). */
export interface RequestFields {
  reqId: string;
  method: string;
  url: string;
  /** The connection's peer (never a forwarded-for header, which anyone can vary). */
  source: string;
}

function requestFields(request: FastifyRequest): RequestFields {
  return { reqId: request.id, method: request.method, url: request.url.split('?')[0]!, source: request.socket?.remoteAddress ?? 'unknown' };
}

/** Binds `app` to `address`; a failure becomes NODE_BIND_FAILED naming the address. */
export async function listen(app: FastifyInstance, address: Address, name: string): Promise<void> {
  try {
    await app.listen({ host: address.host, port: address.port });
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code === 'EADDRINUSE' ? 'address already in use' : (err as Error).message;
    throw new CohortError('NODE_BIND_FAILED', `cannot bind the ${name} API on ${formatAddress(address)}: ${reason}`, { address: formatAddress(address) });
  }
}
