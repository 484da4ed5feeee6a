/**
 * The replicated grid: runs each operation on the primary of its partition and keeps a
 * majority of the partition's replica set up to date before answering.
 *
 * - Placement (placement.ts) is computed from the active engines, the same on every node.
 * - execute: the primary applies the operation (one JavaScript turn: atomic), ships the
 *   records it changed to the backups, and answers once a majority of the replica set holds
 *   them (`writeQuorum`). If that fails the change is rolled back and the caller gets
 *   STATE_UNAVAILABLE: nothing acknowledged is lost, nothing unacknowledged stays applied.
 *   Another engine forwards the operation to the primary (one hop; an engine that is not
 *   the primary in its own view refuses instead of forwarding again).
 * - A backup only accepts changes from the engine it sees as the partition's primary, so two
 *   engines that briefly disagree about the primary fail requests (503) rather than both
 *   accepting them. Replay inserts also ask each backup whether it has seen the id.
 * - After the placement changes, a primary pulls the partition from the other replicas
 *   before serving it again (a majority must answer, so it sees every acknowledged write),
 *   and every engine pushes the records of moved partitions to their new replicas.
 * - Revocations live on every engine (`everywhere`), acknowledged once a majority of the
 *   engines hold them; a starting engine downloads them from a peer before it is ready.
 *
 * Records carry hybrid-logical-clock versions (grid-store.ts): merging is idempotent and the
 * newer copy wins, so pushes, pulls and retries can overlap freely.
 */
import type { Clock } from '../../core/clock.js';
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

export class ReplicatedExecutor implements GridExecutor {
  private readonly o: ReplicatedExecutorOptions;
  /** Active engines: node id → cluster address (this engine included). */
  private engines = new Map<string, string>();
  private placement: Placement = [];
  /** Partitions this engine must pull before it serves them as primary. */
  private readonly unsynced = new Set<number>();
  private readonly syncing = new Map<number, Promise<void>>();
  private initialSyncDone = false;
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
   * The active engines changed (membership): recompute placement, push moved partitions to
   * their new replicas, and mark the partitions this engine must pull before serving.
   */
  setEngines(engines: Map<string, string>): void {
    const before = this.placement;
    this.engines = new Map(engines);
    this.placement = placePartitions([...engines.keys()], PARTITION_COUNT, this.o.replicationFactor);
    const changed = before.length === 0 ? this.placement.map((_, p) => p) : changedPartitions(before, this.placement);
    for (const p of changed) if (this.placement[p]!.includes(this.o.self)) this.unsynced.add(p);
    if (before.length > 0) this.handOff(before, changed);
    this.initialSync ??= this.syncAtStart();
  }

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
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

  async everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    this.o.store.startJournal();
    applyOperation(this.o.store, op, this.o.clock.now(), EVERYWHERE);
    const changes = this.o.store.takeJournal().map((e) => e.change);
    const others = [...this.engines].filter(([id]) => id !== this.o.self).map(([, address]) => address);
    const need = writeQuorum(others.length + 1) - 1;
    if (need === 0 || changes.length === 0) return;
    try {
      await this.o.rpc.fanOut(others, 'grid.merge', { changes }, need);
    } catch (err) {
      throw asStateError(err, 'a majority of the engines');
    }
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
    const store = this.o.store;
    store.startJournal();
    const result = applyOperation(store, op, this.o.clock.now(), partition);
    const journal = store.takeJournal();
    if (journal.length === 0) return result;
    const changes = journal.map((e) => e.change);
    const backups = replicas.slice(1).map((id) => this.engines.get(id)!).filter((a) => a !== undefined);
    const need = writeQuorum(replicas.length) - 1;
    if (need === 0) return result;
    const body: ReplicateBody = { partition, changes, absent: op.t === 'replay.insert' ? [{ ns: 'replay', key: op.id }] : undefined };
    try {
      if (body.absent) await this.replicateReplayInsert(backups, body, need);
      else await this.o.rpc.fanOut(backups, 'grid.replicate', body, need);
      return result;
    } catch (err) {
      store.undo(journal);
      if (isCohortError(err, 'STATE_REPLAY_DETECTED')) return false;
      throw asStateError(err, `a majority of partition ${partition}'s replicas`);
    }
  }

  /**
   * A replay insert waits for every backup's answer (within rpc_timeout): one that has seen
   * the id makes it a replay, even if others have not, so no id is accepted twice.
   */
  private async replicateReplayInsert(backups: string[], body: ReplicateBody, need: number): Promise<void> {
    const answers = await Promise.allSettled(backups.map((b) => this.o.rpc.call(b, 'grid.replicate', body)));
    const failures = answers.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => a.reason as unknown);
    const seen = failures.find((f) => isCohortError(f, 'STATE_REPLAY_DETECTED'));
    if (seen) throw seen;
    if (answers.length - failures.length < need) {
      throw new CohortError('STATE_UNAVAILABLE', `replay check: ${answers.length - failures.length} of ${backups.length} backups answered, ${need} needed`);
    }
  }

  /** Pulls `partition` from a majority of its replica set, once after each placement change. */
  private ensureSynced(partition: number): Promise<void> {
    if (!this.unsynced.has(partition)) return Promise.resolve();
    let running = this.syncing.get(partition);
    if (!running) {
      running = this.pullPartition(partition).finally(() => this.syncing.delete(partition));
      this.syncing.set(partition, running);
    }
    return running;
  }

  private async pullPartition(partition: number): Promise<void> {
    const replicas = this.placement[partition] ?? [];
    const others = replicas.filter((id) => id !== this.o.self).map((id) => this.engines.get(id)!).filter((a) => a !== undefined);
    const need = writeQuorum(replicas.length) - 1;
    if (need > 0) {
      try {
        const answers = await this.o.rpc.fanOut<RecordChange[]>(others, 'grid.pull', { partition }, need, { channel: 'bulk' });
        for (const a of answers.ok) this.mergeAll(a.value);
      } catch (err) {
        throw asStateError(err, `a majority of partition ${partition}'s replicas (synchronising)`);
      }
    }
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

  /** Pushes what this engine holds of each moved partition to the replicas new to it. */
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

  /**
   * At start: the revocation list from one peer, then every partition this engine is a
   * replica of from the other replicas, before the engine reports ready.
   */
  private async syncAtStart(): Promise<void> {
    const deadline = this.o.clock.now() + this.o.bulkTimeoutMs;
    const others = [...this.engines].filter(([id]) => id !== this.o.self);
    try {
      for (const [id, address] of others) {
        try {
          const changes = await this.o.rpc.call<RecordChange[]>(address, 'grid.pull', { partition: EVERYWHERE }, { channel: 'bulk', timeoutMs: Math.max(1, deadline - this.o.clock.now()) });
          this.mergeAll(changes);
          this.o.logger.info({ from: id, revocations: changes.length }, 'revocation list downloaded');
          break;
        } catch (err) {
          this.o.logger.warn({ err, from: id }, 'could not download the revocation list from this engine; trying another');
        }
      }
      const mine = this.placement.map((set, p) => (set.includes(this.o.self) ? p : -1)).filter((p) => p >= 0);
      const queue = [...mine];
      const worker = async (): Promise<void> => {
        for (let p = queue.shift(); p !== undefined; p = queue.shift()) {
          await this.ensureSynced(p).catch((err: unknown) => this.o.logger.warn({ err, partition: p }, 'partition not synchronised at start; it will be on first use'));
        }
      };
      await Promise.all(Array.from({ length: PULL_CONCURRENCY }, worker));
    } finally {
      this.initialSyncDone = true;
    }
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
