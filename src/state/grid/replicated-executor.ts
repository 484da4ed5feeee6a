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
 *   engine that sees only a minority of the cluster refuses writes, so engines that briefly
 *   disagree fail requests (503) rather than both accepting them. Replay inserts also ask
 *   each backup whether it has seen the id.
 * - After the engine set changes, every engine pushes the partitions that moved to their new
 *   replicas, and every replica resynchronises its partitions in the background
 *   (fingerprints first, records only where they differ); a primary does so before serving
 *   a partition again.
 * - Revocations live on every engine (`everywhere`), acknowledged once a majority of the
 *   cluster's engines hold them and resent to the others; a starting engine downloads them
 *   before it is ready.
 *
 * Records carry hybrid-logical-clock versions (grid-store.ts): merging is idempotent and the
 * newer copy wins, so pushes, pulls and retries can overlap freely.
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { CohortError, isCohortError } from '../../core/errors.js';
import type { Logger } from '../../core/logger.js';
import type { Rpc } from '../../rpc/rpc.js';
import { EVERYWHERE, PARTITION_COUNT, type GridExecutor } from './grid-provider.js';
import type { GridStore, RecordChange } from './grid-store.js';
import { applyOperation, isReadOnly, type Operation, type OperationResults } from './operations.js';
import { changedPartitions, placePartitions, writeQuorum, type Placement } from './placement.js';

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
}

/** How many partition pulls run at once during a sync. */
const PULL_CONCURRENCY = 8;
/** How soon partitions that could not be synchronised are tried again (ms). */
const REPAIR_RETRY_MS = 1000;

export class ReplicatedExecutor implements GridExecutor {
  private readonly o: ReplicatedExecutorOptions;
  /** Active engines: node id → cluster address (this engine included). */
  private engines = new Map<string, string>();
  private placement: Placement = [];
  /** Partitions this engine must pull before it serves them as primary. */
  private readonly unsynced = new Set<number>();
  private readonly syncing = new Map<number, Promise<void>>();
  private initialSyncDone = false;
  /** Engines in the cluster, active or failed (not those that left): the write majority's base. */
  private knownEngines = 0;
  private repairTimer: TimerHandle | undefined;
  /** Records some engines did not take yet (revocations), by engine id. */
  private readonly pushQueue = new Map<string, RecordChange[]>();
  private pushTimer: TimerHandle | undefined;
  private closed = false;
  private initialSync: Promise<void> | undefined;

  constructor(options: ReplicatedExecutorOptions) {
    this.o = options;
    const { rpc } = options;
    rpc.handle('grid.execute', (body) => {
      const { partition, op } = body as { partition: number; op: Operation };
      if (this.primaryOf(partition) !== this.o.self) throw new CohortError('STATE_UNAVAILABLE', `engine ${this.o.self} is not the primary of partition ${partition}`);
      return this.executeAsPrimary(partition, op);
    });
    rpc.handle('grid.replicate', (body, from) => this.acceptReplica(body as ReplicateBody, from.nodeId));
    rpc.handle('grid.merge', (body) => {
      this.mergeAll((body as { changes: RecordChange[] }).changes);
      return true;
    });
    // A read a backup answers from its own copy, when the primary cannot be reached.
    rpc.handle('grid.read', (body) => {
      const { partition, op } = body as { partition: number; op: Operation };
      if (!isReadOnly(op)) throw new CohortError('STATE_UNAVAILABLE', `${op.t} changes state: only the primary runs it`);
      return applyOperation(this.o.store, op, this.o.clock.now(), partition);
    });
    rpc.handle('grid.digest', (body) => this.o.store.digest((body as { partition: number }).partition));
    rpc.handle('grid.pull', (body) => this.o.store.exportPartitions(new Set([(body as { partition: number }).partition])));
  }

  get replicationFactor(): number {
    return this.o.replicationFactor;
  }

  /** True once the start-up download (revocations and this engine's partitions) is done. */
  get ready(): boolean {
    return this.initialSyncDone;
  }

  /** The replica set of a partition, primary first (for tests and diagnostics). */
  replicasOf(partition: number): readonly string[] {
    return this.placement[partition] ?? [];
  }

  /**
   * The active engines changed (membership): recompute placement, push the partitions that
   * moved to their new replicas, and mark the partitions this engine must resynchronise
   * (those that moved; all of them when an engine (re)appeared, since it may hold writes this
   * one missed, after a healed split or a resumed pause).
   */
  setEngines(engines: Map<string, string>, knownEngines = engines.size): void {
    const before = this.placement;
    const newcomers = [...engines].filter(([id]) => id !== this.o.self && !this.engines.has(id));
    this.engines = new Map(engines);
    this.knownEngines = Math.max(knownEngines, engines.size);
    this.placement = placePartitions([...engines.keys()], PARTITION_COUNT, this.o.replicationFactor);
    const moved = before.length === 0 ? [] : changedPartitions(before, this.placement);
    const resync = before.length === 0 || newcomers.length > 0 ? this.placement.map((_, p) => p) : moved;
    for (const p of resync) if (this.placement[p]!.includes(this.o.self)) this.unsynced.add(p);
    if (moved.length > 0) this.handOff(before, moved);
    // Newcomers may have missed revocations, and may hold some this engine missed.
    if (this.initialSync) for (const [id, address] of newcomers) this.exchangeRevocations(id, address);
    if (this.initialSync) this.scheduleRepair(0);
    this.initialSync ??= this.syncAtStart();
  }

  /** Stops background synchronisation (the engine is stopping). */
  close(): void {
    this.closed = true;
    this.o.clock.clearTimeout(this.repairTimer);
    this.o.clock.clearTimeout(this.pushTimer);
  }

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    // Every replica holds every acknowledged write, so a replica that is in sync answers reads
    // from its own copy: no hop to the primary for the common case of a session lookup.
    if (isReadOnly(op) && !this.unsynced.has(partition) && this.placement[partition]?.includes(this.o.self)) {
      return Promise.resolve(applyOperation(this.o.store, op, this.o.clock.now(), partition) as OperationResults[K]);
    }
    const primary = this.primaryOf(partition);
    if (primary === undefined) return Promise.reject(new CohortError('STATE_UNAVAILABLE', 'no engine is active to hold the state'));
    if (primary === this.o.self) return this.executeAsPrimary(partition, op) as Promise<OperationResults[K]>;
    return this.o.rpc.call<OperationResults[K]>(this.engines.get(primary)!, 'grid.execute', { partition, op }).catch((err: unknown) => {
      if (isReadOnly(op) && !(err instanceof CohortError && err.code.startsWith('STATE_') && err.code !== 'STATE_UNAVAILABLE')) {
        return this.readFromBackups(partition, op, err) as Promise<OperationResults[K]>;
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
    const backups = (this.placement[partition] ?? []).slice(1);
    if (backups.includes(this.o.self)) return applyOperation(this.o.store, op, this.o.clock.now(), partition);
    for (const id of backups) {
      const address = this.engines.get(id);
      if (!address) continue;
      try {
        return await this.o.rpc.call(address, 'grid.read', { partition, op });
      } catch {
        // try the next backup
      }
    }
    throw asStateError(primaryError, `partition ${partition}'s primary or any of its backups`);
  }

  /**
   * Applies `op` here and sends its records to every other engine; acknowledged once a
   * majority of the engines hold them. An engine that did not take them is sent them again
   * every REPAIR_RETRY_MS while it stays active (a short pause is not a failure membership
   * notices), so every engine ends up with every revocation.
   */
  async everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    this.o.store.startJournal();
    applyOperation(this.o.store, op, this.o.clock.now(), EVERYWHERE);
    const changes = this.o.store.takeJournal().map((e) => e.change);
    const others = [...this.engines].filter(([id]) => id !== this.o.self);
    // A majority of all the engines the cluster knows, failed ones included: an engine cut
    // off on its own cannot acknowledge a revocation only it holds.
    const need = writeQuorum(Math.max(this.knownEngines, this.engines.size)) - 1;
    if (changes.length === 0 || need === 0) return;
    if (others.length < need) {
      for (const [id] of others) this.retryPush(id, changes);
      throw new CohortError('STATE_UNAVAILABLE', `engine ${this.o.self} sees ${this.engines.size} of ${this.knownEngines} engines, not a majority; the revocation is kept here and sent on, but not acknowledged`);
    }
    const idOf = new Map(others.map(([id, address]) => [address, id]));
    try {
      await this.o.rpc.fanOut(others.map(([, address]) => address), 'grid.merge', { changes }, need, {
        onFailure: (address) => this.retryPush(idOf.get(address)!, changes),
      });
    } catch (err) {
      throw asStateError(err, 'a majority of the engines');
    }
  }

  /** Sends `changes` to engine `id` again later, until it takes them or leaves the active set. */
  private retryPush(id: string, changes: RecordChange[]): void {
    const queued = this.pushQueue.get(id);
    if (queued) queued.push(...changes);
    else this.pushQueue.set(id, [...changes]);
    if (this.pushTimer !== undefined || this.closed) return;
    this.pushTimer = this.o.clock.setTimeout(() => {
      this.pushTimer = undefined;
      const batch = [...this.pushQueue];
      this.pushQueue.clear();
      for (const [target, pending] of batch) {
        const address = this.engines.get(target);
        if (!address) continue; // it left: the exchange when it reappears covers it
        this.o.rpc.call(address, 'grid.merge', { changes: pending }).catch(() => this.retryPush(target, pending));
      }
    }, REPAIR_RETRY_MS);
  }

  local<K extends Operation['t']>(op: Extract<Operation, { t: K }>): OperationResults[K] {
    return applyOperation(this.o.store, op, this.o.clock.now(), EVERYWHERE) as OperationResults[K];
  }

  // ------------------------------------------------------------------ primary side

  private primaryOf(partition: number): string | undefined {
    return this.placement[partition]?.[0];
  }

  private async executeAsPrimary(partition: number, op: Operation): Promise<unknown> {
    await this.ensureSynced(partition);
    const replicas = this.placement[partition] ?? [];
    if (replicas[0] !== this.o.self) throw new CohortError('STATE_UNAVAILABLE', `partition ${partition} moved while it was being synchronised; retry`);
    // On the minority side of a network partition this engine may see itself as primary of
    // partitions the majority side also serves: it refuses changes rather than diverge.
    if (!isReadOnly(op) && this.engines.size < writeQuorum(this.knownEngines)) {
      throw new CohortError('STATE_UNAVAILABLE', `engine ${this.o.self} sees ${this.engines.size} of ${this.knownEngines} engines, not a majority; changes are refused until it does`);
    }
    const store = this.o.store;
    store.startJournal();
    const result = applyOperation(store, op, this.o.clock.now(), partition);
    const journal = store.takeJournal();
    if (journal.length === 0) return result;
    const changes = journal.map((e) => e.change);
    const backups = replicas.slice(1).map((id) => this.engines.get(id)).filter((a): a is string => a !== undefined);
    if (backups.length === 0) return result;
    const body: ReplicateBody = { partition, changes, absent: op.t === 'replay.insert' ? [{ ns: 'replay', key: op.id }] : undefined };
    // Every replica must hold the change before it is acknowledged: then it survives any
    // replication_factor - 1 of them failing at once (SPEC section 9).
    const answers = await Promise.allSettled(backups.map((b) => this.o.rpc.call(b, 'grid.replicate', body)));
    const failures = answers.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => a.reason as unknown);
    if (failures.length === 0) return result;
    // Undo, and tell the backups that took the change: nothing unacknowledged stays applied.
    store.startJournal();
    store.undo(journal);
    const undo = store.takeJournal().map((e) => e.change);
    answers.forEach((a, i) => {
      if (a.status === 'fulfilled') this.o.rpc.call(backups[i]!, 'grid.merge', { changes: undo }).catch(() => undefined);
    });
    // One backup that has seen a replay id makes it a replay, whatever the others say.
    if (failures.some((f) => isCohortError(f, 'STATE_REPLAY_DETECTED'))) return false;
    throw asStateError(failures[0], `every replica of partition ${partition} (${failures.length} of ${backups.length} backups failed)`);
  }

  /** Pulls `partition` from every other engine, once after each change of the engine set. */
  private ensureSynced(partition: number): Promise<void> {
    if (!this.unsynced.has(partition)) return Promise.resolve();
    let running = this.syncing.get(partition);
    if (!running) {
      running = this.pullPartition(partition).finally(() => this.syncing.delete(partition));
      this.syncing.set(partition, running);
    }
    return running;
  }

  /**
   * Asks every other active engine for what it holds of `partition` and merges the answers.
   * Every acknowledged write is on every replica it had, so any surviving one of them brings
   * it back; engines that do not answer are unreachable now and exchange again when they
   * reappear (setEngines marks everything unsynced then).
   */
  private async pullPartition(partition: number): Promise<void> {
    const others = [...this.engines].filter(([id]) => id !== this.o.self);
    // Fingerprints first (a few bytes each): the records themselves come only from engines
    // holding something different, one engine per distinct fingerprint. After a stop and
    // start of the whole cluster every engine already holds the same data and nothing moves.
    const digests = await Promise.allSettled(others.map(([, a]) => this.o.rpc.call<string>(a, 'grid.digest', { partition })));
    const replicas = this.placement[partition] ?? [];
    const replicaAnswers = digests.filter((d, i) => d.status === 'fulfilled' && replicas.includes(others[i]![0])).length;
    if (replicas.length > 1 && replicaAnswers === 0) {
      throw new CohortError('STATE_UNAVAILABLE', `no other replica of partition ${partition} answered while synchronising it`);
    }
    const mine = this.o.store.digest(partition);
    const sources = new Map<string, string>(); // digest → address
    digests.forEach((d, i) => {
      if (d.status === 'fulfilled' && d.value !== mine && !sources.has(d.value)) sources.set(d.value, others[i]![1]);
    });
    const answers = await Promise.allSettled(
      [...sources.values()].map((a) => this.o.rpc.call<RecordChange[]>(a, 'grid.pull', { partition }, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs })),
    );
    // An engine that answered its fingerprint but not the transfer is unreachable now, like one
    // that never answered: it exchanges again when it reappears (setEngines resyncs then).
    for (const a of answers) if (a.status === 'fulfilled') this.mergeAll(a.value);
    this.unsynced.delete(partition);
  }

  // ------------------------------------------------------------------ backup side

  private acceptReplica(body: ReplicateBody, from: string): boolean {
    const primary = this.primaryOf(body.partition);
    if (primary !== from) {
      throw new CohortError('STATE_UNAVAILABLE', `engine ${this.o.self} sees ${primary ?? 'no engine'} as the primary of partition ${body.partition}, not ${from}`);
    }
    for (const a of body.absent ?? []) {
      if (this.o.store.get(a.ns, a.key) !== undefined) throw new CohortError('STATE_REPLAY_DETECTED', `${a.key} was seen before`);
    }
    this.mergeAll(body.changes);
    return true;
  }

  private mergeAll(changes: RecordChange[]): void {
    for (const c of changes) this.o.store.merge(c);
  }

  // ------------------------------------------------------------------ moving partitions

  /**
   * Pushes what this engine holds of each moved partition to the replicas new to it. Pulls
   * alone would not do: a new replica may have synchronised under its own, earlier view, and
   * then missed writes the primary sent only to the replicas of the primary's older view.
   */
  private handOff(before: Placement, changed: number[]): void {
    const byTarget = new Map<string, Set<number>>();
    for (const p of changed) {
      for (const id of this.placement[p]!) {
        if (id === this.o.self || before[p]?.includes(id)) continue;
        let set = byTarget.get(id);
        if (!set) byTarget.set(id, (set = new Set()));
        set.add(p);
      }
    }
    for (const [id, partitions] of byTarget) {
      const address = this.engines.get(id);
      const changes = this.o.store.exportPartitions(partitions);
      if (!address || changes.length === 0) continue;
      for (const chunk of chunks(changes, 5000)) {
        this.o.rpc.call(address, 'grid.merge', { changes: chunk }, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs }).catch((err: unknown) => {
          this.o.logger.warn({ err, to: id }, 'could not hand partitions over to a new replica; it will pull them when it serves them');
        });
      }
    }
  }

  /** Pulls the revocation list of `id` and pushes ours to it (both merge by version). */
  private exchangeRevocations(id: string, address: string): void {
    const ours = this.o.store.exportPartitions(new Set([EVERYWHERE]));
    const attempt = (triesLeft: number): void => {
      if (this.closed || this.engines.get(id) !== address) return;
      Promise.all([
        this.o.rpc.call<RecordChange[]>(address, 'grid.pull', { partition: EVERYWHERE }, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs }).then((theirs) => this.mergeAll(theirs)),
        ours.length > 0 ? this.o.rpc.call(address, 'grid.merge', { changes: ours }, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs }) : Promise.resolve(),
      ]).catch(() => {
        if (triesLeft > 0) this.o.clock.setTimeout(() => attempt(triesLeft - 1), REPAIR_RETRY_MS);
      });
    };
    attempt(10);
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
    const queue = [...this.unsynced].filter((p) => this.placement[p]?.includes(this.o.self));
    for (const p of this.unsynced) if (!this.placement[p]?.includes(this.o.self)) this.unsynced.delete(p);
    const worker = async (): Promise<void> => {
      for (let p = queue.shift(); p !== undefined && !this.closed; p = queue.shift()) await this.ensureSynced(p).catch(() => undefined);
    };
    await Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker));
    if (this.unsynced.size > 0) this.scheduleRepair(REPAIR_RETRY_MS);
  }

  /**
   * At start: the revocation list from one peer, then every partition this engine is a
   * replica of from the other replicas, before the engine reports ready.
   */
  private async syncAtStart(): Promise<void> {
    const deadline = this.o.clock.now() + this.o.bulkTimeoutMs;
    let revocationsDone = false;
    let warned = false;
    for (;;) {
      const others = [...this.engines].filter(([id]) => id !== this.o.self);
      if (others.length === 0) revocationsDone = true;
      for (const [id, address] of revocationsDone ? [] : others) {
        try {
          const changes = await this.o.rpc.call<RecordChange[]>(address, 'grid.pull', { partition: EVERYWHERE }, { channel: 'bulk', timeoutMs: this.o.bulkTimeoutMs });
          this.mergeAll(changes);
          this.o.logger.info({ from: id, revocations: changes.length }, 'revocation list downloaded');
          revocationsDone = true;
          break;
        } catch (err) {
          this.o.logger.warn({ err, from: id }, 'could not download the revocation list from this engine; trying another');
        }
      }
      const queue = this.placement.map((set, p) => (set.includes(this.o.self) && this.unsynced.has(p) ? p : -1)).filter((p) => p >= 0);
      const worker = async (): Promise<void> => {
        for (let p = queue.shift(); p !== undefined && !this.closed; p = queue.shift()) await this.ensureSynced(p).catch(() => undefined);
      };
      await Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker));
      const remaining = this.placement.filter((set, p) => set.includes(this.o.self) && this.unsynced.has(p)).length;
      if (revocationsDone && remaining === 0) break;
      if (this.closed) return;
      if (!warned && this.o.clock.now() > deadline) {
        warned = true;
        this.o.logger.error(
          { partitionsLeft: remaining, revocationsDownloaded: revocationsDone, timeoutMs: this.o.bulkTimeoutMs },
          'not ready: the start-up download did not finish within bulk_revocation_timeout; still trying',
        );
      }
      await new Promise<void>((resolve) => this.o.clock.setTimeout(resolve, REPAIR_RETRY_MS));
    }
    this.initialSyncDone = true;
    this.o.logger.info('grid synchronised: ready');
    if (this.unsynced.size > 0) this.scheduleRepair(REPAIR_RETRY_MS);
  }
}

interface ReplicateBody {
  partition: number;
  changes: RecordChange[];
  /** Keys that must not exist on the backup (replay prevention). */
  absent?: Array<{ ns: 'replay'; key: string }>;
}

/** RPC failures become STATE_UNAVAILABLE; a state error from the remote engine passes through. */
function asStateError(err: unknown, what: string): CohortError {
  if (err instanceof CohortError && err.code.startsWith('STATE_')) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new CohortError('STATE_UNAVAILABLE', `could not reach ${what}: ${reason}`, undefined, { cause: err });
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
