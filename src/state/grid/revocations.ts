/**
 * Revocations: the one grid namespace every engine holds whole (EVERYWHERE), spread outside
 * the partitions' replica sets. Split out of the replicated executor (replicated-executor.ts, its façade),
 * which owns the engine set, the write majority and the transfers this uses.
 *
 * - `everywhere`: applied here, acknowledged once a majority of the cluster's engines hold it
 *   (every active one, when failed engines leave fewer than that and the witnesses made the
 *   majority), and resent to the others every retryMs until they take it.
 * - `revokedElsewhere`: with read_local_only = false, an id this engine does not hold is asked
 *   of as many engines as acknowledge a revocation, so the two sets meet.
 * - `exchange`: an engine that (re)appears compares revocation lists with this one; where
 *   they differ, each takes the other's (merging keeps the newer version).
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { CohortError } from '../../core/errors.js';
import { REVOKED_QUERY_MAX, type GridRpc } from './grid-protocol.js';
import { EVERYWHERE } from './grid-provider.js';
import type { GridStore, RecordChange } from './grid-store.js';
import { applyOperation, isRevokedIn, type Operation } from './operations.js';
import { writeQuorum } from './placement.js';
import { describeRefusal, type WriteDecision } from './write-majority.js';
import { asStateError } from './state-errors.js';

export { REVOKED_QUERY_MAX } from './grid-protocol.js';

/** What the revocations need of the executor that owns them. */
export interface RevocationContext {
  readonly store: GridStore;
  readonly rpc: GridRpc;
  readonly clock: Clock;
  /** This engine's node id. */
  readonly self: string;
  /** How soon revocations an engine did not take, and exchanges that failed, are tried again (ms). */
  readonly retryMs: number;
  /** Active engines: node id → cluster address (this one included). */
  engines(): ReadonlyMap<string, string>;
  /** Engines in the cluster, active or failed: the write majority's base. */
  knownEngines(): number;
  writeDecision(): WriteDecision;
  /** The engine is stopping: nothing more is sent. */
  closed(): boolean;
  /** Pulls partitions from the engine at `address` (partition-transfer.ts). */
  pullFrom(address: string, partitions: number[]): Promise<void>;
  /** Pushes the partitions whose fingerprints differ to the engine at `address`. */
  pushWhereDifferent(address: string, partitions: number[]): Promise<void>;
}

export class Revocations {
  /** Records some engines did not take yet, by engine id. */
  private readonly pushQueue = new Map<string, RecordChange[]>();
  private pushTimer: TimerHandle | undefined;

  constructor(private readonly c: RevocationContext) {
    // Of the ids asked, those this engine holds as revoked (read_local_only = false elsewhere).
    // The list's length is capped by the protocol table (REVOKED_QUERY_MAX).
    c.rpc.handle('grid.revoked', ({ ids }) => ids.filter((id) => this.c.store.has('revocation', id)));
  }

  /** Stops resending (the engine is stopping). */
  close(): void {
    this.c.clock.clearTimeout(this.pushTimer);
  }

  /**
   * Applies `op` here and sends its records to every other engine; acknowledged once a
   * majority of the engines hold them. An engine that did not take them is sent them again
   * every this.c.retryMs while it stays active (a short pause is not a failure membership
   * notices), so every engine ends up with every revocation.
   */
  async everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    this.c.store.startJournal();
    applyOperation(this.c.store, op, this.c.clock.now(), EVERYWHERE);
    const changes = this.c.store.takeJournal().map((e) => e.change);
    const others = [...this.c.engines()].filter(([id]) => id !== this.c.self);
    if (changes.length === 0) return;
    // An engine that does not see a majority of the voters cannot acknowledge a revocation only
    // it (and its side) holds: it keeps it and sends it on.
    const decision = this.c.writeDecision();
    if (!decision.accepted) {
      for (const [id] of others) this.retryPush(id, changes);
      throw new CohortError('STATE_UNAVAILABLE', `${describeRefusal(this.c.self, decision)}; the revocation is kept here and sent on, but not acknowledged`);
    }
    // Held by a majority of the known engines where that many are active; else (the witnesses
    // made the majority: engines have failed) by every active one. The others get it later.
    const need = Math.min(writeQuorum(Math.max(this.c.knownEngines(), this.c.engines().size)) - 1, others.length);
    if (need === 0) {
      for (const [id] of others) this.retryPush(id, changes);
      return;
    }
    const idOf = new Map(others.map(([id, address]) => [address, id]));
    try {
      await this.c.rpc.fanOut(others.map(([, address]) => address), 'grid.merge', { changes }, need, {
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
    if (this.pushTimer !== undefined || this.c.closed()) return;
    this.pushTimer = this.c.clock.setTimeout(() => {
      this.pushTimer = undefined;
      const batch = [...this.pushQueue];
      this.pushQueue.clear();
      for (const [target, pending] of batch) {
        const address = this.c.engines().get(target);
        if (!address) continue; // it left: the exchange when it reappears covers it
        this.c.rpc.call(address, 'grid.merge', { changes: pending }).catch(() => this.retryPush(target, pending));
      }
    }, this.c.retryMs);
  }

  /** Whether this engine's copy holds `id` as revoked. */
  revokedHere(id: string): boolean {
    return isRevokedIn(this.c.store, id);
  }

  /**
   * Which of `ids` the other engines hold as revoked (revocation checks with
   * read_local_only = false, for ids this engine's own copy does not hold).
   *
   * Invariants:
   * - It hears from as many other engines as `everywhere` needs to acknowledge a revocation
   *   (a majority of the known engines with this one, or every active one when the
   *   witnesses made the majority), so the engines heard and those that acknowledged any
   *   revocation share at least one: an acknowledged revocation is always found.
   * - One engine holding an id is enough for it: the answer comes as soon as every id is
   *   found, or once enough engines said no.
   * - An engine that sees no majority of the voters, or cannot hear from enough engines,
   *   answers STATE_UNAVAILABLE: a check that cannot be complete fails closed.
   */
  revokedElsewhere(ids: readonly string[]): Promise<ReadonlySet<string>> {
    const found = new Set<string>();
    if (ids.length === 0) return Promise.resolve(found);
    const decision = this.c.writeDecision();
    if (!decision.accepted) return Promise.reject(new CohortError('STATE_UNAVAILABLE', `${describeRefusal(this.c.self, decision)}; a revocation check (read_local_only = false) needs a majority too`));
    const others = [...this.c.engines()].filter(([id]) => id !== this.c.self).map(([, address]) => address);
    const need = Math.min(writeQuorum(Math.max(this.c.knownEngines(), this.c.engines().size)) - 1, others.length);
    if (need === 0) return Promise.resolve(found);
    const wanted = new Set(ids);
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += REVOKED_QUERY_MAX) chunks.push(ids.slice(i, i + REVOKED_QUERY_MAX));
    return new Promise((resolve, reject) => {
      let answered = 0;
      let failed = 0;
      let settled = false;
      for (const address of others) {
        Promise.all(chunks.map((chunk) => this.c.rpc.call(address, 'grid.revoked', { ids: chunk }))).then(
          (lists) => {
            if (settled) return;
            answered++;
            for (const list of lists) for (const id of list) if (wanted.has(id)) found.add(id);
            if (found.size === wanted.size || answered >= need) {
              settled = true;
              resolve(found);
            }
          },
          (err: unknown) => {
            if (settled) return;
            failed++;
            if (others.length - failed < need) {
              settled = true;
              reject(asStateError(err, `${need} of the other engines to check revocations (read_local_only = false): ${failed} of ${others.length} did not answer`));
            }
          },
        );
      }
    });
  }

  /** Compares revocation lists with engine `id` (it just appeared); where they differ, pulls theirs and pushes ours (both merge by version). */
  exchange(id: string, address: string): void {
    const attempt = (triesLeft: number): void => {
      if (this.c.closed() || this.c.engines().get(id) !== address) return;
      const exchange = async (): Promise<void> => {
        const [theirs] = await this.c.rpc.call(address, 'grid.digests', { partitions: [EVERYWHERE] });
        if (theirs === this.c.store.digest(EVERYWHERE)) return;
        await Promise.all([this.c.pullFrom(address, [EVERYWHERE]), this.c.pushWhereDifferent(address, [EVERYWHERE])]);
      };
      exchange().catch(() => {
        if (triesLeft > 0) this.c.clock.setTimeout(() => attempt(triesLeft - 1), this.c.retryMs);
      });
    };
    attempt(10);
  }
}
