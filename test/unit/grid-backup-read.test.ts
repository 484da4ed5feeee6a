/**
 * A read whose primary cannot be reached is answered by a backup's copy; an engine that has
 * just become a backup of the partition and has not synchronised it yet has no copy to answer
 * from, and must not answer "not found" for a session the cluster holds.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { partitionOfSessionId } from '../../src/state/grid/grid-provider.js';
import { placeScopes } from '../../src/state/grid/placement.js';
import { CLUSTER_SCOPE } from '../../src/state/grid/scopes.js';
import { settleSimulated } from '../../src/sim/drive.js';
import { SimGrid } from '../helpers/sim-grid.js';

it('an engine that became a backup while the read was in flight does not answer from its unsynchronised copy', async () => {
  const grid = await SimGrid.started(5);
  const ids = grid.engines.map((e) => e.id);
  const session = await grid.provider(0).sessions.create({ subject: 'alice', idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 });
  const partition = partitionOfSessionId(session.id)!;
  const [primary] = grid.engines[0]!.executor.replicasOf(partition);
  const without = ids.filter((id) => id !== primary);
  const after = placeScopes(without.map((id) => ({ id, group: null, index: null })), [CLUSTER_SCOPE], 271, 3).get(partition)!;
  // The engine that becomes a backup of the partition once its primary is gone.
  const newcomer = after.find((id) => !grid.engines[0]!.executor.replicasOf(partition).includes(id))!;
  const x = ids.indexOf(newcomer);
  assert.equal(grid.engines[x]!.store.has('session', session.id), false, 'not a replica before');

  grid.crash(ids.indexOf(primary!));
  // The read goes to the primary, which is gone; meanwhile membership tells this engine, which
  // becomes a backup of the partition. No other engine can be reached from here for now, so it
  // cannot synchronise the partition before the read falls back to the backups.
  const read = grid.engines[x]!.provider.sessions.get(session.id);
  grid.setActive(without.map((id) => ids.indexOf(id)), [x]);
  for (const other of without) if (other !== newcomer) grid.network.cutLink(grid.engines[x]!.address, grid.engines[ids.indexOf(other)]!.address);
  let answer: unknown;
  try {
    answer = await settleSimulated(read, (ms) => grid.clock.advance(ms), 5000, 1);
  } catch (err) {
    answer = err;
  }
  assert.notEqual(answer, undefined, 'a session the cluster holds is not answered "not found" from an empty copy');
  if (answer instanceof Error) assert.equal((answer as { code?: string }).code, 'STATE_UNAVAILABLE');
  else assert.equal((answer as { id: string }).id, session.id);
  grid.close();
});
