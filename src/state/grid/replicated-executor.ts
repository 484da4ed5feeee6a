/**
 * The replicated grid: runs each operation on the primary of its partition and answers once
 * every replica of the partition holds the result.
 *
 * - Placement (placement.ts) is computed from the active engines, the same on every node.
 * - execute: the primary applies the operation (one JavaScript turn: atomic), ships the
 *   records it changed to every backup, and answers once all of them hold them, so an
 *   acknowledged write survives replication_factor - 1 failures. If a backup cannot take it,
 *   the change is undone (on the backups that took it too) and the caller gets
 *   STATE_UNAVAILABLE. Another engine forwards the operation to the primary (one hop; an
 *   engine that is not the primary in its own view refuses instead of forwarding again).
 *   A replica in sync answers reads from its own copy.
 * - A backup only accepts changes from the engine it sees as the partition's primary, and an
 *   engine that does not see a majority of the voters (write-majority.ts: the known engines,
 *   and the console and replica as witnesses when the engines are even in number) refuses
 *   writes, so engines that briefly disagree fail requests (503) rather than both accepting
 *   them. Replay inserts also ask
 *   each backup whether it has seen the id.
 * - Partitions are placed only on engines that hold their share (`serving`, told by
 *   membership). A starting engine first takes what it will hold, while the others keep
 *   serving without it: the revocation list and the partitions the placement with it would
 *   give it, from the engines serving them (fingerprints first, in one message per engine,
 *   then the records of the partitions that differ, as text lines in bulk messages, at most
 *   two in flight per transfer, a partition larger than a message in slices; so state saved at the
 *   last stop that still matches moves nothing). Then it announces itself
 *   (`announceServing`), reports ready, and the others place partitions on it. The first
 *   engine of a cluster (no other serving) serves at once with what it holds.
 * - After the set of serving engines changes, every engine pushes the partitions that moved
 *   to their new replicas (where their fingerprints differ), and every replica resynchronises
 *   its partitions in the background the same way; a primary does so before serving a
 *   partition again. An engine keeps the records of a partition that moved away from it until
 *   every engine of the new replica set has confirmed holding its copy, then drops them
 *   (`dropMoved`), so its memory returns to its share after every rebalancing.
 * - Revocations live on every engine (`everywhere`, revocations.ts), acknowledged once a majority of the
 *   cluster's engines hold them (every active one, when failed engines leave fewer than that
 *   and the witnesses made the majority) and resent to the others; a starting engine downloads them
 *   before it is ready. Checks are answered from this engine's copy; with read_local_only =
 *   false, an id it does not hold is also asked of as many engines as acknowledge a revocation
 *   (`revokedElsewhere`), so the two sets meet and no acknowledged revocation is missed.
 *
 * Records carry hybrid-logical-clock versions (grid-store.ts): merging is idempotent and the
 * newer copy wins, so pushes, pulls and retries can overlap freely.
 *
 * This file is the façade: it owns the engine set and the write majority's counts
 * (`setEngines`), the placement, the start-up sync (`syncAtStart`) and the public API the
 * grid provider, the engine wiring and the simulator use. The rest lives along its seams,
 * sharing one ReplicaState (replica-state.ts): primary-routing.ts (where an operation runs;
 * the primary's replication and undo), backup-replicas.ts (accepting changes),
 * partition-sync.ts (marks, syncs, hand-off, repair), partition-transfer.ts (fingerprints,
 * pulls, pushes), anti-entropy.ts (periodic comparison, dropping moved partitions),
 * revocations.ts, replay-witnesses.ts (replay ids held for other engines' partitions); the RPC methods and their schemas are in grid-protocol.ts.
 *
 * Invariants:
 * - Only this file changes the engine set, the serving set and the placement; every
 *   placement change bumps the generation and marks what this engine must resynchronise.
 * - An engine announces itself serving only after its start-up download, and reports ready
 *   only once the others place partitions on it (or SEEN_SERVING_TIMEOUT_MS passed).
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { MaybePromise } from '../../core/maybe-async.js';
import type { Rpc } from '../../rpc/rpc.js';
import { AntiEntropy } from './anti-entropy.js';
import { BackupReplicas } from './backup-replicas.js';
import { gridRpc } from './grid-protocol.js';
import { EVERYWHERE, PARTITION_COUNT, type GridExecutor } from './grid-provider.js';
import type { GridStore } from './grid-store.js';
import type { Operation, OperationResults } from './operations.js';
import { PartitionSync } from './partition-sync.js';
import { PartitionTransfer } from './partition-transfer.js';
import { changedPartitions, placeScopes, type Placement } from './placement.js';
import { PrimaryRouting } from './primary-routing.js';
import { LOADING_RETRY_MS, REPAIR_RETRY_MS, ReplicaState } from './replica-state.js';
import { ReplayWitnesses } from './replay-witnesses.js';
import { Revocations } from './revocations.js';
import { CLUSTER_SCOPE } from './scopes.js';
import { decideWrites, describeRefusal, majorityOf, type WriteDecision } from './write-majority.js';

export interface ReplicatedExecutorOptions {
  store: GridStore;
  rpc: Rpc;
  clock: Clock;
  logger: Logger;
  /** This engine's node id. */
  self: string;
  replicationFactor: number;
  /** `[state] bulk_revocation_timeout`: how long the start-up download may take (ms). */
  bulkTimeoutMs: number;
  /**
   * Tells the cluster this engine now holds its share (membership metadata), so the others
   * place partitions on it. Without it (tests driving placement by hand) nothing is told.
   */
  announceServing?(): void;
  /**
   * The placement of every scope in use over the given serving engines (scopes.ts: the
   * cluster-wide scope, subclusters, directed sets). Default: the cluster-wide scope only.
   */
  place?(serving: readonly string[]): Placement;
}

/** How long a starting engine waits for the others to place partitions on it before it reports ready (ms). */
const SEEN_SERVING_TIMEOUT_MS = 5000;
const SEEN_SERVING_POLL_MS = 20;

/**
 * The façade of the replicated grid: owns the engine set, the placement and the start-up
 * sync, and wires the parts it is split into (see the header): primary-routing.ts,
 * backup-replicas.ts, partition-sync.ts, partition-transfer.ts, anti-entropy.ts,
 * revocations.ts, sharing one ReplicaState.
 */
export class ReplicatedExecutor implements GridExecutor {
  private readonly o: ReplicatedExecutorOptions;
  private readonly s: ReplicaState;
  /**
   * Engines in the cluster, active or failed (not those that left), as the most any engine in
   * view counts them (grid-engine.ts): the base of write majorities and full starts.
   */
  private knownEngines = 0;
  /**
   * Active engines under suspicion (membership: a probe failed and no refutation came yet):
   * still placed on, but not counted as seen by the write majority. An engine on the other
   * side of a split is suspect here until it is declared failed; counted, it would let both
   * sides see a majority (write-majority.ts).
   */
  private suspected = new Set<string>();
  /** Consoles and replicas: known, and active as this engine sees them (write-majority.ts). */
  private witnesses: Witnesses = { known: 0, active: 0 };
  /** The revocation list, on every engine (revocations.ts). */
  private readonly revocations: Revocations;
  private readonly transfer: PartitionTransfer;
  private readonly sync: PartitionSync;
  private readonly routing: PrimaryRouting;
  /** Replay ids held for other engines' partitions (replay-witnesses.ts). */
  readonly replayWitnesses: ReplayWitnesses;
  private readonly antiEntropy: AntiEntropy;
  private initialSync: Promise<void> | undefined;
  /** Why the start-up sync waits for more engines before a full start (undefined: it does not). */
  private fullStartWait: string | undefined;
  /** Ends the full start's wait early: membership changed. */
  private wakeStart: (() => void) | undefined;

  constructor(options: ReplicatedExecutorOptions) {
    this.o = options;
    const rpc = gridRpc(options.rpc, options.logger);
    const s = new ReplicaState({ ...options, rpc });
    this.s = s;
    this.transfer = new PartitionTransfer(s);
    this.sync = new PartitionSync(s, this.transfer);
    this.replayWitnesses = new ReplayWitnesses(s);
    this.routing = new PrimaryRouting(s, this.sync, () => this.writeRefusal(), this.replayWitnesses, () => this.knownEngines);
    new BackupReplicas(s, this.replayWitnesses);
    this.antiEntropy = new AntiEntropy(s, this.transfer);
    this.revocations = new Revocations({
      store: options.store,
      rpc,
      clock: options.clock,
      self: options.self,
      retryMs: REPAIR_RETRY_MS,
      engines: () => s.engines,
      knownEngines: () => this.knownEngines,
      writeDecision: () => this.writeDecision(),
      closed: () => s.closed,
      pullFrom: (address, partitions) => this.transfer.pullFrom(address, partitions),
      pushWhereDifferent: (address, partitions) => this.transfer.pushWhereDifferent(address, partitions),
    });
    rpc.handle('grid.serving', () => [...s.serving]);
  }

  get replicationFactor(): number {
    return this.s.replicationFactor;
  }

  /** True once the start-up download (revocations and this engine's partitions) is done. */
  get ready(): boolean {
    return this.s.initialSyncDone;
  }

  /**
   * Ready, and no partition of this engine waits to be resynchronised after a placement change
   * (for tests and diagnostics: a grid at rest).
   */
  get synchronised(): boolean {
    return this.s.initialSyncDone && this.s.unsynced.size === 0 && this.s.syncing.size === 0;
  }

  /**
   * Whether this engine accepts changes now: it sees a majority of the voters (the known
   * engines, and the console and replica as witnesses when the engines are even in number).
   */
  writeDecision(): WriteDecision {
    return decideWrites({
      knownEngines: this.knownEngines,
      activeEngines: this.s.engines.size - this.suspected.size,
      knownWitnesses: this.witnesses.known,
      activeWitnesses: this.witnesses.active,
    });
  }

  /** Why changes are refused now; undefined while they are accepted. */
  writeRefusal(): string | undefined {
    const d = this.writeDecision();
    return d.accepted ? undefined : describeRefusal(this.s.self, d);
  }

  /** Every placed partition with its replica set, primary first (for the node's metrics). */
  placedPartitions(): ReadonlyMap<number, readonly string[]> {
    return this.s.placement;
  }

  /** Why this engine is not ready yet beyond its download (a full start waiting for more engines); undefined when it is not waiting. */
  get startWaitReason(): string | undefined {
    return this.s.initialSyncDone ? undefined : this.fullStartWait;
  }

  /**
   * Why a full start (no engine in view serves) must wait, or undefined when it may go on: it
   * needs a strict majority of the cluster's engines in view (not suspected), the cluster
   * counted as the write majority counts it (`knownEngines`: the most any engine in view
   * counts, the engines its previous run knew included until it serves; grid-engine.ts). An
   * engine restarted while cut off from most of the cluster (or joined to another newly
   * started one) would otherwise serve on its own, with write majorities counted over the few
   * engines it knows, and accept a replay id or a change the rest of the cluster also accepts.
   * An engine whose cluster really shrank for good starts once the engines it remembers are
   * deleted from its data directory's record (docs/operations.md).
   */
  private fullStartRefusal(): string | undefined {
    const voters = Math.max(this.knownEngines, 1);
    const inView = this.s.engines.size - this.suspected.size;
    if (inView >= majorityOf(voters)) return undefined;
    return `no engine in view serves, and a full start needs ${majorityOf(voters)} of the cluster's ${voters} engines (the most that any engine in view counts, the engines of its previous run included); ${inView} in view: waiting for more of them, or for an engine that serves`;
  }

  /** The replica set of a partition, primary first (for tests and diagnostics). */
  replicasOf(partition: number): readonly string[] {
    return this.s.placement.get(partition) ?? [];
  }

  /**
   * The active engines changed (membership): recompute placement over those `serving`
   * (default: all of them), push the partitions that moved to their new replicas, and mark
   * the partitions this engine must resynchronise (those that moved; all of them when an
   * engine (re)appeared, since it may hold writes this one missed, after a healed split or a
   * resumed pause).
   */
  setEngines(engines: Map<string, string>, knownEngines = engines.size, serving?: ReadonlySet<string>, witnesses: Witnesses = { known: 0, active: 0 }, suspects: ReadonlySet<string> = new Set()): void {
    this.suspected = new Set([...suspects].filter((id) => id !== this.s.self && engines.has(id)));
    this.s.engines = new Map(engines);
    this.knownEngines = Math.max(knownEngines, engines.size);
    this.witnesses = { ...witnesses };
    const servingNow = new Set([...engines.keys()].filter((id) => (serving ? serving.has(id) : true)));
    servingNow.delete(this.s.self);
    if (this.s.selfServing || !serving) servingNow.add(this.s.self);
    if (!serving) this.s.selfServing = true;
    const newcomers = this.place(servingNow);
    // Engines that (re)appeared may have missed revocations, and may hold some this one
    // missed: the lists are compared once such an engine serves. One still starting takes the
    // whole list itself before it serves; comparing with it meanwhile would send it the list
    // once more from every engine, while it is busiest (a tenth of a large join's time).
    if (this.initialSync) for (const id of newcomers) this.revocations.exchange(id, engines.get(id)!);
    this.initialSync ??= this.syncAtStart();
    this.wakeStart?.();
  }

  /** Places partitions over `servingNow`; returns the other engines that serve now and did not before. */
  private place(servingNow: Set<string>): string[] {
    const before = this.s.placement;
    const newcomers = [...servingNow].filter((id) => id !== this.s.self && !this.s.serving.has(id));
    this.s.serving = servingNow;
    this.s.placement = this.placeOver([...servingNow]);
    const moved = before.size === 0 ? [] : changedPartitions(before, this.s.placement);
    const resync = before.size === 0 || newcomers.length > 0 ? [...this.s.placement.keys()] : moved;
    this.s.generation++;
    for (const p of resync) if (this.s.placement.get(p)!.includes(this.s.self)) this.s.unsynced.set(p, this.s.generation);
    if (moved.length > 0) this.sync.handOff(before, moved);
    if (this.s.initialSyncDone) this.sync.scheduleRepair(0);
    return newcomers;
  }

  private placeOver(serving: readonly string[]): Placement {
    if (this.o.place) return this.o.place(serving);
    return placeScopes(serving.map((id) => ({ id, group: null, index: null })), [CLUSTER_SCOPE], PARTITION_COUNT, this.s.replicationFactor);
  }

  /** Revocations, on every engine (revocations.ts `everywhere`). */
  everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    return this.revocations.everywhere(op);
  }

  revokedHere(id: string): boolean {
    return this.revocations.revokedHere(id);
  }

  /** Which of `ids` the other engines hold as revoked (revocations.ts `revokedElsewhere`). */
  revokedElsewhere(ids: readonly string[]): Promise<ReadonlySet<string>> {
    return this.revocations.revokedElsewhere(ids);
  }

  /**
   * At start: the revocation list and every partition the placement with this engine would
   * give it, from the other engines, before this engine announces itself and reports ready.
   *
   * - Others serve already (a join, a restart in a rolling restart): the placement is the
   *   serving engines plus this one; a partition is taken once one of its replicas answered.
   * - None serves (a new cluster, or a full stop and start): the placement is every active
   *   engine, and this engine waits for every one of them to answer (each answers once its
   *   saved state is loaded), so what it serves is the union of what they all saved. After
   *   bulk_revocation_timeout it settles for the engines that answered. While one of them
   *   is still loading its saved state, it asks again every LOADING_RETRY_MS, not every
   *   REPAIR_RETRY_MS: engines loading at once finish within moments of each other.
   * - Alone: it serves at once with what it holds.
   * - Either way, with no engine serving, only once a majority of the cluster's engines is in
   *   view (`fullStartRefusal`).
   */
  private async syncAtStart(): Promise<void> {
    let deadline = this.s.clock.now() + this.s.bulkTimeoutMs;
    let warned = false;
    for (;;) {
      if (this.s.closed) return;
      const fullStart = this.s.servingOthers().length === 0;
      const wait = fullStart ? this.fullStartRefusal() : undefined;
      if (wait !== this.fullStartWait) {
        this.fullStartWait = wait;
        if (wait !== undefined) this.s.logger.warn({ reason: wait }, 'not serving yet: waiting for a majority of the engines before a full start');
      }
      if (wait !== undefined) {
        // Until membership brings more engines (setEngines wakes it) or the retry delay passes;
        // the download that follows gets the whole bulk_revocation_timeout again.
        await Promise.race([this.s.sleep(REPAIR_RETRY_MS), new Promise<void>((resolve) => (this.wakeStart = resolve))]);
        this.wakeStart = undefined;
        deadline = this.s.clock.now() + this.s.bulkTimeoutMs;
        continue;
      }
      if (this.s.activeOthers().length === 0) break;
      const everyEngine = fullStart && this.s.clock.now() <= deadline;
      const base = fullStart ? [...this.s.engines.keys()] : [...new Set([...this.s.serving, this.s.self])];
      const target = this.placeOver(base);
      const mine = [...target].filter(([, set]) => set.includes(this.s.self)).map(([p]) => p);
      mine.push(EVERYWHERE);
      for (const p of mine) if (!this.s.unsynced.has(p)) this.s.unsynced.set(p, this.s.generation);
      const left = await this.sync.syncPartitions(mine, target, everyEngine);
      if (left.length === 0) break;
      if (this.s.closed) return;
      if (!warned && this.s.clock.now() > deadline) {
        warned = true;
        this.s.logger.error(
          { partitionsLeft: left.length, revocationsDownloaded: !left.includes(EVERYWHERE), timeoutMs: this.s.bulkTimeoutMs },
          'not ready: the start-up download did not finish within bulk_revocation_timeout; still trying',
        );
      }
      await this.s.sleep(this.sync.peersLoading ? LOADING_RETRY_MS : REPAIR_RETRY_MS);
    }
    this.s.unsynced.delete(EVERYWHERE);
    this.s.logger.info({ revocations: this.s.store.recordCount(EVERYWHERE) }, 'revocation list and partitions downloaded');
    if (!this.s.selfServing) {
      this.s.selfServing = true;
      this.place(new Set([...this.s.serving, this.s.self]));
      this.o.announceServing?.();
      await this.untilSeenServing();
    }
    this.s.initialSyncDone = true;
    this.antiEntropy.schedule();
    this.s.logger.info('grid synchronised: ready');
    this.sync.scheduleRepair(0);
  }

  /**
   * Waits (up to SEEN_SERVING_TIMEOUT_MS) until every other active engine places partitions
   * on this one, so that "ready" means requests are routed here, not that gossip may soon say so.
   */
  private async untilSeenServing(): Promise<void> {
    const until = this.s.clock.now() + SEEN_SERVING_TIMEOUT_MS;
    while (!this.s.closed && this.s.clock.now() < until) {
      const answers = await Promise.allSettled(this.s.activeOthers().map(([, address]) => this.s.rpc.call(address, 'grid.serving', {})));
      if (answers.every((a) => a.status === 'rejected' || a.value.includes(this.s.self))) return;
      await this.s.sleep(SEEN_SERVING_POLL_MS);
    }
    this.s.logger.warn({ timeoutMs: SEEN_SERVING_TIMEOUT_MS }, 'not every engine sees this one as serving yet; reporting ready anyway');
  }

  /** Stops background synchronisation (the engine is stopping). */
  close(): void {
    this.s.closed = true;
    this.sync.close();
    this.antiEntropy.close();
    this.revocations.close();
  }

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    return this.routing.execute(partition, op);
  }

  executeNow<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): MaybePromise<OperationResults[K]> {
    return this.routing.executeNow(partition, op);
  }
}

/** Consoles and replicas: members that hold no state but vote on who is alive (write-majority.ts). */
export interface Witnesses {
  known: number;
  active: number;
}
