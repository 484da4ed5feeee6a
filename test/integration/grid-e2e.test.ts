/**
 * The replicated grid between real engine processes (loopback, local profile, RF 3), on two
 * clusters: five engines started one by one, and `cohort up --engines 3`. Any engine answers
 * for any session, revocations spread at once, a replay id is accepted once, and no session
 * is lost to a kill -9, a rolling restart, or a stop and start of everything.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { clusterInfoOf, startNode, stateOf, waitUntil } from '../helpers/cluster.js';
import { alive, runCohort, suiteCleanups, upDir, type CohortProcess } from '../helpers/processes.js';

const API_KEY = 'grid-e2e-api-key-0123456789abcdef';

/** An engine of the cluster under test: its configuration file, runtime address, and process. */
interface Engine {
  id: string;
  file: string;
  runtime: string;
  /** Our child when this test started it; only a pid when `cohort up` did. */
  proc?: CohortProcess;
  pid: number;
}

interface GridCluster {
  consoleFile: string;
  apiKey: string;
  engines: Engine[];
  /** Restarts the console after a full stop (it is `cohort up`'s child or ours). */
  consoleProc?: CohortProcess;
}

/** Sends `signal` to the engine and resolves once its process is gone. */
async function stopEngine(e: Engine, signal: NodeJS.Signals): Promise<void> {
  process.kill(e.pid, signal);
  if (e.proc) await e.proc.exited;
  else await waitUntil(async () => alive(e.pid), (a) => !a, 10_000, 20);
}

async function call(cluster: GridCluster, node: Engine, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`http://${node.runtime}${path}`, {
    method,
    headers: { authorization: `Bearer ${cluster.apiKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function ready(node: Engine): Promise<boolean> {
  try {
    return (await fetch(`http://${node.runtime}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

gridSuite('replicated grid between five engines started one by one', async (suite) => {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-grid-'));
  suite.after(() => rmSync(dir, { recursive: true, force: true }));
  const seed = await startNode(suite, dir, 'console', { role: 'console' });
  const overrides = { http: { api_keys: API_KEY }, state: { replication_factor: '3' } };
  const engines: Engine[] = [];
  for (const id of ['engine-1', 'engine-2', 'engine-3', 'engine-4', 'engine-5']) {
    const n = await startNode(suite, dir, id, { peers: seed.address, overrides });
    engines.push({ id, file: n.file, runtime: n.config.http!.runtime!, proc: n.proc, pid: n.proc.pid });
  }
  return { consoleFile: seed.file, consoleProc: seed.proc, apiKey: API_KEY, engines };
});

gridSuite('replicated grid on cohort up --engines 3', async (suite) => {
  const dir = upDir(suite);
  const up = runCohort(suite, ['up', '--engines', '3', '--dir', dir, '--json']);
  await up.waitForOutput(/"apiKey"/, 60_000);
  const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
  const consoleNode = file.nodes.find((n) => n.role === 'console')!;
  const engines = file.nodes
    .filter((n) => n.role === 'engine')
    .map((n) => ({ id: n.id, file: n.configFile, runtime: n.runtime!.replace(/^http:\/\//, ''), pid: n.pid }));
  return { consoleFile: consoleNode.configFile, apiKey: file.apiKey, engines };
});

function gridSuite(title: string, start: (suite: ReturnType<typeof suiteCleanups>) => Promise<GridCluster>): void {
  describe(title, () => {
    // Processes are killed by pid when the suite ends, even when a step fails.
    const suite = suiteCleanups(after);
    let cluster: GridCluster;
    let engines: Engine[];
    const sessions: string[] = [];
    const callOn = (e: Engine, method: string, path: string, body?: unknown): ReturnType<typeof call> => call(cluster, e, method, path, body);

    /** Every session is readable through every running engine. */
    /**
     * Every engine reads every session. While partitions move (an engine just back), a read may
     * be refused for a moment with 503 STATE_PLACEMENT_CHANGING, which tells the client to try
     * again: it is tried again (10 s at most, the refusals counted in the output); any other
     * answer, a 404 above all, fails at once.
     */
    async function allSessionsEverywhere(label: string): Promise<void> {
      let moving = 0;
      for (const e of engines.filter((x) => alive(x.pid))) {
        for (const id of sessions) {
          const deadline = performance.now() + 10_000;
          let r = await callOn(e, 'GET', `/runtime/v1/sessions/${id}`);
          while (r.status === 503 && (r.json.error as { code?: string } | undefined)?.code === 'STATE_PLACEMENT_CHANGING' && performance.now() < deadline) {
            moving++;
            await new Promise((resolve) => setTimeout(resolve, 50));
            r = await callOn(e, 'GET', `/runtime/v1/sessions/${id}`);
          }
          assert.equal(r.status, 200, `${label}: ${e.id} reads ${id}: ${JSON.stringify(r.json)}`);
        }
      }
      if (moving > 0) console.log(`grid e2e, ${label}: ${moving} reads answered 503 STATE_PLACEMENT_CHANGING and tried again`);
    }

    /** Restarts engine i with its own configuration file, and waits until it is ready. */
    async function restart(i: number): Promise<void> {
      const old = engines[i]!;
      const proc = runCohort(suite, ['start', '-c', old.file]);
      engines[i] = { ...old, proc, pid: proc.pid };
      await proc.waitForOutput(new RegExp(`"msg":"engine ${old.id} started"`), 20_000);
      await waitUntil(() => ready(engines[i]!), (ok) => ok, 15_000, 50);
    }

    before(async () => {
      cluster = await start(suite);
      engines = cluster.engines;
      for (const e of engines) await waitUntil(() => ready(e), (ok) => ok, 15_000, 50);
      await waitUntil(() => clusterInfoOf(cluster.consoleFile), (i) => engines.every((e) => stateOf(i, e.id) === 'active'), 5000);
    });
    it('a session created on one engine is read on every engine', async () => {
      for (let i = 0; i < 40; i++) {
        const r = await callOn(engines[i % engines.length]!, 'POST', '/runtime/v1/sessions', { subject: `user-${i}`, attributes: { n: i } });
        assert.equal(r.status, 201, JSON.stringify(r.json));
        sessions.push(r.json.id as string);
      }
      await allSessionsEverywhere('created');
    });

    it('a revocation made on one engine is seen by every engine (the time printed)', async (t) => {
      const started = performance.now();
      assert.equal((await callOn(engines[1]!, 'POST', '/runtime/v1/revocations', { id: 'token-xyz' })).status, 204);
      for (const e of engines) {
        const seen = await waitUntil(() => callOn(e, 'GET', '/runtime/v1/revocations/token-xyz'), (r) => r.json.revoked === true, 10_000, 5);
        assert.equal(seen.value.json.revoked, true);
      }
      // bench:access measures revocation to denial on every engine against its target (200 ms).
      t.diagnostic(`every engine saw the revocation ${Math.round(performance.now() - started)} ms after it was sent`);
    });

    it('two engines posting the same replay id at once give exactly one 201', async () => {
      for (let round = 0; round < 5; round++) {
        const answers = await Promise.all([engines[0]!, engines[2]!].map((e) => callOn(e, 'POST', '/runtime/v1/replay', { id: `assertion-${round}`, ttlSeconds: 60 })));
        assert.deepEqual(answers.map((a) => a.status).sort(), [201, 409], JSON.stringify(answers));
      }
    });

    it('after kill -9 of an engine every session is still readable', async () => {
      const victimIndex = engines.length - 1;
      const victim = engines[victimIndex]!;
      await stopEngine(victim, 'SIGKILL');
      await waitUntil(() => clusterInfoOf(engines[0]!.file), (i) => stateOf(i, victim.id) === 'inactive', 3000);
      await allSessionsEverywhere('after kill -9');
      await restart(victimIndex);
      // Revocation checks are answered from the engine's own copy: the returned engine knows the
      // revocation made before it started, the moment it says it is ready.
      assert.deepEqual((await callOn(engines[victimIndex]!, 'GET', '/runtime/v1/revocations/token-xyz')).json, { revoked: true });
      await allSessionsEverywhere('after the killed engine returned');
    });

    it('a rolling restart of every engine, one at a time, keeps every session', async () => {
      for (let i = 0; i < engines.length; i++) {
        const proc = engines[i]!.proc;
        await stopEngine(engines[i]!, 'SIGTERM');
        if (proc) assert.equal((await proc.exited).code, 0);
        await restart(i);
        await allSessionsEverywhere(`rolling restart, ${engines[i]!.id} back`);
      }
    });

    it('stopping the whole cluster and starting it again keeps every session', async () => {
      const stop = runCohort(suite, ['cluster', 'stop', '-c', cluster.consoleFile]);
      assert.equal((await stop.exited).code, 0, stop.stderr());
      await Promise.all(engines.map((e) => waitUntil(async () => alive(e.pid), (a) => !a, 15_000, 20)));
      const consoleProc = runCohort(suite, ['start', '-c', cluster.consoleFile]);
      await consoleProc.waitForOutput(/"msg":"console \S+ started"/, 20_000);
      await Promise.all(engines.map((_, i) => restart(i)));
      await allSessionsEverywhere('after cluster stop and start');
    });
  });
}
