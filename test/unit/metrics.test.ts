/**
 * The node's metrics (node/metrics.ts, node/metric-sources.ts): values read at scrape time
 * from the layers' own counters, the HTTP timing hook, the manage API's /metrics with and
 * without `[http] metrics_token`, and the docs' dashboard and alert rules using only names a
 * real registry serves.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import Fastify from 'fastify';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import type { ConsoleClusterView } from '../../src/console/admin-api.js';
import type { ClusterMember } from '../../src/node/cluster-member.js';
import { registerManageApi } from '../../src/node/manage-api.js';
import { NodeMetrics } from '../../src/node/metrics.js';
import { clusterMetrics, consoleMetrics, engineMetrics, gridMetrics } from '../../src/node/metric-sources.js';
import type { GridStats } from '../../src/node/state-provider.js';
import { emptyStats } from '../../src/transport/transport.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';
import { parsePrometheus, total } from '../helpers/prometheus.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { join } from 'node:path';

const repoPath = (p: string): string => join(PACKAGE_ROOT, p);

function fakeCluster(states: string[]) {
  const stats = { messagesSent: 3, messagesReceived: 4, malformedDropped: 0, probes: 10, probesFailed: 1, refutations: 2, suspicionsRaised: 5, deathsDeclared: 1 };
  const transport = { ...emptyStats(), bytesSent: 1000, bulkBytesSent: 400, bytesReceived: 900, bulkBytesReceived: 100 };
  return {
    stats,
    transport,
    member: {
      info: () => ({ clusterId: 'c', node: 'n', mixedVersions: false, versions: ['1.0.0'], clockSkewMs: 12, clockSkewWarning: false, nodes: states.map((state, i) => ({ id: `n${i}`, address: `a${i}`, role: 'engine', version: '1.0.0', state, group: null, clockOffsetMs: 0, self: i === 0 })) }),
      membership: { stats },
      transport: { stats: () => ({ ...transport }) },
      rpc: { stats: { callsSent: 7, callsAnswered: 6, callsFailed: 1, requestsServed: 9, malformedDropped: 0 } },
    } as unknown as ClusterMember,
  };
}

const gridStats: GridStats = { records: { primary: 11, backup: 22, moved: 3 }, partitions: { primary: 90, backup: 181 }, revocations: 5, revocationCap: 1000, revocationsEvicted: 0 };

const consoleView: ConsoleClusterView = {
  clusterId: 'c', role: 'console', epoch: 2, configVersion: 7, mixedVersions: false, versions: ['1.0.0'], notes: [],
  nodes: [
    { id: 'console', address: 'a0', role: 'console', version: '1.0.0', state: 'active', group: null, scheduler: 'running', health: null, lastUpdated: null, configVersion: 7, configAppliedAt: null, replication: null },
    { id: 'engine-1', address: 'a1', role: 'engine', version: '1.0.0', state: 'active', group: null, scheduler: null, health: 'green', lastUpdated: null, configVersion: 7, configAppliedAt: null, replication: 'in-sync' },
    { id: 'engine-2', address: 'a2', role: 'engine', version: '1.0.0', state: 'active', group: null, scheduler: 'recovering', health: 'red', lastUpdated: null, configVersion: 5, configAppliedAt: null, replication: 'out-of-date' },
  ],
} as ConsoleClusterView;

/** A registry with every source registered, as an engine and a console have them together. */
function everyMetric(): { metrics: NodeMetrics; cluster: ReturnType<typeof fakeCluster> } {
  const metrics = new NodeMetrics({ id: 'engine-1', role: 'engine' });
  const cluster = fakeCluster(['active', 'active', 'suspect', 'inactive']);
  clusterMetrics(metrics, cluster.member);
  gridMetrics(metrics, () => gridStats);
  engineMetrics(metrics, { ready: () => true, draining: () => false, configVersion: () => 7, configEpoch: () => 2 });
  // The console's gauges under other names than the engine's (cohort_config_version is both).
  const consoleSide = new NodeMetrics({ id: 'console', role: 'console' }, { processMetrics: false });
  consoleMetrics(consoleSide, async () => consoleView);
  return { metrics: mergeInto(metrics, consoleSide), cluster };
}

function mergeInto(target: NodeMetrics, other: NodeMetrics): NodeMetrics {
  for (const m of other.registry.getMetricsAsArray()) {
    const metric = other.registry.getSingleMetric(m.name);
    if (metric && !target.registry.getSingleMetric(m.name)) target.registry.registerMetric(metric);
  }
  return target;
}

describe('node metrics', () => {
  it('reads the layers\' counters at scrape time, with the node\'s labels', async () => {
    const { metrics, cluster } = everyMetric();
    let f = parsePrometheus(await metrics.text());
    assert.equal(total(f, 'cohort_cluster_members', { state: 'active' }), 2);
    assert.equal(total(f, 'cohort_cluster_members', { state: 'inactive' }), 1);
    assert.equal(total(f, 'cohort_cluster_members', { state: 'left' }), 0, 'every state is a series, at 0 when empty');
    assert.equal(total(f, 'cohort_membership_suspicions_total'), 5);
    assert.equal(total(f, 'cohort_transport_bytes_total', { direction: 'sent', channel: 'bulk' }), 400);
    assert.equal(total(f, 'cohort_transport_bytes_total', { direction: 'sent', channel: 'control' }), 600);
    assert.equal(total(f, 'cohort_grid_records', { placement: 'backup' }), 22);
    assert.equal(total(f, 'cohort_grid_records', { placement: 'moved' }), 3);
    assert.equal(total(f, 'cohort_node_health', { member: 'engine-2', health: 'red' }), 1);
    assert.equal(total(f, 'cohort_node_config_replication', { member: 'engine-2', status: 'out-of-date' }), 1);
    assert.equal(total(f, 'cohort_scheduler_nodes', { state: 'recovering' }), 1);
    assert.equal(f.get('cohort_membership_suspicions_total')!.metrics[0]!.labels!.node, 'engine-1');
    // The counters move when the layer's do.
    cluster.stats.suspicionsRaised = 8;
    f = parsePrometheus(await metrics.text());
    assert.equal(total(f, 'cohort_membership_suspicions_total'), 8);
  });

  it('a console reads its cluster view once per scrape, and a save between two scrapes shows in the second at once', async () => {
    const metrics = new NodeMetrics({ id: 'console', role: 'console' }, { processMetrics: false });
    let version = 0;
    let reads = 0;
    consoleMetrics(metrics, async () => { reads++; return { ...consoleView, configVersion: version }; });
    assert.equal(total(parsePrometheus(await metrics.text()), 'cohort_config_version'), 0);
    assert.equal(reads, 1, 'every console gauge of one scrape shares one view');
    version = 1;
    assert.equal(total(parsePrometheus(await metrics.text()), 'cohort_config_version'), 1, 'the next scrape, however soon, reads a fresh view');
    assert.equal(reads, 2);
  });

  it('times HTTP requests by route pattern and status, RPCs by method, and counts decisions by reason', async () => {
    const metrics = new NodeMetrics({ id: 'e', role: 'engine' }, { processMetrics: false });
    const app = Fastify();
    metrics.instrumentHttp(app, 'runtime');
    app.get('/things/:id', async () => ({ ok: true }));
    for (const id of ['a', 'b']) assert.equal((await app.inject({ method: 'GET', url: `/things/${id}` })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/nothing' })).statusCode, 404);
    const started = metrics.rpcObserver.now();
    metrics.rpcObserver.settled('grid.execute', started, true);
    metrics.rpcObserver.settled('grid.execute', started, false);
    metrics.decision('app', false, 'ACCESS_NO_CREDENTIAL', 0.4);
    metrics.decision(undefined, true, 'ACCESS_ALLOWED', 0.2);
    const f = parsePrometheus(await metrics.text());
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { server: 'runtime', route: '/things/:id', method: 'GET', status: '200' }), 2, 'one series for every id');
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { route: 'unmatched', status: '404' }), 1);
    assert.equal(total(f, 'cohort_rpc_duration_seconds', { method: 'grid.execute', outcome: 'ok' }), 1);
    assert.equal(total(f, 'cohort_rpc_duration_seconds', { method: 'grid.execute', outcome: 'failed' }), 1);
    assert.equal(total(f, 'cohort_access_decisions_total', { api: 'app', decision: 'deny', reason: 'ACCESS_NO_CREDENTIAL' }), 1);
    assert.equal(total(f, 'cohort_access_decision_duration_seconds'), 2);
    await app.close();
  });

  it('keeps the requests of two servers apart, even on routes of the same pattern, method and status', async () => {
    const metrics = new NodeMetrics({ id: 'e', role: 'engine' }, { processMetrics: false });
    const runtime = Fastify();
    const manage = Fastify();
    metrics.instrumentHttp(runtime, 'runtime');
    metrics.instrumentHttp(manage, 'manage');
    for (const app of [runtime, manage]) app.get('/health/ready', async () => ({ ok: true }));
    assert.equal((await runtime.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
    for (let i = 0; i < 2; i++) assert.equal((await manage.inject({ method: 'GET', url: '/health/ready' })).statusCode, 200);
    assert.equal((await runtime.inject({ method: 'GET', url: '/nothing' })).statusCode, 404);
    assert.equal((await manage.inject({ method: 'POST', url: '/nothing' })).statusCode, 404);
    const f = parsePrometheus(await metrics.text());
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { server: 'runtime', route: '/health/ready', method: 'GET', status: '200' }), 1);
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { server: 'manage', route: '/health/ready', method: 'GET', status: '200' }), 2);
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { server: 'runtime', route: 'unmatched', status: '404' }), 1);
    assert.equal(total(f, 'cohort_http_request_duration_seconds', { server: 'manage', route: 'unmatched', method: 'POST', status: '404' }), 1);
    await Promise.all([runtime.close(), manage.close()]);
  });

  it('GET /metrics on the manage API: open without metrics_token, bearer with it; the other routes keep the management credential', async () => {
    const ini = (http: Record<string, string>) => configText({
      node: { id: 'n1', role: 'engine', data_dir: '/tmp/unused' },
      cluster: { id: 'c', bind: '127.0.0.1:1', secret_key: TEST_SECRET },
      http: { manage: '127.0.0.1:2', ...http },
    });
    const ops = { info: () => { throw new Error('unused'); }, deleteNode: () => { throw new Error('unused'); }, stopCluster: () => undefined, drain: async () => 0 };
    const metrics = new NodeMetrics({ id: 'n1', role: 'engine' }, { processMetrics: false });
    const open = Fastify();
    registerManageApi(open, buildNodeConfig(parseConfigText(ini({}), 'n1.ini'), 'n1.ini', {}), 'credential-credential', { ...ops, metrics });
    const scraped = await open.inject({ method: 'GET', url: '/metrics' });
    assert.equal(scraped.statusCode, 200);
    assert.match(scraped.headers['content-type'] as string, /^text\/plain/);
    assert.match(scraped.body, /cohort_access_decision_duration_seconds/);
    assert.equal((await open.inject({ method: 'GET', url: '/manage/v1/node' })).statusCode, 401, 'the management credential is still needed elsewhere');

    const token = 'a-metrics-token-of-some-length';
    const guarded = Fastify();
    registerManageApi(guarded, buildNodeConfig(parseConfigText(ini({ metrics_token: token }), 'n1.ini'), 'n1.ini', {}), 'credential-credential', { ...ops, metrics });
    assert.equal((await guarded.inject({ method: 'GET', url: '/metrics' })).statusCode, 401);
    assert.equal((await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer credential-credential' } })).statusCode, 401, 'the management credential is not the metrics token');
    assert.equal((await guarded.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${token}` } })).statusCode, 200);

    const off = Fastify();
    registerManageApi(off, buildNodeConfig(parseConfigText(ini({ metrics: 'false' }), 'n1.ini'), 'n1.ini', {}), 'credential-credential', ops);
    assert.equal((await off.inject({ method: 'GET', url: '/metrics', headers: { authorization: 'Bearer credential-credential' } })).statusCode, 404, 'no route with [http] metrics = false');
    await Promise.all([open.close(), guarded.close(), off.close()]);
  });

  it('[http] drain_seconds: 5 by default, 0.5 with the local profile, decimals allowed; metrics_token of at least 16 characters', () => {
    const build = (cluster: Record<string, string>, http: Record<string, string> = {}) => buildNodeConfig(parseConfigText(configText({
      node: { id: 'n1', role: 'engine' },
      cluster: { id: 'c', bind: '127.0.0.1:1', secret_key: TEST_SECRET, ...cluster },
      http,
    }), 'n1.ini'), 'n1.ini', {});
    assert.equal(build({}).http.drainMs, 5000);
    assert.equal(build({ profile: 'local' }).http.drainMs, 500);
    assert.equal(build({ profile: 'local' }, { drain_seconds: '2.5' }).http.drainMs, 2500);
    assert.equal(build({}, { drain_seconds: '0' }).http.drainMs, 0);
    assert.throws(() => build({}, { drain_seconds: 'soon' }), /drain_seconds.*not a number of seconds/);
    assert.throws(() => build({}, { drain_seconds: '301' }), /out of range/);
    assert.throws(() => build({}, { metrics_token: 'short' }), /metrics_token.*shorter than 16/);
    assert.equal(build({}).http.metricsToken, undefined);
    assert.equal(build({}).http.metrics, true);
  });

  it('the Grafana dashboard and the alert rules in docs/ use only names a node serves', async () => {
    const { metrics } = everyMetric();
    // The names the registry produces: every metric, with its histogram series.
    const served = new Set<string>();
    for (const m of metrics.registry.getMetricsAsArray()) {
      served.add(m.name);
      if (String(m.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) served.add(`${m.name}${suffix}`);
    }
    assert.ok(parsePrometheus(await metrics.text()).size > 40);
    const dashboard = JSON.parse(readFileSync(repoPath('docs/grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }>; __inputs: unknown[] };
    assert.ok(dashboard.panels.length >= 10 && dashboard.__inputs.length === 1, 'an importable dashboard with its data source input');
    const alerts = readFileSync(repoPath('docs/prometheus-alerts.yml'), 'utf8');
    const alertNames = [...alerts.matchAll(/^\s+- alert: (\S+)$/gm)].map((m) => m[1]);
    const exprs = [...alerts.matchAll(/^\s+expr: (.+)$/gm)].map((m) => m[1]!);
    assert.equal(exprs.length, alertNames.length, 'every alert has an expression');
    for (const required of ['CohortNodeInactive', 'CohortReplicaRed', 'CohortConfigurationOutOfDate', 'CohortRevocationListAtCap', 'CohortSchedulerRecovering']) assert.ok(alertNames.includes(required), required);
    const used = [...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)), ...exprs].flatMap((e) => [...e.matchAll(/\bcohort_[a-z0-9_]+/g)].map((m) => m[0]));
    assert.ok(used.length > 20);
    const unknown = [...new Set(used)].filter((name) => !served.has(name));
    assert.deepEqual(unknown, [], 'names used in docs/ that no node serves');
  });
});
