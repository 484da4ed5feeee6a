/**
 * One engine of the in-grid write benchmark (bench/grid-writes.ts), in its own process: the
 * engines' own transport, RPC, store and replicated executor, without HTTP and without
 * membership (the parent tells every worker the engine set). Driven over the IPC channel:
 *
 * - `{type: 'engines', engines}` → places the partitions and answers `{type: 'ready'}` once
 *   the start-up sync is done;
 * - `{type: 'run', writers, ms, atPrimary}` → `writers` loops creating sessions (256 bytes
 *   of attributes) through the grid provider for `ms`, answers `{type: 'result', ...}` with the
 *   count, errors, a latency histogram (see latency-histogram.ts) and the CPU time the process
 *   used meanwhile.
 */
import { writeFile } from 'node:fs/promises';
import { Session } from 'node:inspector/promises';
import { Secret } from '../src/config/secret.js';
import { systemClock } from '../src/core/clock.js';
import { silentLogger } from '../src/core/logger.js';
import { Rpc } from '../src/rpc/rpc.js';
import { GridProvider, partitionOf } from '../src/state/grid/grid-provider.js';
import { GridStore } from '../src/state/grid/grid-store.js';
import { ReplicatedExecutor } from '../src/state/grid/replicated-executor.js';
import { TransportMux } from '../src/transport/mux.js';
import { TcpTransport } from '../src/transport/tcp-transport.js';
import { keepTickObjectShape } from '../src/node/tick-object-shape.js';
import { LatencyHistogram } from './latency-histogram.js';

export const GRID_WRITE_SECRET = 'bench-grid-writes-secret-long-enough';

/**
 * `atPrimary`: only sessions whose partition this engine is the primary of (no forwarding hop);
 * `profileTo`: a file to write a CPU profile of this run to (`--profile`).
 */
export type ToWorker = { type: 'engines'; engines: Array<[string, string]> } | { type: 'run'; writers: number; ms: number; atPrimary: boolean; profileTo?: string };
export type FromWorker =
  | { type: 'listening'; address: string }
  | { type: 'ready' }
  | { type: 'result'; writes: number; errors: number; firstError?: string; histogram: number[]; cpuMicros: number; framesSent: number };

const nodeId = process.argv[2];
if (!nodeId || !process.send) throw new Error('usage: forked by bench/grid-writes.js with the node id as argument');
const send = (m: FromWorker): void => void process.send!(m);

// As `cohort start` does first thing for every node (node/tick-object-shape.ts): this process
// stands in for an engine, and it idles while the latency phase runs on another.
keepTickObjectShape();
const logger = silentLogger();
const transport = new TcpTransport({ clusterId: 'bench-grid-writes', nodeId, bind: { host: '127.0.0.1', port: 0 }, secret: new Secret(GRID_WRITE_SECRET), clock: systemClock, logger });
const mux = new TransportMux(transport);
const store = new GridStore(systemClock, nodeId);
store.start();
const rpc = new Rpc({ mux, clock: systemClock, logger, timeoutMs: 2000 });
const executor = new ReplicatedExecutor({ store, rpc, clock: systemClock, logger, self: nodeId, replicationFactor: 3, bulkTimeoutMs: 30_000 });
const provider = new GridProvider(executor, systemClock);
await transport.start(mux.handlers());
send({ type: 'listening', address: transport.localAddress });

const attributes = { blob: 'x'.repeat(244) };

/** The next subject to write; with `atPrimary`, the next whose partition this engine is the primary of. */
let n = 0;
function nextSubject(atPrimary: boolean): string {
  for (;;) {
    const subject = `${nodeId}-user-${n++}`;
    if (!atPrimary || executor.replicasOf(partitionOf(`subject:${subject}`))[0] === nodeId) return subject;
  }
}

async function run(writers: number, ms: number, atPrimary: boolean, profileTo: string | undefined): Promise<FromWorker> {
  const profiler = profileTo === undefined ? undefined : await startProfiler(profileTo);
  const histogram = new LatencyHistogram();
  const framesBefore = transport.stats().framesSent;
  const cpuBefore = process.cpuUsage();
  const until = performance.now() + ms;
  let writes = 0;
  let errors = 0;
  let firstError: string | undefined;
  const writer = async (): Promise<void> => {
    while (performance.now() < until) {
      const subject = nextSubject(atPrimary);
      const started = performance.now();
      try {
        await provider.sessions.create({ subject, attributes, idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 });
        histogram.record(performance.now() - started);
        writes++;
      } catch (err) {
        errors++;
        firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: writers }, writer));
  // The whole process (its writers, its primary and backup work, its messages), collector
  // threads included, from the run's start to its end.
  const cpu = process.cpuUsage(cpuBefore);
  const framesSent = transport.stats().framesSent - framesBefore;
  await profiler?.stop();
  return {
    type: 'result',
    writes,
    errors,
    firstError,
    histogram: histogram.counts(),
    cpuMicros: cpu.user + cpu.system,
    framesSent,
  };
}

/** V8's sampling profiler on this process (0.1 ms interval), for `--profile`; `stop` writes the profile to `file`. */
async function startProfiler(file: string): Promise<{ stop(): Promise<void> }> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 100 });
  await session.post('Profiler.start');
  return {
    async stop() {
      const { profile } = await session.post('Profiler.stop');
      await writeFile(file, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

process.on('message', (m: ToWorker) => {
  if (m.type === 'engines') {
    executor.setEngines(new Map(m.engines));
    const poll = setInterval(() => {
      if (!executor.ready) return;
      clearInterval(poll);
      send({ type: 'ready' });
    }, 5);
  } else if (m.type === 'run') {
    void run(m.writers, m.ms, m.atPrimary, m.profileTo).then(send);
  }
});
process.on('disconnect', () => process.exit(0));
