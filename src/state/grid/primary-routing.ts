/**
 * Where an operation runs, and running it as the primary: a replica in sync answers reads
 * from its own copy; anything else goes to the partition's primary (one hop; an engine that
 * is not the primary in its own view refuses with STATE_PLACEMENT_CHANGING instead of
 * forwarding again, and the caller retries by the placement of that moment). When the
 * primary is unreachable, a read is answered by a backup's copy. Serves `grid.execute` and
 * `grid.read`.
 *
 * Invariants:
 * - A change is acknowledged only once every backup of its partition holds it, so it
 *   survives replication_factor - 1 failures; if a backup cannot take it, it is undone here
 *   and on every engine (`grid.merge` of the revert) before the caller hears the failure.
 * - Changes to one partition run one at a time on its primary (`writesInFlight`); reads do
 *   not wait. While a change is being replicated, transfers send what it replaced
 *   (`replaced`, partition-transfer.ts), never the change itself.
 * - A primary that does not see a majority of the voters (write-majority.ts) refuses
 *   changes, so two sides of a split never both accept them. A replay id is also held by
 *   enough other engines for its holders to be a majority of the cluster's engines
 *   (replay-witnesses.ts): two sides that both count an engine neither suspects yet still
 *   cannot both accept it.
 * - An operation is resent to the next primary after a lost connection only when applying
 *   it twice is harmless (operations.ts `isRepeatable`), never after a timeout.
 */
import type { MaybePromise } from '../../core/maybe-async.js';
import { CohortError, isCohortError } from '../../core/errors.js';
import type { ReplicateBody } from './grid-protocol.js';
import { applyOperation, isReadOnly, isRepeatable, type Operation, type OperationResults } from './operations.js';
import type { StoredRecord } from './grid-store.js';
import type { PartitionSync } from './partition-sync.js';
import type { ReplayWitnesses } from './replay-witnesses.js';
import type { ReplicaState } from './replica-state.js';
import { asStateError } from './state-errors.js';

/** Waits before each new try of an operation refused while engines switch placements (ms). */
const PLACEMENT_RETRY_DELAYS_MS = [20, 50, 100, 200, 400, 500, 700];

export class PrimaryRouting {
  constructor(
    private readonly s: ReplicaState,
    private readonly sync: PartitionSync,
    /** Why changes are refused now (write-majority.ts); undefined while they are accepted. */
    private readonly writeRefusal: () => string | undefined,
    private readonly witnesses: ReplayWitnesses,
    /** How many engines the cluster has, as the write majority counts them (replicated-executor.ts). */
    private readonly voters: () => number,
  ) {
    s.rpc.handle('grid.execute', ({ partition, op }) => {
      if (this.s.primaryOf(partition) !== this.s.self) throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${this.s.self} is not the primary of partition ${partition}`);
      return this.executeAsPrimary(partition, op);
    });
    // A read a backup answers from its own copy, when the primary cannot be reached.
    s.rpc.handle('grid.read', ({ partition, op }) => {
      if (!isReadOnly(op)) throw new CohortError('STATE_UNAVAILABLE', `${op.t} changes state: only the primary runs it`);
      return applyOperation(this.s.store, op, this.s.clock.now(), partition);
    });
  }

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    return Promise.resolve(this.executeNow(partition, op));
  }

  /** As `execute`, but a read answered from this engine's own copy comes back at once (no promise). */
  executeNow<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): MaybePromise<OperationResults[K]> {
    // Every replica holds every acknowledged write, so a replica that is in sync answers reads
    // from its own copy: no hop to the primary for the common case of a session lookup.
    if (this.answersLocally(partition, op)) return applyOperation(this.s.store, op, this.s.clock.now(), partition) as OperationResults[K];
    return this.routed(partition, op, 0);
  }

  private answersLocally(partition: number, op: Operation): boolean {
    return isReadOnly(op) && !this.s.unsynced.has(partition) && this.s.placement.get(partition)?.includes(this.s.self) === true;
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
      if (this.answersLocally(partition, op)) return applyOperation(this.s.store, op, this.s.clock.now(), partition) as OperationResults[K];
      return await this.onPrimary(partition, op);
    } catch (err) {
      const delay = PLACEMENT_RETRY_DELAYS_MS[attempt];
      if (delay === undefined || !isCohortError(err, 'STATE_PLACEMENT_CHANGING') || this.s.closed) throw stillUnreachable(err);
      await this.s.sleep(delay);
      return this.routed(partition, op, attempt + 1);
    }
  }

  private onPrimary<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    const primary = this.s.primaryOf(partition);
    if (primary === undefined) return Promise.reject(new CohortError('STATE_UNAVAILABLE', 'no engine is active to hold the state'));
    if (primary === this.s.self) return this.executeAsPrimary(partition, op) as Promise<OperationResults[K]>;
    // The answer is the result of an operation of type K: the table types every operation's
    // result alike (one method for every type).
    const answer = this.s.rpc.call(this.s.engines.get(primary)!, 'grid.execute', { partition, op }) as Promise<OperationResults[K]>;
    return answer.catch((err: unknown) => {
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
    const backups = (this.s.placement.get(partition) ?? []).slice(1);
    // Its own copy only when it is in sync: the placement may have changed during the call
    // and made this engine a new backup that has not pulled the partition yet.
    if (backups.includes(this.s.self) && !this.s.unsynced.has(partition)) return applyOperation(this.s.store, op, this.s.clock.now(), partition);
    for (const id of backups) {
      const address = this.s.engines.get(id);
      if (!address || id === this.s.self) continue;
      try {
        return await this.s.rpc.call(address, 'grid.read', { partition, op });
      } catch {
        // try the next backup
      }
    }
    throw asStateError(primaryError, `partition ${partition}'s primary or any of its backups`);
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
    const previous = this.s.writesInFlight.get(partition);
    const run = previous ? previous.then(() => this.applyAsPrimary(partition, op)) : this.applyAsPrimary(partition, op);
    const settled = run.then(
      () => undefined,
      () => undefined,
    );
    this.s.writesInFlight.set(partition, settled);
    void settled.then(() => {
      if (this.s.writesInFlight.get(partition) === settled) this.s.writesInFlight.set(partition, undefined);
    });
    return run;
  }

  /**
   * Asks the engine at `address` to hold replay id `replay.id`. An engine of an earlier build
   * that does not serve `grid.witness` still answered, so the cluster is reachable there: it
   * counts (a mixed-version cluster during a rolling upgrade keeps accepting replay ids).
   */
  private witness(address: string, replay: { id: string; expiresAt: number } | undefined): Promise<unknown> {
    if (!replay) return Promise.resolve(true);
    return this.s.rpc.call(address, 'grid.witness', replay).catch((err: unknown) => {
      if (isCohortError(err, 'RPC_NO_HANDLER')) return true;
      throw err;
    });
  }

  private async applyAsPrimary(partition: number, op: Operation): Promise<unknown> {
    await this.sync.ensureSynced(partition);
    const replicas = this.s.placement.get(partition) ?? [];
    if (replicas[0] !== this.s.self) throw new CohortError('STATE_PLACEMENT_CHANGING', `partition ${partition} moved while it was being synchronised`);
    // On the minority side of a network partition this engine may see itself as primary of
    // partitions the majority side also serves: it refuses changes rather than diverge.
    if (!isReadOnly(op)) {
      const refusal = this.writeRefusal();
      if (refusal !== undefined) throw new CohortError('STATE_UNAVAILABLE', refusal);
    }
    const backupIds = replicas.slice(1).filter((id) => this.s.engines.has(id));
    const backups = backupIds.map((id) => this.s.engines.get(id)!);
    // A replay id is also held by enough other engines for its holders to be a majority of
    // the cluster's (replay-witnesses.ts); one already seen here, either way, is a replay.
    let witnesses: string[] = [];
    if (op.t === 'replay.insert') {
      if (this.witnesses.holds(op.id)) return false;
      const choice = this.witnesses.witnessesFor(op.id, [this.s.self, ...backupIds], this.voters());
      if (choice.addresses.length < choice.needed) {
        throw new CohortError('STATE_UNAVAILABLE', `a replay id needs ${choice.needed} engines besides the replicas of partition ${partition} to hold it (a majority of the cluster's), and only ${choice.addresses.length} are active`);
      }
      witnesses = choice.addresses;
    }
    const store = this.s.store;
    const now = this.s.clock.now();
    store.startJournal();
    const result = applyOperation(store, op, now, partition);
    const journal = store.takeJournal();
    if (journal.length === 0) return result;
    const changes = journal.map((e) => e.change);
    if (backups.length === 0 && witnesses.length === 0) return result;
    const body: ReplicateBody = { partition, changes, absent: op.t === 'replay.insert' ? [{ ns: 'replay', key: op.id }] : undefined };
    // Every replica must hold the change before it is acknowledged: then it survives any
    // replication_factor - 1 of them failing at once. Until then transfers send what it
    // replaced (`acknowledged`).
    const replaced = new Map<string, StoredRecord | undefined>();
    for (const e of journal) if (!replaced.has(`${e.change.ns} ${e.change.key}`)) replaced.set(`${e.change.ns} ${e.change.key}`, e.previous);
    this.s.replaced.set(partition, replaced);
    const witnessed = witnesses.map((w) => this.witness(w, op.t === 'replay.insert' ? { id: op.id, expiresAt: now + op.ttlMs } : undefined));
    const answers = await Promise.allSettled([...backups.map((b) => this.s.rpc.call(b, 'grid.replicate', body)), ...witnessed]).finally(() => {
      if (this.s.replaced.get(partition) === replaced) this.s.replaced.delete(partition);
    });
    const failures = answers.filter((a): a is PromiseRejectedResult => a.status === 'rejected').map((a) => a.reason as unknown);
    if (failures.length === 0) return result;
    // Witnesses that took the id forget it again: the client may try the same id once more.
    if (op.t === 'replay.insert') {
      answers.slice(backups.length).forEach((a, i) => {
        if (a.status === 'fulfilled') this.s.rpc.call(witnesses[i]!, 'grid.unwitness', { id: op.id }).catch(() => undefined);
      });
    }
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
      for (const [id, address] of this.s.engines) {
        if (id !== this.s.self && !backupIds.includes(id)) this.s.rpc.call(address, 'grid.merge', { changes: undo }).catch(() => undefined);
      }
      await Promise.allSettled(backups.map((b) => this.s.rpc.call(b, 'grid.merge', { changes: undo })));
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
