/**
 * An engine vanishes (crashed, or left a moment ago) while writes are on their way to it: a
 * write whose backup vanished is undone and tried again once membership has dropped the
 * engine, so the client never hears of it; a write whose primary vanished is sent to the next
 * primary when applying it twice changes nothing (a value put), and refused with
 * STATE_UNAVAILABLE when it might count twice (a replay id).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { CLUSTER_ROUTING } from '../../src/state/grid/grid-provider.js';
import { SimGrid } from '../helpers/sim-grid.js';

describe('writes while an engine vanishes', () => {
  it('value puts all succeed; replay ids whose primary vanished are refused, the others accepted', async () => {
    const grid = await SimGrid.started(3);
    const gone = grid.engines[2]!.id;
    const primaryOf = (space: 'state', key: string): string => grid.engines[0]!.executor.replicasOf(CLUSTER_ROUTING.partition(space, `${space}:${key}`))[0]!;
    grid.crash(2);
    // Membership tells the others a moment later, within the retries.
    grid.clock.setTimeout(() => grid.setActive([0, 1]), 150);
    const keys = Array.from({ length: 12 }, (_, i) => `k-${i}`);
    assert.ok(keys.some((k) => primaryOf('state', k) === gone) && keys.some((k) => primaryOf('state', k) !== gone), 'some keys had the vanished engine as primary, some as backup');
    await Promise.all(keys.map((k) => grid.provider(0).requestState.put(k, { k }, 60_000)));
    for (const k of keys) assert.deepEqual(await grid.provider(1).requestState.get(k), { k });

    const grid2 = await SimGrid.started(3);
    const gone2 = grid2.engines[2]!.id;
    const ids = Array.from({ length: 12 }, (_, i) => `replay-${i}`);
    // Primaries as placed before the crash (membership moves them after).
    const primaries = ids.map((id) => grid2.engines[0]!.executor.replicasOf(CLUSTER_ROUTING.partition('replay', `replay:${id}`))[0]);
    assert.ok(primaries.includes(gone2) && primaries.some((p) => p !== gone2));
    grid2.crash(2);
    grid2.clock.setTimeout(() => grid2.setActive([0, 1]), 150);
    const outcomes = await Promise.all(ids.map((id) => grid2.provider(0).replay.checkAndInsert(id, 60_000).then((fresh) => (fresh ? 'accepted' : 'replayed'), (err: { code?: string }) => err.code)));
    ids.forEach((id, i) => assert.equal(outcomes[i], primaries[i] === gone2 ? 'STATE_UNAVAILABLE' : 'accepted', `${id} (primary ${primaries[i]})`));
    grid.close();
    grid2.close();
  });
});
