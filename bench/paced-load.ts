/**
 * A load generator at a fixed rate (bench/load-runner.ts `runLoad` with `rate`), in a process
 * of its own: requests fall due on a schedule (`rate` a second, evenly spaced) and leave on
 * the first of `connections` kept-alive connections that has no request in flight, cycling
 * through the requests of a JSON file, whatever the server's answers do. A request that had
 * to wait for a free connection is timed from the moment it fell due, so a server that stalls
 * is charged for every request that waited behind the stall (a closed-loop generator such as
 * wrk sends fewer requests while the server stalls and hides most of that wait); one sent at
 * once is timed from its sending (a timer fires a millisecond or more late: this process's
 * lateness, not the server's).
 *
 * Why a fixed rate: the latency a proxy adds is only comparable between two servers taking the
 * same load. At full speed (wrk's 50 connections) the slower server has longer queues by its
 * throughput alone, and the p99 of either swings with whatever else the machine runs.
 *
 * Plain sockets with every request formatted once, and answers read only as far as framing
 * needs (status, Content-Length or chunked): Node's HTTP client costs more per request than
 * the proxies measured here, and a client that cannot keep the schedule measures itself.
 *
 * Prints one JSON line: {requests, seconds, errors, points: [[percentile, ms], ...]}.
 * Usage: node dist/bench/paced-load.js FILE
 *   FILE: {"url", "connections", "seconds", "rate", "graceMs"?, "requests": [{method?, path, headers, body?}, ...]}
 */
import { connect, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';
import { LatencyHistogram } from './latency-histogram.js';
// The percentiles wrk's runs report too, so slices of either merge alike.
import { REPORTED_PERCENTILES } from './quantiles.js';

interface JobRequest {
  method?: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}
interface Job {
  url: string;
  connections: number;
  seconds: number;
  rate: number;
  /** How long after the last request fell due the run waits for answers (ms; default 30 s). */
  graceMs?: number;
  requests: JobRequest[];
}

const job = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Job;
const target = new URL(job.url);
const host = target.host;
const formatted = job.requests.map((r) => {
  const body = r.body === undefined ? undefined : Buffer.from(r.body);
  const lines = [`${r.method ?? 'GET'} ${r.path} HTTP/1.1`, `Host: ${host}`, ...Object.entries(r.headers).map(([k, v]) => `${k}: ${v}`)];
  if (body !== undefined) lines.push(`Content-Length: ${body.length}`);
  const head = Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
  return body === undefined ? head : Buffer.concat([head, body]);
});

/**
 * The length of the first whole answer at the start of `buf`, its status and whether it
 * closes its connection, or undefined while it is not all there. Answers carry Content-Length
 * or are chunked (no trailers).
 */
function answerLength(buf: Buffer): { length: number; status: number; closes: boolean } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = buf.toString('latin1', 0, headEnd).toLowerCase();
  const status = Number(head.slice(9, 12));
  const closes = /\r\nconnection:[^\r]*close/.test(head);
  const cl = /\r\ncontent-length:\s*(\d+)/.exec(head);
  if (cl) {
    const length = headEnd + 4 + Number(cl[1]);
    return buf.length >= length ? { length, status, closes } : undefined;
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(head)) {
    const end = buf.indexOf('\r\n0\r\n\r\n', headEnd);
    return end < 0 ? undefined : { length: end + 7, status, closes };
  }
  // No body (a 204 or 304).
  return { length: headEnd + 4, status, closes };
}

interface Connection {
  socket: Socket;
  /** When the request in flight fell due; undefined: none in flight. */
  dueAt: number | undefined;
  /** The request in flight was sent once before, on a connection that closed under it. */
  retried: boolean;
  received: Buffer;
}

/** A request that fell due while every connection was busy. */
interface Waiting {
  dueAt: number;
  retried: boolean;
}

const histogram = new LatencyHistogram();
const total = Math.max(1, Math.round(job.rate * job.seconds));
const gapMs = 1000 / job.rate;
/** Requests waiting for a free connection, oldest first. */
const waiting: Waiting[] = [];
let waitingHead = 0;
const idle: Connection[] = [];
/** Requests that have fallen due so far. */
let scheduled = 0;
/** Requests written (the next one of the cycle to write). */
let written = 0;
let settled = 0;
let errors = 0;
let slowest = 0;
let done = false;
let finished: () => void = () => undefined;

function send(c: Connection, dueAt: number, retried: boolean): void {
  c.dueAt = dueAt;
  c.retried = retried;
  c.socket.write(formatted[written++ % formatted.length]!);
}

function settle(c: Connection, failed: boolean): void {
  const ms = performance.now() - c.dueAt!;
  c.dueAt = undefined;
  if (done) return;
  histogram.record(ms);
  if (ms > slowest) slowest = ms;
  if (failed) errors++;
  if (++settled === total) finished();
}

/** A connection with nothing in flight: the oldest waiting request leaves on it, or it waits. */
function free(c: Connection): void {
  if (done) return;
  const next = waitingHead < waiting.length ? waiting[waitingHead++]! : undefined;
  if (next !== undefined) send(c, next.dueAt, next.retried);
  else idle.push(c);
}

/** Every open connection (closed at the end). */
const open = new Set<Connection>();

function connectOne(): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: target.hostname, port: Number(target.port) });
    socket.setNoDelay(true);
    const c: Connection = { socket, dueAt: undefined, retried: false, received: Buffer.alloc(0) };
    socket.once('connect', () => {
      open.add(c);
      resolve(c);
    });
    socket.once('error', reject);
    socket.on('data', (chunk: Buffer) => {
      c.received = c.received.length === 0 ? chunk : Buffer.concat([c.received, chunk]);
      const whole = answerLength(c.received);
      if (whole === undefined || c.dueAt === undefined) return;
      c.received = c.received.subarray(whole.length);
      settle(c, whole.status >= 400);
      // An answer with Connection: close ends the connection's use: a request written on it
      // now could meet the close (it is replaced when it closes).
      if (!whole.closes) free(c);
    });
    // A connection the server closed (an idle one past its keep-alive time, say) is replaced,
    // so the pool keeps its size. A request in flight on it with no byte of its answer back is
    // sent once more, keeping its due time (a server may close a kept-alive connection just as
    // a request leaves on it, as HTTP clients know); otherwise it failed.
    socket.on('close', () => {
      if (!open.delete(c)) return;
      const at = idle.indexOf(c);
      if (at >= 0) idle.splice(at, 1);
      if (c.dueAt !== undefined) {
        if (c.received.length === 0 && !c.retried && !done) {
          waiting.splice(waitingHead, 0, { dueAt: c.dueAt, retried: true });
          c.dueAt = undefined;
        } else settle(c, true);
      }
      if (!done) replace();
    });
    socket.on('error', () => undefined);
  });
}

/** Opens a connection in place of one that closed; tries again a little later while it cannot. */
function replace(): void {
  connectOne().then(free, () => {
    if (!done) setTimeout(replace, 50);
  });
}

const connections = await Promise.all(Array.from({ length: job.connections }, connectOne));
idle.push(...connections);
const began = performance.now();
/** However the server behaves, the run ends this long after its last request fell due. */
const graceMs = job.graceMs ?? 30_000;
let deadline: NodeJS.Timeout | undefined;
await new Promise<void>((resolve) => {
  finished = resolve;
  // Every millisecond (the finest a timer goes), what has fallen due leaves or waits in line.
  const tick = (): void => {
    const due = Math.min(total, Math.floor((performance.now() - began) / gapMs) + 1);
    for (; scheduled < due; scheduled++) {
      const c = idle.pop();
      // One that waits for a connection is timed from when it fell due (the server is behind);
      // one sent at once from now: this process's own timer running late is not the server's.
      if (c === undefined) waiting.push({ dueAt: began + scheduled * gapMs, retried: false });
      else send(c, performance.now(), false);
    }
    if (scheduled < total) setTimeout(tick, 1);
  };
  tick();
  // Requests never answered count as errors (and as the slowest) rather than hold the run.
  deadline = setTimeout(() => {
    const unanswered = total - settled;
    errors += unanswered;
    settled = total;
    if (unanswered > 0) slowest = Math.max(slowest, performance.now() - began);
    for (let i = 0; i < unanswered; i++) histogram.record(Infinity);
    done = true;
    resolve();
  }, job.seconds * 1000 + graceMs);
});
clearTimeout(deadline);
done = true;
const seconds = (performance.now() - began) / 1000;
for (const c of open) c.socket.destroy();
// Past the histogram's last bucket (100 ms) a percentile is read as the slowest request.
const points: Array<[number, number]> = REPORTED_PERCENTILES.map((p) => [p, Math.min(histogram.percentile(p), slowest)]);
points.push([100, slowest]);
process.stdout.write(`${JSON.stringify({ requests: settled, seconds, errors, points })}\n`);
