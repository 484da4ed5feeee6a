/**
 * `npm run bench:runtime`: the runtime API and the grid, measured on this machine, each beside
 * its peer measured in the same run.
 *
 * 1. Session lookups through one engine's HTTP port (3 engines, grid, RF 3, autocannon with
 *    --connections keep-alive connections for --seconds), beside a bare Fastify route serving
 *    a session-sized body, and beside the same engine code on the Redis provider; then the
 *    cost of the metrics: lookups through engine-1 (metrics on, the default) and engine-2
 *    (`[http] metrics = false`), alternating, --metrics-rounds rounds each (with RF 3 on 3
 *    engines both hold every session, so both answer from their own copy).
 * 2. Replicated writes (PUT /runtime/v1/state/KEY: applied by the primary, held by all three
 *    replicas before the answer): latency with one connection, throughput with many. Then
 *    the same inside the grid, without HTTP (bench/grid-writes.ts: three engine processes,
 *    RF 3, batched replication), beside Redis SETs of the same documents.
 * 3. Memory per session per replica: sessions with 256 bytes of attributes in one grid store,
 *    heap measured before and after (node --expose-gc).
 * 4. Join: an engine joining a cluster that holds --join-sessions sessions and
 *    --join-revocations revocations (loaded from saved grid state, as after a cluster stop),
 *    from its start until /health/ready answers 200, while a client keeps reading sessions
 *    through another engine and counts failed requests.
 *
 * Every process is started on loopback ports from the OS and killed by pid when the bench
 * ends. Usage: node --expose-gc dist/bench/runtime.js [--seconds 10] [--connections 50]
 *   [--join-sessions 1000000] [--join-revocations 50000] [--redis redis://127.0.0.1:6379] [--json]
 *   [--metrics-rounds 2] [--lookups-only] (only the lookup rows: grid, Fastify, metrics on/off)
 */
import { copyFileSync, mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../src/cli/free-port.js';
import { systemClock } from '../src/core/clock.js';
import { randomToken } from '../src/core/ids.js';
import { GridStore } from '../src/state/grid/grid-store.js';
import { applyOperation } from '../src/state/grid/operations.js';
import { EVERYWHERE, partitionOf } from '../src/state/grid/grid-provider.js';
import { GRID_STATE_FILE, saveGridState } from '../src/node/grid-state-file.js';
import { measureGridWrites, type GridWriteFigures } from './grid-writes.js';
import { benchNodeConfig, CLI, removeAtExit, spawnProcess, spawnQuiet, startBenchNode, waitReady, type BenchNode } from './nodes.js';
import type { Session } from '../src/state/services.js';

const PEER = fileURLToPath(new URL('./peer-fastify.js', import.meta.url));
const API_KEY = 'bench-runtime-api-key-0123456789';

interface AutocannonResult {
  requests: { average: number };
  latency: { p50: number; p99: number; average: number };
  errors: number;
  non2xx: number;
  timeouts: number;
}
type Autocannon = (opts: Record<string, unknown>) => Promise<AutocannonResult>;
const autocannon = createRequire(import.meta.url)('autocannon') as Autocannon;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    'join-sessions': { type: 'string', default: '1000000' },
    'join-revocations': { type: 'string', default: '50000' },
    redis: { type: 'string', default: process.env.COHORT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    json: { type: 'boolean', default: false },
    'metrics-rounds': { type: 'string', default: '2' },
    'lookups-only': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);

function log(text: string): void {
  process.stderr.write(`bench:runtime: ${text}\n`);
}

type NodeInfo = BenchNode;

/** An engine or console of this bench: RF 3, the bench's API key, JSON logs. */
function nodeConfig(base: string, id: string, role: 'console' | 'engine', peers: string, state: string[] = [], http: string[] = []): Promise<BenchNode> {
  return benchNodeConfig(base, id, role, peers, {
    http: [`api_keys = ${API_KEY}`, 'body_limit = 1048576', ...http],
    state: ['replication_factor = 3', 'bulk_revocation_timeout = 120000', 'rpc_timeout = 2000', ...state],
  });
}

async function startNode(n: BenchNode): Promise<void> {
  await startBenchNode(n);
  await waitReady(n, 300_000);
}

async function api(n: NodeInfo, method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
  const r = await fetch(`http://${n.runtime}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return text ? (JSON.parse(text) as Record<string, unknown>) : {};
}

/** autocannon against `base`, cycling through `paths`. */
async function load(base: string, paths: string[], options: { method?: string; body?: string; connections?: number } = {}): Promise<AutocannonResult> {
  let i = 0;
  return autocannon({
    url: base,
    connections: options.connections ?? CONNECTIONS,
    duration: SECONDS,
    headers: { authorization: `Bearer ${API_KEY}`, ...(options.body ? { 'content-type': 'application/json' } : {}) },
    requests: [{ method: options.method ?? 'GET', ...(options.body ? { body: options.body } : {}), setupRequest: (req: Record<string, unknown>) => ({ ...req, path: paths[i++ % paths.length] }) }],
  });
}

async function createSessions(engine: NodeInfo, count: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, k) => api(engine, 'POST', '/runtime/v1/sessions', { subject: `user-${i + k}`, attributes: { role: 'member' } })));
    ids.push(...batch.map((s) => s.id as string));
  }
  return ids;
}

/**
 * Puts `count` sessions of subjects user-0 … user-(count-1) into `store`, each with 256 bytes
 * of attributes (as JSON: {"blob":"x…"}) and an hour to live.
 */
function putSessions(store: GridStore, count: number): void {
  const now = systemClock.now();
  const attributes = { blob: 'x'.repeat(244) };
  for (let i = 0; i < count; i++) {
    const subject = `user-${i}`;
    const partition = partitionOf(`subject:${subject}`);
    const session: Session = { id: `${partition}.${randomToken(24)}`, subject, attributes, createdAt: now, lastAccessAt: now, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000, expiresAt: now + 3_600_000 };
    applyOperation(store, { t: 'session.put', session }, now, partition);
  }
}

function memoryPerSession(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return NaN;
  const store = new GridStore(systemClock, 'engine-1');
  const count = 100_000;
  gc();
  const before = process.memoryUsage().heapUsed;
  putSessions(store, count);
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / count;
  if (store.size() < count) throw new Error('store lost sessions');
  return bytes;
}

/**
 * A saved grid state with `sessions` sessions and `revocations` revocations, as a cluster stop
 * leaves it: built in a store here and written with the engines' own saveGridState, then
 * copied to every engine's data dir.
 */
async function writeSavedState(dirs: string[], sessions: number, revocations: number): Promise<void> {
  const store = new GridStore(systemClock);
  const now = systemClock.now();
  putSessions(store, sessions);
  for (let i = 0; i < revocations; i++) applyOperation(store, { t: 'revocation.put', id: `revoked-${i}`, expiresAt: now + 3_600_000 }, now, EVERYWHERE);
  await saveGridState(store, dirs[0]!);
  for (const dir of dirs.slice(1)) copyFileSync(join(dirs[0]!, GRID_STATE_FILE), join(dir, GRID_STATE_FILE));
}

function fmt(ms: number): string {
  return `${ms.toFixed(2)} ms`;
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cohort-bench-runtime-'));
  removeAtExit(base);
  const results: Record<string, unknown> = {};

  // ---- 1. lookups: grid, bare Fastify, Redis
  log('starting a console and 3 engines (grid, RF 3)');
  const consoleNode = await nodeConfig(base, 'console', 'console', '');
  await startBenchNode(consoleNode);
  const engines: NodeInfo[] = [];
  // engine-2 serves no metrics and times nothing for them: the metrics' cost is measured against it.
  for (const id of ['engine-1', 'engine-2', 'engine-3']) engines.push(await nodeConfig(base, id, 'engine', consoleNode.cluster, [], id === 'engine-2' ? ['metrics = false'] : []));
  await Promise.all(engines.map(startNode));
  const ids = await createSessions(engines[0]!, 2000);
  const paths = ids.map((id) => `/runtime/v1/sessions/${id}`);
  log('session lookups through engine-1');
  const grid = await load(`http://${engines[0]!.runtime}`, paths);
  const peerPort = await freePort();
  await spawnProcess([PEER, String(peerPort)], /peer started/);
  log('the bare Fastify route');
  const bare = await load(`http://127.0.0.1:${peerPort}`, paths);
  results.lookup = {
    gridRps: grid.requests.average, gridP50Ms: grid.latency.p50, gridP99Ms: grid.latency.p99, gridErrors: grid.errors + grid.non2xx,
    fastifyRps: bare.requests.average, fastifyP50Ms: bare.latency.p50, fastifyP99Ms: bare.latency.p99,
    ratio: grid.requests.average / bare.requests.average,
  };

  const rounds = Number(args['metrics-rounds']);
  log(`metrics on (engine-1) and off (engine-2): session lookups, alternating, ${rounds} rounds`);
  const on: AutocannonResult[] = [];
  const off: AutocannonResult[] = [];
  for (let r = 0; r < rounds; r++) {
    on.push(await load(`http://${engines[0]!.runtime}`, paths));
    off.push(await load(`http://${engines[1]!.runtime}`, paths));
  }
  const mean = (list: AutocannonResult[]): number => list.reduce((a, x) => a + x.requests.average, 0) / list.length;
  results.metrics = {
    onRps: mean(on), offRps: mean(off), ratio: mean(on) / mean(off),
    onRounds: on.map((x) => Math.round(x.requests.average)), offRounds: off.map((x) => Math.round(x.requests.average)),
    onP99Ms: Math.max(...on.map((x) => x.latency.p99)), offP99Ms: Math.max(...off.map((x) => x.latency.p99)),
    errors: [...on, ...off].reduce((a, x) => a + x.errors + x.non2xx, 0),
  };
  if (args['lookups-only']) {
    printLookups(results);
    return;
  }

  let redisEngine: NodeInfo | undefined;
  try {
    redisEngine = await nodeConfig(base, 'engine-redis', 'engine', consoleNode.cluster, ['provider = redis', `redis_url = ${args.redis}`]);
    await startNode(redisEngine);
    const redisIds = await createSessions(redisEngine, 2000);
    log('session lookups through an engine on the Redis provider');
    const redis = await load(`http://${redisEngine.runtime}`, redisIds.map((id) => `/runtime/v1/sessions/${id}`));
    (results.lookup as Record<string, unknown>).redisRps = redis.requests.average;
    (results.lookup as Record<string, unknown>).redisP50Ms = redis.latency.p50;
    (results.lookup as Record<string, unknown>).redisP99Ms = redis.latency.p99;
    (results.lookup as Record<string, unknown>).gridOverRedis = grid.requests.average / redis.requests.average;
    redisEngine.child?.kill('SIGTERM');
    await once(redisEngine.child!, 'exit');
  } catch (err) {
    log(`Redis provider not measured: ${(err as Error).message}`);
  }

  // ---- 2. replicated writes
  log('replicated writes, one connection (latency)');
  const keys = Array.from({ length: 5000 }, (_, i) => `/runtime/v1/state/key-${i}`);
  const body = JSON.stringify({ value: { step: 'consent', n: 1 }, ttlSeconds: 600 });
  const writeLatency = await load(`http://${engines[0]!.runtime}`, keys, { method: 'PUT', body, connections: 1 });
  log('replicated writes, many connections (throughput)');
  const writeThroughput = await load(`http://${engines[0]!.runtime}`, keys, { method: 'PUT', body });
  results.replicatedWrite = {
    p50Ms: writeLatency.latency.p50, p99Ms: writeLatency.latency.p99, oneConnectionRps: writeLatency.requests.average,
    rps: writeThroughput.requests.average, errors: writeThroughput.errors + writeThroughput.non2xx + writeLatency.errors + writeLatency.non2xx,
  };

  // ---- 3. memory
  results.memoryBytesPerSessionPerReplica = memoryPerSession();

  // ---- stop the lookup cluster
  for (const n of [...engines, consoleNode]) n.child?.kill('SIGKILL');

  // ---- 2b. replicated writes inside the grid, once the HTTP cluster is gone (CPU to itself)
  log('replicated writes inside the grid (3 processes, no HTTP)');
  results.gridWrite = await measureGridWrites({ seconds: SECONDS, writers: 64, redisUrl: args.redis, log });

  // ---- 4. join
  const sessions = Number(args['join-sessions']);
  const revocationCount = Number(args['join-revocations']);
  log(`join: writing saved state with ${sessions} sessions and ${revocationCount} revocations`);
  const jbase = mkdtempSync(join(tmpdir(), 'cohort-bench-join-'));
  removeAtExit(jbase);
  const jconsole = await nodeConfig(jbase, 'console', 'console', '');
  await startBenchNode(jconsole);
  const jengines: NodeInfo[] = [];
  for (const id of ['engine-1', 'engine-2', 'engine-3']) jengines.push(await nodeConfig(jbase, id, 'engine', jconsole.cluster));
  await writeSavedState(jengines.map((e) => e.dir), sessions, revocationCount);
  log('join: starting 3 engines on the saved state');
  const loadStart = performance.now();
  await Promise.all(jengines.map(startNode));
  const clusterLoadMs = performance.now() - loadStart;
  const joiner = await nodeConfig(jbase, 'engine-4', 'engine', jconsole.cluster);
  // A client reads sessions through engine-1 the whole time; every failure counts.
  let reads = 0;
  let failed = 0;
  let reading = true;
  const reader = (async () => {
    let i = 0;
    while (reading) {
      const subject = `user-${(i++ * 7919) % sessions}`;
      try {
        const r = await fetch(`http://${jengines[0]!.runtime}/runtime/v1/subjects/${subject}/sessions`, { headers: { authorization: `Bearer ${API_KEY}` } });
        if (r.status !== 200) failed++;
        await r.arrayBuffer();
      } catch {
        failed++;
      }
      reads++;
    }
  })();
  log('join: starting engine-4');
  const joinStart = performance.now();
  joiner.child = spawnQuiet([CLI, 'start', '-c', joiner.file]);
  await waitReady(joiner, 600_000);
  const joinMs = performance.now() - joinStart;
  reading = false;
  await reader;
  results.join = { sessions, revocations: revocationCount, readyMs: joinMs, clientReads: reads, clientFailures: failed, clusterLoadFromSavedStateMs: clusterLoadMs };

  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const l = results.lookup as Record<string, number>;
  const w = results.replicatedWrite as Record<string, number>;
  const g = results.gridWrite as GridWriteFigures;
  const j = results.join as Record<string, number>;
  process.stdout.write([
    '| measure | Cohort | peer (same run) | target |',
    '| --- | ---: | ---: | --- |',
    `| session lookup through one engine (grid) | ${l.gridRps!.toFixed(0)} req/s, p50 ${fmt(l.gridP50Ms!)}, p99 ${fmt(l.gridP99Ms!)} | bare Fastify ${l.fastifyRps!.toFixed(0)} req/s, p50 ${fmt(l.fastifyP50Ms!)}, p99 ${fmt(l.fastifyP99Ms!)} | ≥ 70% of Fastify: ${(l.ratio! * 100).toFixed(0)}% |`,
    metricsRow(results),
    `| same workload, Redis provider | ${l.redisRps ? `${l.redisRps.toFixed(0)} req/s, p50 ${fmt(l.redisP50Ms!)}, p99 ${fmt(l.redisP99Ms!)}` : 'not measured'} | | grid ≥ 1.3x Redis: ${l.gridOverRedis ? `${l.gridOverRedis.toFixed(2)}x` : '—'} |`,
    `| replicated write (RF 3, all replicas) inside the grid, 3 processes, one writer | at the primary p50 ${fmt(g.p50Ms)}, p99 ${fmt(g.p99Ms)}; from any engine p50 ${fmt(g.anyEngineP50Ms)}, p99 ${fmt(g.anyEngineP99Ms)} | | p50 < 0.5 ms, p99 < 3 ms |`,
    `| same, ${g.writersPerEngine} writers on each engine (batched) | ${g.writesPerSecond.toFixed(0)} writes/s, p50 ${fmt(g.loadedP50Ms)}, p99 ${fmt(g.loadedP99Ms)}; ${g.errors} errors | Redis SET (one server, no replica), ${g.writersPerEngine * 3} writers: ${g.redisWritesPerSecond === undefined ? 'not measured' : `${g.redisWritesPerSecond.toFixed(0)} writes/s, p50 ${fmt(g.redisP50Ms!)}, p99 ${fmt(g.redisP99Ms!)}`} | ≥ 50,000/s |`,
    `| replicated write through the HTTP API | p50 ${fmt(w.p50Ms!)}, p99 ${fmt(w.p99Ms!)} (one connection); ${w.rps!.toFixed(0)} writes/s with ${CONNECTIONS} connections | | (no target) |`,
    `| memory per session per replica (256 B attributes) | ${(results.memoryBytesPerSessionPerReplica as number).toFixed(0)} B | | < 1 KB |`,
    `| engine joining ${j.sessions} sessions + ${j.revocations} revocations | ready in ${(j.readyMs! / 1000).toFixed(1)} s; ${j.clientFailures} of ${j.clientReads} client reads failed | | < 10 s, no failed request |`,
    `| 3 engines started together on that saved state (a full stop and start) | all ready in ${(j.clusterLoadFromSavedStateMs! / 1000).toFixed(1)} s | | (no target) |`,
    '',
  ].join('\n'));
}

function metricsRow(results: Record<string, unknown>): string {
  const m = results.metrics as { onRps: number; offRps: number; ratio: number; onRounds: number[]; offRounds: number[]; onP99Ms: number; offP99Ms: number; errors: number };
  return `| same lookups, metrics on (engine-1) vs off (engine-2, [http] metrics = false), alternating | on ${m.onRps.toFixed(0)} req/s (rounds ${m.onRounds.join(', ')}; p99 ≤ ${fmt(m.onP99Ms)}); ${m.errors} errors | off ${m.offRps.toFixed(0)} req/s (rounds ${m.offRounds.join(', ')}; p99 ≤ ${fmt(m.offP99Ms)}) | on within 5% of off: ${(m.ratio * 100).toFixed(1)}% |`;
}

function printLookups(results: Record<string, unknown>): void {
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const l = results.lookup as Record<string, number>;
  process.stdout.write([
    '| measure | Cohort | peer (same run) | target |',
    '| --- | ---: | ---: | --- |',
    `| session lookup through one engine (grid) | ${l.gridRps!.toFixed(0)} req/s, p50 ${fmt(l.gridP50Ms!)}, p99 ${fmt(l.gridP99Ms!)} | bare Fastify ${l.fastifyRps!.toFixed(0)} req/s, p50 ${fmt(l.fastifyP50Ms!)}, p99 ${fmt(l.fastifyP99Ms!)} | ≥ 70% of Fastify: ${(l.ratio! * 100).toFixed(0)}% |`,
    metricsRow(results),
    '',
  ].join('\n'));
}

main().then(
  // The nodes it started are still running: the exit handler kills them.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:runtime failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
