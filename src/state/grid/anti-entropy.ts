/**
 * Background upkeep of the copies this engine holds, every ANTI_ENTROPY_MS: compares
 * fingerprints with the other replicas of its partitions (and the revocation list with every
 * engine), pulls what still differs, then drops the records of partitions that moved away
 * once their new replicas hold them (`dropMoved`).
 *
 * Invariants:
 * - A copy is pulled only when it differed the same way at two comparisons in a row: writes
 *   in flight make copies differ for a moment.
 * - Nothing is dropped before every engine of the partition's new replica set confirmed
 *   holding this engine's copy (see `dropMoved`).
 */
import type { TimerHandle } from '../../core/clock.js';
import { CohortError } from '../../core/errors.js';
import { EVERYWHERE } from './grid-provider.js';
import type { PartitionTransfer } from './partition-transfer.js';
import type { ReplicaState } from './replica-state.js';

/**
 * How often each replica compares its partitions' fingerprints with the other replicas of
 * them (anti-entropy, ms). A partition is pulled only when it differed, the same way, at two
 * comparisons in a row: writes in flight make copies differ for a moment.
 */
const ANTI_ENTROPY_MS = 2000;

export class AntiEntropy {
  private timer: TimerHandle | undefined;
  /** Copies that differed at the last comparison: `engine partition` → `ours theirs`. */
  private differed = new Map<string, string>();

  constructor(
    private readonly s: ReplicaState,
    private readonly transfer: PartitionTransfer,
  ) {}

  /** Stops the rounds (the engine is stopping). */
  close(): void {
    this.s.clock.clearTimeout(this.timer);
  }

  /** Starts the rounds (once this engine is ready); each schedules the next. */
  schedule(): void {
    if (this.s.closed || this.timer !== undefined) return;
    this.timer = this.s.clock.setTimeout(() => {
      this.timer = undefined;
      void this.compareReplicas()
        .catch(() => undefined)
        .then(() => this.dropMoved())
        .catch(() => undefined)
        .finally(() => this.schedule());
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
    if (this.s.closed || !this.s.initialSyncDone || !this.s.selfServing) return;
    const targets = new Map<string, number[]>(); // engine id → moved partitions to confirm there
    const pushed = new Map<number, { digest: string; replicas: readonly string[] }>();
    for (const p of this.s.store.partitions()) {
      if (p === EVERYWHERE || this.s.store.recordCount(p) === 0 || !this.movedAway(p)) continue;
      const replicas = this.s.placement.get(p)!;
      if (!replicas.every((id) => this.s.engines.has(id))) continue;
      pushed.set(p, { digest: this.s.store.digest(p), replicas });
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
        const address = this.s.engines.get(id);
        try {
          if (address === undefined) throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${id} left`);
          await this.transfer.pushWhereDifferent(address, partitions);
        } catch {
          for (const p of partitions) unconfirmed.add(p);
        }
      }),
    );
    let dropped = 0;
    for (const [p, before] of pushed) {
      if (this.s.closed) return;
      if (unconfirmed.has(p) || !this.movedAway(p) || this.s.store.digest(p) !== before.digest) continue;
      const replicas = this.s.placement.get(p)!;
      if (replicas.length !== before.replicas.length || replicas.some((id, i) => id !== before.replicas[i])) continue;
      dropped += this.s.store.dropPartition(p);
      // One partition per turn: after a join, an engine drops the share the newcomer takes (a
      // quarter of its records when a fourth engine joins three), which in one turn would hold
      // up its requests.
      await this.s.sleep(0);
    }
    if (dropped > 0) this.s.logger.debug({ records: dropped }, 'dropped the records of partitions now held by other engines');
  }

  /** This engine holds `p` but is not one of its replicas, and nothing of it is being changed or synchronised here. */
  private movedAway(p: number): boolean {
    const replicas = this.s.placement.get(p);
    return replicas !== undefined && replicas.length > 0 && !replicas.includes(this.s.self) && this.s.writesInFlight.get(p) === undefined && !this.s.syncing.has(p);
  }

  /**
   * Anti-entropy: compares, with each other replica, the fingerprints of the partitions both
   * hold, and the revocation list's with every other engine (one message per engine), and pulls those that still differ the same way as at the
   * last comparison. Syncs after a placement change bring a replica up to date with the
   * others; this makes copies that drifted apart afterwards alike again: a record pushed to
   * one replica only (a hand-off racing a sync), or the marker of an undone write that some
   * replica has not seen (grid-store.ts). Both sides do it, so both end with the newer copy.
   */
  private async compareReplicas(): Promise<void> {
    const shared = new Map<string, number[]>(); // engine id → partitions both replicate
    // The revocation list with every other engine: a revocation acknowledged by a majority
    // reaches the rest through its sender's resends, which die with the sender. An engine cut
    // off meanwhile (and never declared failed, so no exchange when it reappears) would miss
    // it for good (the simulator's lifecycle workload, seed 328). Not once this engine evicted
    // revocations at its cap: lists then differ by design, and each pull would bring the whole
    // list back only for the cap to evict it again.
    if (this.s.store.revocationsEvicted === 0 && !this.s.syncing.has(EVERYWHERE)) {
      for (const id of this.s.engines.keys()) if (id !== this.s.self) shared.set(id, [EVERYWHERE]);
    }
    for (const [p, replicas] of this.s.placement) {
      if (!replicas.includes(this.s.self) || this.s.unsynced.has(p) || this.s.syncing.has(p)) continue;
      for (const id of replicas) {
        if (id === this.s.self || !this.s.engines.has(id)) continue;
        const list = shared.get(id);
        if (list) list.push(p);
        else shared.set(id, [p]);
      }
    }
    const differing = new Map<string, string>();
    await Promise.allSettled(
      [...shared].map(async ([id, partitions]) => {
        const address = this.s.engines.get(id)!;
        const theirs = await this.s.rpc.call(address, 'grid.digests', { partitions });
        const pull: number[] = [];
        partitions.forEach((p, i) => {
          const mine = this.s.store.digest(p);
          if (typeof theirs[i] !== 'string' || theirs[i] === mine) return;
          const key = `${id} ${p}`;
          const seen = `${mine} ${theirs[i]}`;
          if (this.differed.get(key) === seen) pull.push(p);
          else differing.set(key, seen);
        });
        if (pull.length > 0 && !this.s.closed) await this.transfer.pullFrom(address, pull);
      }),
    );
    this.differed = differing;
  }
}
