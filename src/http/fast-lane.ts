/**
 * Fast lanes: the runtime port's hottest requests (forward-auth decisions, session lookups)
 * answered straight from Node's `request` event, before Fastify's router, hooks, validators
 * and serializers run. On those routes Fastify's per-request machinery cost as much as the
 * work itself (docs/benchmarks.md has the measurements).
 *
 * A lane claims only the plain common case of its route — the exact path, no body, a valid
 * key — and hands every other request (a missing or wrong key, a body, an unusual query, a
 * server that is closing) on to the Fastify route, which stays the reference: a lane's answer
 * to what it claims is the route's answer byte for byte but for the request-specific headers
 * (the Fastify route and the lane are compared in test/unit/fast-lane.test.ts). Errors a lane
 * meets after claiming a request are answered in the shape of every other error
 * (http/server.ts `errorAnswer`), and lane answers are timed for the metrics like the rest.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';

/** Claims a request (and then answers it) or returns false to leave it to Fastify. */
export type FastLane = (req: IncomingMessage, res: ServerResponse) => boolean;

/** An answer to write: status, headers and an optional body (JSON text or nothing). */
export interface LaneAnswer {
  status: number;
  headers: Record<string, string>;
  body?: string;
}

/** Told of every answer a lane sends (the node's metrics): `route` as Fastify names it. */
export type LaneObserver = (method: string, status: number, route: string, seconds: number) => void;

/** What a failed request is answered with (http/server.ts `errorAnswer`, logged as every server logs it). */
export type LaneErrorAnswer = (err: Error, fields: { reqId: string; method: string; url: string; source: string }) => LaneAnswer;

interface LaneState {
  lanes: FastLane[];
  observers: LaneObserver[];
  closing: boolean;
  /** Lanes off (tests compare the Fastify route with its lane). */
  disabled: boolean;
  answerError: LaneErrorAnswer;
  /** Lane requests answered with an error so far: their request ids in the log. */
  failures: number;
}

const states = new WeakMap<FastifyInstance, LaneState>();

/**
 * Puts the lanes in front of `app`'s request handler (http/server.ts calls it once per
 * server). While the server closes every request goes to Fastify, which answers it as a
 * closing server does (Connection: close, or 503).
 */
export function installFastLanes(app: FastifyInstance, options: { disabled?: boolean; answerError: LaneErrorAnswer }): void {
  const state: LaneState = { lanes: [], observers: [], closing: false, disabled: options.disabled === true, answerError: options.answerError, failures: 0 };
  states.set(app, state);
  app.addHook('preClose', (done) => {
    state.closing = true;
    done();
  });
  const server = app.server;
  const handlers = server.listeners('request') as Array<(req: IncomingMessage, res: ServerResponse) => void>;
  if (handlers.length !== 1) throw new Error(`fast lanes: the server has ${handlers.length} request handlers, expected Fastify's one`);
  const fastify = handlers[0]!;
  server.removeListener('request', fastify);
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const { lanes } = state;
    if (lanes.length > 0 && !state.closing) {
      for (let i = 0; i < lanes.length; i++) if (lanes[i]!(req, res)) return;
    }
    fastify(req, res);
  });
}

/** Adds a lane to `app` (a server made by http/server.ts); a no-op where lanes are off. */
export function addFastLane(app: FastifyInstance, lane: FastLane): void {
  const state = states.get(app);
  if (state === undefined) throw new Error('fast lanes: not a server made by createHttpServer');
  if (!state.disabled) state.lanes.push(lane);
}

/** Calls `observer` with every answer a lane of `app` sends. */
export function observeLaneAnswers(app: FastifyInstance, observer: LaneObserver): void {
  states.get(app)?.observers.push(observer);
}

/** The send half of a lane: writes `answer` and reports it, timed from `startedAt` (performance.now()). */
function sendLaneAnswer(app: FastifyInstance, req: IncomingMessage, res: ServerResponse, route: string, startedAt: number, answer: LaneAnswer): void {
  const state = states.get(app);
  // One writeHead with the headers as a flat list: setHeader validates and stores each one
  // in an object first, which costs more than the rest of a small answer.
  const raw: string[] = [];
  const names = Object.keys(answer.headers);
  for (let i = 0; i < names.length; i++) raw.push(names[i]!, answer.headers[names[i]!]!);
  // A server that began to close while the lane worked answers as Fastify would then.
  if (state?.closing) raw.push('connection', 'close');
  if (answer.body === undefined) {
    raw.push('content-length', '0');
    res.writeHead(answer.status, raw);
    res.end();
  } else {
    raw.push('content-type', 'application/json; charset=utf-8', 'content-length', String(Buffer.byteLength(answer.body)));
    res.writeHead(answer.status, raw);
    res.end(answer.body);
  }
  if (state && state.observers.length > 0) {
    const seconds = (performance.now() - startedAt) / 1000;
    for (const observe of state.observers) observe(req.method ?? 'GET', answer.status, route, seconds);
  }
}

/**
 * Answers a claimed request with what `answer()` gives — at once when it gives an answer, when
 * a promise resolves otherwise — or, when it throws or rejects or its answer cannot be written
 * (a header value Node refuses), with the server's error answer (http/server.ts `errorAnswer`),
 * passed through `onError` when the lane adds headers of its own; a connection whose answer
 * had already begun is closed. A lane never leaves a request unanswered or an error unhandled.
 * Timed from this call, as Fastify times a route from its request.
 */
export function settleLane(app: FastifyInstance, req: IncomingMessage, res: ServerResponse, route: string, answer: () => LaneAnswer | Promise<LaneAnswer>, onError: (a: LaneAnswer) => LaneAnswer = (a) => a): void {
  const startedAt = performance.now();
  const fail = (err: Error): void => {
    if (res.headersSent) return void res.destroy();
    try {
      const state = states.get(app)!;
      const fields = { reqId: `lane-${++state.failures}`, method: req.method ?? 'GET', url: (req.url ?? '').split('?')[0]!, source: req.socket.remoteAddress ?? 'unknown' };
      sendLaneAnswer(app, req, res, route, startedAt, onError(state.answerError(err, fields)));
    } catch {
      res.destroy();
    }
  };
  let given: LaneAnswer | Promise<LaneAnswer>;
  try {
    given = answer();
    if (!(given instanceof Promise)) return sendLaneAnswer(app, req, res, route, startedAt, given);
  } catch (err) {
    return fail(err as Error);
  }
  given.then((a) => sendLaneAnswer(app, req, res, route, startedAt, a)).catch(fail);
}

/** Whether a request says it carries a body: lanes leave those to the route, which reads and bounds it. */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return (length !== undefined && length !== '0') || req.headers['transfer-encoding'] !== undefined;
}

/**
 * The query of a lane's URL when it is exactly `path` followed by nothing or by one of
 * `queries` (`''` for none); undefined for any other URL. Lanes compare whole strings: no
 * parsing, and anything unusual is Fastify's.
 */
export function laneQuery(url: string | undefined, path: string, queries: readonly string[]): string | undefined {
  if (url === undefined || !url.startsWith(path)) return undefined;
  if (url.length === path.length) return '';
  const rest = url.slice(path.length);
  return queries.includes(rest) ? rest : undefined;
}
