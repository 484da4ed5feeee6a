/** The state contract against the real Redis on this machine (skipped loudly when it is down). */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { isCohortError } from '../../src/core/errors.js';
import { RedisProvider, type RedisProviderOptions } from '../../src/state/redis/redis-provider.js';
import { redisUrlOrSkip } from '../helpers/services.js';
import { redisHarness, stateContract } from '../helpers/state-contract.js';
import { exitWhenDone } from '../helpers/exit-when-done.js';

exitWhenDone('state-redis.test');

stateContract('redis', async (t) => {
  const url = await redisUrlOrSkip(t);
  if (!url) return undefined;
  // A prefix of its own per test, removed afterwards: runs never see each other's keys.
  const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
  const provider = new RedisProvider({ url, prefix });
  await provider.connect();
  const admin = new Redis(url);
  return redisHarness(provider, admin, async () => {
    await provider.close();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });
});


/** A provider on the test Redis with a prefix of its own, removed when the test ends. */
async function openProvider(t: TestContext, url: string, options: Partial<RedisProviderOptions> = {}): Promise<{ provider: RedisProvider; admin: Redis }> {
  const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
  const provider = new RedisProvider({ url, prefix, ...options });
  await provider.connect();
  const admin = new Redis(url);
  t.after(async () => {
    await provider.close();
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length > 0) await admin.del(...keys);
    await admin.quit();
  });
  return { provider, admin };
}

describe('redis provider on one server', () => {
  it('fails a revocation and a replay id with STATE_NOT_REPLICATED when fewer replicas than redis_wait_replicas hold them, and waits for none by default', async (t) => {
    const url = await redisUrlOrSkip(t);
    if (!url) return;
    const { provider: waiting, admin } = await openProvider(t, url, { waitReplicas: 1, waitTimeoutMs: 50 });
    const replicas = Number(/connected_slaves:(\d+)/.exec(await admin.info('replication'))?.[1] ?? '0');
    if (replicas > 0) {
      t.skip(`the test Redis has ${replicas} replicas: WAIT would succeed`);
      return;
    }
    await assert.rejects(waiting.revocations.revoke('jwt-1'), (err: unknown) => isCohortError(err, 'STATE_NOT_REPLICATED'));
    await assert.rejects(waiting.replay.checkAndInsert('nonce-1', 60_000), (err: unknown) => isCohortError(err, 'STATE_NOT_REPLICATED'));
    await assert.rejects(waiting.sessions.delete('0.unknown'), (err: unknown) => isCohortError(err, 'STATE_NOT_REPLICATED'));
    // Lookups do not wait.
    const s = await waiting.sessions.create({ subject: 'wendy', idleTimeoutMs: 60_000, maxLifetimeMs: 60_000 });
    assert.equal((await waiting.sessions.get(s.id))?.id, s.id);

    const { provider: plain } = await openProvider(t, url);
    assert.equal(plain.waitReplicas, 0, 'redis:// waits for no replica unless told');
    await plain.revocations.revoke('jwt-1');
    assert.equal(await plain.revocations.isRevoked('jwt-1'), true);
  });

  it('drops from the subject indexes the ids whose sessions ended before their maximum lifetime, when a listing finds them gone', async (t) => {
    const url = await redisUrlOrSkip(t);
    if (!url) return;
    const { provider, admin } = await openProvider(t, url);
    const short = await provider.sessions.create({ subject: 'ida', idleTimeoutMs: 100, maxLifetimeMs: 60_000 });
    const kept = await provider.sessions.create({ subject: 'ida', idleTimeoutMs: 60_000, maxLifetimeMs: 60_000 });
    const index = provider.keys.subject('ida');
    assert.equal(await admin.zcard(index.byCreation), 2);
    await new Promise((r) => setTimeout(r, 250));
    assert.equal(await provider.sessions.get(short.id), undefined, 'ended after its idle timeout');
    assert.deepEqual((await provider.sessions.listBySubject('ida')).map((s) => s.id), [kept.id]);
    assert.deepEqual(await admin.zrange(index.byCreation, '0', '-1'), [kept.id], 'the ended id left the index by creation');
    assert.deepEqual(await admin.zrange(index.byEnd, '0', '-1'), [kept.id], 'and the index by end');
  });

  it('still finds, touches and deletes by id a session stored by the earlier single-server layout (an upgrade signs no one out)', async (t) => {
    const url = await redisUrlOrSkip(t);
    if (!url) return;
    const { provider, admin } = await openProvider(t, url);
    assert.equal(provider.keys.session('Zk3-no-dots'), undefined, 'not a session id of this layout');
    assert.equal(await provider.sessions.get('Zk3-no-dots', { touch: true }), undefined);
    assert.equal(await provider.sessions.delete('Zk3-no-dots'), false);
    assert.equal(await provider.revocations.isRevoked('Zk3-no-dots'), true, 'a delete revokes even an unknown id');

    // A session as the earlier release's createSession wrote it: `<prefix>s:<id>`, a random id.
    const id = 'oldLayoutSessionId0123456789abcd';
    const created = Date.now() - 1000;
    const legacy = provider.keys.legacySession(id);
    assert.equal(legacy, `${provider.keys.prefix}s:${id}`);
    await admin.hset(legacy, 'body', JSON.stringify({ id, subject: 'olga', attributes: { tier: 'gold' } }), 'subject', 'olga', 'created', created, 'last', created, 'idle', 60_000, 'max', 600_000);
    await admin.pexpireat(legacy, created + 60_000);
    const found = await provider.sessions.get(id);
    assert.deepEqual(found?.attributes, { tier: 'gold' });
    assert.equal(found?.createdAt, created);
    const touched = await provider.sessions.get(id, { touch: true });
    assert.ok(touched && touched.lastAccessAt > created, 'touched');
    assert.ok((await admin.pexpiretime(legacy)) > created + 60_000, 'its idle time extended');
    assert.equal(await provider.sessions.delete(id), true);
    assert.equal(await provider.sessions.get(id), undefined);
    assert.equal(await provider.revocations.isRevoked(id), true, 'revoked until its maximum lifetime would have ended');
    assert.equal(await admin.pexpiretime(provider.keys.revocation(id)), created + 600_000);
  });
});
