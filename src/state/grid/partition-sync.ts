/**
 * Keeping this engine's partitions up to date after the engine set changes: marks of
 * partitions to resynchronise (`unsynced`, set by the façade's placement), syncs from the
 * other engines (fingerprints first, one message per engine, then the records of those that
 * differ, partition-transfer.ts), hand-offs of moved partitions to their new replicas, and
 * the background repair of marked partitions.
 *
 * Invariants:
 * - A partition counts as synchronised once at least one other engine of its replica set
 *   answered (every acknowledged write is on every replica it had, so any surviving one
 *   brings it back); a mark is cleared only by a sync started under its generation or later.
 * - One sync per partition at a time (`syncing`); a sync asked for while one runs waits for it.
 * - What this engine holds goes back only to replicas of the partition, never to engines
 *   outside its replica set.
 * - A primary serves a marked partition only after syncing it (`ensureSynced`).
 */
import type { TimerHandle } from '../../core/clock.js';
import { CohortError, isCohortError } from '../../core/errors.js';
import { EVERYWHERE } from './grid-provider.js';
import { EMPTY_DIGEST } from './grid-store.js';
import type { PartitionTransfer } from './partition-transfer.js';
import type { Placement } from './placement.js';
import { REPAIR_RETRY_MS, type ReplicaState } from './replica-state.js';

export class PartitionSync {
  private repairTimer: TimerHandle | undefined;
  /**
   * Whether an engine asked by the last sync was still loading its saved state (it answered
   * RPC_NO_HANDLER): the start-up download then asks again soon (LOADING_RETRY_MS).
   */
  peersLoading = false;

  constructor(
    private readonly s: ReplicaState,
    private readonly transfer: PartitionTransfer,
  ) {}

  /** Stops the background repair (the engine is stopping). */
  close(): void {
    this.s.clock.clearTimeout(this.repairTimer);
  }

  /** Resynchronises `partition` if it is marked, once after each change of the engine set. */
  ensureSynced(partition: number): Promise<void> {
    if (!this.s.unsynced.has(partition)) return Promise.resolve();
    // Twice at most: a sync already running may have started under an older engine set.
    return this.syncPartitions([partition])
      .then(() => (this.s.unsynced.has(partition) ? this.syncPartitions([partition]) : []))
      .then(() => {
        // No other replica answered: most often one that just failed and that membership has
        // not declared yet, so the placement is about to change. Refused as a placement change,
        // which the caller retries for a while (routed) instead of failing at once.
        if (this.s.unsynced.has(partition)) throw new CohortError('STATE_PLACEMENT_CHANGING', `no other replica of partition ${partition} answered while synchronising it`);
      });
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
  syncPartitions(partitions: number[], placement: Placement = this.s.placement, everyEngine = false): Promise<number[]> {
    const wanted = partitions.filter((p) => !this.s.syncing.has(p));
    const waitFor = partitions.filter((p) => this.s.syncing.has(p)).map((p) => this.s.syncing.get(p)!.catch(() => undefined));
    const run = this.runSync(wanted, placement, everyEngine);
    const tracked = run.then((left) => {
      for (const p of wanted) this.s.syncing.delete(p);
      return left;
    });
    for (const p of wanted) this.s.syncing.set(p, tracked.then(() => undefined));
    return Promise.all([tracked, ...waitFor]).then(([left]) => [...left, ...partitions.filter((p) => !wanted.includes(p) && this.s.unsynced.has(p))]);
  }

  private async runSync(partitions: number[], placement: Placement, everyEngine: boolean): Promise<number[]> {
    if (partitions.length === 0) return [];
    const generation = this.s.generation;
    const sources = this.s.activeOthers();
    const answers = await Promise.allSettled(sources.map(([, address]) => this.s.rpc.call(address, 'grid.digests', { partitions })));
    const allAnswered = answers.every((a) => a.status === 'fulfilled');
    this.peersLoading = answers.some((a) => a.status === 'rejected' && isCohortError(a.reason, 'RPC_NO_HANDLER'));
    if (everyEngine && !allAnswered) return partitions.filter((p) => this.s.unsynced.has(p));
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
      const mine = this.s.store.digest(p);
      const byDigest = new Map<string, Array<[string, string]>>(); // differing fingerprint → engines holding it
      let replicaAnswered = replicas.every((id) => id === this.s.self);
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
    const pulled = await Promise.allSettled(pullLists.map(([address, list]) => this.transfer.pullFrom(address, list)));
    // And the other way, in the background: what this engine holds that a replica lacks, or
    // holds older, reaches it too (merging keeps the newer copy), so two copies that differ
    // end up alike, not only this one. Above all, markers of undone writes (grid-store.ts)
    // held here reach a replica that took the undone write before its revert could.
    // Revocations are exchanged on their own.
    for (const [address, list] of pushBack) this.transfer.pushWhereDifferent(address, list).catch(() => undefined);
    if (everyEngine && pulled.some((r) => r.status === 'rejected')) return partitions.filter((p) => this.s.unsynced.has(p));
    // But a partition it was sending is not synchronised: it moves in chunks, and only the
    // last one makes it whole. It is tried again (from any engine holding it).
    pulled.forEach((r, i) => {
      if (r.status === 'rejected') for (const p of pullLists[i]![1]) ok.delete(p);
    });
    for (const p of ok) if ((this.s.unsynced.get(p) ?? Infinity) <= generation) this.s.unsynced.delete(p);
    return partitions.filter((p) => this.s.unsynced.has(p));
  }

  /**
   * Pushes each moved partition to the replicas new to it, where their fingerprint differs
   * from ours. Pulls alone would not do: a new replica may have synchronised under its own,
   * earlier view, and then missed writes the primary sent only to the replicas of the
   * primary's older view.
   */
  handOff(before: Placement, changed: number[]): void {
    const byTarget = new Map<string, number[]>();
    for (const p of changed) {
      for (const id of this.s.placement.get(p)!) {
        if (id === this.s.self || before.get(p)?.includes(id) || this.s.store.recordCount(p) === 0) continue;
        byTarget.set(id, [...(byTarget.get(id) ?? []), p]);
      }
    }
    for (const [id, partitions] of byTarget) {
      const address = this.s.engines.get(id);
      if (address) {
        this.transfer.pushWhereDifferent(address, partitions).catch((err: unknown) => {
          this.s.logger.warn({ err, to: id }, 'could not hand partitions over to a new replica; it will pull them when it serves them');
        });
      }
    }
  }

  /**
   * Pulls, in the background, every partition this engine is a replica of but has not
   * synchronised since the placement changed, until none is left: so every replica set is
   * whole again soon after a change, not only when a partition is next used. Failed pulls
   * (a majority not reachable yet) are retried every REPAIR_RETRY_MS.
   */
  scheduleRepair(delayMs: number): void {
    if (this.s.closed || this.repairTimer !== undefined) return;
    this.repairTimer = this.s.clock.setTimeout(() => {
      this.repairTimer = undefined;
      void this.repair();
    }, delayMs);
  }

  private async repair(): Promise<void> {
    for (const p of this.s.unsynced.keys()) if (!this.s.placement.get(p)?.includes(this.s.self)) this.s.unsynced.delete(p);
    await this.syncPartitions([...this.s.unsynced.keys()]).catch(() => undefined);
    if (this.s.unsynced.size > 0) this.scheduleRepair(REPAIR_RETRY_MS);
  }
}
