/** The state contract against the real Redis on this machine (skipped loudly when it is down). */
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
  return {
    provider,
    now: () => Date.now(),
    advance: (ms) => new Promise((r) => setTimeout(r, ms)),
    close: async () => {
      await provider.close();
      const admin = new Redis(url);
      const keys = await admin.keys(`${prefix}*`);
      if (keys.length > 0) await admin.del(...keys);
      await admin.quit();
    },
  };
});
