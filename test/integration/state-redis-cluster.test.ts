/**
 * The state contract on a real Redis Cluster (3 masters, 3 replicas) and through Sentinel (a
 * master, 2 replicas, 3 Sentinels), each started by this file on ports of its own; and the
 * scopes (`group_id`, directed) kept apart by key prefixes while revocations stay shared.
 * Skipped loudly without redis-server; failed then with COHORT_REQUIRE_SERVICES=1.
 */
import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { RedisProvider } from '../../src/state/redis/redis-provider.js';
import { keySlot, RedisKeyLayout } from '../../src/state/redis/redis-keys.js';
import { scopeKeys } from '../../src/state/grid/scopes.js';
import { DEFAULT_INTER_GROUP } from '../../src/config/schema.js';
import { redisBinariesOrSkip } from '../helpers/services.js';
import { startRedisCluster, startRedisSentinels, type RedisClusterHandle, type RedisSentinelHandle } from '../helpers/redis-servers.js';
import { redisHarness, stateContract, type StateHarness } from '../helpers/state-contract.js';
import { runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { loadNodeConfig } from '../../src/config/node-config.js';
import { readFileSync } from 'node:fs';
import { exitWhenDone } from '../helpers/exit-when-done.js';

const dir = mkdtempSync(join(tmpdir(), 'cohort-redis-cluster-'));
let cluster: Promise<RedisClusterHandle> | undefined;
let sentinels: Promise<RedisSentinelHandle> | undefined;
after(async () => {
  await (await cluster?.catch(() => undefined))?.stop();
  await (await sentinels?.catch(() => undefined))?.stop();
  rmSync(dir, { recursive: true, force: true });
});
exitWhenDone('state-redis-cluster.test');

/** One cluster (and one Sentinel set) for the whole file, started when first asked for. */
const sharedCluster = (): Promise<RedisClusterHandle> => (cluster ??= startRedisCluster(join(dir, 'cluster')));
const sharedSentinels = (): Promise<RedisSentinelHandle> => (sentinels ??= startRedisSentinels(join(dir, 'sentinel')));

async function harness(url: string, admin: Redis | Cluster): Promise<StateHarness> {
  admin.on('error', () => undefined);
  const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
  const provider = new RedisProvider({ url, prefix });
  await provider.connect();
  // The keys die with the servers when the file ends.
  return redisHarness(provider, admin, () => provider.close());
}

stateContract('redis cluster', async (t) => {
  if (!(await redisBinariesOrSkip(t))) return undefined;
  const c = await sharedCluster();
  const admin = new Cluster([{ host: '127.0.0.1', port: c.ports[0]! }]);
  const h = await harness(c.url, admin);
  assert.equal((h.provider as RedisProvider).waitReplicas, 1, 'a cluster waits for one replica by default');
  return { ...h, close: async () => { await h.close(); admin.disconnect(); } };
});

stateContract('redis sentinel', async (t) => {
  if (!(await redisBinariesOrSkip(t))) return undefined;
  const s = await sharedSentinels();
  const admin = new Redis({ sentinels: s.sentinelPorts.map((port) => ({ host: '127.0.0.1', port })), name: s.masterName });
  const h = await harness(s.url, admin);
  return { ...h, close: async () => { await h.close(); admin.disconnect(); } };
});

describe('redis provider on a cluster: scopes as key prefixes', () => {
  it('keeps two subclusters\' lock-out counters, rate limits and state apart, shares revocations, and finds either\'s sessions from its id', async (t) => {
    if (!(await redisBinariesOrSkip(t))) return;
    const c = await sharedCluster();
    const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
    const settings = (groupId: string) => ({ architecture: 'adaptive' as const, groupId, interGroup: DEFAULT_INTER_GROUP.filter((s) => s !== 'lockout'), preferredNodeIndices: {} });
    const east = new RedisProvider({ url: c.url, prefix, scopes: scopeKeys(settings('east')) });
    const west = new RedisProvider({ url: c.url, prefix, scopes: scopeKeys(settings('west')) });
    await east.connect();
    await west.connect();
    t.after(async () => {
      await east.close();
      await west.close();
    });
    const policy = { maxFailures: 2, windowMs: 60_000, lockMs: 60_000 };
    await east.lockout.recordFailure('mallory', policy);
    assert.equal((await east.lockout.recordFailure('mallory', policy)).locked, true);
    assert.deepEqual(await west.lockout.status('mallory', policy), { locked: false, failures: 0, retryAfterMs: 0 }, 'west has its own counter');
    await east.requestState.put('flow', { step: 1 }, 60_000);
    assert.equal(await west.requestState.get('flow'), undefined);
    // rate_limit stays in inter_group: one bucket for both.
    const bucket = { capacity: 1, refillPerSecond: 0.001 };
    assert.equal((await east.rateLimits.take('api', 'k', bucket)).allowed, true);
    assert.equal((await west.rateLimits.take('api', 'k', bucket)).allowed, false, 'inter_group services are shared');

    const session = await east.sessions.create({ subject: 'sam', idleTimeoutMs: 60_000, maxLifetimeMs: 60_000 });
    assert.match(session.id, /^east\.\d+\./, 'the session id carries the group');
    assert.equal((await west.sessions.get(session.id))?.id, session.id, 'any engine finds a session from its id');
    assert.deepEqual((await west.sessions.listBySubject('sam')).map((s) => s.id), [], 'listing by subject is within the subcluster');
    await west.revocations.revoke('jwt-123');
    assert.equal(await east.revocations.isRevoked('jwt-123'), true, 'revocations are cluster-wide');
    await west.sessions.delete(session.id);
    assert.equal(await east.sessions.get(session.id), undefined);
    assert.equal(await east.revocations.isRevoked(session.id), true);

    // Every multi-key script's keys in one slot.
    const keys = east.keys;
    const index = keys.subject('sam');
    const slots = new Set([keys.session(session.id)!, keys.revocation(session.id), index.byEnd, index.byCreation].map(keySlot));
    assert.equal(slots.size, 1);
  });

  it('keeps directed sets apart (preferred_node_indices), the cluster-wide scope with the plain layout', async (t) => {
    if (!(await redisBinariesOrSkip(t))) return;
    const c = await sharedCluster();
    const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
    const directed = (indices: number[]) => scopeKeys({ architecture: 'directed', groupId: null, interGroup: [], preferredNodeIndices: { token: indices } });
    const a = new RedisProvider({ url: c.url, prefix, scopes: directed([1, 2]) });
    const b = new RedisProvider({ url: c.url, prefix, scopes: directed([3]) });
    const plain = new RedisProvider({ url: c.url, prefix });
    for (const p of [a, b, plain]) await p.connect();
    t.after(async () => {
      for (const p of [a, b, plain]) await p.close();
    });
    await a.tokens.put('upstream', 'A', 60_000);
    assert.equal(await b.tokens.get('upstream'), undefined);
    assert.equal(await plain.tokens.get('upstream'), undefined);
    assert.equal(a.keys.scoped('token', 'upstream'), `${prefix}@*|1,2:tk:upstream`);
    assert.equal(plain.keys.scoped('token', 'upstream'), `${prefix}tk:upstream`);
    // Other services are cluster-wide on all three.
    await a.artifacts.put('art', 'x', 60_000);
    assert.equal(await b.artifacts.resolve('art'), 'x');
  });
});

describe('cohort up --state redis', () => {
  it('starts a local cluster whose engines share their state in the Redis Cluster given; refuses --state redis without a URL and a malformed one', async (t) => {
    if (!(await redisBinariesOrSkip(t))) return;
    const c = await sharedCluster();
    const usage = await runCohortToEnd(t, ['up', '--state', 'redis', '--dir', upDir(t)]);
    assert.notEqual(usage.code, 0);
    assert.match(usage.stderr, /--state redis needs --redis-url/);
    const bad = await runCohortToEnd(t, ['up', '--state', 'redis', '--redis-url', 'redis-sentinel://:pw-not-shown@s1', '--dir', upDir(t)]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--redis-url: .*master-name/);
    assert.doesNotMatch(bad.stderr, /pw-not-shown/);

    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '2', '--dir', dir, '--json', '--state', 'redis', '--redis-url', c.url, '--start-timeout', '60']);
    await up.waitForOutput(/"clusterId"/, 70_000);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.equal(file.redisUrl, c.url);
    const engines = file.nodes.filter((n) => n.role === 'engine');
    for (const e of engines) {
      const config = loadNodeConfig(e.configFile);
      assert.equal(config.state.provider, 'redis');
      assert.equal(config.state.redisUrl?.reveal(), c.url);
    }
    const call = async (base: string, method: string, path: string, body?: unknown) => {
      const r = await fetch(`${base}${path}`, { method, headers: { authorization: `Bearer ${file.apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) }, body: body ? JSON.stringify(body) : null });
      return { status: r.status, json: (await r.json()) as Record<string, unknown> };
    };
    const created = await call(engines[0]!.runtime!, 'POST', '/runtime/v1/sessions', { subject: 'uma' });
    assert.equal(created.status, 201);
    assert.equal((await call(engines[1]!.runtime!, 'GET', `/runtime/v1/sessions/${String(created.json.id)}`)).json.subject, 'uma');
    // The session is in the Redis Cluster, under the local cluster's prefix.
    const admin = new Cluster([{ host: '127.0.0.1', port: c.ports[0]! }]);
    admin.on('error', () => undefined);
    t.after(() => admin.disconnect());
    const keys = new RedisKeyLayout(`cohort:${file.clusterId}:`);
    assert.equal(await admin.exists(keys.session(String(created.json.id))!), 1);

    // A second run in the same directory with another provider is refused.
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', file.nodes[0]!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    await up.exited;
    const other = await runCohortToEnd(t, ['up', '--engines', '2', '--dir', dir, '--state', 'grid']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /keep their state in Redis at redis-cluster:/);
  });
});
