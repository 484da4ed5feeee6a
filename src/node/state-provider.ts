import type { Clock } from '../core/clock.js';
import type { NodeConfig } from '../config/node-config.js';
import { localGrid } from '../state/grid/grid-provider.js';
import { RedisProvider } from '../state/redis/redis-provider.js';
import type { StateProvider } from '../state/services.js';

export interface OpenedProvider {
  provider: StateProvider;
  /** Why the provider cannot serve right now (empty: it can). */
  notReadyReasons(): string[];
}

/**
 * The state provider `[state] provider` names: the grid in this engine's memory, or Redis
 * (connected before the engine reports ready; a Redis that is down fails the start with
 * STATE_UNAVAILABLE rather than serving errors).
 */
export async function openStateProvider(config: NodeConfig, clock: Clock): Promise<OpenedProvider> {
  if (config.state.provider === 'redis') {
    const redis = new RedisProvider({ url: config.state.redisUrl!.reveal(), prefix: `cohort:${config.cluster.id}:`, commandTimeoutMs: Math.max(config.state.rpcTimeoutMs, 1000) });
    try {
      await redis.connect();
    } catch (err) {
      await redis.close();
      throw err;
    }
    return { provider: redis, notReadyReasons: () => (redis.connected ? [] : ['the Redis state provider is disconnected']) };
  }
  const { provider } = localGrid(clock);
  return { provider, notReadyReasons: () => [] };
}
