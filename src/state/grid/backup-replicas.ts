/**
 * The backup side of replication: a primary's changes (`grid.replicate`) and records to
 * merge (`grid.merge`: reverts of undone writes, revocations).
 *
 * Invariants:
 * - A backup accepts a change only from the engine it sees as the partition's primary: two
 *   engines that briefly disagree on the placement fail the write (the primary undoes it)
 *   rather than both accepting writes for one partition.
 * - A replay insert is refused (STATE_REPLAY_DETECTED) when the backup has seen the id (as a
 *   replica, or as a witness: replay-witnesses.ts), before anything of the change is merged.
 * - Merging is idempotent and the newer version wins (grid-store.ts), so a change that
 *   arrives twice, or after a transfer that carried it, changes nothing more.
 */
import { CohortError } from '../../core/errors.js';
import type { ReplicateBody } from './grid-protocol.js';
import type { RecordChange } from './grid-store.js';
import type { ReplayWitnesses } from './replay-witnesses.js';
import type { ReplicaState } from './replica-state.js';

export class BackupReplicas {
  constructor(
    private readonly s: ReplicaState,
    private readonly witnesses: ReplayWitnesses,
  ) {
    s.rpc.handle('grid.replicate', (body, from) => this.acceptReplica(body, from.nodeId));
    s.rpc.handle('grid.merge', (body) => {
      this.mergeAll(body.changes);
      return true;
    });
  }

  private acceptReplica(body: ReplicateBody, from: string): boolean {
    const primary = this.s.primaryOf(body.partition);
    if (primary !== from) {
      throw new CohortError('STATE_PLACEMENT_CHANGING', `engine ${this.s.self} sees ${primary ?? 'no engine'} as the primary of partition ${body.partition}, not ${from}`);
    }
    for (const a of body.absent ?? []) {
      if (this.witnesses.holds(a.key)) throw new CohortError('STATE_REPLAY_DETECTED', `${a.key} was seen before`);
    }
    this.mergeAll(body.changes);
    return true;
  }

  private mergeAll(changes: RecordChange[]): void {
    for (const c of changes) this.s.store.merge(c);
  }
}
