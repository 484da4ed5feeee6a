/**
 * A node's Prometheus metrics (`GET /metrics` on the manage port).
 *
 * One registry per node, never prom-client's global one: tests and benchmarks run several
 * nodes in one process. Most metrics are read at scrape time from counters and state the
 * layers keep anyway (transport, membership, RPC, grid store, configuration), so a scrape
 * costs work and the hot paths cost nothing. Only four things are observed as they happen,
 * each at one place: HTTP request durations (one `onResponse` hook per server), RPC latency
 * (rpc.ts's observer), probe round trips (membership's callback) and access decisions (where
 * the decision log line is written).
 *
 * Every name starts with `cohort_`; docs/monitoring.md lists them, and a unit test checks the
 * dashboard and alert rules shipped in docs/ use only names a node serves.
 */
import type { FastifyInstance } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type LabelValues } from 'prom-client';
import { HotCounter, HotHistogram, type HistogramSeries } from './hot-metrics.js';
import type { RpcObserver } from '../rpc/rpc.js';
import { observeLaneAnswers } from '../http/fast-lane.js';

/** Label values of one series, and its value. */
export type Sample = [labels: LabelValues<string>, value: number];

/** Latency buckets (seconds) from a loopback RPC (tens of microseconds) up to a slow request. */
const LATENCY_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Configuration apply delay (seconds): a push arrives within milliseconds, a poll within polling_delay. */
const DELAY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 30];

/** Monotonic seconds, sub-millisecond. */
function nowSeconds(): number {
  return performance.now() / 1000;
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly contentType = this.registry.contentType;
  /** For rpc.ts: latency of every call by method. */
  readonly rpcObserver: RpcObserver;
  /** For membership.ts: round trip of every answered direct probe (ms). */
  readonly probeRoundTrip: (ms: number) => void;
  // Observed on every request or call: hot-metrics.ts, whose series cost no label hashing.
  private readonly httpDuration: HotHistogram<'server' | 'route' | 'method' | 'status'>;
  private readonly decisions: HotCounter<'api' | 'decision' | 'reason'>;
  private readonly decisionDuration: HistogramSeries;
  private readonly configApplyDelay: Histogram;
  private readonly schedulerRuns: Counter<'outcome'>;

  constructor(node: { id: string; role: string }, options: { processMetrics?: boolean } = {}) {
    const registry = this.registry;
    registry.setDefaultLabels({ node: node.id, role: node.role });
    // Node.js process metrics (CPU, memory, event-loop lag, GC), under the same prefix.
    if (options.processMetrics !== false) collectDefaultMetrics({ register: registry, prefix: 'cohort_' });

    this.httpDuration = new HotHistogram({
      name: 'cohort_http_request_duration_seconds',
      help: 'HTTP requests by server (runtime, proxy, admin, manage), route, method and status: time from the request to the end of the answer.',
      labelNames: ['server', 'route', 'method', 'status'],
      buckets: LATENCY_BUCKETS,
      registry,
    });

    const rpcDuration = new HotHistogram({
      name: 'cohort_rpc_duration_seconds',
      help: 'Requests this node sent to other nodes (grid operations, configuration, transfers), by method and outcome (ok: answered; failed: refused, timed out or peer lost).',
      labelNames: ['method', 'outcome'],
      buckets: LATENCY_BUCKETS,
      registry,
    });
    this.rpcObserver = {
      now: nowSeconds,
      settled(method, startedAt, ok) {
        const key = ok ? method : `${method}\u0000failed`;
        (rpcDuration.find(key) ?? rpcDuration.seriesFor(key, { method, outcome: ok ? 'ok' : 'failed' })).observe(nowSeconds() - startedAt);
      },
    };

    const probeRtt = new Histogram({
      name: 'cohort_membership_probe_rtt_seconds',
      help: 'Round trip of direct membership probes a member answered (the cluster clock has millisecond resolution).',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    });
    this.probeRoundTrip = (ms) => probeRtt.observe(ms / 1000);

    this.decisions = new HotCounter({
      name: 'cohort_access_decisions_total',
      help: 'Access decisions by API, decision (allow, deny; monitor mode counts the would-be deny as allow) and reason code.',
      labelNames: ['api', 'decision', 'reason'],
      registry,
    });
    this.decisionDuration = new HotHistogram({
      name: 'cohort_access_decision_duration_seconds',
      help: 'Time to decide an access request, state lookups included.',
      labelNames: [],
      buckets: LATENCY_BUCKETS,
      registry,
    }).seriesFor('', {});
    this.configApplyDelay = new Histogram({
      name: 'cohort_config_apply_delay_seconds',
      help: 'Engines: from the save of a configuration version on the console to its application here (wall clocks of both nodes).',
      buckets: DELAY_BUCKETS,
      registers: [registry],
    });
    this.schedulerRuns = new Counter({
      name: 'cohort_scheduler_runs_total',
      help: 'Scheduled runs this node started, by outcome: succeeded, failed (the job failed), rejected (its completion came with a stale fencing token: the job had been taken back).',
      labelNames: ['outcome'],
      registers: [registry],
    });
    for (const outcome of ['succeeded', 'failed', 'rejected']) this.schedulerRuns.inc({ outcome }, 0);
  }

  /** A scheduled run this node started ended: succeeded, failed, or rejected (stale fencing token). */
  schedulerRun(outcome: 'succeeded' | 'failed' | 'rejected'): void {
    this.schedulerRuns.inc({ outcome });
  }

  /**
   * Times every request of `app` by route (the route's pattern, so ids do not multiply the
   * series; `unmatched` for 404s), method and status.
   */
  instrumentHttp(app: FastifyInstance, server: string): void {
    const histogram = this.httpDuration;
    const observe = (method: string, status: number, route: string, seconds: number): void => {
      // The server is part of the key: two servers have routes of the same pattern (health,
      // `unmatched`), and each keeps its own series.
      const key = `${server} ${method} ${status} ${route}`;
      (histogram.find(key) ?? histogram.seriesFor(key, { server, route, method, status: String(status) })).observe(seconds);
    };
    app.addHook('onResponse', (request, reply, done) => {
      observe(request.method, reply.statusCode, request.routeOptions.url ?? 'unmatched', reply.elapsedTime / 1000);
      done();
    });
    // The requests a fast lane answers (http/fast-lane.ts) never reach the hook.
    observeLaneAnswers(app, observe);
  }

  /** One access decision (engine/access/decision-log.ts calls it where the log line is written). */
  decision(api: string | undefined, allow: boolean, reason: string, durationMs: number): void {
    this.decisions.seriesOfValues(api ?? '', allow ? 'allow' : 'deny', reason).inc();
    this.decisionDuration.observe(durationMs / 1000);
  }

  /** An engine applied a configuration saved on the console `delayMs` ago. */
  configApplied(delayMs: number): void {
    this.configApplyDelay.observe(Math.max(0, delayMs) / 1000);
  }

  /** A gauge read at scrape time: `read` returns one number, or samples with their labels. */
  gauge(name: string, help: string, read: () => number | Sample[] | Promise<number | Sample[]>, labelNames: string[] = []): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      async collect() {
        const value = await read();
        this.reset();
        if (typeof value === 'number') this.set(value);
        else for (const [labels, v] of value) this.set(labels, v);
      },
    });
  }

  /** A counter whose total is kept elsewhere (the layers' own stats), read at scrape time. */
  counter(name: string, help: string, read: () => number | Sample[], labelNames: string[] = []): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        const value = read();
        this.reset();
        if (typeof value === 'number') this.inc(value);
        else for (const [labels, v] of value) this.inc(labels, v);
      },
    });
  }

  /** Scrapes begun so far: gauges that share one costly read cache it per scrape by this number. */
  scrapes = 0;

  /** The Prometheus text of every metric. */
  text(): Promise<string> {
    this.scrapes++;
    return this.registry.metrics();
  }
}
