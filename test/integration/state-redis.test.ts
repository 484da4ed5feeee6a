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
      const at = await admin.pexpiretime(provider.keys.revocation(id));
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

