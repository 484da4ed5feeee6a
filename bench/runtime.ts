/**
 * `npm run bench:runtime`: the runtime API and the grid, measured on this machine, each beside
 * its peer measured in the same run.
 *
 * 1. Session lookups through one engine's HTTP port (3 engines, grid, RF 3), cycling over
 *    2,000 sessions with 200-byte attributes, beside a bare Fastify route answering a body of
 *    the same size (one of those sessions as the engine answered it), and beside the same
 *    engine code on the Redis provider, on one Redis server (--redis) and on a Redis Cluster of
 *    3 masters and 3 replicas this bench starts itself (test/helpers/redis-servers.ts; not
 *    measured where redis-server is not installed); then the cost of the metrics: lookups through engine-1
 *    (metrics on, the default) and engine-2 (`[http] metrics = false`), alternating,
 *    --metrics-rounds rounds each (with RF 3 on 3 engines both hold every session, so both
 *    answer from their own copy). The load comes from a separate process (bench/load-runner.ts:
 *    wrk where installed, else autocannon in a child process) with --connections keep-alive
 *    connections; the grid, Fastify and both Redis rows take turns (a warm-up of each, then --rounds
 *    rounds sharing --seconds), and each row gets the CPU time per request of the process
 *    serving it (from /proc).
 * 2. Replicated writes (PUT /runtime/v1/state/KEY: applied by the primary, held by all three
 *    replicas before the answer), from the same kind of separate process: latency with one
 *    connection, throughput with many. Then
 *    the same inside the grid, without HTTP (bench/grid-writes.ts: three engine processes,
 *    RF 3, batched replication), beside Redis SETs of the same documents.
 * 3. Memory per session per replica: sessions with 256 bytes of attributes in one grid store,
 *    heap and external memory (the store's typed arrays) measured before and after (node --expose-gc).
 * 4. Join: an engine joining a cluster that holds --join-sessions sessions and
 *    --join-revocations revocations (loaded from saved grid state, as after a cluster stop),
 *    from its start until /health/ready answers 200, while a client keeps reading sessions
 *    through another engine and counts failed requests: one read after another as fast as
 *    they are answered, or --join-read-rate reads a second. The CPU time each process used
 *    meanwhile is printed: on two cores the joiner competes with the reading client.
 *
 * Every process is started on loopback ports from the OS and killed by pid when the bench
 * ends. Usage: node --expose-gc dist/bench/runtime.js [--seconds 10] [--connections 50]
 *   [--rounds 2] [--warmup 1] [--threads 2] [--load wrk|autocannon]
 *   [--join-sessions 1000000] [--join-revocations 50000] [--join-read-rate 0] [--redis redis://127.0.0.1:6379] [--json]
 *   [--metrics-rounds 2] [--lookups-only] (only the lookup rows: grid, Fastify, Redis, Redis Cluster, metrics on/off)
 *   [--join-only] (only the join and the full stop and start rows)
 *   [--huge-pages] (the Cohort processes with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, the opt-in of docs/operations.md)
 */
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { Agent as HttpAgent } from 'node:http';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../src/cli/free-port.js';
import { systemClock } from '../src/core/clock.js';
import { randomToken } from '../src/core/ids.js';
import { GridStore } from '../src/state/grid/grid-store.js';
import { applyOperation } from '../src/state/grid/operations.js';
import { EVERYWHERE, partitionOf } from '../src/state/grid/grid-provider.js';
import { GRID_STATE_FILE, saveGridState } from '../src/state/grid/grid-state-file.js';
import { measureGridWrites, type GridWriteFigures } from './grid-writes.js';
import { defaultLoadTool, figures, groupCpuMs, measureGroupSlices, runLoad, type LoadFigures, type LoadRequest, type LoadTool, type Slice } from './load-runner.js';
import { benchNodeConfig, CLI, cohortProcessEnv, httpStatus, removeAtExit, spawnProcess, spawnQuiet, startBenchNode, waitReady, type BenchNode } from './nodes.js';
import type { Session } from '../src/state/services.js';
import { redisBinariesMissing, startRedisCluster, type RedisClusterHandle } from '../test/helpers/redis-servers.js';

const PEER = fileURLToPath(new URL('./peer-fastify.js', import.meta.url));
const API_KEY = 'bench-runtime-api-key-0123456789';

/** Sessions the lookups cycle over, and the size of each one's attributes as JSON. */
const LOOKUP_SESSIONS = 2000;
const LOOKUP_ATTRIBUTES_BYTES = 200;

const { values: args } = parseArgs({
  options: {
    seconds: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '2' },
    warmup: { type: 'string', default: '1' },
    threads: { type: 'string', default: '2' },
    load: { type: 'string', default: defaultLoadTool() },
    'join-sessions': { type: 'string', default: '1000000' },
    'join-revocations': { type: 'string', default: '50000' },
    'join-read-rate': { type: 'string', default: '0' },
    redis: { type: 'string', default: process.env.COHORT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
    json: { type: 'boolean', default: false },
    'metrics-rounds': { type: 'string', default: '2' },
    'lookups-only': { type: 'boolean', default: false },
    'join-only': { type: 'boolean', default: false },
    'huge-pages': { type: 'boolean', default: false },
  },
});
const SECONDS = Number(args.seconds);
const CONNECTIONS = Number(args.connections);
const ROUNDS = Math.max(1, Number(args.rounds));
/** wrk takes whole seconds. */
const SLICE_SECONDS = Math.max(1, Math.round(SECONDS / ROUNDS));
const WARMUP_SECONDS = Number(args.warmup);
const THREADS = Number(args.threads);
if (args.load !== 'wrk' && args.load !== 'autocannon') throw new Error('--load: wrk or autocannon');
const LOAD_TOOL: LoadTool = args.load;
/** The Cohort processes' environment: with --huge-pages, glibc's allocator on transparent huge pages (an operator's opt-in, docs/operations.md). */
const NODE_PROCESS_ENV = cohortProcessEnv(args['huge-pages']);

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
  await startBenchNode(n, [], NODE_PROCESS_ENV);
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

/** GET each path in turn with the bench's API key. */
function lookups(paths: readonly string[]): LoadRequest[] {
  return paths.map((path) => ({ path, headers: { authorization: `Bearer ${API_KEY}` } }));
}

/** Attributes whose JSON is exactly `bytes` long: {"role":"member","note":"xx…"}. */
function attributesOfBytes(bytes: number): Record<string, string> {
  const empty = JSON.stringify({ role: 'member', note: '' }).length;
  return { role: 'member', note: 'x'.repeat(Math.max(0, bytes - empty)) };
}

async function createSessions(engine: NodeInfo, count: number): Promise<string[]> {
  const ids: string[] = [];
  const attributes = attributesOfBytes(LOOKUP_ATTRIBUTES_BYTES);
  for (let i = 0; i < count; i += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - i) }, (_, k) => api(engine, 'POST', '/runtime/v1/sessions', { subject: `user-${i + k}`, attributes })));
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
  // The heap and what lives outside it (the store's typed-array columns, record-space.ts).
  const held = (): number => {
    const m = process.memoryUsage();
    return m.heapUsed + m.external;
  };
  gc();
  const before = held();
  putSessions(store, count);
  gc();
  const bytes = (held() - before) / count;
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

/** CPU time per request, as printed beside a row's throughput. */
function cpuText(us: number | null | undefined): string {
  return us === null || us === undefined ? 'CPU n/a' : `CPU ${us.toFixed(0)} µs/req`;
}

/** The peer's CPU time per request over the row's: the row's throughput as a share of the peer's, were both CPU-bound. */
function cpuRatio(peer: LoadFigures, row: LoadFigures): number | null {
  return peer.cpuUsPerRequest === null || row.cpuUsPerRequest === null || row.cpuUsPerRequest === 0 ? null : peer.cpuUsPerRequest / row.cpuUsPerRequest;
}

/** The machine's 1-minute load average (other sessions share it), printed with the figures. */
function loadAverage(): string {
  return loadavg()[0]!.toFixed(1);
}

async function main(): Promise<void> {
  const base = mkdtempSync(join(tmpdir(), 'cohort-bench-runtime-'));
  removeAtExit(base);
  const results: Record<string, unknown> = {};

  if (args['join-only']) {
    results.join = await measureJoin();
    process.stdout.write(args.json ? `${JSON.stringify(results)}\n` : [...joinRows(results.join as Record<string, number>), ''].join('\n'));
    return;
  }

  // ---- 1. lookups: grid, bare Fastify, Redis
  log(`starting a console and 3 engines (grid, RF 3); load average ${loadAverage()}`);
  const consoleNode = await nodeConfig(base, 'console', 'console', '');
  await startBenchNode(consoleNode);
  const engines: NodeInfo[] = [];
  // engine-2 serves no metrics and times nothing for them: the metrics' cost is measured against it.
  for (const id of ['engine-1', 'engine-2', 'engine-3']) engines.push(await nodeConfig(base, id, 'engine', consoleNode.cluster, [], id === 'engine-2' ? ['metrics = false'] : []));
  await Promise.all(engines.map(startNode));
  log(`creating ${LOOKUP_SESSIONS} sessions with ${LOOKUP_ATTRIBUTES_BYTES}-byte attributes`);
  const ids = await createSessions(engines[0]!, LOOKUP_SESSIONS);
  const paths = ids.map((id) => `/runtime/v1/sessions/${id}`);
  // The peer answers one of these sessions as the engine does, so both send the same bytes.
  const sessionFile = join(base, 'session.json');
  writeFileSync(sessionFile, JSON.stringify(await api(engines[0]!, 'GET', paths[0]!)));
  const peerPort = await freePort();
  const peer = await spawnProcess([PEER, String(peerPort), sessionFile], /peer started/);
  const bodyBytes = async (url: string): Promise<number> => (await (await fetch(url, { headers: { authorization: `Bearer ${API_KEY}` } })).arrayBuffer()).byteLength;
  const gridBodyBytes = await bodyBytes(`http://${engines[0]!.runtime}${paths[0]!}`);
  const fastifyBodyBytes = await bodyBytes(`http://127.0.0.1:${peerPort}${paths[0]!}`);

  // The Redis row, when a Redis answers: an engine of the same code on the Redis provider.
  let redisEngine: NodeInfo | undefined;
  let redisPaths: string[] | undefined;
  try {
    redisEngine = await nodeConfig(base, 'engine-redis', 'engine', consoleNode.cluster, ['provider = redis', `redis_url = ${args.redis}`]);
    await startNode(redisEngine);
    redisPaths = (await createSessions(redisEngine, LOOKUP_SESSIONS)).map((id) => `/runtime/v1/sessions/${id}`);
  } catch (err) {
    log(`Redis provider not measured: ${(err as Error).message}`);
    redisEngine?.child?.kill('SIGKILL');
    redisEngine = undefined;
  }
  // The Redis Cluster row: the same engine code on a cluster this bench starts (its own ports).
  let clusterEngine: NodeInfo | undefined;
  let clusterPaths: string[] | undefined;
  let redisCluster: RedisClusterHandle | undefined;
  const missing = redisBinariesMissing();
  if (missing !== undefined) {
    log(`Redis Cluster provider not measured: ${missing}`);
  } else {
    try {
      log('starting a Redis Cluster (3 masters, 3 replicas)');
      redisCluster = await startRedisCluster(join(base, 'redis-cluster'));
      clusterEngine = await nodeConfig(base, 'engine-redis-cluster', 'engine', consoleNode.cluster, ['provider = redis', `redis_url = ${redisCluster.url}`]);
      await startNode(clusterEngine);
      clusterPaths = (await createSessions(clusterEngine, LOOKUP_SESSIONS)).map((id) => `/runtime/v1/sessions/${id}`);
    } catch (err) {
      log(`Redis Cluster provider not measured: ${(err as Error).message}`);
      clusterEngine?.child?.kill('SIGKILL');
      clusterEngine = undefined;
      clusterPaths = undefined;
    }
  }
  const group = { tool: LOAD_TOOL, dir: base, connections: CONNECTIONS, threads: THREADS, log };
  log(`session lookups through engine-1 beside the bare Fastify route${redisPaths ? ', the Redis provider' : ''}${clusterPaths ? ', the Redis Cluster provider' : ''}, ${ROUNDS} x ${SLICE_SECONDS} s each (${LOAD_TOOL})`);
  const lookupRows = [
    { name: 'fastify', base: `http://127.0.0.1:${peerPort}`, requests: lookups(paths), group: peer.pid! },
    { name: 'grid', base: `http://${engines[0]!.runtime}`, requests: lookups(paths), group: engines[0]!.child!.pid! },
    ...(redisEngine && redisPaths ? [{ name: 'redis', base: `http://${redisEngine.runtime}`, requests: lookups(redisPaths), group: redisEngine.child!.pid! }] : []),
    ...(clusterEngine && clusterPaths ? [{ name: 'redis-cluster', base: `http://${clusterEngine.runtime}`, requests: lookups(clusterPaths), group: clusterEngine.child!.pid! }] : []),
  ];
  const measured = (await measureGroupSlices(lookupRows, { ...group, warmupSeconds: WARMUP_SECONDS, rounds: ROUNDS, sliceSeconds: SLICE_SECONDS })).map(figures);
  const byName = (name: string): LoadFigures | undefined => {
    const i = lookupRows.findIndex((r) => r.name === name);
    return i < 0 ? undefined : measured[i];
  };
  const [bare, grid, redis, redisClusterRow] = [byName('fastify')!, byName('grid')!, byName('redis'), byName('redis-cluster')];
  results.lookup = {
    load: LOAD_TOOL, connections: CONNECTIONS, sessions: LOOKUP_SESSIONS, attributesBytes: LOOKUP_ATTRIBUTES_BYTES, gridBodyBytes, fastifyBodyBytes,
    gridRps: grid.rps, gridP50Ms: grid.p50Ms, gridP99Ms: grid.p99Ms, gridErrors: grid.errors, gridCpuUsPerRequest: grid.cpuUsPerRequest,
    fastifyRps: bare.rps, fastifyP50Ms: bare.p50Ms, fastifyP99Ms: bare.p99Ms, fastifyCpuUsPerRequest: bare.cpuUsPerRequest,
    ratio: grid.rps / bare.rps,
    cpuRatio: cpuRatio(bare, grid),
    ...(redis ? { redisRps: redis.rps, redisP50Ms: redis.p50Ms, redisP99Ms: redis.p99Ms, redisErrors: redis.errors, redisCpuUsPerRequest: redis.cpuUsPerRequest, gridOverRedis: grid.rps / redis.rps } : {}),
    ...(redisClusterRow
      ? { redisClusterRps: redisClusterRow.rps, redisClusterP50Ms: redisClusterRow.p50Ms, redisClusterP99Ms: redisClusterRow.p99Ms, redisClusterErrors: redisClusterRow.errors, redisClusterCpuUsPerRequest: redisClusterRow.cpuUsPerRequest, gridOverRedisCluster: grid.rps / redisClusterRow.rps }
      : {}),
  };
  for (const engine of [redisEngine, clusterEngine]) {
    if (!engine) continue;
    engine.child?.kill('SIGTERM');
    await once(engine.child!, 'exit');
  }
  await redisCluster?.stop();

  const rounds = Number(args['metrics-rounds']);
  log(`metrics on (engine-1) and off (engine-2): session lookups, alternating, ${rounds} rounds of ${SECONDS} s`);
  const [on, off] = await measureGroupSlices(
    [
      { name: 'metrics-on', base: `http://${engines[0]!.runtime}`, requests: lookups(paths), group: engines[0]!.child!.pid! },
      { name: 'metrics-off', base: `http://${engines[1]!.runtime}`, requests: lookups(paths), group: engines[1]!.child!.pid! },
    ],
    { ...group, warmupSeconds: 0, rounds, sliceSeconds: Math.max(1, Math.round(SECONDS)) },
  ) as [Slice[], Slice[]];
  const onFigures = figures(on);
  const offFigures = figures(off);
  const roundRps = (list: Slice[]): number[] => list.map((x) => Math.round(x.requests / x.seconds));
  results.metrics = {
    onRps: onFigures.rps, offRps: offFigures.rps, ratio: onFigures.rps / offFigures.rps,
    onRounds: roundRps(on), offRounds: roundRps(off),
    onP99Ms: onFigures.p99Ms, offP99Ms: offFigures.p99Ms,
    onCpuUsPerRequest: onFigures.cpuUsPerRequest, offCpuUsPerRequest: offFigures.cpuUsPerRequest,
    errors: onFigures.errors + offFigures.errors,
  };
  log(`lookups done; load average ${loadAverage()}`);
  if (args['lookups-only']) {
    printLookups(results);
    return;
  }

  // ---- 2. replicated writes
  log('replicated writes, one connection (latency)');
  const body = JSON.stringify({ value: { step: 'consent', n: 1 }, ttlSeconds: 600 });
  const writes: LoadRequest[] = Array.from({ length: 5000 }, (_, i) => ({
    method: 'PUT', path: `/runtime/v1/state/key-${i}`, headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' }, body,
  }));
  const writeRun = { tool: LOAD_TOOL, dir: base, threads: THREADS, base: `http://${engines[0]!.runtime}`, requests: writes, seconds: Math.max(1, Math.round(SECONDS)) };
  const writeLatency = figures([await runLoad({ ...writeRun, name: 'write-latency', connections: 1 })]);
  log('replicated writes, many connections (throughput)');
  const writeThroughput = figures([await runLoad({ ...writeRun, name: 'write-throughput', connections: CONNECTIONS })]);
  results.replicatedWrite = {
    p50Ms: writeLatency.p50Ms, p99Ms: writeLatency.p99Ms, oneConnectionRps: writeLatency.rps,
    rps: writeThroughput.rps, errors: writeThroughput.errors + writeLatency.errors,
  };

  // ---- 3. memory
  results.memoryBytesPerSessionPerReplica = memoryPerSession();

  // ---- stop the lookup cluster
  for (const n of [...engines, consoleNode]) n.child?.kill('SIGKILL');

  // ---- 2b. replicated writes inside the grid, once the HTTP cluster is gone (CPU to itself)
  log('replicated writes inside the grid (3 processes, no HTTP)');
  results.gridWrite = await measureGridWrites({ seconds: SECONDS, writers: 64, redisUrl: args.redis, log });

  // ---- 4. join
  results.join = await measureJoin();

  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  const w = results.replicatedWrite as Record<string, number>;
  const g = results.gridWrite as GridWriteFigures;
  const j = results.join as Record<string, number>;
  process.stdout.write([
    ...lookupTable(results),
    `| replicated write (RF 3, all replicas) inside the grid, 3 processes, one writer | at the primary p50 ${fmt(g.p50Ms)}, p99 ${fmt(g.p99Ms)}; from any engine p50 ${fmt(g.anyEngineP50Ms)}, p99 ${fmt(g.anyEngineP99Ms)} | | p50 < 0.5 ms, p99 < 3 ms |`,
    `| same, ${g.writersPerEngine} writers on each engine (batched) | ${g.writesPerSecond.toFixed(0)} writes/s, p50 ${fmt(g.loadedP50Ms)}, p99 ${fmt(g.loadedP99Ms)}; ${g.errors} errors | Redis SET (one server, no replica), ${g.writersPerEngine * 3} writers: ${g.redisWritesPerSecond === undefined ? 'not measured' : `${g.redisWritesPerSecond.toFixed(0)} writes/s, p50 ${fmt(g.redisP50Ms!)}, p99 ${fmt(g.redisP99Ms!)}`} | ≥ 50,000/s |`,
    `| CPU per write in that run | ${g.cpuMicrosPerWrite.toFixed(1)} µs across the 3 engines (writers included; ${g.coresBusy.toFixed(2)} cores busy; frames sent per write ${g.framesPerWrite.join(' / ')}, CPU shares ${g.cpuShare.join(' / ')}) | Redis server ${g.redisServerCpuMicrosPerSet === undefined ? 'not measured' : `${g.redisServerCpuMicrosPerSet.toFixed(1)} µs a SET (one copy), its client ${g.redisClientCpuMicrosPerSet!.toFixed(1)} µs`} | (no target) |`,
    `| replicated write through the HTTP API | p50 ${fmt(w.p50Ms!)}, p99 ${fmt(w.p99Ms!)} (one connection); ${w.rps!.toFixed(0)} writes/s with ${CONNECTIONS} connections | | (no target) |`,
    `| memory per session per replica (256 B attributes) | ${(results.memoryBytesPerSessionPerReplica as number).toFixed(0)} B | | < 1 KB (aim: 700 B) |`,
    ...joinRows(j),
    '',
  ].join('\n'));
}

/**
 * 4. Three engines started together on a saved state of --join-sessions sessions and
 * --join-revocations revocations (a full stop and start), then a fourth joining them while a
 * client reads sessions through engine-1.
 */
async function measureJoin(): Promise<Record<string, number>> {
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
  // The store that wrote the saved state is garbage now: collected here, not by this process
  // while the engines load (a million records to mark, on the cores the engines share).
  (globalThis as { gc?: () => void }).gc?.();
  log('join: starting 3 engines on the saved state');
  const loadStart = performance.now();
  const loadBenchCpu = process.cpuUsage();
  await Promise.all(jengines.map(startNode));
  const clusterLoadMs = performance.now() - loadStart;
  const loadCpu = jengines.map((n) => `${n.id} ${((groupCpuMs(n.child!.pid!) ?? NaN) / 1000).toFixed(2)}`);
  const benchLoadCpu = process.cpuUsage(loadBenchCpu);
  log(`join: CPU seconds until the 3 engines were ready: ${loadCpu.join(', ')}, this process ${((benchLoadCpu.user + benchLoadCpu.system) / 1e6).toFixed(2)}`);
  const joiner = await nodeConfig(jbase, 'engine-4', 'engine', jconsole.cluster);
  // A client reads sessions through engine-1 the whole time, one request after another on a
  // kept-alive connection; every failure counts. node:http rather than fetch: fetch cost this
  // process about 0.5 ms of CPU per read, a third of the machine's CPU during the join, taken
  // from the engines being measured.
  let reads = 0;
  let failed = 0;
  let reading = true;
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  const read = (path: string): Promise<number> => httpStatus(agent, jengines[0]!.runtime, path, { authorization: `Bearer ${API_KEY}` }, 30_000);
  const rate = Number(args['join-read-rate']);
  const reader = (async () => {
    const started = performance.now();
    let i = 0;
    while (reading) {
      const subject = `user-${(i++ * 7919) % sessions}`;
      if ((await read(`/runtime/v1/subjects/${subject}/sessions`)) !== 200) failed++;
      reads++;
      // Paced: the next read is due at reads / rate seconds after the start (none skipped).
      const wait = rate > 0 ? started + (reads * 1000) / rate - performance.now() : 0;
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait));
    }
    agent.destroy();
  })();
  log('join: starting engine-4');
  const others = [...jengines, jconsole];
  const cpuBefore = others.map((n) => groupCpuMs(n.child!.pid!) ?? NaN);
  const benchCpuBefore = process.cpuUsage();
  const joinStart = performance.now();
  joiner.child = spawnQuiet([CLI, 'start', '-c', joiner.file], NODE_PROCESS_ENV);
  await waitReady(joiner, 600_000);
  const joinMs = performance.now() - joinStart;
  // Where the machine's CPU went while the engine joined (user and system, in seconds).
  const cpuSeconds = (ms: number): number => Math.round(ms / 10) / 100;
  const joinCpu: Record<string, number> = { [joiner.id]: cpuSeconds(groupCpuMs(joiner.child.pid!) ?? NaN) };
  others.forEach((n, i) => (joinCpu[n.id] = cpuSeconds((groupCpuMs(n.child!.pid!) ?? NaN) - cpuBefore[i]!)));
  const benchCpu = process.cpuUsage(benchCpuBefore);
  joinCpu['client (this process)'] = cpuSeconds((benchCpu.user + benchCpu.system) / 1000);
  log(`join: CPU seconds while engine-4 joined: ${Object.entries(joinCpu).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  reading = false;
  await reader;
  for (const n of [...jengines, joiner, jconsole]) n.child?.kill('SIGKILL');
  return { sessions, revocations: revocationCount, readyMs: joinMs, readRate: rate, joinerCpuSeconds: joinCpu[joiner.id]!, clientCpuSeconds: joinCpu['client (this process)']!, clientReads: reads, clientFailures: failed, clusterLoadFromSavedStateMs: clusterLoadMs };
}

function joinRows(j: Record<string, number>): string[] {
  return [
    `| engine joining ${j.sessions} sessions + ${j.revocations} revocations | ready in ${(j.readyMs! / 1000).toFixed(1)} s; ${j.clientFailures} of ${j.clientReads} client reads failed (${j.readRate ? `${j.readRate} reads/s` : 'one after another'}) | | < 10 s, no failed request |`,
    `| 3 engines started together on that saved state (a full stop and start) | all ready in ${(j.clusterLoadFromSavedStateMs! / 1000).toFixed(1)} s | | < 10 s |`,
    ...(args['huge-pages'] ? [`| (Cohort processes started with GLIBC_TUNABLES=${NODE_PROCESS_ENV.GLIBC_TUNABLES}) | | | |`] : []),
  ];
}

function lookupRow(results: Record<string, unknown>): string {
  const l = results.lookup as Record<string, number | null>;
  const byCpu = l.cpuRatio === null || l.cpuRatio === undefined ? '' : `; by CPU per request ${(l.cpuRatio * 100).toFixed(0)}%`;
  return `| session lookup through one engine (grid; ${l.sessions} sessions, ${l.attributesBytes}-byte attributes; ${CONNECTIONS} connections, ${LOAD_TOOL} in its own process) | ${l.gridRps!.toFixed(0)} req/s (${cpuText(l.gridCpuUsPerRequest)}), p50 ${fmt(l.gridP50Ms!)}, p99 ${fmt(l.gridP99Ms!)}; ${l.gridErrors} errors | bare Fastify, same body: ${l.fastifyRps!.toFixed(0)} req/s (${cpuText(l.fastifyCpuUsPerRequest)}), p50 ${fmt(l.fastifyP50Ms!)}, p99 ${fmt(l.fastifyP99Ms!)} | ≥ 70% of Fastify: ${(l.ratio! * 100).toFixed(0)}%${byCpu} |`;
}

function redisRow(results: Record<string, unknown>): string {
  const l = results.lookup as Record<string, number | null>;
  return `| same workload, Redis provider (CPU: the engine's, not Redis's) | ${l.redisRps ? `${l.redisRps.toFixed(0)} req/s (${cpuText(l.redisCpuUsPerRequest)}), p50 ${fmt(l.redisP50Ms!)}, p99 ${fmt(l.redisP99Ms!)}` : 'not measured'} | | grid ≥ 1.3x Redis: ${l.gridOverRedis ? `${l.gridOverRedis.toFixed(2)}x` : '—'} |`;
}

function redisClusterRow(results: Record<string, unknown>): string {
  const l = results.lookup as Record<string, number | null>;
  return `| same workload, Redis Cluster provider (3 masters, 3 replicas, started by the bench; CPU: the engine's) | ${l.redisClusterRps ? `${l.redisClusterRps.toFixed(0)} req/s (${cpuText(l.redisClusterCpuUsPerRequest)}), p50 ${fmt(l.redisClusterP50Ms!)}, p99 ${fmt(l.redisClusterP99Ms!)}; ${l.redisClusterErrors} errors` : 'not measured'} | | grid ≥ 1.3x Redis: ${l.gridOverRedisCluster ? `${l.gridOverRedisCluster.toFixed(2)}x` : '—'} |`;
}

function metricsRow(results: Record<string, unknown>): string {
  const m = results.metrics as { onRps: number; offRps: number; ratio: number; onRounds: number[]; offRounds: number[]; onP99Ms: number; offP99Ms: number; onCpuUsPerRequest: number | null; offCpuUsPerRequest: number | null; errors: number };
  return `| same lookups, metrics on (engine-1) vs off (engine-2, [http] metrics = false), alternating | on ${m.onRps.toFixed(0)} req/s (${cpuText(m.onCpuUsPerRequest)}; rounds ${m.onRounds.join(', ')}; p99 ${fmt(m.onP99Ms)}); ${m.errors} errors | off ${m.offRps.toFixed(0)} req/s (${cpuText(m.offCpuUsPerRequest)}; rounds ${m.offRounds.join(', ')}; p99 ${fmt(m.offP99Ms)}) | on within 5% of off: ${(m.ratio * 100).toFixed(1)}% |`;
}

function printLookups(results: Record<string, unknown>): void {
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results)}\n`);
    return;
  }
  process.stdout.write([...lookupTable(results), ''].join('\n'));
}

/** The table's head and its lookup rows: the whole table with --lookups-only, its start otherwise. */
function lookupTable(results: Record<string, unknown>): string[] {
  return ['| measure | Cohort | peer (same run) | target |', '| --- | ---: | ---: | --- |', lookupRow(results), metricsRow(results), redisRow(results), redisClusterRow(results)];
}

main().then(
  // The nodes it started are still running: the exit handler kills them.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:runtime failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
