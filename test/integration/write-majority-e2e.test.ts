/**
 * The write majority with real processes on `cohort up` (a console and 2 engines): one engine
 * crashing does not stop the other's writes (the console is a witness), an engine cut off from
 * the console and the other engine refuses writes and says so, and without a console witness
 * `cohort cluster delete-node` of the dead engine restores writes at once.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { clusterInfoOf, stateOf, waitUntil } from '../helpers/cluster.js';
import { alive, runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';

type Node = ClusterFile['nodes'][number];

async function startUp(t: Parameters<typeof upDir>[0]): Promise<{ dir: string; file: ClusterFile; node: (id: string) => Node }> {
  const dir = upDir(t);
  const up = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json']);
  await up.waitForOutput(/"clusterId"/, 60_000);
  const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
  return { dir, file, node: (id) => file.nodes.find((n) => n.id === id)! };
}

async function createSession(file: ClusterFile, engine: Node, subject: string): Promise<{ status: number; body: Record<string, unknown> }> {
  const r = await fetch(`${engine.runtime}/runtime/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ subject }),
    signal: AbortSignal.timeout(5000),
  });
  return { status: r.status, body: (await r.json()) as Record<string, unknown> };
}

async function ready(engine: Node): Promise<{ status: number; body: { writes?: { accepted: boolean; reason?: string } } }> {
  const r = await fetch(`${engine.runtime}/health/ready`, { signal: AbortSignal.timeout(5000) });
  return { status: r.status, body: (await r.json()) as { writes?: { accepted: boolean; reason?: string } } };
}

async function killAndWait(pid: number, signal: NodeJS.Signals): Promise<void> {
  process.kill(pid, signal);
  await waitUntil(async () => alive(pid), (a) => !a, 30_000, 20);
}

describe('write majority with real processes', () => {
  it('after kill -9 of one engine, the other accepts writes again (the console is a witness)', async (t) => {
    const { file, node, dir } = await startUp(t);
    const e1 = node('engine-1');
    assert.equal((await createSession(file, e1, 'before')).status, 201);
    assert.deepEqual((await ready(e1)).body.writes, { accepted: true });
    const killedAt = performance.now();
    process.kill(node('engine-2').pid, 'SIGKILL');
    const { elapsedMs } = await waitUntil(() => createSession(file, e1, 'after'), (r) => r.status === 201, 20_000, 20);
    const sinceKill = performance.now() - killedAt;
    console.log(`write-majority e2e: writes on engine-1 succeed again ${Math.round(sinceKill)} ms after kill -9 of engine-2 (first retry loop ${Math.round(elapsedMs)} ms)`);
    assert.deepEqual((await ready(e1)).body.writes, { accepted: true });
    // A revocation is a write too.
    const s = await createSession(file, e1, 'to-revoke');
    const revoked = await fetch(`${e1.runtime}/runtime/v1/sessions/${String(s.body.id)}`, { method: 'DELETE', headers: { authorization: `Bearer ${file.apiKey}` } });
    assert.equal(revoked.status, 204);
    const info = await clusterInfoOf(join(dir, 'engine-1.ini'));
    assert.equal(info.nodes.find((n) => n.id === 'engine-1')?.writes, 'accepted');
  });

  it('an engine cut off from the console and the other engine refuses writes, says so in /health/ready and cluster info, and accepts again once they are back', async (t) => {
    const { file, node, dir } = await startUp(t);
    const e1 = node('engine-1');
    // SIGSTOP: the console and engine-2 are silent; engine-1 sees neither (a host cut off).
    process.kill(node('console').pid, 'SIGSTOP');
    process.kill(node('engine-2').pid, 'SIGSTOP');
    t.after(() => {
      for (const id of ['console', 'engine-2']) if (alive(node(id).pid)) process.kill(node(id).pid, 'SIGCONT');
    });
    await waitUntil(() => ready(e1), (r) => r.body.writes?.accepted === false, 30_000, 50);
    const refused = await createSession(file, e1, 'minority');
    assert.equal(refused.status, 503);
    assert.equal((refused.body.error as { code: string }).code, 'STATE_UNAVAILABLE');
    assert.match((await ready(e1)).body.writes?.reason ?? '', /sees 1 of 3 voters/);
    const info = await clusterInfoOf(join(dir, 'engine-1.ini'));
    assert.equal(info.nodes.find((n) => n.id === 'engine-1')?.writes, 'refused');
    const table = await runCohortToEnd(t, ['cluster', 'info', '-c', join(dir, 'engine-1.ini')]);
    assert.match(table.stdout, /engine-1 refuses writes/);
    process.kill(node('console').pid, 'SIGCONT');
    process.kill(node('engine-2').pid, 'SIGCONT');
    await waitUntil(() => createSession(file, e1, 'healed'), (r) => r.status === 201, 30_000, 50);
  });

  it('without a console witness, delete-node of the dead engine restores writes (the time printed)', async (t) => {
    const { file, node, dir } = await startUp(t);
    const e1 = node('engine-1');
    // The console leaves gracefully: a member that left is no witness.
    await killAndWait(node('console').pid, 'SIGTERM');
    await waitUntil(() => clusterInfoOf(join(dir, 'engine-1.ini')), (i) => stateOf(i, 'console') === 'left', 20_000);
    assert.equal((await createSession(file, e1, 'two-engines')).status, 201);
    process.kill(node('engine-2').pid, 'SIGKILL');
    await waitUntil(() => clusterInfoOf(join(dir, 'engine-1.ini')), (i) => stateOf(i, 'engine-2') === 'inactive', 20_000);
    await waitUntil(() => createSession(file, e1, 'alone'), (r) => r.status === 503, 20_000, 50);
    const deleted = await runCohortToEnd(t, ['cluster', 'delete-node', node('engine-2').cluster, '-c', join(dir, 'engine-1.ini')]);
    assert.equal(deleted.code, 0, deleted.stderr);
    const deletedAt = performance.now();
    const { value } = await waitUntil(() => createSession(file, e1, 'after-delete'), (r) => r.status === 201, 10_000, 20);
    const tookMs = performance.now() - deletedAt;
    console.log(`write-majority e2e: writes accepted ${Math.round(tookMs)} ms after delete-node`);
    assert.equal(value.status, 201);
  });
});
