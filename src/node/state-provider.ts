import type { Logger } from '../core/logger.js';
import type { NodeConfig } from '../config/node-config.js';
import { openGridEngine, type GridStats } from '../state/grid/grid-engine.js';
import { gridStateFiles } from '../state/grid/grid-state-file.js';
import { scopeKeys, scopeSettings } from '../state/grid/scopes.js';
import { redactRedisUrl } from '../config/redis-url.js';
import type { StateProvider } from '../state/services.js';
import type { ClusterMember } from './cluster-member.js';

export type { GridStats };

export interface OpenedProvider {
  provider: StateProvider;
  /** Why the provider cannot serve right now (empty: it can). */
  notReadyReasons(): string[];
  /** Why changes to the state are refused now (no majority of the cluster in view); undefined while accepted. */
  writeRefusal(): string | undefined;
  /** Graceful stop: saves what this engine holds (grid) and closes. */
  shutdown(): Promise<void>;
  /** Removes expired records now (the `purge-expired` job); how many went. Redis expires keys itself: 0. */
  sweep(): number;
  /** The grid's share on this engine, read at scrape time (node/metrics.ts); absent with Redis. */
  gridStats?(): GridStats;
}

/**
 * The state provider `[state] provider` names.
 *
 * - `grid`: this engine's share of the replicated grid (state/grid/grid-engine.ts: saved
 *   state, staged join, placement over the scopes, write refusal), over the cluster member as
 *   its directory and the saved state in the data directory.
 * - `redis`: connected before the engine reports ready; a Redis that is down fails the start
 *   with STATE_UNAVAILABLE rather than serving errors. One server, a Redis Cluster or a
 *   Sentinel-managed master (`redis_url`); the same scopes as the grid's, as key prefixes
 *   (state/redis/redis-keys.ts); revocations and replay ids wait for `redis_wait_replicas`.
 */
export async function openStateProvider(config: NodeConfig, log: Logger, cluster: ClusterMember): Promise<OpenedProvider> {
  if (config.state.provider === 'redis') {
    // Loaded only here: its client library sets up every Redis command when loaded, work a
    // console or a grid engine has no use for at its start.
    const { RedisProvider } = await import('../state/redis/redis-provider.js');
    const redis = new RedisProvider({
      url: config.state.redisUrl!.reveal(),
      prefix: `cohort:${config.cluster.id}:`,
      // The grid's scopes (subclusters, directed sets) as key prefixes (redis-keys.ts).
      scopes: scopeKeys(scopeSettings(config)),
      commandTimeoutMs: Math.max(config.state.rpcTimeoutMs, 1000),
      ...(config.state.redisWaitReplicas !== null ? { waitReplicas: config.state.redisWaitReplicas } : {}),
      waitTimeoutMs: config.state.redisWaitTimeoutMs,
    });
    try {
      await redis.connect();
    } catch (err) {
      await redis.close();
      throw err;
    }
    // Which deployment, and whether revocations wait for replicas: what an operator checks first.
    log.info({ redis: redactRedisUrl(config.state.redisUrl!.reveal()), deployment: redis.target.kind, waitReplicas: redis.waitReplicas }, 'runtime state in Redis');
    return {
      provider: redis,
      notReadyReasons: () => (redis.connected ? [] : ['the Redis state provider is disconnected']),
      // Redis decides what it accepts itself.
      writeRefusal: () => undefined,
      shutdown: () => redis.close(),
      sweep: () => 0,
    };
  }

  const engine = await openGridEngine({
    self: config.node.id,
    directory: cluster,
    rpc: cluster.rpc,
    logger: log,
    replicationFactor: config.state.replicationFactor,
    bulkTimeoutMs: config.state.bulkRevocationTimeoutMs,
    revocationCap: config.state.revocationCap,
    readLocalOnly: config.state.readLocalOnly,
    scopeKeys: scopeKeys(scopeSettings(config)),
    savedState: gridStateFiles(config.node.dataDir),
  });
  return {
    sweep: () => engine.sweep(),
    gridStats: () => engine.stats(),
    provider: engine.provider,
    notReadyReasons: () => engine.notReadyReasons(),
    writeRefusal: () => engine.writeRefusal(),
    shutdown: async () => void (await engine.shutdown()),
  };
}
