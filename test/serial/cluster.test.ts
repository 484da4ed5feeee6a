/**
 * Real processes on loopback: five `cohort start` nodes (local profile) form a cluster, and
 * the cluster's rules and operations are exercised against it in order. The steps share the
 * cluster to keep the suite fast; each says what it expects of the state the previous left.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COHORT_VERSION, parseVersion } from '../../src/core/version.js';
import { clusterInfoOf, startNode, stateOf, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohortToEnd, suiteCleanups } from '../helpers/processes.js';
import { TEST_CLUSTER_ID } from '../helpers/node-config.js';

const EXIT_REFUSED = 3;

describe('a five-node cluster of real processes', () => {
  // Processes are killed by pid when the suite ends, even when a step fails.
  const suite = suiteCleanups(after);
  let dir: string;
  const nodes: TestNode[] = [];
  const byId = (id: string): TestNode => nodes.find((n) => n.id === id)!;
  const activeIds = async (file: string): Promise<string[]> =>
    (await clusterInfoOf(file)).nodes.filter((n) => n.state === 'active').map((n) => n.id!).sort();

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-cluster-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
  });

  it('joins: four nodes join through the first and every node lists all five active', async () => {
    const first = await startNode(suite, dir, 'console', { role: 'console' });
    nodes.push(first);
    const rest = await Promise.all(['engine-1', 'engine-2', 'engine-3', 'engine-4'].map((id) => startNode(suite, dir, id, { peers: first.address })));
    nodes.push(...rest);
    const all = nodes.map((n) => n.id).sort();
    for (const n of nodes) {
      const { value } = await waitUntil(() => activeIds(n.file), (ids) => ids.join() === all.join(), 5000);
      assert.deepEqual(value, all, `${n.id} sees everyone`);
    }
    const info = await clusterInfoOf(byId('engine-2').file);
    assert.equal(info.clusterId, TEST_CLUSTER_ID);
    assert.equal(info.mixedVersions, false);
    assert.deepEqual(info.versions, [COHORT_VERSION]);
    const consoleEntry = info.nodes.find((n) => n.id === 'console')!;
    assert.deepEqual({ ...consoleEntry, clockOffsetMs: 0 }, {
      id: 'console', address: first.address, role: 'console', version: COHORT_VERSION, state: 'active', group: null, clockOffsetMs: 0, self: false,
    });
    assert.equal(info.clockSkewWarning, false);
  });

  it('cohort cluster info prints the documented JSON and a table', async (t) => {
    const json = await runCohortToEnd(t, ['cluster', 'info', '-c', byId('engine-3').file, '--json']);
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { clusterId: string; nodes: Array<{ id: string; state: string }> };
    assert.equal(parsed.clusterId, TEST_CLUSTER_ID);
    assert.equal(parsed.nodes.filter((n) => n.state === 'active').length, 5);
    const table = await runCohortToEnd(t, ['cluster', 'info', '-c', byId('engine-3').file]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /engine-3 \*\s+engine\s+active/);
  });

  const refusals: Array<{ name: string; code: string; options: Parameters<typeof startNode>[3] }> = [
    { name: 'a wrong secret', code: 'TRANSPORT_REFUSED_SECRET', options: { overrides: { cluster: { secret_key: 'not-the-cluster-secret-at-all' } } } },
    { name: 'a wrong cluster id', code: 'TRANSPORT_REFUSED_CLUSTER_ID', options: { overrides: { cluster: { id: 'another-cluster' } } } },
    { name: 'a different mode', code: 'CLUSTER_JOIN_MODE_MISMATCH', options: { overrides: { node: { mode: 'inline' } } } },
    { name: 'another minor version', code: 'CLUSTER_JOIN_VERSION_MISMATCH', options: { env: { COHORT_VERSION_OVERRIDE: bumpMinor(COHORT_VERSION) } } },
  ];
  for (const r of refusals) {
    it(`refuses a node with ${r.name}: it exits ${EXIT_REFUSED} naming ${r.code}; the cluster logs one line and is undisturbed`, async () => {
      const seed = byId('console');
      const logBefore = seed.proc.stdout().length;
      const intruder = await startNode(suite, dir, `intruder-${r.code.toLowerCase().replace(/_/g, '-')}`, { ...r.options, peers: seed.address, wait: false });
      const exit = await intruder.proc.exited;
      assert.equal(exit.code, EXIT_REFUSED, intruder.proc.stderr());
      assert.match(intruder.proc.stderr(), new RegExp(r.code));
      // The handshake refusals are logged by the transport, the join refusals by membership.
      await waitUntil(async () => seed.proc.stdout().slice(logBefore), (log) => /refused/.test(log), 2000);
      const refusedLines = seed.proc.stdout().slice(logBefore).split('\n').filter((l) => /refused/.test(l));
      assert.equal(refusedLines.length, 1, refusedLines.join('\n'));
      assert.deepEqual(await activeIds(seed.file), ['console', 'engine-1', 'engine-2', 'engine-3', 'engine-4']);
    });
  }

  it('refuses a second node with an id an active member holds', async () => {
    const seed = byId('console');
    const duplicate = await startNode(suite, dir, 'engine-dup', { peers: seed.address, wait: false, overrides: { node: { id: 'engine-2', data_dir: './engine-2-dup' } } });
    const exit = await duplicate.proc.exited;
    assert.equal(exit.code, EXIT_REFUSED, duplicate.proc.stderr());
    assert.match(duplicate.proc.stderr(), /CLUSTER_JOIN_DUPLICATE_NODE_ID/);
    const info = await clusterInfoOf(seed.file);
    assert.equal(info.nodes.find((n) => n.id === 'engine-2')!.address, byId('engine-2').address, 'the member keeps its address');
  });

  it('accepts another maintenance version, reports mixedVersions, and lists a node stopped with SIGTERM as left', async () => {
    const seed = byId('console');
    const patched = bumpPatch(COHORT_VERSION);
    const newer = await startNode(suite, dir, 'engine-5', { peers: seed.address, env: { COHORT_VERSION_OVERRIDE: patched } });
    const { value } = await waitUntil(() => clusterInfoOf(byId('engine-1').file), (i) => stateOf(i, 'engine-5') === 'active', 3000);
    assert.equal(value.mixedVersions, true);
    assert.deepEqual(value.versions, [COHORT_VERSION, patched].sort());

    newer.proc.child.kill('SIGTERM');
    assert.equal((await newer.proc.exited).code, 0);
    const left = await waitUntil(() => clusterInfoOf(byId('engine-1').file), (i) => stateOf(i, 'engine-5') === 'left', 2000);
    assert.equal(left.value.mixedVersions, false, 'a node that left no longer counts');
  });

  it('a paused process (SIGSTOP) is suspected and declared inactive; after SIGCONT it refutes and is active again', async (t) => {
    const paused = byId('engine-4');
    const observer = byId('engine-1');
    process.kill(paused.proc.pid, 'SIGSTOP');
    let resumed = false;
    suite.after(() => {
      if (!resumed) process.kill(paused.proc.pid, 'SIGCONT');
    });
    const down = await waitUntil(() => clusterInfoOf(observer.file), (i) => stateOf(i, 'engine-4') === 'inactive', 15_000);
    process.kill(paused.proc.pid, 'SIGCONT');
    resumed = true;
    // How fast is bench:membership's business (target: 2 s on the local profile); printed here.
    t.diagnostic(`a silent node declared inactive after ${Math.round(down.elapsedMs)} ms (local profile)`);
    const back = await waitUntil(() => clusterInfoOf(observer.file), (i) => stateOf(i, 'engine-4') === 'active', 5000);
    // Every node agrees again.
    for (const n of nodes.filter((x) => x.proc.child.exitCode === null)) {
      await waitUntil(() => activeIds(n.file), (ids) => ids.includes('engine-4'), 5000);
    }
    assert.equal(stateOf(back.value, 'engine-4'), 'active');
  });

  it('a killed process (kill -9) is declared inactive by every node (the time printed)', async (t) => {
    const victim = byId('engine-3');
    process.kill(victim.proc.pid, 'SIGKILL');
    const observers = nodes.filter((n) => n.id !== 'engine-3' && n.proc.child.exitCode === null && n.proc.child.signalCode === null);
    const results = await Promise.all(observers.map((o) => waitUntil(() => clusterInfoOf(o.file), (i) => stateOf(i, 'engine-3') === 'inactive', 15_000, 10)));
    // bench:membership measures detection against its target (1.5 s p99); printed here.
    t.diagnostic(`kill -9 seen as inactive after ${results.map((r, i) => `${observers[i]!.id} ${Math.round(r.elapsedMs)} ms`).join(', ')}`);
  });

  it('cohort cluster delete-node refuses an active node and removes an inactive one from every node', async (t) => {
    const via = byId('engine-1');
    const refused = await runCohortToEnd(t, ['cluster', 'delete-node', byId('engine-2').address, '-c', via.file]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /CLUSTER_NODE_ACTIVE/);
    assert.equal(stateOf(await clusterInfoOf(via.file), 'engine-2'), 'active');

    const unknown = await runCohortToEnd(t, ['cluster', 'delete-node', '127.0.0.1:1', '-c', via.file]);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /CLUSTER_NODE_UNKNOWN/);

    const deleted = await runCohortToEnd(t, ['cluster', 'delete-node', byId('engine-3').address, '-c', via.file]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.match(deleted.stdout, /deleted engine-3/);
    for (const n of ['console', 'engine-1', 'engine-2', 'engine-4'].map(byId)) {
      await waitUntil(() => clusterInfoOf(n.file), (i) => stateOf(i, 'engine-3') === undefined, 3000);
    }
  });

  it('cohort cluster stop stops every node with exit status 0', async (t) => {
    const running = ['console', 'engine-1', 'engine-2', 'engine-4'].map(byId);
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', byId('engine-2').file]);
    assert.equal(stop.code, 0, stop.stderr);
    const exits = await Promise.all(running.map((n) => n.proc.exited));
    assert.deepEqual(exits.map((e) => e.code), [0, 0, 0, 0], running.map((n) => n.proc.stderr()).join('\n'));
  });
});

function bumpMinor(version: string): string {
  const v = parseVersion(version)!;
  return `${v.major}.${v.minor + 1}.0`;
}

function bumpPatch(version: string): string {
  const v = parseVersion(version)!;
  return `${v.major}.${v.minor}.${v.patch + 1}`;
}
