/**
 * A Redis master killed (SIGKILL) while revocations and replay ids are being written through
 * two real `cohort start` engines: on a Redis Cluster and on Sentinel-managed Redis. After the failover every acknowledged revocation and replay id
 * is still there (each write waited for a replica, `redis_wait_replicas` = 1 by default), and
 * writes and reads go on. Counts and failover times are printed (t.diagnostic).
 * Skipped loudly without redis-server; failed then with COHORT_REQUIRE_SERVICES=1.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Cluster } from 'ioredis';
import { RedisProvider } from '../../src/state/redis/redis-provider.js';
import { RedisKeyLayout, keySlot } from '../../src/state/redis/redis-keys.js';
import { isCohortError } from '../../src/core/errors.js';
import { startNode, waitUntil } from '../helpers/cluster.js';
import { redisBinariesOrSkip } from '../helpers/services.js';
import { startRedisCluster, startRedisSentinels } from '../helpers/redis-servers.js';
import { tmpDir } from '../helpers/tmp.js';
import { exitWhenDone } from '../helpers/exit-when-done.js';

exitWhenDone('state-redis-failover.test');

const API_KEY = 'failover-runtime-api-key-0123456789';

/** One write: 'ok' when acknowledged, else what it failed with (a code, a status). */
type Write = (kind: 'revocation' | 'replay', id: string) => Promise<string>;

/** Writers that run until stopped, each alternating revocations and replay ids with ids of their own. */
function startWriters(count: number, write: (writer: number) => Write) {
  const acked = { revocation: [] as string[], replay: [] as string[] };
  const failures = new Map<string, number>();
  let attempts = 0;
  let running = true;
  let lastAckAt = 0;
  const loops = Array.from({ length: count }, async (_, w) => {
    const doWrite = write(w);
    for (let i = 0; running; i++) {
      const kind = i % 2 === 0 ? 'revocation' : 'replay';
      const id = `w${w}-${kind}-${i}-${randomBytes(3).toString('hex')}`;
      attempts++;
      const outcome = await doWrite(kind, id).catch((err: unknown) => (isCohortError(err) ? err.code : `error: ${(err as Error).message.slice(0, 60)}`));
      if (outcome === 'ok') {
        acked[kind].push(id);
        lastAckAt = performance.now();
      } else {
        failures.set(outcome, (failures.get(outcome) ?? 0) + 1);
        // A failing shard answers at once: no busy loop meanwhile.
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  });
  return {
    acked,
    failures,
    get attempts() {
      return attempts;
    },
    get ackedCount() {
      return acked.revocation.length + acked.replay.length;
    },
    get lastAckAt() {
      return lastAckAt;
    },
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** Resolves once `n` more writes have been acknowledged (or throws after `timeoutMs`). */
async function moreAcks(writers: ReturnType<typeof startWriters>, n: number, timeoutMs: number): Promise<void> {
  const target = writers.ackedCount + n;
  await waitUntil(async () => writers.ackedCount, (c) => c >= target, timeoutMs, 20);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Two `cohort start` engines on the Redis at `url`, and a write through them (writer w through engine w % 2). */
async function twoEngines(t: TestContext, dir: string, url: string) {
  const clusterId = `failover-${randomBytes(4).toString('hex')}`;
  const state = { provider: 'redis', redis_url: url, redis_wait_timeout: '500' };
  const overrides = { cluster: { id: clusterId }, state, http: { api_keys: API_KEY } };
  const a = await startNode(t, dir, 'engine-a', { overrides });
  const b = await startNode(t, dir, 'engine-b', { peers: a.address, overrides });
  const bases = [a, b].map((e) => `http://${e.config.http!.runtime}`);

  const call = async (base: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> => {
    const r = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    const text = await r.text();
    return { status: r.status, json: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
  };
  const viaEngine = (w: number): Write => async (kind, id) => {
    const base = bases[w % 2]!;
    const r = kind === 'revocation' ? await call(base, 'POST', '/runtime/v1/revocations', { id, ttlSeconds: 3600 }) : await call(base, 'POST', '/runtime/v1/replay', { id, ttlSeconds: 3600 });
    if (r.status === 204 || r.status === 201) return 'ok';
    return String((r.json.error as { code?: string } | undefined)?.code ?? r.status);
  };
  return { clusterId, bases, call, viaEngine };
}

/**
 * `check()`, asked again while the provider refuses it unsent: Sentinel may still move the
 * master's clients after the failover, and while one reconnects the provider refuses a command
 * at once rather than queue it (no offline queue), so the command never reached Redis.
 */
async function unsent<T>(check: () => Promise<T>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await check();
    } catch (err) {
      if (attempt >= 100 || !/Stream isn't writeable/.test(String((err as Error).cause))) throw err;
      await sleep(100);
    }
  }
}

describe('redis provider: a master killed while engines write', () => {
  it('Redis Cluster, two cohort engines: no acknowledged revocation or replay id is lost, and writes and reads go on', async (t: TestContext) => {
    if (!(await redisBinariesOrSkip(t))) return;
    const dir = tmpDir(t);
    const redis = await startRedisCluster(join(dir, 'redis'));
    t.after(() => redis.stop());
    const { clusterId, bases, call, viaEngine } = await twoEngines(t, dir, redis.url);
    const writers = startWriters(6, viaEngine);
    t.after(() => writers.stop());
    await moreAcks(writers, 200, 30_000);

    // The master of the slot the first acknowledged revocation went to: a shard known to be written.
    const keys = new RedisKeyLayout(`cohort:${clusterId}:`);
    const victim = await redis.masterOfSlot(keySlot(keys.revocation(writers.acked.revocation[0]!)));
    const ackedBefore = writers.ackedCount;
    const killedAt = performance.now();
    redis.kill(victim);
    // The replica is promoted once the others agree the master failed (cluster-node-timeout 1 s).
    const { elapsedMs: failoverMs } = await waitUntil(async () => redis.masterOfSlot(keySlot(keys.revocation(writers.acked.revocation[0]!))), (port) => port !== victim, 30_000, 50);
    // The promoted master has no replica until the killed process comes back as one: its
    // slots' writes fail (STATE_NOT_REPLICATED) rather than being acknowledged unprotected.
    await sleep(1000);
    const failuresWithoutReplica = writers.failures.get('STATE_NOT_REPLICATED') ?? 0;
    redis.restart(victim);
    await redis.waitHealthy(30_000);
    const healedAt = performance.now();
    const ackedAtHeal = writers.ackedCount;
    await moreAcks(writers, 300, 30_000);
    // Writes to every shard acknowledged again: one through each engine per master's slots.
    await writers.stop();

    const admin = new Cluster([{ host: '127.0.0.1', port: redis.ports.find((p) => p !== victim)! }]);
    admin.on('error', () => undefined);
    t.after(() => admin.disconnect());
    const missingRevocations: string[] = [];
    for (const id of writers.acked.revocation) if ((await admin.exists(keys.revocation(id))) !== 1) missingRevocations.push(id);
    const missingReplays: string[] = [];
    for (const id of writers.acked.replay) if ((await admin.exists(keys.scoped('replay', id))) !== 1) missingReplays.push(id);
    // And through the engines: an acknowledged replay id is refused, an acknowledged revocation answered revoked.
    const sample = (ids: string[]) => ids.filter((_, i) => i % Math.max(1, Math.floor(ids.length / 100)) === 0);
    for (const [i, id] of sample(writers.acked.replay).entries()) assert.equal((await call(bases[i % 2]!, 'POST', '/runtime/v1/replay', { id, ttlSeconds: 60 })).status, 409, `replay id ${id} accepted twice`);
    for (const [i, id] of sample(writers.acked.revocation).entries()) assert.equal((await call(bases[i % 2]!, 'GET', `/runtime/v1/revocations/${id}`)).json.revoked, true, `revocation ${id} lost`);
    // Every shard takes writes again: a revocation whose key lands on each master.
    for (const [i, base] of bases.entries()) {
      for (let n = 0; n < 30; n++) assert.equal((await call(base, 'POST', '/runtime/v1/revocations', { id: `after-${i}-${n}`, ttlSeconds: 60 })).status, 204);
    }

    t.diagnostic(`acknowledged: ${writers.acked.revocation.length} revocations, ${writers.acked.replay.length} replay ids (${ackedBefore} before the kill, ${ackedAtHeal - ackedBefore} between kill and heal, ${writers.ackedCount - ackedAtHeal} after) of ${writers.attempts} attempts`);
    t.diagnostic(`failed writes by code: ${JSON.stringify(Object.fromEntries(writers.failures))} (STATE_NOT_REPLICATED while the promoted master had no replica: ${failuresWithoutReplica})`);
    t.diagnostic(`master on port ${victim} killed: replica promoted after ${failoverMs.toFixed(0)} ms; killed process back as a replica and the cluster healthy after ${(healedAt - killedAt).toFixed(0)} ms`);
    t.diagnostic(`lost after failover: ${missingRevocations.length} revocations, ${missingReplays.length} replay ids`);
    assert.deepEqual(missingRevocations, [], 'no acknowledged revocation is lost');
    assert.deepEqual(missingReplays, [], 'no acknowledged replay id is lost');
    assert.ok(ackedAtHeal > ackedBefore, 'the other shards took writes while one failed over');
  });

  it('Sentinel, two cohort engines: no acknowledged revocation or replay id is lost, and writes go on once a replica is promoted', async (t: TestContext) => {
    if (!(await redisBinariesOrSkip(t))) return;
    const dir = tmpDir(t);
    const redis = await startRedisSentinels(join(dir, 'redis'));
    t.after(() => redis.stop());
    const { clusterId, viaEngine } = await twoEngines(t, dir, redis.url);
    const prefix = `cohort:${clusterId}:`;
    const writers = startWriters(6, viaEngine);
    t.after(() => writers.stop());
    await moreAcks(writers, 200, 30_000);
    const victim = await redis.currentMaster();
    const ackedBefore = writers.ackedCount;
    redis.kill(victim);
    const killedAt = performance.now();
    const { elapsedMs: failoverMs } = await waitUntil(() => redis.currentMaster(), (port) => port !== victim, 30_000, 50);
    // Writes go on: acknowledged again once the remaining replica follows the new master.
    await moreAcks(writers, 300, 30_000);
    const resumedMs = performance.now() - killedAt;
    await writers.stop();

    const checker = new RedisProvider({ url: redis.url, prefix, waitReplicas: 0 });
    await checker.connect();
    t.after(() => checker.close());
    let missingRevocations = 0;
    for (const id of writers.acked.revocation) if (!(await unsent(() => checker.revocations.isRevoked(id)))) missingRevocations++;
    let missingReplays = 0;
    for (const id of writers.acked.replay) if (await unsent(() => checker.replay.checkAndInsert(id, 60_000))) missingReplays++;
    t.diagnostic(`acknowledged: ${writers.acked.revocation.length} revocations, ${writers.acked.replay.length} replay ids (${ackedBefore} before the kill) of ${writers.attempts} attempts; failed by code: ${JSON.stringify(Object.fromEntries(writers.failures))}`);
    t.diagnostic(`master on port ${victim} killed: Sentinel named a new master after ${failoverMs.toFixed(0)} ms; 300 more writes acknowledged ${resumedMs.toFixed(0)} ms after the kill`);
    t.diagnostic(`lost after failover: ${missingRevocations} revocations, ${missingReplays} replay ids`);
    assert.equal(missingRevocations, 0, 'no acknowledged revocation is lost');
    assert.equal(missingReplays, 0, 'no acknowledged replay id is lost (nor accepted again)');
    assert.equal(writers.failures.get('STATE_REPLAY_DETECTED') ?? 0, 0, 'no fresh id was refused as seen');
  });
});
