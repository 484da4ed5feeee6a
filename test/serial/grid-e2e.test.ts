/**
 * The replicated grid between five real engine processes (loopback, local profile, RF 3): any
 * engine answers for any session, revocations spread at once, a replay id is accepted once,
 * and no session is lost to a kill -9, a rolling restart, or a stop and start of everything.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterInfoOf, startNode, stateOf, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohort, suiteCleanups } from '../helpers/processes.js';

const API_KEY = 'grid-e2e-api-key-0123456789abcdef';

async function call(node: TestNode, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`http://${node.config.http!.runtime}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function ready(node: TestNode): Promise<boolean> {
  try {
    return (await fetch(`http://${node.config.http!.runtime}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

describe('replicated grid between real engines', () => {
  // Processes are killed by pid when the suite ends, even when a step fails.
  const suite = suiteCleanups(after);
  let dir: string;
  let seed: TestNode;
  const engines: TestNode[] = [];
  const sessions: string[] = [];

  /** Every session is readable through every running engine. */
  async function allSessionsEverywhere(label: string): Promise<void> {
    for (const e of engines.filter((x) => x.proc.child.exitCode === null && x.proc.child.signalCode === null)) {
      for (const id of sessions) {
        const r = await call(e, 'GET', `/runtime/v1/sessions/${id}`);
        assert.equal(r.status, 200, `${label}: ${e.id} reads ${id}: ${JSON.stringify(r.json)}`);
      }
    }
  }

  /** Restarts engine i with its own configuration file, and waits until it is ready. */
  async function restart(i: number): Promise<void> {
    const old = engines[i]!;
    const proc = runCohort(suite, ['start', '-c', old.file]);
    engines[i] = { ...old, proc };
    await proc.waitForOutput(new RegExp(`"msg":"engine ${old.id} started"`), 20_000);
    await waitUntil(() => ready(engines[i]!), (ok) => ok, 15_000, 50);
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-grid-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    seed = await startNode(suite, dir, 'console', { role: 'console' });
    const overrides = { http: { api_keys: API_KEY }, state: { replication_factor: '3' } };
    for (const id of ['engine-1', 'engine-2', 'engine-3', 'engine-4', 'engine-5']) engines.push(await startNode(suite, dir, id, { peers: seed.address, overrides }));
    for (const e of engines) await waitUntil(() => ready(e), (ok) => ok, 15_000, 50);
    await waitUntil(() => clusterInfoOf(seed.file), (i) => engines.every((e) => stateOf(i, e.id) === 'active'), 5000);
  });

  it('a session created on one engine is read on every engine', async () => {
    for (let i = 0; i < 40; i++) {
      const r = await call(engines[i % engines.length]!, 'POST', '/runtime/v1/sessions', { subject: `user-${i}`, attributes: { n: i } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      sessions.push(r.json.id as string);
    }
    await allSessionsEverywhere('created');
  });

  it('a revocation made on one engine is seen by every engine within 200 ms', async () => {
    const started = performance.now();
    assert.equal((await call(engines[1]!, 'POST', '/runtime/v1/revocations', { id: 'token-xyz' })).status, 204);
    for (const e of engines) {
      const seen = await waitUntil(() => call(e, 'GET', '/runtime/v1/revocations/token-xyz'), (r) => r.json.revoked === true, 2000, 5);
      assert.ok(performance.now() - started < 200 || seen.elapsedMs < 200, `${e.id} saw it after ${Math.round(performance.now() - started)} ms`);
    }
    assert.ok(performance.now() - started < 200, `all engines saw the revocation within ${Math.round(performance.now() - started)} ms`);
  });

  it('two engines posting the same replay id at once give exactly one 201', async () => {
    for (let round = 0; round < 5; round++) {
      const answers = await Promise.all([engines[0]!, engines[2]!].map((e) => call(e, 'POST', '/runtime/v1/replay', { id: `assertion-${round}`, ttlSeconds: 60 })));
      assert.deepEqual(answers.map((a) => a.status).sort(), [201, 409], JSON.stringify(answers));
    }
  });

  it('after kill -9 of an engine every session is still readable', async () => {
    const victim = engines[3]!;
    process.kill(victim.proc.pid, 'SIGKILL');
    await waitUntil(() => clusterInfoOf(engines[0]!.file), (i) => stateOf(i, victim.id) === 'inactive', 3000);
    await allSessionsEverywhere('after kill -9');
    await restart(3);
    // Revocation checks are answered from the engine's own copy: the returned engine knows the
    // revocation made before it started, the moment it says it is ready.
    assert.deepEqual((await call(engines[3]!, 'GET', '/runtime/v1/revocations/token-xyz')).json, { revoked: true });
    await allSessionsEverywhere('after the killed engine returned');
  });

  it('a rolling restart of every engine, one at a time, keeps every session', async () => {
    for (let i = 0; i < engines.length; i++) {
      engines[i]!.proc.child.kill('SIGTERM');
      assert.equal((await engines[i]!.proc.exited).code, 0);
      await restart(i);
      await allSessionsEverywhere(`rolling restart, ${engines[i]!.id} back`);
    }
  });

  it('stopping the whole cluster and starting it again keeps every session', async () => {
    const stop = runCohort(suite, ['cluster', 'stop', '-c', seed.file]);
    assert.equal((await stop.exited).code, 0, stop.stderr());
    await Promise.all([seed, ...engines].map((n) => n.proc.exited));
    const seedProc = runCohort(suite, ['start', '-c', seed.file]);
    seed = { ...seed, proc: seedProc };
    await seedProc.waitForOutput(/"msg":"console console started"/, 20_000);
    await Promise.all(engines.map((_, i) => restart(i)));
    await allSessionsEverywhere('after cluster stop and start');
  });
});
