/**
 * The persistent scheduler between real processes, on two clusters at once:
 * a console and two engines sharing one SQLite file on this host, and the same on PostgreSQL.
 * Scheduler timings are shortened (check-in 300 ms + offsets of 0/100/200 ms, instance
 * timeout 1.5 s, poll 100 ms). A test HTTP listener is the target of the `http` jobs and
 * records every request with the schedule, fire time and node the job sent.
 */
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openRepository } from '../../src/repository/open-repository.js';
import type { Repository, SchedulerRun } from '../../src/repository/repository.js';
import { startNode, waitUntil, type TestNode } from '../helpers/cluster.js';
import { runCohort, runCohortToEnd, suiteCleanups } from '../helpers/processes.js';
import { postgresUrlOrSkip, uniquePostgresSchemaUrl } from '../helpers/services.js';

interface Hit {
  cluster: string;
  schedule: string;
  fireAt: number;
  node: string;
  at: number;
}

const OFFSETS = [0, 100, 200];
const INSTANCE_TIMEOUT_MS = 1500;

class Listener {
  readonly hits: Hit[] = [];
  private server: Server | undefined;
  url = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const u = new URL(req.url ?? '/', 'http://x');
      this.hits.push({
        cluster: u.searchParams.get('c') ?? '',
        schedule: String(req.headers['x-cohort-schedule']),
        fireAt: Number(req.headers['x-cohort-fire-at']),
        node: String(req.headers['x-cohort-node']),
        at: Date.now(),
      });
      const delay = Number(u.searchParams.get('ms') ?? 0);
      setTimeout(() => res.writeHead(200).end('ok'), delay);
      req.resume();
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    const address = this.server.address() as { port: number };
    this.url = `http://127.0.0.1:${address.port}`;
  }

  close(): Promise<void> {
    this.server?.closeAllConnections();
    return new Promise((r) => this.server?.close(() => r()) ?? r());
  }

  of(cluster: string, schedule: string): Hit[] {
    return this.hits.filter((h) => h.cluster === cluster && h.schedule === schedule);
  }
}

interface SchedulerCluster {
  name: string;
  nodes: TestNode[];
  repo: Repository;
  token: string;
}

describe('persistent scheduler between real processes (SQLite on one host, PostgreSQL)', () => {
  const suite = suiteCleanups(after);
  const listener = new Listener();
  const clusters: SchedulerCluster[] = [];
  let dir = '';

  /** A fresh admin token (the console keeps tokens in memory: a restarted console asks again). */
  async function login(c: Pick<SchedulerCluster, 'nodes' | 'name'>): Promise<string> {
    const password = readFileSync(join(dir, c.name, 'console', 'admin-password'), 'utf8').trim();
    const r = await fetch(`http://${c.nodes[0]!.config.http!.admin}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password }) });
    assert.equal(r.status, 200);
    return ((await r.json()) as { token: string }).token;
  }

  async function startCluster(name: string, url: string): Promise<SchedulerCluster> {
    const nodes: TestNode[] = [];
    mkdirSync(join(dir, name));
    const ids = ['console', 'engine-1', 'engine-2'];
    for (let i = 0; i < ids.length; i++) {
      const overrides = {
        cluster: { id: `sched-${name}` },
        repository: { url },
        scheduler: { check_in_interval: '300', check_in_offset: String(OFFSETS[i]), instance_timeout: String(INSTANCE_TIMEOUT_MS), instance_recovery_timeout: '1500', poll_interval: '100' },
        http: { api_keys: 'scheduler-e2e-api-key-0123456789' },
      };
      nodes.push(await startNode(suite, join(dir, name), ids[i]!, { role: i === 0 ? 'console' : 'engine', peers: nodes[0]?.address, overrides }));
    }
    const repo = await openRepository(url);
    suite.after(() => repo.close());
    return { name, nodes, repo, token: await login({ name, nodes }) };
  }

  async function admin(c: SchedulerCluster, method: string, path: string, body?: unknown, retried = false): Promise<{ status: number; json: Record<string, unknown> }> {
    const r = await fetch(`http://${c.nodes[0]!.config.http!.admin}${path}`, {
      method,
      headers: { authorization: `Bearer ${c.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
    });
    const text = await r.text();
    if (r.status === 401 && !retried) {
      c.token = await login(c);
      return admin(c, method, path, body, true);
    }
    return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  }

  async function putSchedule(c: SchedulerCluster, id: string, body: Record<string, unknown>): Promise<void> {
    const r = await admin(c, 'PUT', `/admin/v1/schedules/${id}`, body);
    assert.equal(r.status, 200, JSON.stringify(r.json));
  }

  /** Restarts node `i` of cluster `c` with its own configuration. */
  async function restart(c: SchedulerCluster, i: number): Promise<void> {
    const n = c.nodes[i]!;
    const proc = runCohort(suite, ['start', '-c', n.file]);
    c.nodes[i] = { ...n, proc };
    await proc.waitForOutput(/scheduler running/, 20_000);
  }

  const nodeIndex = (c: SchedulerCluster, id: string): number => c.nodes.findIndex((n) => n.id === id);

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cohort-scheduler-'));
    suite.after(() => rmSync(dir, { recursive: true, force: true }));
    await listener.start();
    suite.after(() => listener.close());
    clusters.push(await startCluster('sqlite', `sqlite:${join(dir, 'shared.db')}`));
    // Without PostgreSQL (and without COHORT_REQUIRE_SERVICES) the notice is printed and the
    // SQLite cluster alone is tested.
    const pg = await postgresUrlOrSkip({ skip: () => undefined } as unknown as TestContext);
    if (pg) {
      const schema = uniquePostgresSchemaUrl(pg);
      suite.after(() => schema.dropSchema());
      clusters.push(await startCluster('postgres', schema.url));
    }
  });

  it('an every-second http schedule fires once per period across the 3 nodes for 30 periods: no duplicate, no gap', async () => {
    await Promise.all(clusters.map((c) => putSchedule(c, 'tick', { intervalSeconds: 1, type: 'http', http: { url: `${listener.url}/tick?c=${c.name}`, method: 'POST' } })));
    await waitUntil(async () => clusters.every((c) => listener.of(c.name, 'tick').length >= 33), (ok) => ok, 45_000, 200);
    for (const c of clusters) {
      const fires = listener.of(c.name, 'tick').map((h) => h.fireAt);
      // The 30 periods after the first two (the schedule was being picked up by every node).
      const window = fires.slice(2, 32);
      assert.equal(new Set(window).size, window.length, `${c.name}: a fire time ran twice: ${fires.join(', ')}`);
      for (let i = 1; i < window.length; i++) assert.equal(window[i]! - window[i - 1]!, 1000, `${c.name}: gap between ${window[i - 1]} and ${window[i]}`);
      const late = listener.of(c.name, 'tick').slice(2, 32).map((h) => h.at - h.fireAt);
      assert.ok(Math.max(...late) < 1000, `${c.name}: every fire within its period (latest ${Math.max(...late)} ms after its time)`);
    }
    // The CLI shows the schedule and its runs (through the console's management API).
    const list = await runCohortToEnd(suite, ['schedules', 'list', '-c', clusters[0]!.nodes[0]!.file, '--json']);
    assert.equal(list.code, 0, list.stderr);
    const [tick] = JSON.parse(list.stdout) as Array<{ id: string; job: { state: string } | null }>;
    assert.equal(tick!.id, 'tick');
    assert.ok(tick!.job);
    const runs = await runCohortToEnd(suite, ['schedules', 'runs', 'tick', '-c', clusters[0]!.nodes[0]!.file]);
    assert.equal(runs.code, 0, runs.stderr);
    assert.ok(runs.stdout.split('\n').filter((l) => / succeeded /.test(l)).length >= 30, runs.stdout);
    await Promise.all(clusters.map((c) => admin(c, 'DELETE', '/admin/v1/schedules/tick')));
  });

  it('check_in_offset spreads check-ins: each node checks in every check_in_interval plus its own offset', async () => {
    for (const c of clusters) {
      const seen = new Map<string, number[]>();
      const until = Date.now() + 2500;
      while (Date.now() < until) {
        for (const ci of await c.repo.schedulerCheckIns()) {
          const list = seen.get(ci.node) ?? [];
          if (list.at(-1) !== ci.at) list.push(ci.at);
          seen.set(ci.node, list);
        }
        await new Promise((r) => setTimeout(r, 15));
      }
      // The median gap (a check-in the poll above missed on a busy machine doubles one gap, not
      // the figure): never shorter than the node's interval plus its offset, and each node's
      // about 100 ms (its offset's step) longer than the one before, whatever the machine's
      // load adds to all of them alike.
      const medians = c.nodes.map((n) => {
        const at = seen.get(n.id) ?? [];
        const gaps = at.slice(1).map((t, k) => t - at[k]!).sort((a, b) => a - b);
        assert.ok(gaps.length >= 3, `${c.name} ${n.id}: ${at.length} check-ins seen`);
        return gaps[Math.floor(gaps.length / 2)]!;
      });
      console.log(`scheduler e2e, ${c.name}: median check-in intervals ${medians.join(', ')} ms (configured ${OFFSETS.map((o) => 300 + o).join(', ')})`);
      medians.forEach((median, i) => {
        assert.ok(median >= 300 + OFFSETS[i]! - 40, `${c.name} ${c.nodes[i]!.id}: checks in every ${median} ms, expected ${300 + OFFSETS[i]!}`);
        if (i > 0) {
          const step = median - medians[i - 1]!;
          assert.ok(Math.abs(step - (OFFSETS[i]! - OFFSETS[i - 1]!)) < 60, `${c.name}: ${c.nodes[i]!.id} checks in ${step} ms later than ${c.nodes[i - 1]!.id} per round, expected ${OFFSETS[i]! - OFFSETS[i - 1]!}`);
        }
      });
    }
  });

  it('kill -9 of the node running a long job: once it is recovering, its fire time runs again elsewhere (fire-and-proceed)', async () => {
    await Promise.all(clusters.map((c) => putSchedule(c, 'long', { intervalSeconds: 4, type: 'http', http: { url: `${listener.url}/slow?c=${c.name}&ms=6000`, timeoutMs: 30_000 } })));
    await Promise.all(
      clusters.map(async (c) => {
        await waitUntil(async () => listener.of(c.name, 'long').length, (n) => n >= 1, 10_000, 20);
        const first = listener.of(c.name, 'long')[0]!;
        const victim = nodeIndex(c, first.node);
        const killedAt = Date.now();
        process.kill(c.nodes[victim]!.proc.pid, 'SIGKILL');
        const { value: rerun } = await waitUntil(async () => listener.of(c.name, 'long').find((h) => h.fireAt === first.fireAt && h.node !== first.node), (h) => h !== undefined, 10_000, 20);
        // Its last check-in was at most one check-in period (300 ms + offset) before the kill.
        assert.ok(rerun!.at - killedAt >= INSTANCE_TIMEOUT_MS - 300 - OFFSETS[victim]!, `${c.name}: taken back only once the node was recovering (${rerun!.at - killedAt} ms after the kill)`);
        await restart(c, victim);
      }),
    );
    await Promise.all(clusters.map((c) => admin(c, 'DELETE', '/admin/v1/schedules/long')));
  });

  it('kill -9 of the node running a long job with misfire policy do-nothing: its fire time is not run again; the next one runs', async () => {
    await Promise.all(clusters.map((c) => putSchedule(c, 'long-skip', { intervalSeconds: 4, type: 'http', misfirePolicy: 'do-nothing', http: { url: `${listener.url}/slow?c=${c.name}&ms=6000`, timeoutMs: 30_000 } })));
    await Promise.all(
      clusters.map(async (c) => {
        await waitUntil(async () => listener.of(c.name, 'long-skip').length, (n) => n >= 1, 10_000, 20);
        const first = listener.of(c.name, 'long-skip')[0]!;
        const victim = nodeIndex(c, first.node);
        process.kill(c.nodes[victim]!.proc.pid, 'SIGKILL');
        const { value: next } = await waitUntil(async () => listener.of(c.name, 'long-skip').find((h) => h.fireAt > first.fireAt), (h) => h !== undefined, 12_000, 20);
        assert.equal(listener.of(c.name, 'long-skip').filter((h) => h.fireAt === first.fireAt).length, 1, `${c.name}: the interrupted fire time ran again`);
        assert.notEqual(next!.node, first.node);
        await restart(c, victim);
      }),
    );
    await Promise.all(clusters.map((c) => admin(c, 'DELETE', '/admin/v1/schedules/long-skip')));
  });

  it('a node paused past its claim cannot complete with its stale fencing token', async () => {
    await Promise.all(clusters.map((c) => putSchedule(c, 'paused', { intervalSeconds: 4, type: 'http', http: { url: `${listener.url}/slow?c=${c.name}&ms=2500`, timeoutMs: 30_000 } })));
    await Promise.all(
      clusters.map(async (c) => {
        await waitUntil(async () => listener.of(c.name, 'paused').length, (n) => n >= 1, 10_000, 20);
        const first = listener.of(c.name, 'paused')[0]!;
        const sleeper = c.nodes[nodeIndex(c, first.node)]!;
        process.kill(sleeper.proc.pid, 'SIGSTOP');
        try {
          // Another node takes the job back and runs that fire time again (stopped inside a
          // repository transaction, the paused node holds its locks until PostgreSQL ends that
          // transaction, 5 s on; on SQLite, until it resumes: a stop landing inside one of its
          // sub-millisecond writes is rare enough to leave to chance).
          await waitUntil(async () => listener.of(c.name, 'paused').some((h) => h.fireAt === first.fireAt && h.node !== first.node), (ok) => ok, 15_000, 20);
          await new Promise((r) => setTimeout(r, 3000)); // the answer to the paused node is waiting in its socket
        } finally {
          process.kill(sleeper.proc.pid, 'SIGCONT');
        }
        await sleeper.proc.waitForOutput(/completion of paused rejected: its fencing token \d+ is stale/, 10_000);
        // The rejected completion, and the recovered run's own (its node may record it after
        // the resumed one on a busy machine).
        const recovered = (rs: SchedulerRun[]): boolean => rs.some((r) => r.fireAt === first.fireAt && r.outcome === 'succeeded' && r.node !== first.node);
        const { value: runs } = await waitUntil(() => c.repo.schedulerRuns('paused', 50), (rs: SchedulerRun[]) => rs.some((r) => r.outcome === 'rejected') && recovered(rs), 10_000, 50).catch((err: unknown) => {
          throw new Error(`${c.name}: a rejected completion and the recovered run: ${(err as Error).message}`);
        });
        const rejected = runs.find((r) => r.outcome === 'rejected')!;
        assert.equal(rejected.node, first.node);
        assert.equal(rejected.fireAt, first.fireAt);
      }),
    );
    await Promise.all(clusters.map((c) => admin(c, 'DELETE', '/admin/v1/schedules/paused')));
    // Scheduler states appear in the cluster view beside membership (the resumed node's
    // `recovering` until its next check-in is read).
    for (const c of clusters) {
      const view = async (): Promise<string[][]> =>
        ((await admin(c, 'GET', '/admin/v1/cluster')).json.nodes as Array<{ id: string; scheduler: string | null }>).map((n) => [n.id, String(n.scheduler)]).sort();
      const all = [['console', 'running'], ['engine-1', 'running'], ['engine-2', 'running']];
      await waitUntil(view, (states) => JSON.stringify(states) === JSON.stringify(all), 10_000, 100).catch((err: unknown) => {
        throw new Error(`${c.name}: every node's scheduler running: ${(err as Error).message}`);
      });
    }
  });
});
