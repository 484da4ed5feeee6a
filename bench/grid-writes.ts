/**
 * Replicated writes inside the grid, without HTTP: three engine processes (bench/
 * grid-write-worker.ts: the engines' own transport, RPC, store and replicated executor), RF 3,
 * sessions with 256 bytes of attributes created through the grid provider. A session is
 * acknowledged once all three replicas hold it.
 *
 * 1. Latency: one writer on one engine, one write at a time (p50/p99): sessions whose
 *    partition that engine is the primary of (the replicated write itself: applied, sent to
 *    both backups, acknowledged by both), then any session (two thirds are forwarded to
 *    another engine's primary first: one more round trip).
 * 2. Throughput: `writers` concurrent writers on each of the three engines (as behind a load
 *    balancer: two thirds of the writes hop to another engine's primary first).
 * 3. Peer, same run: the same session documents written to Redis (SET with an expiry; one
 *    server, no replica) by the same number of concurrent writers over one ioredis connection.
 *
 * The CPU time the engine processes used in the throughput phase is divided by the writes
 * acknowledged (the writers' own work included: they run in the engines), and the Redis
 * server's (INFO cpu) by its SETs, so the two can be compared however busy the machine was.
 *
 * Used by bench/runtime.ts; `node dist/bench/grid-writes.js [--seconds 5] [--writers 64]
 * [--json] [--profile <dir>]` runs it alone: the figures as JSON, then (without --json) a line
 * of CPU per write (`cpuLine`) and a last line `grid-writes: grid <N>/s redis <N>/s ratio <R>`;
 * `--profile`: each engine writes a CPU profile of the throughput phase to
 * `<dir>/engine-<n>.cpuprofile`. Workers are killed by pid when it ends.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import type { FromWorker, ToWorker } from './grid-write-worker.js';
import { LatencyHistogram } from './latency-histogram.js';

const WORKER = fileURLToPath(new URL('./grid-write-worker.js', import.meta.url));

export interface GridWriteFigures {
  /** One writer, one write at a time, on the partition's primary. */
  p50Ms: number;
  p99Ms: number;
  /** One writer, one write at a time, any partition (most forwarded to their primary). */
  anyEngineP50Ms: number;
  anyEngineP99Ms: number;
  /** All engines, `writers` each. */
  writesPerSecond: number;
  loadedP50Ms: number;
  loadedP99Ms: number;
  writersPerEngine: number;
  errors: number;
  firstError?: string;
  /**
   * CPU time the three engine processes used in the throughput phase per write acknowledged
   * (µs: the writers, the primaries, both backups and every message between them, collector
   * threads included), and how many cores they kept busy on average.
   */
  cpuMicrosPerWrite: number;
  coresBusy: number;
  /**
   * Per engine, in the throughput phase: frames it sent per write its own writers made (each
   * frame is one sealing and, mostly, one socket write; a turn's messages to a peer share one),
   * and its share of the three engines' CPU time.
   */
  framesPerWrite: number[];
  cpuShare: number[];
  /** The peer: Redis SET with the same writers; undefined when Redis is unreachable. */
  redisWritesPerSecond?: number;
  redisP50Ms?: number;
  redisP99Ms?: number;
  /** The Redis server's CPU time per SET (µs, from INFO cpu: one copy), and the writing client's (this process). */
  redisServerCpuMicrosPerSet?: number;
  redisClientCpuMicrosPerSet?: number;
}

type Result = Extract<FromWorker, { type: 'result' }>;

function next<T extends FromWorker['type']>(child: ChildProcess, type: T): Promise<Extract<FromWorker, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (m: FromWorker): void => {
      if (m.type !== type) return;
      child.off('message', onMessage);
      child.off('exit', onExit);
      resolve(m as Extract<FromWorker, { type: T }>);
    };
    const onExit = (code: number | null): void => reject(new Error(`grid write worker exited with ${code} while waiting for ${type}`));
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/** `profileDir`: each worker writes a CPU profile of the run there (`engine-<n>.cpuprofile`). */
async function runOn(workers: ChildProcess[], writers: number, ms: number, atPrimary = false, profileDir?: string): Promise<Result[]> {
  const results = workers.map((w) => next(w, 'result'));
  workers.forEach((w, i) => {
    const profileTo = profileDir === undefined ? undefined : join(profileDir, `engine-${i + 1}.cpuprofile`);
    w.send({ type: 'run', writers, ms, atPrimary, profileTo } satisfies ToWorker);
  });
  return Promise.all(results);
}

/**
 * The CPU seconds a Redis server has used (user and system, all its threads, not its children)
 * in the text of `INFO cpu` (pure); NaN when either field is missing.
 */
export function redisCpuSeconds(info: string): number {
  const field = (name: string): number => Number(new RegExp(`^${name}:([\\d.]+)\\r?$`, 'm').exec(info)?.[1] ?? NaN);
  return field('used_cpu_sys') + field('used_cpu_user');
}

async function redisCpuMicros(redis: Redis): Promise<number> {
  return redisCpuSeconds(await redis.info('cpu')) * 1e6;
}

interface RedisPeerFigures {
  writesPerSecond: number;
  histogram: LatencyHistogram;
  serverCpuMicrosPerSet: number;
  clientCpuMicrosPerSet: number;
}

async function redisPeer(url: string, writers: number, ms: number): Promise<RedisPeerFigures | undefined> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, connectTimeout: 1000 });
  try {
    await redis.connect();
  } catch {
    redis.disconnect();
    return undefined;
  }
  const histogram = new LatencyHistogram();
  const attributes = { blob: 'x'.repeat(244) };
  const until = performance.now() + ms;
  let n = 0;
  const writer = async (): Promise<void> => {
    while (performance.now() < until) {
      const now = Date.now();
      const id = `bench.${n++}`;
      const session = { id, subject: `user-${n}`, attributes, createdAt: now, lastAccessAt: now, idleTimeoutMs: 600_000, maxLifetimeMs: 600_000, expiresAt: now + 600_000 };
      const started = performance.now();
      await redis.set(`cohort-bench:session:${id}`, JSON.stringify(session), 'PX', 60_000);
      histogram.record(performance.now() - started);
    }
  };
  const serverBefore = await redisCpuMicros(redis);
  const clientBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsed = performance.now() - started;
  const client = process.cpuUsage(clientBefore);
  const server = (await redisCpuMicros(redis)) - serverBefore;
  await redis.quit();
  return { writesPerSecond: (histogram.total / elapsed) * 1000, histogram, serverCpuMicrosPerSet: server / histogram.total, clientCpuMicrosPerSet: (client.user + client.system) / histogram.total };
}

const round2 = (v: number): number => Math.round(v * 100) / 100;

export async function measureGridWrites(options: { seconds: number; writers: number; redisUrl: string; profileDir?: string; log(text: string): void }): Promise<GridWriteFigures> {
  const ms = options.seconds * 1000;
  const workers = ['engine-1', 'engine-2', 'engine-3'].map((id) => fork(WORKER, [id], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] }));
  const kill = (): void => {
    for (const w of workers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
  };
  process.once('exit', kill);
  try {
    const addresses = await Promise.all(workers.map((w) => next(w, 'listening')));
    const engines: Array<[string, string]> = addresses.map((a, i) => [`engine-${i + 1}`, a.address]);
    const ready = workers.map((w) => next(w, 'ready'));
    for (const w of workers) w.send({ type: 'engines', engines } satisfies ToWorker);
    await Promise.all(ready);

    options.log('grid writes: warming up');
    await runOn(workers, options.writers, Math.min(ms, 2000));
    options.log('grid writes: one writer on the primary (latency)');
    const [single] = await runOn(workers.slice(0, 1), 1, ms, true);
    options.log('grid writes: one writer, any partition (latency)');
    const [anyEngine] = await runOn(workers.slice(0, 1), 1, ms);
    options.log(`grid writes: ${options.writers} writers on each of 3 engines (throughput)`);
    const loaded = await runOn(workers, options.writers, ms, false, options.profileDir);
    const singleHistogram = new LatencyHistogram(single!.histogram);
    const anyEngineHistogram = new LatencyHistogram(anyEngine!.histogram);
    const loadedHistogram = new LatencyHistogram();
    for (const r of loaded) loadedHistogram.add(r.histogram);
    const loadedCpuMicros = loaded.reduce((sum, r) => sum + r.cpuMicros, 0);
    options.log('grid writes: the same writes to Redis (peer)');
    const peer = await redisPeer(options.redisUrl, options.writers * workers.length, ms);
    const all = [single!, anyEngine!, ...loaded];
    return {
      p50Ms: singleHistogram.percentile(50),
      p99Ms: singleHistogram.percentile(99),
      anyEngineP50Ms: anyEngineHistogram.percentile(50),
      anyEngineP99Ms: anyEngineHistogram.percentile(99),
      writesPerSecond: (loadedHistogram.total / ms) * 1000,
      loadedP50Ms: loadedHistogram.percentile(50),
      loadedP99Ms: loadedHistogram.percentile(99),
      writersPerEngine: options.writers,
      cpuMicrosPerWrite: loadedCpuMicros / Math.max(1, loadedHistogram.total),
      coresBusy: loadedCpuMicros / (ms * 1000),
      framesPerWrite: loaded.map((r) => round2(r.framesSent / Math.max(1, r.writes))),
      cpuShare: loaded.map((r) => round2(r.cpuMicros / Math.max(1, loadedCpuMicros))),
      errors: all.reduce((s, r) => s + r.errors, 0),
      firstError: all.find((r) => r.firstError)?.firstError,
      redisWritesPerSecond: peer?.writesPerSecond,
      redisP50Ms: peer?.histogram.percentile(50),
      redisP99Ms: peer?.histogram.percentile(99),
      redisServerCpuMicrosPerSet: peer?.serverCpuMicrosPerSet,
      redisClientCpuMicrosPerSet: peer?.clientCpuMicrosPerSet,
    };
  } finally {
    // Disconnecting lets a worker exit on its own (and write a --cpu-prof profile); the kill is
    // for one that does not within a second.
    const exited = Promise.all(workers.map((w) => (w.exitCode === null && w.signalCode === null ? once(w, 'exit') : undefined)));
    for (const w of workers) if (w.connected) w.disconnect();
    const timer = setTimeout(kill, 1000);
    await exited;
    clearTimeout(timer);
    process.off('exit', kill);
  }
}

/**
 * What a write cost in CPU, in one line (printed before the summary): the engines' CPU per
 * acknowledged write beside the Redis server's per SET and its client's.
 */
export function cpuLine(f: Pick<GridWriteFigures, 'cpuMicrosPerWrite' | 'coresBusy' | 'redisServerCpuMicrosPerSet' | 'redisClientCpuMicrosPerSet'>): string {
  const us = (v: number | undefined): string => (v === undefined || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(1)} µs`);
  return `grid-writes cpu: grid ${us(f.cpuMicrosPerWrite)} a write (3 engines, ${f.coresBusy.toFixed(2)} cores busy) redis server ${us(f.redisServerCpuMicrosPerSet)} a SET, its client ${us(f.redisClientCpuMicrosPerSet)}`;
}

/** The run in one line, last: `grid-writes: grid <N>/s redis <N>/s ratio <R>` (redis and ratio `n/a` without a Redis). */
export function summaryLine(f: Pick<GridWriteFigures, 'writesPerSecond' | 'redisWritesPerSecond'>): string {
  const redis = f.redisWritesPerSecond;
  const peer = redis === undefined ? 'n/a' : `${Math.round(redis)}/s`;
  const ratio = redis === undefined || redis === 0 ? 'n/a' : (f.writesPerSecond / redis).toFixed(2);
  return `grid-writes: grid ${Math.round(f.writesPerSecond)}/s redis ${peer} ratio ${ratio}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      writers: { type: 'string', default: '64' },
      redis: { type: 'string', default: process.env.COHORT_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379' },
      json: { type: 'boolean', default: false },
      profile: { type: 'string' },
    },
  });
  const profileDir = values.profile === undefined ? undefined : resolve(values.profile);
  if (profileDir !== undefined) await mkdir(profileDir, { recursive: true });
  const figures = await measureGridWrites({ seconds: Number(values.seconds), writers: Number(values.writers), redisUrl: values.redis, profileDir, log: (t) => process.stderr.write(`bench:grid-writes: ${t}\n`) });
  if (values.json) process.stdout.write(`${JSON.stringify(figures)}\n`);
  else process.stdout.write(`${JSON.stringify(figures, null, 2)}\n${cpuLine(figures)}\n${summaryLine(figures)}\n`);
  process.exit(0);
}
