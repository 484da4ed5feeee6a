/** The state contract against the real Redis on this machine (skipped loudly when it is down). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { RedisProvider } from '../../src/state/redis/redis-provider.js';
import { redisUrlOrSkip } from '../helpers/services.js';
import { stateContract } from '../helpers/state-contract.js';

stateContract('redis', async (t) => {
  const url = await redisUrlOrSkip(t);
  if (!url) return undefined;
  // A prefix of its own per test, removed afterwards: runs never see each other's keys.
  const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
  const provider = new RedisProvider({ url, prefix });
  await provider.connect();
  const admin = new Redis(url);
  return {
    provider,
    now: () => Date.now(),
    advance: (ms) => new Promise((r) => setTimeout(r, ms)),
    revocationExpiresAt: async (id) => {
      // Expiry is real time here: the key's own expiry time is checked instead of waiting.
      const at = await admin.pexpiretime(`${prefix}r:${id}`);
      return at > 0 ? at : undefined;
    },
    close: async () => {
      await provider.close();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    },
  };
});

describe('redis provider: pages of a subject\'s sessions', () => {
  it('pages sessions stored before their creation index existed (an upgraded cluster): the index is rebuilt', async (t) => {
    const url = await redisUrlOrSkip(t);
    if (!url) return;
    const prefix = `cohort-test:${randomBytes(6).toString('hex')}:`;
    const provider = new RedisProvider({ url, prefix });
    await provider.connect();
    const admin = new Redis(url);
    t.after(async () => {
      await provider.close();
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await provider.sessions.create({ subject: 'olga', idleTimeoutMs: 60_000, maxLifetimeMs: 60_000 })).id);
    await admin.del(`${prefix}subc:olga`);
    const first = await provider.sessions.pageBySubject('olga', { limit: 3 });
    assert.ok(first.next);
    const second = await provider.sessions.pageBySubject('olga', { limit: 3, after: first.next });
    assert.equal(second.next, undefined);
    assert.deepEqual([...first.sessions, ...second.sessions].map((s) => s.id).sort(), [...ids].sort());
    assert.ok((await admin.pexpiretime(`${prefix}subc:olga`)) > Date.now(), 'the rebuilt index expires with the sessions');
  });
});
