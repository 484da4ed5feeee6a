/**
 * Grid state between real engine processes (loopback, RF 3): the saved state survives a
 * start that is killed before it finishes, and a partition of about 27 MB (30 sessions of
 * 900 KB of one subject, over the 16 MiB frame limit; `npm run chaos:real` stores 115, about
 * 104 MB; COHORT_LARGE_PARTITION_SESSIONS sets the count) moves to an engine that joins or
 * returns, and survives a full stop and start.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterInfoOf, startNode, stateOf, waitUntil } from '../helpers/cluster.js';
import { alive, runCohort, suiteCleanups, type CohortProcess } from '../helpers/processes.js';

const API_KEY = 'grid-durability-api-key-0123456789';
const BLOB = 'x'.repeat(900_000);
const LARGE_SESSIONS = Number(process.env.COHORT_LARGE_PARTITION_SESSIONS ?? 30);
const PARTITION_MB = Math.round((LARGE_SESSIONS * BLOB.length) / 1e6);

interface Engine {
  id: string;
  file: string;
  runtime: string;
  proc: CohortProcess;
}

async function call(e: Engine, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  const r = await fetch(`http://${e.runtime}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function ready(e: Engine): Promise<boolean> {
  try {
    return (await fetch(`http://${e.runtime}/health/ready`)).status === 200;
  } catch {
    return false;
  }
}

/** A console and `count` engines started one by one; more engines can be added with `add`. */
function gridCluster(suite: ReturnType<typeof suiteCleanups>, dir: string) {
  // Sessions of 900 KB forwarded to their primary and replicated twice: on a machine busy with
  // other tests one such call may outlast the 500 ms default rpc_timeout (it did once), so 3 s.
  const overrides = { http: { api_keys: API_KEY }, state: { replication_factor: '3', max_session_attributes_bytes: '1000000', rpc_timeout: '3000' } };
  let consoleAddress = '';
  let consoleFile = '';
  const engines: Engine[] = [];
  return {
    engines,
    get consoleFile() {
      return consoleFile;
    },
    async start(count: number): Promise<void> {
      const seed = await startNode(suite, dir, 'console', { role: 'console' });
      consoleAddress = seed.address;
      consoleFile = seed.file;
      for (let i = 0; i < count; i++) await this.add();
    },
    async add(): Promise<Engine> {
      const id = `engine-${engines.length + 1}`;
      const n = await startNode(suite, dir, id, { peers: consoleAddress, overrides });
      const e = { id, file: n.file, runtime: n.config.http!.runtime!, proc: n.proc };
      engines.push(e);
      return e;
    },
    /** Starts engine i again with its own configuration (its data directory is kept). */
    restart(i: number): Engine {
      const old = engines[i]!;
      engines[i] = { ...old, proc: runCohort(suite, ['start', '-c', old.file]) };
      return engines[i]!;
    },
  };
}

async function untilReady(e: Engine, timeoutMs = 60_000): Promise<void> {
  await waitUntil(() => ready(e), (ok) => ok, timeoutMs, 100);
}

async function kill(e: Engine, signal: NodeJS.Signals): Promise<void> {
  if (alive(e.proc.pid)) process.kill(e.proc.pid, signal);
  const { code } = await e.proc.exited;
  if (signal === 'SIGTERM') assert.equal(code, 0, `${e.id} stopped gracefully: ${e.proc.stderr().slice(-2000)}`);
}

describe('saved grid state across a start that does not finish', () => {
  const suite = suiteCleanups(after);
  const dir = mkdtempSync(join(tmpdir(), 'cohort-durable-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = gridCluster(suite, dir);
  const sessions: string[] = [];

  before(async () => {
    await cluster.start(3);
    for (const e of cluster.engines) await untilReady(e);
  });

  /** Every session, revocation, replay id and lock-out made below, checked through engine `e`. */
  async function everythingOn(e: Engine, label: string): Promise<void> {
    for (const id of sessions) assert.equal((await call(e, 'GET', `/runtime/v1/sessions/${id}`)).status, 200, `${label}: ${e.id} reads session ${id}`);
    for (let i = 0; i < 10; i++) assert.deepEqual((await call(e, 'GET', `/runtime/v1/revocations/token-${i}`)).json, { revoked: true }, `${label}: ${e.id} knows revocation ${i}`);
    for (let i = 0; i < 10; i++) {
      const again = await call(e, 'POST', '/runtime/v1/replay', { id: `assertion-${i}`, ttlSeconds: 3600 });
      assert.equal(again.status, 409, `${label}: ${e.id} refuses replay id ${i}: ${JSON.stringify(again.json)}`);
    }
    const lock = await call(e, 'GET', '/runtime/v1/lockout/alice');
    assert.equal(lock.json.locked, true, `${label}: ${e.id} keeps alice locked: ${JSON.stringify(lock.json)}`);
  }

  it('keeps every session, revocation, replay id and lock-out when every engine is killed while starting, after it loaded its saved state', async () => {
    const [e1] = cluster.engines as [Engine];
    for (let i = 0; i < 30; i++) {
      const r = await call(cluster.engines[i % 3]!, 'POST', '/runtime/v1/sessions', { subject: `user-${i}`, attributes: { n: i } });
      assert.equal(r.status, 201, JSON.stringify(r.json));
      sessions.push(r.json.id as string);
    }
    for (let i = 0; i < 10; i++) assert.equal((await call(e1, 'POST', '/runtime/v1/revocations', { id: `token-${i}` })).status, 204);
    for (let i = 0; i < 10; i++) assert.equal((await call(e1, 'POST', '/runtime/v1/replay', { id: `assertion-${i}`, ttlSeconds: 3600 })).status, 201);
    await waitUntil(() => call(e1, 'POST', '/runtime/v1/lockout/alice/failures'), (r) => r.json.locked === true, 10_000, 1);
    await everythingOn(e1, 'before the stop');

    // A graceful stop of every engine: each saves what it holds.
    for (const e of cluster.engines) await kill(e, 'SIGTERM');

    // A start of every engine, each killed -9 as soon as it has loaded its saved state: its
    // start-up sync does not finish and it never saves again.
    const starting = cluster.engines.map((_, i) => cluster.restart(i));
    await Promise.all(
      starting.map(async (e) => {
        await e.proc.waitForOutput(/"msg":"grid state saved at the last stop loaded"/, 30_000);
        await kill(e, 'SIGKILL');
      }),
    );

    // The next start finds everything.
    const again = cluster.engines.map((_, i) => cluster.restart(i));
    for (const e of again) {
      await e.proc.waitForOutput(/"msg":"grid state saved at the last stop loaded"/, 30_000);
      await untilReady(e);
    }
    for (const e of again) await everythingOn(e, 'after the interrupted start');
  });

  it('an engine that crashes long after it began to serve sets its old file aside and takes everything from the cluster', async () => {
    // Each engine marked, when it began to serve, that the cluster now changes what its file holds.
    for (const e of cluster.engines) assert.ok(existsSync(join(dir, e.id, 'grid-state.tsv.served')), `${e.id} marked that it serves`);
    const victim = cluster.engines[2]!;
    await kill(victim, 'SIGKILL');
    // As if it had served for 30 minutes before the crash: deletions made meanwhile could be forgotten.
    const data = join(dir, victim.id);
    const minutesAgo = (m: number): Date => new Date(Date.now() - m * 60_000);
    utimesSync(join(data, 'grid-state.tsv'), minutesAgo(40), minutesAgo(40));
    utimesSync(join(data, 'grid-state.tsv.served'), minutesAgo(30), minutesAgo(30));
    const back = cluster.restart(2);
    await back.proc.waitForOutput(/"msg":"saved grid state not loaded: this engine served from it/, 30_000);
    await untilReady(back);
    assert.ok(existsSync(join(data, 'grid-state.tsv.stale')) && !existsSync(join(data, 'grid-state.tsv')), 'the old file is kept aside, not loaded');
    await everythingOn(back, 'after the crashed engine returned');
  });
});

describe('a partition far larger than a frame, between real engines', () => {
  const suite = suiteCleanups(after);
  const dir = mkdtempSync(join(tmpdir(), 'cohort-large-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const cluster = gridCluster(suite, dir);
  const ids: string[] = [];

  before(async () => {
    await cluster.start(2);
    for (const e of cluster.engines) await untilReady(e);
  });

  /** Every engine running reads every large session with its whole value. */
  async function allAgree(label: string): Promise<void> {
    for (const e of cluster.engines.filter((x) => alive(x.proc.pid))) {
      for (const id of ids) {
        const r = await call(e, 'GET', `/runtime/v1/sessions/${id}`);
        assert.equal(r.status, 200, `${label}: ${e.id} reads ${id}: ${JSON.stringify(r.json).slice(0, 300)}`);
        assert.equal((r.json.attributes as { blob?: string }).blob?.length, BLOB.length, `${label}: ${e.id} holds all of ${id}`);
      }
    }
  }

  it(`${LARGE_SESSIONS} sessions of 900 KB of one subject (one partition of about ${PARTITION_MB} MB) are stored`, async () => {
    for (let i = 0; i < LARGE_SESSIONS; i++) {
      const r = await call(cluster.engines[i % 2]!, 'POST', '/runtime/v1/sessions', { subject: 'heavy', attributes: { blob: BLOB, n: i } });
      assert.equal(r.status, 201, JSON.stringify(r.json).slice(0, 300));
      ids.push(r.json.id as string);
    }
    assert.equal(new Set(ids.map((id) => id.split('.')[0])).size, 1, 'one partition');
  });

  it('an engine that joins takes them, and every engine agrees', async () => {
    const joined = await cluster.add();
    await untilReady(joined);
    await allAgree('after a join');
  });

  it('the joined engine holds them itself: it serves them alone after the two others are killed', async () => {
    const [e1, e2, e3] = cluster.engines as [Engine, Engine, Engine];
    await kill(e1, 'SIGKILL');
    await kill(e2, 'SIGKILL');
    await waitUntil(() => clusterInfoOf(e3.file), (info) => stateOf(info, e1.id) === 'inactive' && stateOf(info, e2.id) === 'inactive', 20_000, 100);
    await allAgree('engine-3 alone');
  });

  it('engines that return empty take them again', async () => {
    for (const i of [0, 1]) {
      const e = cluster.restart(i);
      await e.proc.waitForOutput(new RegExp(`"msg":"engine ${e.id} started"`), 30_000);
      await untilReady(e);
    }
    await allAgree('after two engines returned');
  });

  it('a full stop and start keeps all of them', async () => {
    const stop = runCohort(suite, ['cluster', 'stop', '-c', cluster.consoleFile]);
    assert.equal((await stop.exited).code, 0, stop.stderr());
    await Promise.all(cluster.engines.map((e) => e.proc.exited));
    const consoleProc = runCohort(suite, ['start', '-c', cluster.consoleFile]);
    await consoleProc.waitForOutput(/"msg":"console \S+ started"/, 30_000);
    const started = cluster.engines.map((_, i) => cluster.restart(i));
    for (const e of started) await untilReady(e, 120_000);
    await allAgree('after a full stop and start');
  });
});
