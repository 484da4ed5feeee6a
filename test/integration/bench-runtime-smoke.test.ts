/**
 * `npm run bench:runtime` in short: lookups (load from a separate process) beside a bare Fastify route, replicated writes, memory and a join.
 * The full run is minutes long and stays out of npm test; this one checks that the script works
 * end to end on real processes and that its figures are sane (speed is not asserted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { redisBinariesMissing } from '../helpers/redis-servers.js';

describe('bench:runtime smoke', () => {
  it('bench:runtime measures lookups beside a bare Fastify route and on the Redis provider (one server and a Redis Cluster), replicated writes (HTTP and inside the grid, beside Redis), memory and a join', () => {
    const run = spawnSync(process.execPath, ['--expose-gc', join(PACKAGE_ROOT, 'dist/bench/runtime.js'), '--seconds', '1', '--warmup', '0', '--rounds', '1', '--connections', '10', '--join-sessions', '3000', '--join-revocations', '200', '--metrics-rounds', '1', '--json'], {
      encoding: 'utf8',
      timeout: 150_000,
      killSignal: 'SIGTERM',
    });
    assert.equal(run.status, 0, run.stderr);
    const r = JSON.parse(run.stdout) as { lookup: Record<string, number> & { load: string }; metrics: Record<string, number>; replicatedWrite: Record<string, number>; gridWrite: Record<string, number> & { framesPerWrite: number[]; cpuShare: number[] }; memoryBytesPerSessionPerReplica: number; join: Record<string, number> };
    assert.ok(r.lookup.gridRps! > 0 && r.lookup.fastifyRps! > 0, JSON.stringify(r.lookup));
    assert.equal(r.lookup.gridErrors, 0);
    // The load came from a separate process, over 2,000 sessions with 200-byte attributes, and
    // the peer answered a body of the same size as the engine.
    assert.ok(['wrk', 'autocannon'].includes(r.lookup.load), r.lookup.load);
    assert.equal(r.lookup.sessions, 2000);
    assert.equal(r.lookup.attributesBytes, 200);
    assert.ok(r.lookup.gridBodyBytes! > 200, `${r.lookup.gridBodyBytes} bytes`);
    assert.equal(r.lookup.fastifyBodyBytes, r.lookup.gridBodyBytes);
    // CPU per request of the serving processes, beside the throughput (from /proc, on Linux).
    if (process.platform === 'linux') {
      for (const key of ['gridCpuUsPerRequest', 'fastifyCpuUsPerRequest', 'redisCpuUsPerRequest'] as const) assert.ok(r.lookup[key]! > 0, `${key}: ${r.lookup[key]}`);
      assert.ok(r.metrics.onCpuUsPerRequest! > 0 && r.metrics.offCpuUsPerRequest! > 0, JSON.stringify(r.metrics));
    }
    // The Redis Cluster row, measured in the same run on a cluster the bench started.
    const missing = redisBinariesMissing();
    if (missing === undefined || process.env.COHORT_REQUIRE_SERVICES === '1') {
      assert.ok(r.lookup.redisClusterRps! > 0 && r.lookup.gridOverRedisCluster! > 0, `the Redis Cluster row: ${JSON.stringify(r.lookup)} ${missing ?? ''}`);
      assert.equal(r.lookup.redisClusterErrors, 0);
    } else {
      process.stderr.write(`\n*** bench:runtime smoke: the Redis Cluster row not checked: ${missing}; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n`);
    }
    assert.ok(r.metrics.onRps! > 0 && r.metrics.offRps! > 0 && r.metrics.errors === 0, `lookups with metrics on and off: ${JSON.stringify(r.metrics)}`);
    assert.ok(r.replicatedWrite.rps! > 0);
    assert.equal(r.replicatedWrite.errors, 0);
    // Inside the grid (3 worker processes): every write acknowledged, latency sane, peer measured.
    assert.equal(r.gridWrite.errors, 0, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.writesPerSecond! > 0 && r.gridWrite.p50Ms! > 0 && r.gridWrite.p50Ms! < 100, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.redisWritesPerSecond! > 0, 'the Redis peer was measured');
    // What a write cost in CPU, beside what a SET cost the Redis server (INFO cpu) and its client.
    assert.ok(r.gridWrite.cpuMicrosPerWrite! > 0 && r.gridWrite.coresBusy! > 0, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.redisServerCpuMicrosPerSet! > 0 && r.gridWrite.redisClientCpuMicrosPerSet! > 0, JSON.stringify(r.gridWrite));
    // Per engine: the frames it sent per write of its own writers (every write sends some), and its share of the CPU.
    assert.equal(r.gridWrite.framesPerWrite.length, 3, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.framesPerWrite.every((f) => f > 0), JSON.stringify(r.gridWrite));
    const shares = r.gridWrite.cpuShare.reduce((a, b) => a + b, 0);
    assert.ok(r.gridWrite.cpuShare.length === 3 && shares > 0.97 && shares < 1.03, JSON.stringify(r.gridWrite));
    assert.ok(r.memoryBytesPerSessionPerReplica > 256 && r.memoryBytesPerSessionPerReplica < 10_000, `${r.memoryBytesPerSessionPerReplica} B`);
    assert.equal(r.join.sessions, 3000);
    assert.equal(r.join.clientFailures, 0, 'no client request failed while an engine joined');
    // The CPU the joining engine and the reading client used meanwhile (from /proc, on Linux).
    if (process.platform === 'linux') assert.ok(r.join.joinerCpuSeconds! > 0 && r.join.clientCpuSeconds! > 0, JSON.stringify(r.join));
  });
});
