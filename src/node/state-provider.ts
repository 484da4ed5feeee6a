import type { Clock, TimerHandle } from '../core/clock.js';
import { isCohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { NodeConfig } from '../config/node-config.js';
import { EVERYWHERE, GridProvider, PARTITION_COUNT, scopedRouting } from '../state/grid/grid-provider.js';
import { placeScopes } from '../state/grid/placement.js';
import { scopeKeys, scopeSettings } from '../state/grid/scopes.js';
import { GridStore } from '../state/grid/grid-store.js';
import { ReplicatedExecutor } from '../state/grid/replicated-executor.js';
import { RedisProvider } from '../state/redis/redis-provider.js';
import { redactRedisUrl } from '../config/redis-url.js';
import type { StateProvider } from '../state/services.js';
import type { ClusterMember } from './cluster-member.js';
import { loadGridState, markGridStateServed, saveGridState, savedGridState, setGridStateAside, staleGridStateReason } from './grid-state-file.js';

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

/** Membership changes arrive in bursts; placement is recomputed once the burst is over (ms). */
const PLACEMENT_DEBOUNCE_MS = 50;
/** How often evictions of the revocation cap are reported, at most (ms). */
const EVICTION_REPORT_EVERY_MS = 60_000;

/**
 * The state provider `[state] provider` names.
 *
 * - `grid`: the replicated grid over the cluster (state-tracking engines: the active members
 *   with role engine that announced `holdsState`). State saved at the last graceful stop is
 *   loaded first and kept on disk until the next save, unless it is too old to be trusted
 *   (grid-state-file.ts `staleGridStateReason`: the cluster holds newer state, and the old
 *   file could bring deleted records back); a damaged file is set aside and the engine takes
 *   everything from the cluster. A start-up sync that does not finish keeps what was loaded
 *   (in memory and on disk) and keeps trying; it never serves empty over a saved state. Ready once
 *   the start-up sync (revocation list, this engine's partitions) is done and announced.
 *   Each service's partitions belong to its scope (state/grid/scopes.ts: `group_id`,
 *   `inter_group`, `directed` with `preferred_node_indices`), placed over the serving
 *   engines of that scope as membership metadata tells them.
 * - `redis`: connected before the engine reports ready; a Redis that is down fails the start
 *   with STATE_UNAVAILABLE rather than serving errors. One server, a Redis Cluster or a
 *   Sentinel-managed master (`redis_url`); the same scopes as the grid's, as key prefixes
 *   (state/redis/redis-keys.ts); revocations and replay ids wait for `redis_wait_replicas`.
 */
export interface GridStats {
  /**
   * Records (tombstones included) of the partitions this engine is primary or backup of, and
   * of partitions that moved away from it and that it keeps until their new replicas confirm
   * they hold them (replicated-executor.ts `dropMoved`).
   */
  records: { primary: number; backup: number; moved: number };
  partitions: { primary: number; backup: number };
  revocations: number;
  revocationCap: number;
  revocationsEvicted: number;
}

export async function openStateProvider(config: NodeConfig, clock: Clock, log: Logger, cluster: ClusterMember): Promise<OpenedProvider> {
  if (config.state.provider === 'redis') {
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

  const dataDir = config.node.dataDir;
  const store = new GridStore(clock, config.node.id, config.state.revocationCap);
  // The saved state is loaded before the grid answers other engines, so an engine still
  // loading never hands out fingerprints of half its records. It stays on disk until the next
  // save replaces it (grid-state-file.ts), so a start that does not finish loses nothing.
  const saved = savedGridState(dataDir);
  if (saved !== undefined) {
    const othersRunning = [...cluster.activeEngines().keys()].some((id) => id !== config.node.id);
    const ageMs = clock.now() - saved.savedAt;
    const stale = staleGridStateReason(saved, clock.now(), othersRunning);
    if (stale !== undefined) {
      const keptAs = setGridStateAside(dataDir);
      log.warn({ ageMs, servedSince: saved.servedSince, keptAs }, `saved grid state not loaded: ${stale}; the cluster holds newer state, and the old file could bring deleted records back`);
    } else {
      const started = clock.now();
      try {
        const result = await loadGridState(store, dataDir);
        log.info({ ...result, ageMs, loadMs: clock.now() - started }, 'grid state saved at the last stop loaded');
      } catch (err) {
        if (!isCohortError(err, 'GRID_STATE_DAMAGED')) throw err;
        log.error({ err, code: err.code }, err.message);
      }
    }
  }
  store.start();
  const rpc = cluster.rpc;
  const executor = new ReplicatedExecutor({
    store,
    rpc,
    clock,
    logger: log,
    self: config.node.id,
    replicationFactor: config.state.replicationFactor,
    bulkTimeoutMs: config.state.bulkRevocationTimeoutMs,
    // From the moment this engine serves, the cluster changes what its saved state holds: the
    // mark lets the next start tell how long ago that was (grid-state-file.ts).
    announceServing: () => {
      markGridStateServed(dataDir);
      cluster.announceHoldsState();
    },
    // Each scope in use (cluster-wide, subclusters, directed sets) over its serving members.
    place: (serving) => {
      const info = cluster.engineScopeInfo();
      const engines = serving.map((id) => info.get(id) ?? { id, group: null, index: null });
      return placeScopes(engines, cluster.scopeKeysInUse(), PARTITION_COUNT, config.state.replicationFactor);
    },
  });
  const routing = scopedRouting(scopeKeys(scopeSettings(config)), (group) => cluster.sessionScopeOfGroup(group));

  // Engines announce when they refuse writes, so `cluster info` on any node shows it.
  let refusing = false;
  const place = (): void => {
    executor.setEngines(cluster.activeEngines(), cluster.knownEngineCount(), cluster.servingEngines(), cluster.witnesses());
    const refusal = executor.writeRefusal();
    if ((refusal !== undefined) !== refusing) {
      refusing = refusal !== undefined;
      cluster.updateMeta({ refusesWrites: refusing });
      if (refusing) log.warn({ reason: refusal }, 'writes refused: no majority of the cluster in view');
      else log.info('writes accepted again: a majority of the cluster is in view');
    }
  };
  let debounce: TimerHandle | undefined;
  cluster.onMembersChanged(() => {
    clock.clearTimeout(debounce);
    debounce = clock.setTimeout(place, PLACEMENT_DEBOUNCE_MS);
  });
  place();

  // The revocation cap is reported, at most once a minute, when it evicted anything.
  let evictionsReported = 0;
  let evictionTimer: TimerHandle | undefined;
  const reportEvictions = (): void => {
    if (store.revocationsEvicted > evictionsReported) {
      log.warn(
        { cap: config.state.revocationCap, evicted: store.revocationsEvicted - evictionsReported, evictedSinceStart: store.revocationsEvicted },
        'the revocation list is at its cap (revocation_cap): the oldest revocations were evicted',
      );
      evictionsReported = store.revocationsEvicted;
    }
    evictionTimer = clock.setTimeout(reportEvictions, EVICTION_REPORT_EVERY_MS);
  };
  reportEvictions();

  // A slice of store.sweep() that found nothing does not mean the rest holds nothing expired.
  const sweep = (): number => store.sweepAll();
  rpc.handle('grid.sweep', () => sweep());

  const gridStats = (): GridStats => {
    const stats: GridStats = { records: { primary: 0, backup: 0, moved: 0 }, partitions: { primary: 0, backup: 0 }, revocations: store.recordCount(EVERYWHERE), revocationCap: config.state.revocationCap, revocationsEvicted: store.revocationsEvicted };
    for (const [partition, replicas] of executor.placedPartitions()) {
      const role = replicas[0] === config.node.id ? 'primary' : replicas.includes(config.node.id) ? 'backup' : undefined;
      if (role === undefined) continue;
      stats.partitions[role]++;
      stats.records[role] += store.recordCount(partition);
    }
    // Before it serves, a starting engine is in no replica set yet: nothing has moved away.
    for (const partition of executor.ready ? store.partitions() : []) {
      if (partition !== EVERYWHERE && !executor.replicasOf(partition).includes(config.node.id)) stats.records.moved += store.recordCount(partition);
    }
    return stats;
  };

  return {
    sweep,
    gridStats,
    provider: new GridProvider(executor, clock, undefined, routing, { readLocalOnly: config.state.readLocalOnly }),
    notReadyReasons: () => (executor.ready ? [] : ['synchronising partitions and the revocation list']),
    writeRefusal: () => executor.writeRefusal(),
    shutdown: async () => {
      clock.clearTimeout(debounce);
      clock.clearTimeout(evictionTimer);
      const saved = await saveGridState(store, dataDir);
      log.info({ records: saved }, 'grid state saved');
      executor.close();
      store.stop();
    },
  };
}
