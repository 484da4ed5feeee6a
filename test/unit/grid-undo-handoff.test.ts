/**
 * A write the primary undoes (a backup did not take it) changes nothing, even when the
 * partition was handed over to a new replica while the write was in flight: the hand-off
 * copied the partition with the write in it, and the new replica must not keep it.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { isCohortError } from '../../src/core/errors.js';
import { partitionOfSessionId } from '../../src/state/grid/grid-provider.js';
import { settleSimulated } from '../../src/sim/drive.js';
import { SimGrid } from '../helpers/sim-grid.js';

for (const paused of ['killed', 'resumed'] as const) {
  it(`a delete undone after a backup failed does not survive on the replica the partition was handed to meanwhile (the paused backup then ${paused})`, async () => {
    const grid = await SimGrid.started(5);
    const session = await grid.provider(0).sessions.create({ subject: 'alice', idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 });
    const partition = partitionOfSessionId(session.id)!;
    const index = (id: string): number => grid.engines.findIndex((e) => e.id === id);
    const [primary, , lastBackup] = grid.engines[0]!.executor.replicasOf(partition).map(index) as [number, number, number];

    // A backup stops answering (SIGSTOP): the delete's replication to it hangs.
    grid.network.pause(grid.engines[lastBackup]!.address);
    const deleting = grid.engines[primary]!.provider.sessions.delete(session.id);
    await grid.advance(100);
    // Membership declares it failed before the replication times out: the partition moves to a
    // new replica, which gets the partition (the delete in it) from the primary and the backup.
    const rest = grid.live().filter((i) => i !== lastBackup);
    grid.setActive(rest, rest);
    const outcome = await settleSimulated(deleting, (ms) => grid.clock.advance(ms), 5000, 1).then(
      () => 'deleted',
      (err: unknown) => (isCohortError(err, 'STATE_UNAVAILABLE') ? 'unavailable' : String(err)),
    );
    assert.equal(outcome, 'unavailable', 'the delete is refused: a backup did not take it');
    if (paused === 'killed') {
      // It comes back empty, and every engine resynchronises.
      grid.crash(lastBackup);
      grid.restart(lastBackup);
    } else {
      // It reads what was sent to it while it was paused (the delete, then its revert) and rejoins.
      grid.network.resume(grid.engines[lastBackup]!.address);
      await grid.advance(1000);
    }
    grid.setActive(grid.live());
    await grid.untilReady();
    await grid.advance(5000);

    const reads = await Promise.all(grid.live().map(async (i) => `${grid.engines[i]!.id}: ${(await grid.provider(i).sessions.get(session.id)) ? 'read' : 'not found'}`));
    for (const i of grid.live()) {
      assert.equal((await grid.provider(i).sessions.get(session.id))?.id, session.id, `${grid.engines[i]!.id} still reads the session the refused delete left alone (${reads.join(', ')})`);
      // Nor does any engine keep the undone delete, replica of the partition or not.
      grid.engines[i]!.store.eachRecord(partition, (ns, key, record) => assert.ok(!(key === session.id && record.deleted), `${grid.engines[i]!.id} keeps the undone delete`));
    }
    grid.close();
  });
}
