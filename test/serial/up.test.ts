import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { manageRequest, manageTargetOfFile } from '../../src/cli/manage-client.js';
import { clusterInfoOf, stateOf, waitUntil } from '../helpers/cluster.js';
import { alive, runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';

describe('cohort up', () => {
  it('starts a console and N engines as separate processes, writes cluster.json, and stops them all on SIGTERM', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const printed = JSON.parse(up.stdout().trim().split('\n')[0]!) as ClusterFile;
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.deepEqual(printed, file);

    assert.deepEqual(file.nodes.map((n) => [n.id, n.role]), [['console', 'console'], ['engine-1', 'engine'], ['engine-2', 'engine']]);
    assert.equal(new Set(file.nodes.map((n) => n.pid)).size, 3, 'one process per node');
    assert.match(file.adminUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.equal(file.adminUser, 'admin');
    assert.ok(file.adminPassword.length >= 16 && file.apiKey.length >= 32);
    for (const n of file.nodes) {
      assert.ok(existsSync(n.configFile));
      assert.match(n.cluster, /^127\.0\.0\.1:\d+$/);
      assert.ok(n.role === 'engine' ? n.runtime : n.admin);
      const info = await manageRequest<{ id: string; pid: number }>(manageTargetOfFile(n.configFile), 'GET', '/manage/v1/node');
      assert.equal(info.id, n.id);
      assert.equal(info.pid, n.pid);
      if (n.runtime) {
        // The API key of cluster.json opens the engines' runtime API.
        const created = await fetch(`${n.runtime}/runtime/v1/sessions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' },
          body: JSON.stringify({ subject: 'tester' }),
        });
        assert.equal(created.status, 201, await created.text());
        assert.equal((await fetch(`${n.runtime}/health/ready`)).status, 200);
      }
    }

    up.child.kill('SIGTERM');
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });

  it('forms one cluster: 4 active nodes within 3 s of start, a killed engine inactive within 1.5 s, cluster stop ends every process with 0', async (t) => {
    const dir = upDir(t);
    const startedAt = performance.now();
    const up = runCohort(t, ['up', '--engines', '3', '--dir', dir, '--json']);
    // Membership is checked straight away, through each node's own configuration file (written
    // before the nodes start), not after cohort up's summary, which also waits for readiness.
    const ids = ['console', 'engine-1', 'engine-2', 'engine-3'];
    for (const id of ids) {
      const left = 3000 - (performance.now() - startedAt);
      assert.ok(left > 0, `3 s after start, ${id} had not yet been checked`);
      await waitUntil(
        () => clusterInfoOf(join(dir, `${id}.ini`)),
        (info) => info.nodes.filter((m) => m.state === 'active').map((m) => m.id).sort().join() === ids.join(),
        left,
      );
    }
    const tookMs = performance.now() - startedAt;
    assert.ok(tookMs < 3000, `every node listed 4 active nodes ${Math.round(tookMs)} ms after start`);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;

    // The CLI shows the same as the API, as JSON.
    const cli = await runCohortToEnd(t, ['cluster', 'info', '-c', file.nodes[2]!.configFile, '--json']);
    assert.equal(cli.code, 0, cli.stderr);
    assert.equal((JSON.parse(cli.stdout) as { nodes: unknown[] }).nodes.length, 4);

    const victim = file.nodes.find((n) => n.id === 'engine-2')!;
    process.kill(victim.pid, 'SIGKILL');
    const detected = await waitUntil(() => clusterInfoOf(file.nodes[1]!.configFile), (info) => stateOf(info, 'engine-2') === 'inactive', 5000, 10);
    assert.ok(detected.elapsedMs < 1500, `inactive after ${Math.round(detected.elapsedMs)} ms`);
    await up.waitForOutput(/engine-2 \(pid \d+\) exited with SIGKILL/, 5000);

    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', file.nodes[0]!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    const exit = await up.exited;
    assert.match(up.stderr(), /every node has stopped \(engine-2 not cleanly\)/);
    assert.equal(exit.code, 1, 'cohort up reports the node that died');
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });

  it('after cluster stop with every node healthy, every process including cohort up exits 0', async (t) => {
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '1', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 30_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    await waitUntil(() => clusterInfoOf(file.nodes[0]!.configFile), (info) => stateOf(info, 'engine-1') === 'active', 3000);
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', file.nodes[1]!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    assert.equal((await up.exited).code, 0, up.stderr());
    assert.match(up.stderr(), /every node has stopped\n/);
    const logs = file.nodes.map((n) => readFileSync(n.logFile, 'utf8'));
    for (const log of logs) assert.match(log, /cluster stop requested/);
  });
});
