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
 *   then the records of the partitions that differ, as text lines in bulk messages, one in
 *   flight per transfer, a partition larger than a message in slices; so state saved at the
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
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { CohortError, isCohortError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import { RawText, type Rpc } from '../../rpc/rpc.js';
import { EVERYWHERE, PARTITION_COUNT, type GridExecutor } from './grid-provider.js';
import { EMPTY_DIGEST, type GridStore, type RecordChange, type StoredRecord } from './grid-store.js';
import { applyOperation, isReadOnly, isRepeatable, type Operation, type OperationResults } from './operations.js';
import { changedPartitions, placeScopes, type Placement } from './placement.js';
import { CLUSTER_SCOPE } from './scopes.js';
import { parseRecordLines, partitionSlice, transferCursor, wholePartition, type RecordView, type TransferCursor } from './record-lines.js';
import { decideWrites, describeRefusal, type WriteDecision } from './write-majority.js';
import { Revocations } from './revocations.js';
import { asStateError } from './state-errors.js';

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

/** How soon partitions that could not be synchronised are tried again (ms). */
const REPAIR_RETRY_MS = 1000;
/**
 * How often each replica compares its partitions' fingerprints with the other replicas of
 * them (anti-entropy, ms). A partition is pulled only when it differed, the same way, at two
 * comparisons in a row: writes in flight make copies differ for a moment.
 */
const ANTI_ENTROPY_MS = 2000;
/** Waits before each new try of an operation refused while engines switch placements (ms). */
const PLACEMENT_RETRY_DELAYS_MS = [20, 50, 100, 200, 400, 500, 700];
/** How long a starting engine waits for the others to place partitions on it before it reports ready (ms). */
const SEEN_SERVING_TIMEOUT_MS = 5000;
const SEEN_SERVING_POLL_MS = 20;
/**
 * Largest bulk message (record lines) a transfer builds: a partition larger than this moves
 * in several messages (chunks). In characters: at most 3 bytes of UTF-8 each, so a message
 * stays under the transport's 16 MiB frame limit. A chunk holds at least one record, so a
 * single record of more than about 16 MiB could not move at all; the size caps of the
 * runtime API keep every value far below that.
 */
const BULK_MESSAGE_CHARS = 4 << 20;

export class ReplicatedExecutor implements GridExecutor {
  private readonly o: ReplicatedExecutorOptions;
  /** Active engines: node id → cluster address (this engine included). */
  private engines = new Map<string, string>();
  /** Active engines that hold their share; partitions are placed on these only. */
  private serving = new Set<string>();
  /** This engine finished its start-up sync and said so. */
  private selfServing = false;
  private placement: Placement = new Map();
  /**
   * Partitions this engine must pull before it serves them as primary, each with the
   * placement generation that marked it: a sync clears only marks older than itself, so a
   * change of the engine set during a sync is synchronised again.
   */
  private readonly unsynced = new Map<number, number>();
  private generation = 0;
  private readonly syncing = new Map<number, Promise<void>>();
  private initialSyncDone = false;
  /** Engines in the cluster, active or failed (not those that left): the write majority's base. */
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
  private repairTimer: TimerHandle | undefined;
  private antiEntropyTimer: TimerHandle | undefined;
  /** Copies that differed at the last comparison: `engine partition` → `ours theirs`. */
  private differed = new Map<string, string>();
  /** The revocation list, on every engine (revocations.ts). */
  private readonly revocations: Revocations;
  /** Per partition, the last change this primary is replicating (executeAsPrimary). */
  private readonly writesInFlight = new Map<number, Promise<void>>();
  /**
   * Per partition, the records the change being replicated replaced (`ns key` → the record
   * before it, undefined when there was none): transfers send those, not the change (see
   * `acknowledged`).
   */
  private readonly replaced = new Map<number, Map<string, StoredRecord | undefined>>();
  private closed = false;
  private initialSync: Promise<void> | undefined;

  constructor(options: ReplicatedExecutorOptions) {
    this.o = options;
    const { rpc } = options;
    this.revocations = new Revocations({
      store: options.store,
      rpc,
      clock: options.clock,
      self: options.self,
      retryMs: REPAIR_RETRY_MS,
      engines: () => this.engines,
      knownEngines: () => this.knownEngines,
      writeDecision: () => this.writeDecision(),
      closed: () => this.closed,
      pullFrom: (address, partitions) => this.pullFrom(address, partitions),
      pushWhereDifferent: (address, partitions) => this.pushWhereDifferent(address, partitions),
    });
    rpc.handle('grid.execute', (body) => {
      const { partition, op } = body as { partition: number; op: Operation };
      if (this.primaryOf(partition) !== this.o.self) throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${this.o.self} is not the primary of partition ${partition}`);
      return this.executeAsPrimary(partition, op);
    });
    rpc.handle('grid.replicate', (body, from) => this.acceptReplica(body as ReplicateBody, from.nodeId));
    rpc.handle('grid.merge', (body) => {
      this.mergeAll((body as { changes: RecordChange[] }).changes);
      return true;
    });
    rpc.handle('grid.mergeLines', (body) => {
      if (!(body instanceof RawText)) throw new CohortError('STATE_UNAVAILABLE', 'grid.mergeLines takes record lines');
      return this.mergeLines(body.text);
    });
    // A read a backup answers from its own copy, when the primary cannot be reached.
    rpc.handle('grid.read', (body) => {
      const { partition, op } = body as { partition: number; op: Operation };
      if (!isReadOnly(op)) throw new CohortError('STATE_UNAVAILABLE', `${op.t} changes state: only the primary runs it`);
      return applyOperation(this.o.store, op, this.o.clock.now(), partition);
    });
    rpc.handle('grid.digests', (body) => (body as { partitions: number[] }).partitions.map((p) => this.o.store.digest(p)));
    rpc.handle('grid.serving', () => [...this.serving]);
    // The answer's first line lists the partitions it holds whole (as many as fit in one
    // message). A partition too large for one message comes in slices: the first line is then
    // `{"done": [...], "partial": {"partition", "after"}}`, and the next request carries
    // `after` to continue it (record-lines.ts `partitionSlice`). Engines that predate slices
    // send no `after` and read only the list, which is all they get for partitions that fit.
    rpc.handle('grid.pull', (body) => {
      const { partitions, after } = body as { partitions: number[]; after?: unknown };
      const batch = this.exportBatch(partitions, transferCursor(after));
      const header = batch.partial ? { done: batch.done, partial: batch.partial } : batch.done;
      return new RawText(`${JSON.stringify(header)}\n${batch.lines}`);
    });
  }

  get replicationFactor(): number {
    return this.o.replicationFactor;
  }

  /** True once the start-up download (revocations and this engine's partitions) is done. */
  get ready(): boolean {
    return this.initialSyncDone;
  }

  /**
   * Ready, and no partition of this engine waits to be resynchronised after a placement change
   * (for tests and diagnostics: a grid at rest).
   */
  get synchronised(): boolean {
    return this.initialSyncDone && this.unsynced.size === 0 && this.syncing.size === 0;
  }

  /**
   * Whether this engine accepts changes now: it sees a majority of the voters (the known
   * engines, and the console and replica as witnesses when the engines are even in number).
   */
  writeDecision(): WriteDecision {
    return decideWrites({
      knownEngines: this.knownEngines,
      activeEngines: this.engines.size - this.suspected.size,
      knownWitnesses: this.witnesses.known,
      activeWitnesses: this.witnesses.active,
    });
  }

  /** Why changes are refused now; undefined while they are accepted. */
  writeRefusal(): string | undefined {
    const d = this.writeDecision();
    return d.accepted ? undefined : describeRefusal(this.o.self, d);
  }

  /** Every placed partition with its replica set, primary first (for the node's metrics). */
  placedPartitions(): ReadonlyMap<number, readonly string[]> {
    return this.placement;
  }

  /** The replica set of a partition, primary first (for tests and diagnostics). */
  replicasOf(partition: number): readonly string[] {
    return this.placement.get(partition) ?? [];
  }

  /**
   * The active engines changed (membership): recompute placement over those `serving`
   * (default: all of them), push the partitions that moved to their new replicas, and mark
   * the partitions this engine must resynchronise (those that moved; all of them when an
   * engine (re)appeared, since it may hold writes this one missed, after a healed split or a
   * resumed pause).
   */
  setEngines(engines: Map<string, string>, knownEngines = engines.size, serving?: ReadonlySet<string>, witnesses: Witnesses = { known: 0, active: 0 }, suspects: ReadonlySet<string> = new Set()): void {
    this.suspected = new Set([...suspects].filter((id) => id !== this.o.self && engines.has(id)));
    const joined = [...engines.keys()].filter((id) => id !== this.o.self && !this.engines.has(id));
    this.engines = new Map(engines);
    this.knownEngines = Math.max(knownEngines, engines.size);
    this.witnesses = { ...witnesses };
    const servingNow = new Set([...engines.keys()].filter((id) => (serving ? serving.has(id) : true)));
    servingNow.delete(this.o.self);
    if (this.selfServing || !serving) servingNow.add(this.o.self);
    if (!serving) this.selfServing = true;
    this.place(servingNow);
    // Newcomers may have missed revocations, and may hold some this engine missed.
    if (this.initialSync) for (const id of joined) this.revocations.exchange(id, engines.get(id)!);
    this.initialSync ??= this.syncAtStart();
  }

  private place(servingNow: Set<string>): void {
    const before = this.placement;
    const newcomers = [...servingNow].filter((id) => id !== this.o.self && !this.serving.has(id));
    this.serving = servingNow;
    this.placement = this.placeOver([...servingNow]);
    const moved = before.size === 0 ? [] : changedPartitions(before, this.placement);
    const resync = before.size === 0 || newcomers.length > 0 ? [...this.placement.keys()] : moved;
    this.generation++;
    for (const p of resync) if (this.placement.get(p)!.includes(this.o.self)) this.unsynced.set(p, this.generation);
    if (moved.length > 0) this.handOff(before, moved);
    if (this.initialSyncDone) this.scheduleRepair(0);
  }

  private placeOver(serving: readonly string[]): Placement {
    if (this.o.place) return this.o.place(serving);
    return placeScopes(serving.map((id) => ({ id, group: null, index: null })), [CLUSTER_SCOPE], PARTITION_COUNT, this.o.replicationFactor);
  }

  /** Stops background synchronisation (the engine is stopping). */
  close(): void {
    this.closed = true;
    this.o.clock.clearTimeout(this.repairTimer);
    this.o.clock.clearTimeout(this.antiEntropyTimer);
    this.revocations.close();
  }
  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    // Every replica holds every acknowledged write, so a replica that is in sync answers reads
    // from its own copy: no hop to the primary for the common case of a session lookup.
    if (this.answersLocally(partition, op)) return Promise.resolve(applyOperation(this.o.store, op, this.o.clock.now(), partition) as OperationResults[K]);
    return this.routed(partition, op, 0);
  }

  private answersLocally(partition: number, op: Operation): boolean {
    return isReadOnly(op) && !this.unsynced.has(partition) && this.placement.get(partition)?.includes(this.o.self) === true;
  }

  /**
   * Runs `op` on the partition's primary. While engines switch to a new placement (a few
   * gossip rounds after a membership change) they may disagree on who the primary is, and
   * the one asked refuses with STATE_PLACEMENT_CHANGING: the operation is tried again, routed
   * by the placement of that moment, for up to PLACEMENT_RETRY_DELAYS_MS, so clients do not
   * see the switch. (A refused write changed nothing: the primary undid it.)
   */
  private async routed<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>, attempt: number): Promise<OperationResults[K]> {
    try {
      if (this.answersLocally(partition, op)) return applyOperation(this.o.store, op, this.o.clock.now(), partition) as OperationResults[K];
      return await this.onPrimary(partition, op);
    } catch (err) {
      const delay = PLACEMENT_RETRY_DELAYS_MS[attempt];
      if (delay === undefined || !isCohortError(err, 'STATE_PLACEMENT_CHANGING') || this.closed) throw stillUnreachable(err);
      await this.sleep(delay);
      return this.routed(partition, op, attempt + 1);
    }
  }

  private onPrimary<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    const primary = this.primaryOf(partition);
    if (primary === undefined) return Promise.reject(new CohortError('STATE_UNAVAILABLE', 'no engine is active to hold the state'));
    if (primary === this.o.self) return this.executeAsPrimary(partition, op) as Promise<OperationResults[K]>;
    return this.o.rpc.call<OperationResults[K]>(this.engines.get(primary)!, 'grid.execute', { partition, op }).catch((err: unknown) => {
      if (isReadOnly(op) && !(err instanceof CohortError && err.code.startsWith('STATE_') && err.code !== 'STATE_UNAVAILABLE')) {
        return this.readFromBackups(partition, op, err) as Promise<OperationResults[K]>;
      }
      // The primary's connection was lost (it crashed, or left a moment ago): membership
      // names the next primary within the retries of routed(), and an operation that may be
      // applied twice goes there (a counter or a take may have happened already: not those).
      // Not after a timeout: a primary that is only slow may still finish, or undo, the first
      // attempt after the retry was acknowledged elsewhere (the simulator lost a session so).
      if (isCohortError(err, 'RPC_PEER_UNREACHABLE') && isRepeatable(op)) {
        throw new CohortError('STATE_PLACEMENT_CHANGING', `partition ${partition}'s primary ${primary} is unreachable (${err.message}); trying the next primary`, undefined, { cause: err });
      }
      throw asStateError(err, `partition ${partition}'s primary ${primary}`);
    });
  }

  /**
   * The primary is unreachable (crashed, and membership has not said so yet): a backup's copy
   * answers the read. It holds every write acknowledged before the crash unless the write
   * reached only the other backups; this engine's own copy is tried first.
   */
  private async readFromBackups(partition: number, op: Operation, primaryError: unknown): Promise<unknown> {
    const backups = (this.placement.get(partition) ?? []).slice(1);
    // Its own copy only when it is in sync: the placement may have changed during the call
    // and made this engine a new backup that has not pulled the partition yet.
    if (backups.includes(this.o.self) && !this.unsynced.has(partition)) return applyOperation(this.o.store, op, this.o.clock.now(), partition);
    for (const id of backups) {
      const address = this.engines.get(id);
      if (!address || id === this.o.self) continue;
      try {
        return await this.o.rpc.call(address, 'grid.read', { partition, op });
      } catch {
        // try the next backup
      }
    }
    throw asStateError(primaryError, `partition ${partition}'s primary or any of its backups`);
  }

  /** Revocations, on every engine (revocations.ts `everywhere`). */
  everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    return this.revocations.everywhere(op);
  }

  local<K extends Operation['t']>(op: Extract<Operation, { t: K }>): OperationResults[K] {
    return this.revocations.local(op);
  }

  /** Which of `ids` the other engines hold as revoked (revocations.ts `revokedElsewhere`). */
  revokedElsewhere(ids: readonly string[]): Promise<ReadonlySet<string>> {
    return this.revocations.revokedElsewhere(ids);
  }

  // ------------------------------------------------------------------ primary side

  private primaryOf(partition: number): string | undefined {
    return this.placement.get(partition)?.[0];
  }

  /**
   * Runs `op` as the partition's primary. Changes to one partition run one at a time, each
   * after the previous one is acknowledged or undone everywhere: a change applied while an
   * earlier one is still being replicated would build on it, and undoing the earlier one
   * could then restore only part of the store's history (the later change, undone in turn,
   * would put the earlier, failed one back). Reads do not wait.
   */
  private executeAsPrimary(partition: number, op: Operation): Promise<unknown> {
    if (isReadOnly(op)) return this.applyAsPrimary(partition, op);
    const previous = this.writesInFlight.get(partition);
    const run = previous ? previous.then(() => this.applyAsPrimary(partition, op)) : this.applyAsPrimary(partition, op);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.writesInFlight.set(partition, settled);
    void settled.then(() => {
      if (this.writesInFlight.get(partition) === settled) this.writesInFlight.delete(partition);
    });
    return run;
  }

  private async applyAsPrimary(partition: number, op: Operation): Promise<unknown> {
    await this.ensureSynced(partition);
    const replicas = this.placement.get(partition) ?? [];
    if (replicas[0] !== this.o.self) throw new CohortError('STATE_PLACEMENT_CHANGING', `partition ${partition} moved while it was being synchronised`);
    // On the minority side of a network partition this engine may see itself as primary of
    // partitions the majority side also serves: it refuses changes rather than diverge.
    if (!isReadOnly(op)) {
      const refusal = this.writeRefusal();
      if (refusal !== undefined) throw new CohortError('STATE_UNAVAILABLE', refusal);
    }
    const store = this.o.store;
    store.startJournal();
    const result = applyOperation(store, op, this.o.clock.now(), partition);
    const journal = store.takeJournal();
    if (journal.length === 0) return result;
    const changes = journal.map((e) => e.change);
    const backupIds = replicas.slice(1).filter((id) => this.engines.has(id));
    const backups = backupIds.map((id) => this.engines.get(id)!);
    if (backups.length === 0) return result;
    const body: ReplicateBody = { partition, changes, absent: op.t === 'replay.insert' ? [{ ns: 'replay', key: op.id }] : undefined };
    // Every replica must hold the change before it is acknowledged: then it survives any
    // replication_factor - 1 of them failing at once. Until then transfers send what it
    // replaced (`acknowledged`).
    const replaced = new Map<string, StoredRecord | undefined>();
    for (const e of journal) if (!replaced.has(`${e.change.ns} ${e.change.key}`)) replaced.set(`${e.change.ns} ${e.change.key}`, e.previous);
    this.replaced.set(partition, replaced);
    const answers = await Promise.allSettled(backups.map((b) => this.o.rpc.call(b, 'grid.replicate', body))).finally(() => {
      if (this.replaced.get(partition) === replaced) this.replaced.delete(partition);
    });
    const failures = answers.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => a.reason as unknown);
    if (failures.length === 0) return result;
    // Undo, and tell the backups before answering: nothing unacknowledged stays applied, and a
    // client told 503 can rely on the write not having happened.
    store.startJournal();
    store.undo(journal);
    const undo = store.takeJournal().map((e) => e.change);
    // To every backup, also those that did not answer: one may have applied the change and
    // then timed out. The revert follows the change on the same connection and applies only
    // where the record is still the undone version; every engine that gets it also remembers
    // the undone version and refuses any copy of it later (grid-store.ts), so a backup that
    // kept it cannot spread it through a sync. A backup the revert does not reach now gets the
    // marker with the partition later (syncs, anti-entropy) and puts the record back then.
    if (undo.length > 0) {
      // The other engines get it too, without waiting: one may have become a replica of the
      // partition meanwhile and taken the change in a hand-off (membership moved the partition
      // while the change was in flight).
      for (const [id, address] of this.engines) {
        if (id !== this.o.self && !backupIds.includes(id)) this.o.rpc.call(address, 'grid.merge', { changes: undo }).catch(() => undefined);
      }
      await Promise.allSettled(backups.map((b) => this.o.rpc.call(b, 'grid.merge', { changes: undo })));
    }
    // One backup that has seen a replay id makes it a replay, whatever the others say.
    if (failures.some((f) => isCohortError(f, 'STATE_REPLAY_DETECTED'))) return false;
    // Only backups whose connection was lost (crashed, or left a moment ago): the write was
    // undone everywhere it can be, and membership drops them within the caller's retries.
    if (failures.every((f) => isCohortError(f, 'RPC_PEER_UNREACHABLE'))) {
      throw new CohortError('STATE_PLACEMENT_CHANGING', `a backup of partition ${partition} is unreachable (${(failures[0] as Error).message}); the write was undone and is tried again once membership has dropped it`, undefined, { cause: failures[0] });
    }
    throw asStateError(failures[0], `every replica of partition ${partition} (${failures.length} of ${backups.length} backups failed)`);
  }

  /** Resynchronises `partition` if it is marked, once after each change of the engine set. */
  private ensureSynced(partition: number): Promise<void> {
    if (!this.unsynced.has(partition)) return Promise.resolve();
    // Twice at most: a sync already running may have started under an older engine set.
    return this.syncPartitions([partition])
      .then(() => (this.unsynced.has(partition) ? this.syncPartitions([partition]) : []))
      .then(() => {
        // No other replica answered: most often one that just failed and that membership has
        // not declared yet, so the placement is about to change. Refused as a placement change,
        // which the caller retries for a while (routed) instead of failing at once.
        if (this.unsynced.has(partition)) throw new CohortError('STATE_PLACEMENT_CHANGING', `no other replica of partition ${partition} answered while synchronising it`);
      });
  }

  /** The other serving engines, id → address. */
  private servingOthers(): Array<[string, string]> {
    return [...this.serving].filter((id) => id !== this.o.self && this.engines.has(id)).map((id) => [id, this.engines.get(id)!]);
  }

  /**
   * The other active engines: the sources of a sync. Engines not serving yet count too: at a
   * full restart their saved state is the only copy of what they held (an engine answers
   * only once its saved state is loaded: node/state-provider.ts), and a version never loses
   * to an older one, so a stale copy changes nothing.
   */
  private activeOthers(): Array<[string, string]> {
    return [...this.engines].filter(([id]) => id !== this.o.self);
  }

  /**
   * Brings `partitions` up to date from the other serving engines and resolves with those it
   * could not (retried later). Every acknowledged write is on every replica it had, so any
   * surviving one of them brings it back. Fingerprints first, one message per engine; then,
   * for each partition, the records from one engine per fingerprint that differs from ours
   * (spread over the engines that share it), in bulk messages of whole partitions. A
   * partition counts as synchronised once at least one engine of its replica set in
   * `placement` (other than this one) answered, when it has any; with `everyEngine`, once
   * every other active engine answered and sent what differed.
   */
  private syncPartitions(partitions: number[], placement: Placement = this.placement, everyEngine = false): Promise<number[]> {
    const wanted = partitions.filter((p) => !this.syncing.has(p));
    const waitFor = partitions.filter((p) => this.syncing.has(p)).map((p) => this.syncing.get(p)!.catch(() => undefined));
    const run = this.runSync(wanted, placement, everyEngine);
    const tracked = run.then((left) => {
      for (const p of wanted) this.syncing.delete(p);
      return left;
    });
    for (const p of wanted) this.syncing.set(p, tracked.then(() => undefined));
    return Promise.all([tracked, ...waitFor]).then(([left]) => [...left, ...partitions.filter((p) => !wanted.includes(p) && this.unsynced.has(p))]);
  }

  private async runSync(partitions: number[], placement: Placement, everyEngine: boolean): Promise<number[]> {
    if (partitions.length === 0) return [];
    const generation = this.generation;
    const sources = this.activeOthers();
    const answers = await Promise.allSettled(sources.map(([, address]) => this.o.rpc.call<string[]>(address, 'grid.digests', { partitions })));
    const allAnswered = answers.every((a) => a.status === 'fulfilled');
    if (everyEngine && !allAnswered) return partitions.filter((p) => this.unsynced.has(p));
    const pulls = new Map<string, number[]>(); // address → partitions to pull from it
    const pushBack = new Map<string, number[]>(); // address → partitions to push to it afterwards
    const add = (to: Map<string, number[]>, address: string, p: number): void => {
      const list = to.get(address);
      if (list) list.push(p);
      else to.set(address, [p]);
    };
    const ok = new Set<number>();
    partitions.forEach((p, index) => {
      // Revocations (EVERYWHERE): any engine that answers is a replica.
      const replicas = p === EVERYWHERE ? sources.map(([id]) => id) : (placement.get(p) ?? []);
      const mine = this.o.store.digest(p);
      const byDigest = new Map<string, Array<[string, string]>>(); // differing fingerprint → engines holding it
      let replicaAnswered = replicas.every((id) => id === this.o.self);
      answers.forEach((a, i) => {
        if (a.status !== 'fulfilled' || typeof a.value[index] !== 'string') return;
        if (replicas.includes(sources[i]![0])) replicaAnswered = true;
        const digest = a.value[index];
        if (digest === mine) return;
        const holders = byDigest.get(digest) ?? [];
        holders.push(sources[i]!);
        byDigest.set(digest, holders);
      });
      if (!replicaAnswered) return;
      ok.add(p);
      for (const [digest, holders] of byDigest) {
        // One engine per fingerprint, a replica where one holds it (spread over them: p is -1
        // for EVERYWHERE). An engine that holds nothing has nothing to pull; and what this
        // engine holds goes back to replicas only: an engine outside the replica set would keep
        // a copy it does not serve (it drops it again: dropMoved), so a sync would spread every
        // partition it touches over the whole cluster.
        const replicaHolders = holders.filter(([id]) => replicas.includes(id));
        const pool = replicaHolders.length > 0 ? replicaHolders : holders;
        const [id, from] = pool[(p + pool.length) % pool.length]!;
        if (digest !== EMPTY_DIGEST) add(pulls, from, p);
        if (p !== EVERYWHERE && replicas.includes(id)) add(pushBack, from, p);
      }
    });
    // An engine that answered its fingerprint but not the transfer is unreachable now, like one
    // that never answered: it exchanges again when it reappears (setEngines resyncs then).
    const pullLists = [...pulls];
    const pulled = await Promise.allSettled(pullLists.map(([address, list]) => this.pullFrom(address, list)));
    // And the other way, in the background: what this engine holds that a replica lacks, or
    // holds older, reaches it too (merging keeps the newer copy), so two copies that differ
    // end up alike, not only this one. Above all, markers of undone writes (grid-store.ts)
    // held here reach a replica that took the undone write before its revert could.
    // Revocations are exchanged on their own.
    for (const [address, list] of pushBack) this.pushWhereDifferent(address, list).catch(() => undefined);
    if (everyEngine && pulled.some((r) => r.status === 'rejected')) return partitions.filter((p) => this.unsynced.has(p));
    // But a partition it was sending is not synchronised: it moves in chunks, and only the
    // last one makes it whole. It is tried again (from any engine holding it).
    pulled.forEach((r, i) => {
      if (r.status === 'rejected') for (const p of pullLists[i]![1]) ok.delete(p);
    });
    for (const p of ok) if ((this.unsynced.get(p) ?? Infinity) <= generation) this.unsynced.delete(p);
    return partitions.filter((p) => this.unsynced.has(p));
  }

  /**
   * Pulls partitions from one engine, a bulk message at a time (one in flight: back-pressure),
   * merging each as it comes: whole partitions, or slices of one too large for a message.
   * Merging is idempotent and the newer version wins, so a partition left half-way is safe;
   * it counts as synchronised only when this resolves (its last slice arrived).
   */
  private async pullFrom(address: string, partitions: number[]): Promise<void> {
    let left = partitions;
    let after: TransferCursor | undefined;
    while (left.length > 0 && !this.closed) {
      const body = after === undefined ? { partitions: left } : { partitions: left, after };
      const answer = await this.o.rpc.call<RawText>(address, 'grid.pull', body, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs });
      if (!(answer instanceof RawText)) throw new CohortError('STATE_UNAVAILABLE', `${address} answered grid.pull without record lines`);
      const newline = answer.text.indexOf('\n');
      const progress = pullProgress(JSON.parse(answer.text.slice(0, newline)) as unknown);
      if (!progress || (progress.done.length === 0 && !progress.partial)) throw new CohortError('STATE_UNAVAILABLE', `${address} sent none of the partitions asked`);
      this.mergeLines(answer.text.slice(newline + 1));
      ({ left, after } = remaining(left, progress));
    }
  }

  /**
   * Record lines for `partitions`, in order, as many as fit in BULK_MESSAGE_CHARS: whole
   * partitions, or, when the first does not fit, a slice of it (`partial`: where to continue).
   * `after` continues the first partition where an earlier slice stopped.
   */
  /**
   * What a transfer (a pull answered, a push) sends of a record: while a change of its
   * partition is being replicated, the record that change replaced (nothing, where it added
   * one). A change not yet acknowledged may still be undone, and its revert removes the
   * change wherever it is, restoring what this primary held before it: an engine that took
   * the change in a transfer, over a record of its own that the change's version beat,
   * would lose that record to the revert (the simulator's lifecycle workload, seed 93: a
   * replay id accepted, pulled over by another primary's write in flight, reverted away, and
   * accepted again). The change reaches the others with its replication, or its partition's
   * next transfer once acknowledged.
   */
  private acknowledged(partition: number): RecordView | undefined {
    const replaced = this.replaced.get(partition);
    if (replaced === undefined) return undefined;
    return (ns, key, record) => {
      const k = `${ns} ${key}`;
      return replaced.has(k) ? replaced.get(k) : record;
    };
  }

  private exportBatch(partitions: number[], after?: TransferCursor): { done: number[]; lines: string; partial?: { partition: number; after: TransferCursor } } {
    const done: number[] = [];
    let lines = '';
    for (const [i, p] of partitions.entries()) {
      if (i === 0) {
        // The first partition: whole if it fits, else a slice (then nothing more this message).
        const slice = partitionSlice(this.o.store, p, BULK_MESSAGE_CHARS, after, this.acknowledged(p));
        if (slice.next !== undefined) return { done, lines: slice.lines, partial: { partition: p, after: slice.next } };
        lines = slice.lines;
      } else {
        // The others only whole, in what is left of the message; a later message starts the rest.
        const whole = wholePartition(this.o.store, p, BULK_MESSAGE_CHARS - lines.length, this.acknowledged(p));
        if (whole === undefined) break;
        lines += whole;
      }
      done.push(p);
    }
    return { done, lines };
  }

  // ------------------------------------------------------------------ backup side

  private acceptReplica(body: ReplicateBody, from: string): boolean {
    const primary = this.primaryOf(body.partition);
    if (primary !== from) {
      throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${this.o.self} sees ${primary ?? 'no engine'} as the primary of partition ${body.partition}, not ${from}`);
    }
    for (const a of body.absent ?? []) {
      if (this.o.store.has(a.ns, a.key)) throw new CohortError('STATE_REPLAY_DETECTED', `${a.key} was seen before`);
    }
    this.mergeAll(body.changes);
    return true;
  }

  private mergeAll(changes: RecordChange[]): void {
    for (const c of changes) this.o.store.merge(c);
  }

  /** Merges record lines; resolves with how many were newer than ours. */
  private mergeLines(text: string): number {
    const { changes, damaged } = parseRecordLines(text);
    if (damaged > 0) this.o.logger.warn({ damaged }, 'record lines from another engine were not records; skipped');
    let merged = 0;
    for (const c of changes) if (this.o.store.merge(c)) merged++;
    return merged;
  }

  // ------------------------------------------------------------------ moving partitions

  /**
   * Pushes each moved partition to the replicas new to it, where their fingerprint differs
   * from ours. Pulls alone would not do: a new replica may have synchronised under its own,
   * earlier view, and then missed writes the primary sent only to the replicas of the
   * primary's older view.
   */
  private handOff(before: Placement, changed: number[]): void {
    const byTarget = new Map<string, number[]>();
    for (const p of changed) {
      for (const id of this.placement.get(p)!) {
        if (id === this.o.self || before.get(p)?.includes(id) || this.o.store.recordCount(p) === 0) continue;
        byTarget.set(id, [...(byTarget.get(id) ?? []), p]);
      }
    }
    for (const [id, partitions] of byTarget) {
      const address = this.engines.get(id);
      if (address) {
        this.pushWhereDifferent(address, partitions).catch((err: unknown) => {
          this.o.logger.warn({ err, to: id }, 'could not hand partitions over to a new replica; it will pull them when it serves them');
        });
      }
    }
  }

  /**
   * Sends `partitions` to the engine at `address`, those whose fingerprint there differs from
   * ours: a bulk message at a time, each waiting for the previous to be merged there; a
   * partition too large for one message goes in slices (the receiver merges each as it comes).
   */
  private async pushWhereDifferent(address: string, partitions: number[]): Promise<void> {
    const theirs = await this.o.rpc.call<string[]>(address, 'grid.digests', { partitions });
    let left = partitions.filter((p, i) => theirs[i] !== this.o.store.digest(p));
    let after: TransferCursor | undefined;
    while (left.length > 0 && !this.closed) {
      const batch = this.exportBatch(left, after);
      await this.o.rpc.call(address, 'grid.mergeLines', new RawText(batch.lines), { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs });
      ({ left, after } = remaining(left, batch));
    }
  }

  /**
   * Pulls, in the background, every partition this engine is a replica of but has not
   * synchronised since the placement changed, until none is left: so every replica set is
   * whole again soon after a change, not only when a partition is next used. Failed pulls
   * (a majority not reachable yet) are retried every REPAIR_RETRY_MS.
   */
  private scheduleRepair(delayMs: number): void {
    if (this.closed || this.repairTimer !== undefined) return;
    this.repairTimer = this.o.clock.setTimeout(() => {
      this.repairTimer = undefined;
      void this.repair();
    }, delayMs);
  }

  private async repair(): Promise<void> {
    for (const p of this.unsynced.keys()) if (!this.placement.get(p)?.includes(this.o.self)) this.unsynced.delete(p);
    await this.syncPartitions([...this.unsynced.keys()]).catch(() => undefined);
    if (this.unsynced.size > 0) this.scheduleRepair(REPAIR_RETRY_MS);
  }

  private scheduleAntiEntropy(): void {
    if (this.closed || this.antiEntropyTimer !== undefined) return;
    this.antiEntropyTimer = this.o.clock.setTimeout(() => {
      this.antiEntropyTimer = undefined;
      void this.antiEntropy()
        .catch(() => undefined)
        .then(() => this.dropMoved())
        .catch(() => undefined)
        .finally(() => this.scheduleAntiEntropy());
    }, ANTI_ENTROPY_MS);
  }

  /**
   * Drops the records of partitions this engine no longer replicates, once their new replicas
   * hold them; until then they stay, so memory returns to this engine's share after every
   * rebalancing without an acknowledged write ever resting on fewer engines than before.
   *
   * Invariants:
   * - A partition is dropped only after every engine of its replica set (as this engine sees
   *   it) has acknowledged merging this engine's copy (`pushWhereDifferent`: nothing is sent
   *   where fingerprints are equal). A merge keeps the newer version and refuses only expired
   *   records and undone versions (grid-store.ts), so each of them then holds every record
   *   dropped here, or something that supersedes it.
   * - The check and the drop of a partition happen in one turn of the event loop, and only if its
   *   fingerprint is the one it had before the push: a record that arrived meanwhile (a
   *   primary that still sees this engine as a backup) waits for the next round, when it is
   *   pushed in turn. The same when the replica set changed meanwhile.
   * - Not while a change of the partition is in flight here (its undo needs the records) or a
   *   sync of it runs, nor before this engine serves (a starting engine's placement leaves it
   *   out of every replica set), nor for revocations (every engine holds them).
   * - A replica set this engine cannot reach entirely keeps the copy here: it is tried again
   *   every ANTI_ENTROPY_MS, and the push doubles as repair of a replica that lacks records.
   */
  private async dropMoved(): Promise<void> {
    if (this.closed || !this.initialSyncDone || !this.selfServing) return;
    const targets = new Map<string, number[]>(); // engine id → moved partitions to confirm there
    const pushed = new Map<number, { digest: string; replicas: readonly string[] }>();
    for (const p of this.o.store.partitions()) {
      if (p === EVERYWHERE || this.o.store.recordCount(p) === 0 || !this.movedAway(p)) continue;
      const replicas = this.placement.get(p)!;
      if (!replicas.every((id) => this.engines.has(id))) continue;
      pushed.set(p, { digest: this.o.store.digest(p), replicas });
      for (const id of replicas) {
        const list = targets.get(id);
        if (list) list.push(p);
        else targets.set(id, [p]);
      }
    }
    if (pushed.size === 0) return;
    const unconfirmed = new Set<number>();
    await Promise.all(
      [...targets].map(async ([id, partitions]) => {
        const address = this.engines.get(id);
        try {
          if (address === undefined) throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${id} left`);
          await this.pushWhereDifferent(address, partitions);
        } catch {
          for (const p of partitions) unconfirmed.add(p);
        }
      }),
    );
    let dropped = 0;
    for (const [p, before] of pushed) {
      if (this.closed) return;
      if (unconfirmed.has(p) || !this.movedAway(p) || this.o.store.digest(p) !== before.digest) continue;
      const replicas = this.placement.get(p)!;
      if (replicas.length !== before.replicas.length || replicas.some((id, i) => id !== before.replicas[i])) continue;
      dropped += this.o.store.dropPartition(p);
      // One partition per turn: after a join, an engine drops the share the newcomer takes (a
      // quarter of its records when a fourth engine joins three), which in one turn would hold
      // up its requests.
      await this.sleep(0);
    }
    if (dropped > 0) this.o.logger.debug({ records: dropped }, 'dropped the records of partitions now held by other engines');
  }

  /** This engine holds `p` but is not one of its replicas, and nothing of it is being changed or synchronised here. */
  private movedAway(p: number): boolean {
    const replicas = this.placement.get(p);
    return replicas !== undefined && replicas.length > 0 && !replicas.includes(this.o.self) && !this.writesInFlight.has(p) && !this.syncing.has(p);
  }

  /**
   * Anti-entropy: compares, with each other replica, the fingerprints of the partitions both
   * hold, and the revocation list's with every other engine (one message per engine), and pulls those that still differ the same way as at the
   * last comparison. Syncs after a placement change bring a replica up to date with the
   * others; this makes copies that drifted apart afterwards alike again: a record pushed to
   * one replica only (a hand-off racing a sync), or the marker of an undone write that some
   * replica has not seen (grid-store.ts). Both sides do it, so both end with the newer copy.
   */
  private async antiEntropy(): Promise<void> {
    const shared = new Map<string, number[]>(); // engine id → partitions both replicate
    // The revocation list with every other engine: a revocation acknowledged by a majority
    // reaches the rest through its sender's resends, which die with the sender. An engine cut
    // off meanwhile (and never declared failed, so no exchange when it reappears) would miss
    // it for good (the simulator's lifecycle workload, seed 328). Not once this engine evicted
    // revocations at its cap: lists then differ by design, and each pull would bring the whole
    // list back only for the cap to evict it again.
    if (this.o.store.revocationsEvicted === 0 && !this.syncing.has(EVERYWHERE)) {
      for (const id of this.engines.keys()) if (id !== this.o.self) shared.set(id, [EVERYWHERE]);
    }
    for (const [p, replicas] of this.placement) {
      if (!replicas.includes(this.o.self) || this.unsynced.has(p) || this.syncing.has(p)) continue;
      for (const id of replicas) {
        if (id === this.o.self || !this.engines.has(id)) continue;
        const list = shared.get(id);
        if (list) list.push(p);
        else shared.set(id, [p]);
      }
    }
    const differing = new Map<string, string>();
    await Promise.allSettled(
      [...shared].map(async ([id, partitions]) => {
        const address = this.engines.get(id)!;
        const theirs = await this.o.rpc.call<string[]>(address, 'grid.digests', { partitions });
        const pull: number[] = [];
        partitions.forEach((p, i) => {
          const mine = this.o.store.digest(p);
          if (typeof theirs[i] !== 'string' || theirs[i] === mine) return;
          const key = `${id} ${p}`;
          const seen = `${mine} ${theirs[i]}`;
          if (this.differed.get(key) === seen) pull.push(p);
          else differing.set(key, seen);
        });
        if (pull.length > 0 && !this.closed) await this.pullFrom(address, pull);
      }),
    );
    this.differed = differing;
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
   *   bulk_revocation_timeout it settles for the engines that answered.
   * - Alone: it serves at once with what it holds.
   */
  private async syncAtStart(): Promise<void> {
    const deadline = this.o.clock.now() + this.o.bulkTimeoutMs;
    let warned = false;
    for (;;) {
      if (this.closed) return;
      if (this.activeOthers().length === 0) break;
      const fullStart = this.servingOthers().length === 0;
      const everyEngine = fullStart && this.o.clock.now() <= deadline;
      const base = fullStart ? [...this.engines.keys()] : [...new Set([...this.serving, this.o.self])];
      const target = this.placeOver(base);
      const mine = [...target].filter(([, set]) => set.includes(this.o.self)).map(([p]) => p);
      mine.push(EVERYWHERE);
      for (const p of mine) if (!this.unsynced.has(p)) this.unsynced.set(p, this.generation);
      const left = await this.syncPartitions(mine, target, everyEngine);
      if (left.length === 0) break;
      if (this.closed) return;
      if (!warned && this.o.clock.now() > deadline) {
        warned = true;
        this.o.logger.error(
          { partitionsLeft: left.length, revocationsDownloaded: !left.includes(EVERYWHERE), timeoutMs: this.o.bulkTimeoutMs },
          'not ready: the start-up download did not finish within bulk_revocation_timeout; still trying',
        );
      }
      await this.sleep(REPAIR_RETRY_MS);
    }
    this.unsynced.delete(EVERYWHERE);
    this.o.logger.info({ revocations: this.o.store.recordCount(EVERYWHERE) }, 'revocation list and partitions downloaded');
    if (!this.selfServing) {
      this.selfServing = true;
      this.place(new Set([...this.serving, this.o.self]));
      this.o.announceServing?.();
      await this.untilSeenServing();
    }
    this.initialSyncDone = true;
    this.scheduleAntiEntropy();
    this.o.logger.info('grid synchronised: ready');
    this.scheduleRepair(0);
  }

  /**
   * Waits (up to SEEN_SERVING_TIMEOUT_MS) until every other active engine places partitions
   * on this one, so that "ready" means requests are routed here, not that gossip may soon say so.
   */
  private async untilSeenServing(): Promise<void> {
    const until = this.o.clock.now() + SEEN_SERVING_TIMEOUT_MS;
    while (!this.closed && this.o.clock.now() < until) {
      const answers = await Promise.allSettled(this.activeOthers().map(([, address]) => this.o.rpc.call<string[]>(address, 'grid.serving', {})));
      if (answers.every((a) => a.status === 'rejected' || a.value.includes(this.o.self))) return;
      await this.sleep(SEEN_SERVING_POLL_MS);
    }
    this.o.logger.warn({ timeoutMs: SEEN_SERVING_TIMEOUT_MS }, 'not every engine sees this one as serving yet; reporting ready anyway');
  }

  private sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.o.clock.setTimeout(resolve, ms));
  }
}

/** Consoles and replicas: members that hold no state but vote on who is alive (write-majority.ts). */
export interface Witnesses {
  known: number;
  active: number;
}

interface ReplicateBody {
  partition: number;
  changes: RecordChange[];
  /** Keys that must not exist on the backup (replay prevention). */
  absent?: Array<{ ns: 'replay'; key: string }>;
}

/** What one bulk message of a transfer carried: partitions whole, and a slice of one. */
interface TransferProgress {
  done: number[];
  partial?: { partition: number; after: TransferCursor };
}

/** The first line of a `grid.pull` answer: a list of partitions, or `{done, partial}`; undefined when neither. */
function pullProgress(header: unknown): TransferProgress | undefined {
  const isList = (v: unknown): v is number[] => Array.isArray(v) && v.every((p) => Number.isInteger(p));
  if (isList(header)) return { done: header };
  if (typeof header !== 'object' || header === null) return undefined;
  const { done, partial } = header as { done?: unknown; partial?: { partition?: unknown; after?: unknown } };
  if (!isList(done)) return undefined;
  if (partial === undefined) return { done };
  const after = transferCursor(partial?.after);
  if (!Number.isInteger(partial?.partition) || after === undefined) return undefined;
  return { done, partial: { partition: partial.partition as number, after } };
}

/** What a transfer still has to move after `progress`: the sliced partition first, with its cursor. */
function remaining(left: number[], progress: TransferProgress): { left: number[]; after?: TransferCursor } {
  const rest = left.filter((p) => !progress.done.includes(p) && p !== progress.partial?.partition);
  if (!progress.partial) return { left: rest };
  return { left: [progress.partial.partition, ...rest], after: progress.partial.after };
}

/**
 * A retry for a vanished engine (STATE_PLACEMENT_CHANGING caused by a lost connection or a
 * timeout) that ran out of attempts: the engine is still unreachable, and the client hears
 * STATE_UNAVAILABLE as it would have without the retries.
 */
function stillUnreachable(err: unknown): unknown {
  if (!isCohortError(err, 'STATE_PLACEMENT_CHANGING')) return err;
  const cause = (err as Error).cause;
  if (!isCohortError(cause, 'RPC_PEER_UNREACHABLE') && !isCohortError(cause, 'RPC_TIMEOUT')) return err;
  return new CohortError('STATE_UNAVAILABLE', err.message, undefined, { cause });
}



