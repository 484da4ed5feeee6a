/**
 * `GET /metrics` of a console and three engines started by `cohort up`, read with a
 * Prometheus text-format parser, and the named metrics moving when their cause happens:
 * a session write moves grid records; an access decision moves the decisions by reason; a
 * configuration save moves the configuration version on every engine (and its apply delay);
 * a `kill -9` of an engine moves members by state on every node still running.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { waitUntil } from '../helpers/cluster.js';
import { scrape, total, type MetricFamily } from '../helpers/prometheus.js';
import { runCohort, upDir } from '../helpers/processes.js';

/** Names every node serves, whatever its role. */
const EVERY_NODE = [
  'cohort_cluster_members', 'cohort_membership_suspicions_total', 'cohort_membership_refutations_total', 'cohort_membership_probe_rtt_seconds',
  'cohort_transport_bytes_total', 'cohort_rpc_calls_total', 'cohort_config_version', 'cohort_http_request_duration_seconds',
  'cohort_process_cpu_seconds_total', 'cohort_nodejs_eventloop_lag_seconds', 'cohort_scheduler_runs_total',
];
const ENGINES_ONLY = ['cohort_rpc_duration_seconds', 'cohort_grid_records', 'cohort_grid_partitions', 'cohort_revocations', 'cohort_access_decisions_total', 'cohort_access_decision_duration_seconds', 'cohort_config_apply_delay_seconds', 'cohort_engine_ready'];
const CONSOLE_ONLY = ['cohort_node_health', 'cohort_node_config_replication', 'cohort_scheduler_nodes'];

describe('metrics of a local cluster', () => {
  it('every node serves them; records, decisions, configuration versions and member states move with their causes', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '3', '--dir', dir, '--json', '--start-timeout', '60']);
    await up.waitForOutput(/"clusterId"/, 90_000);
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const engines = cluster.nodes.filter((n) => n.role === 'engine');
    const consoleNode = cluster.nodes.find((n) => n.role === 'console')!;
    const metricsOf = (n: { manage: string }): Promise<Map<string, MetricFamily>> => scrape(`${n.manage}/metrics`);

    // Every node, parsed by a Prometheus parser; every name is Cohort's.
    for (const n of cluster.nodes) {
      const families = await metricsOf(n);
      for (const name of families.keys()) assert.match(name, /^cohort_/, `${n.id}: ${name}`);
      const expected = [...EVERY_NODE, ...(n.role === 'engine' ? ENGINES_ONLY : CONSOLE_ONLY)];
      for (const name of expected) assert.ok(families.has(name), `${n.id} serves ${name}`);
      assert.equal(total(families, 'cohort_cluster_members', { state: 'active' }), 4, `${n.id} sees 4 active members`);
    }

    // Sessions written through engine 1: the engines' records (primary and backup copies) grow.
    const records = async (): Promise<number> => {
      let sum = 0;
      for (const e of engines) sum += total(await metricsOf(e), 'cohort_grid_records');
      return sum;
    };
    const recordsBefore = await records();
    const runtimeHeaders = { authorization: `Bearer ${cluster.apiKey}`, 'content-type': 'application/json' };
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`${engines[0]!.runtime}/runtime/v1/sessions`, { method: 'POST', headers: runtimeHeaders, body: JSON.stringify({ subject: `metrics-${i}` }) });
      assert.equal(r.status, 201);
    }
    const recordsAfter = await records();
    t.diagnostic(`grid records over the engines: ${recordsBefore} before, ${recordsAfter} after 5 sessions`);
    assert.ok(recordsAfter >= recordsBefore + 5 * 3, `every session is held by its three replicas (${recordsBefore} -> ${recordsAfter})`);
    const partitions = total(await metricsOf(engines[0]!), 'cohort_grid_partitions', { placement: 'primary' });
    assert.ok(partitions > 0, 'engine 1 is the primary of some partitions');

    // An access decision (no API matches): counted by reason on the engine that made it.
    const decisionsBefore = total(await metricsOf(engines[1]!), 'cohort_access_decisions_total', { reason: 'ACCESS_NO_API' });
    const decided = await fetch(`${engines[1]!.runtime}/runtime/v1/decide`, { method: 'POST', headers: { 'x-cohort-key': cluster.apiKey, 'content-type': 'application/json' }, body: JSON.stringify({ method: 'GET', url: '/nowhere', sourceIp: '192.0.2.1', headers: {} }) });
    assert.equal(decided.status, 200);
    const afterDecision = await metricsOf(engines[1]!);
    assert.equal(total(afterDecision, 'cohort_access_decisions_total', { reason: 'ACCESS_NO_API', decision: 'deny' }), decisionsBefore + 1);
    assert.ok(total(afterDecision, 'cohort_http_request_duration_seconds', { server: 'runtime', route: '/runtime/v1/decide', status: '200' }) >= 1, 'the request is timed by route and status');

    // A configuration save: the version moves on the console and on every engine.
    const login = await fetch(`${cluster.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: cluster.adminUser, password: cluster.adminPassword }) });
    const token = ((await login.json()) as { token: string }).token;
    const saved = await fetch(`${cluster.adminUrl}/admin/v1/config/runtime`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ rateLimits: { metrics: { capacity: 5, refillPerSecond: 1 } } }) });
    assert.equal(saved.status, 200, await saved.text());
    const consoleVersion = total(await metricsOf(consoleNode), 'cohort_config_version');
    assert.ok(consoleVersion >= 1, `the console holds version ${consoleVersion}`);
    for (const e of engines) {
      const { value } = await waitUntil(() => metricsOf(e), (f) => total(f, 'cohort_config_version') === consoleVersion, 15_000, 100);
      assert.ok(total(value, 'cohort_config_apply_delay_seconds') >= 1, `${e.id} measured the apply delay`);
    }
    await waitUntil(() => metricsOf(consoleNode), (f) => total(f, 'cohort_node_config_replication', { status: 'in-sync' }) === 3, 15_000, 100);

    // kill -9 of engine 3: every node still running counts it inactive.
    process.kill(engines[2]!.pid, 'SIGKILL');
    for (const n of [consoleNode, engines[0]!, engines[1]!]) {
      const { value, elapsedMs } = await waitUntil(() => metricsOf(n), (f) => total(f, 'cohort_cluster_members', { state: 'inactive' }) === 1, 15_000, 50);
      t.diagnostic(`${n.id}: members by state after the kill: active ${total(value, 'cohort_cluster_members', { state: 'active' })}, inactive 1 (seen after ${elapsedMs.toFixed(0)} ms)`);
      assert.equal(total(value, 'cohort_cluster_members', { state: 'active' }), 3);
    }
  });
});
