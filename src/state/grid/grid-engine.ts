/**
 * One engine's share of the replicated grid, wired together: the store, the replicated
 * executor, the provider the runtime API uses, placement over the scopes in use, the state
 * saved at the last graceful stop, and the engine's answers to membership changes. The node
 * (node/state-provider.ts), the simulator (sim/grid-chaos.ts) and the unit tests'
 * simulated grid (test/helpers/sim-grid.ts) all build their engines here, each over its own
 * directory (grid-directory.ts) and clock, so the simulator runs the production join,
 * restart and staged-join paths rather than a copy of them.
 *
 * Start (`openGridEngine`):
 * - State saved at the last graceful stop is loaded before the grid answers other engines, so
 *   an engine still loading never hands out fingerprints of half its records. It stays saved
 *   until the next save replaces it (grid-state-file.ts), so a start that does not finish
 *   loses nothing, unless it is too old to be trusted (`staleGridStateReason`: the cluster
 *   holds newer state, and the old copy could bring deleted records back): then it is set
 *   aside, not loaded. A damaged copy is set aside too, and the engine takes everything from
 *   the cluster.
 * - Staged join: the executor first takes what it will hold from the engines serving (the
 *   revocation list and its partitions), while they keep serving without it; then it marks
 *   its saved state as served, announces that it holds state (`announceHoldsState`), and the
 *   others place partitions on it. A start-up sync that does not finish keeps what was loaded
 *   and keeps trying; it never serves empty over a saved state.
 * - Each service's partitions belong to its scope (scopes.ts: `group_id`, `inter_group`,
 *   `directed` with `preferred_node_indices`), placed over the serving engines of that scope
 *   as the directory tells them.
 *
 * Running: membership changes arrive in bursts, so placement is recomputed once a burst is
 * over (PLACEMENT_DEBOUNCE_MS); the engine announces when it starts or stops refusing writes
 * (no majority of the cluster in view); evictions of the revocation cap are reported.
 *
 * Stop: `shutdown` saves what the engine holds and closes; `close` closes without saving (a
 * crash, or a test's engine that has nothing to keep).
 */
import type { TimerHandle } from '../../core/clock.js';
import { isCohortError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Rpc } from '../../rpc/rpc.js';
import type { ScopedService } from '../../config/schema.js';
import type { GridDirectory } from './grid-directory.js';
import { gridRpc } from './grid-protocol.js';
import { EVERYWHERE, GridProvider, PARTITION_COUNT, scopedRouting } from './grid-provider.js';
import { staleGridStateReason, type GridStateStorage } from './grid-state-file.js';
import { DEFAULT_REVOCATION_CAP, GridStore } from './grid-store.js';
import { placeScopes } from './placement.js';
import { ReplicatedExecutor } from './replicated-executor.js';

/** Membership changes arrive in bursts; placement is recomputed once the burst is over (ms). */
export const PLACEMENT_DEBOUNCE_MS = 50;
/** How often evictions of the revocation cap are reported, at most (ms). */
const EVICTION_REPORT_EVERY_MS = 60_000;

export interface GridEngineOptions {
  /** This engine's node id. */
  self: string;
  directory: GridDirectory;
  rpc: Rpc;
  logger: Logger;
  replicationFactor: number;
  /** `[state] bulk_revocation_timeout`: how long the start-up download may take (ms). */
  bulkTimeoutMs: number;
  /** `[state] revocation_cap` (default: the store's). */
  revocationCap?: number;
  /** `[state] read_local_only` (default true). */
  readLocalOnly?: boolean;
  /** This engine's scope key per service (scopes.ts `scopeKeys`). */
  scopeKeys: Readonly<Record<ScopedService, string>>;
  /** Where the state saved at a graceful stop lives; none: the engine starts empty and saves nothing. */
  savedState?: GridStateStorage;
}

/** The grid's share on this engine, read at scrape time (node/metrics.ts). */
export interface GridStats {
  /**
   * Records (tombstones included) of the partitions this engine is primary or backup of, and
   * of partitions that moved away from it and that it keeps until their new replicas confirm
   * they hold them (anti-entropy.ts `dropMoved`).
   */
  records: { primary: number; backup: number; moved: number };
  partitions: { primary: number; backup: number };
  revocations: number;
  revocationCap: number;
  revocationsEvicted: number;
}

/** What loading the saved state did at start. */
export type SavedStateOutcome =
  | { kind: 'none' }
  | { kind: 'loaded'; loaded: number; records: number }
  | { kind: 'stale'; keptAs: string; reason: string }
  | { kind: 'damaged' };

export class GridEngine {
  readonly store: GridStore;
  readonly executor: ReplicatedExecutor;
  readonly provider: GridProvider;
  private readonly o: GridEngineOptions;
  private debounce: TimerHandle | undefined;
  private evictionTimer: TimerHandle | undefined;
  private evictionsReported = 0;
  private refusing = false;
  private closed = false;
  /**
   * The engines this engine's previous run knew (its data directory kept them), counted until
   * it serves: see `applyMembership`. Empty when there were none besides itself.
   */
  private remembered: ReadonlySet<string>;
  /** What was last written for the next start (sorted ids, comma-joined). */
  private keptEngines = '';
  /** The engine count this engine last announced (`GridDirectory.announceEngineCount`). */
  private announcedCount = 0;

  /** Use `openGridEngine`: the saved state must be in the store before the executor answers anyone. */
  private constructor(options: GridEngineOptions, store: GridStore, readonly savedStateAtStart: SavedStateOutcome) {
    this.o = options;
    this.store = store;
    const { directory, rpc, logger: log, self, replicationFactor } = options;
    const clock = directory.clock;
    const previous = new Set(options.savedState?.rememberedEngines() ?? []);
    this.remembered = [...previous].some((id) => id !== self) ? previous : new Set();
    if (this.remembered.size > 0) {
      log.info({ engines: [...this.remembered] }, `the cluster had ${this.remembered.size} engines when this engine last ran: they count as voters until it serves`);
    }
    store.start();
    this.executor = new ReplicatedExecutor({
      store,
      rpc,
      clock,
      logger: log,
      self,
      replicationFactor,
      bulkTimeoutMs: options.bulkTimeoutMs,
      // From the moment this engine serves, the cluster changes what its saved state holds: the
      // mark lets the next start tell how long ago that was (grid-state-file.ts).
      announceServing: () => {
        if (this.closed) return;
        options.savedState?.markServed();
        // From now on membership knows the cluster (this engine joined engines that serve, or a
        // majority of the cluster is in view): the earlier run no longer counts.
        this.remembered = new Set();
        directory.announceHoldsState();
      },
      // Each scope in use (cluster-wide, subclusters, directed sets) over its serving members.
      place: (serving) => {
        const info = directory.engineScopeInfo();
        const engines = serving.map((id) => info.get(id) ?? { id, group: null, index: null });
        return placeScopes(engines, directory.scopeKeysInUse(), PARTITION_COUNT, replicationFactor);
      },
    });
    const routing = scopedRouting(options.scopeKeys, (group) => directory.sessionScopeOfGroup(group));
    this.provider = new GridProvider(this.executor, clock, undefined, routing, { readLocalOnly: options.readLocalOnly ?? true });
    // A slice of store.sweep() that found nothing does not mean the rest holds nothing expired.
    gridRpc(rpc, log).handle('grid.sweep', () => this.sweep());
    directory.onMembersChanged(() => {
      if (this.closed) return;
      clock.clearTimeout(this.debounce);
      this.debounce = clock.setTimeout(() => this.applyMembership(), PLACEMENT_DEBOUNCE_MS);
    });
    this.applyMembership();
    this.reportEvictions();
  }

  /** True once the start-up sync (revocation list, this engine's partitions) is done and announced. */
  get ready(): boolean {
    return this.executor.ready;
  }

  /** Why the engine cannot serve right now (empty: it can). */
  notReadyReasons(): string[] {
    if (this.executor.ready) return [];
    return [this.executor.startWaitReason ?? 'synchronising partitions and the revocation list'];
  }

  /** Why changes are refused now (no majority of the cluster in view); undefined while accepted. */
  writeRefusal(): string | undefined {
    return this.executor.writeRefusal();
  }

  /**
   * Places partitions over what the directory tells now (the debounced answer to member
   * changes calls it; a test playing membership by hand may call it at once).
   */
  applyMembership(): void {
    if (this.closed) return;
    const d = this.o.directory;
    const active = d.activeEngines();
    // A directory that lists no engine at all, not even this one, has not joined a cluster
    // yet (a node's member list always holds itself): there is nothing to place over, and
    // starting the sync now would make this engine the first of a cluster of one.
    if (active.size === 0) return;
    const counted = new Set([...d.knownEngineIds(), ...this.remembered]);
    this.keepEngines(counted);
    if (counted.size !== this.announcedCount) {
      this.announcedCount = counted.size;
      d.announceEngineCount(counted.size);
    }
    // The voters of write majorities and full starts: the most engines any engine in view
    // counts. An engine that joined through a member that knew few others lists only those
    // until gossip brings the rest; counting its own list, it could find a majority on one
    // side of a split while the other side finds one too (the lifecycle simulator found a
    // replay id accepted on both sides that way).
    const voters = Math.max(counted.size, d.knownEngineCount(), d.announcedEngineCount());
    this.executor.setEngines(active, voters, d.servingEngines(), d.witnesses(), d.suspectEngines());
    const refusal = this.executor.writeRefusal();
    if ((refusal !== undefined) !== this.refusing) {
      this.refusing = refusal !== undefined;
      d.announceWriteRefusal(this.refusing);
      if (this.refusing) this.o.logger.warn({ reason: refusal }, 'writes refused: no majority of the cluster in view');
      else this.o.logger.info('writes accepted again: a majority of the cluster is in view');
    }
  }

  /**
   * Writes down the engines this engine counts for the next start: with those of the previous
   * run while they still count, an engine restarted into a small group of newly started ones
   * and stopped again before it served still remembers the whole cluster.
   */
  private keepEngines(counted: ReadonlySet<string>): void {
    const storage = this.o.savedState;
    if (!storage) return;
    const ids = [...counted].sort();
    const text = ids.join(',');
    if (text === this.keptEngines) return;
    this.keptEngines = text;
    try {
      storage.rememberEngines(ids);
    } catch (err) {
      this.o.logger.warn({ err }, 'could not write down the engines of the cluster for the next start');
    }
  }

  /** Removes expired records now (the `purge-expired` job); how many went. */
  sweep(): number {
    return this.store.sweepAll();
  }

  stats(): GridStats {
    const self = this.o.self;
    const store = this.store;
    const stats: GridStats = {
      records: { primary: 0, backup: 0, moved: 0 },
      partitions: { primary: 0, backup: 0 },
      revocations: store.recordCount(EVERYWHERE),
      revocationCap: this.o.revocationCap ?? DEFAULT_REVOCATION_CAP,
      revocationsEvicted: store.revocationsEvicted,
    };
    for (const [partition, replicas] of this.executor.placedPartitions()) {
      const role = replicas[0] === self ? 'primary' : replicas.includes(self) ? 'backup' : undefined;
      if (role === undefined) continue;
      stats.partitions[role]++;
      stats.records[role] += store.recordCount(partition);
    }
    // Before it serves, a starting engine is in no replica set yet: nothing has moved away.
    for (const partition of this.executor.ready ? store.partitions() : []) {
      if (partition !== EVERYWHERE && !this.executor.replicasOf(partition).includes(self)) stats.records.moved += store.recordCount(partition);
    }
    return stats;
  }

  /** Graceful stop: saves what this engine holds (when it has somewhere to) and closes; resolves with how many records were saved. */
  async shutdown(): Promise<number | undefined> {
    this.stopTimers();
    const storage = this.o.savedState;
    const saved = storage === undefined ? undefined : await storage.save(this.store);
    if (storage !== undefined && saved !== undefined) {
      // The replay ids this engine witnesses for other engines' partitions too (replay-witnesses.ts).
      const witnessed = this.executor.replayWitnesses.entries();
      storage.keepWitnesses(witnessed);
      this.o.logger.info({ records: saved, witnessedReplayIds: witnessed.length }, 'grid state saved');
    }
    this.close();
    return saved;
  }

  /** Stops without saving: timers, background synchronisation and the store's sweep. */
  close(): void {
    this.stopTimers();
    this.closed = true;
    this.executor.close();
    this.store.stop();
  }

  private stopTimers(): void {
    this.o.directory.clock.clearTimeout(this.debounce);
    this.o.directory.clock.clearTimeout(this.evictionTimer);
  }

  /** The revocation cap is reported, at most once a minute, when it evicted anything. */
  private reportEvictions(): void {
    if (this.closed) return;
    const store = this.store;
    if (store.revocationsEvicted > this.evictionsReported) {
      this.o.logger.warn(
        { cap: this.o.revocationCap ?? DEFAULT_REVOCATION_CAP, evicted: store.revocationsEvicted - this.evictionsReported, evictedSinceStart: store.revocationsEvicted },
        'the revocation list is at its cap (revocation_cap): the oldest revocations were evicted',
      );
      this.evictionsReported = store.revocationsEvicted;
    }
    this.evictionTimer = this.o.directory.clock.setTimeout(() => this.reportEvictions(), EVICTION_REPORT_EVERY_MS);
  }

  /** Builds an engine that has no saved state (a test's, or a process that keeps nothing): it starts empty, at once. */
  static empty(options: Omit<GridEngineOptions, 'savedState'>): GridEngine {
    return new GridEngine(options, new GridStore(options.directory.clock, options.self, options.revocationCap), { kind: 'none' });
  }

  /** Builds an engine: loads the saved state first (see the header), then starts answering and placing. */
  static async open(options: GridEngineOptions): Promise<GridEngine> {
    const { directory, logger: log, self, savedState } = options;
    const clock = directory.clock;
    const store = new GridStore(clock, self, options.revocationCap);
    let outcome: SavedStateOutcome = { kind: 'none' };
    const saved = savedState?.saved();
    if (savedState && saved !== undefined) {
      const othersRunning = [...directory.activeEngines().keys()].some((id) => id !== self);
      const ageMs = clock.now() - saved.savedAt;
      const stale = staleGridStateReason(saved, clock.now(), othersRunning);
      if (stale !== undefined) {
        const keptAs = savedState.setAside();
        outcome = { kind: 'stale', keptAs, reason: stale };
        log.warn({ ageMs, servedSince: saved.servedSince, keptAs }, `saved grid state not loaded: ${stale}; the cluster holds newer state, and the old file could bring deleted records back`);
      } else {
        const started = clock.now();
        try {
          const result = await savedState.load(store);
          if (result) outcome = { kind: 'loaded', ...result };
          log.info({ ...result, ageMs, loadMs: clock.now() - started }, 'grid state saved at the last stop loaded');
        } catch (err) {
          if (!isCohortError(err, 'GRID_STATE_DAMAGED')) throw err;
          outcome = { kind: 'damaged' };
          log.error({ err, code: err.code }, err.message);
        }
      }
    }
    const engine = new GridEngine(options, store, outcome);
    // Replay ids witnessed before the last graceful stop, whatever became of the records: they
    // only ever refuse an id that was seen.
    const witnessed = savedState?.witnesses();
    if (witnessed === undefined && savedState) log.warn({ code: 'GRID_STATE_DAMAGED' }, 'the replay ids kept at the last stop (grid-witnesses.json) cannot be read: starting without them, as after a crash');
    else if (witnessed !== undefined && witnessed.length > 0) log.info({ restored: engine.executor.replayWitnesses.restore(witnessed), kept: witnessed.length }, 'replay ids witnessed before the last stop held again');
    return engine;
  }
}

/** Builds one engine's grid (see GridEngine.open). */
export function openGridEngine(options: GridEngineOptions): Promise<GridEngine> {
  return GridEngine.open(options);
}
