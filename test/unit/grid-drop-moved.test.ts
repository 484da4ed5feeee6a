/**
 * Partitions that move away from an engine leave it: once every engine of the partition's new
 * replica set has confirmed holding the engine's copy, the engine drops its records, so its
 * memory returns to what it holds as a replica after every rebalancing; and not before, so no
 * acknowledged write is lost on the way.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EVERYWHERE } from '../../src/state/grid/grid-provider.js';
import { SimGrid } from '../helpers/sim-grid.js';

const TTL = { idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 };

/** Records engine `i` holds, split by whether its own placement makes it a replica of their partition (revocations apart). */
function held(grid: SimGrid, i: number): { owned: number; moved: number } {
  const e = grid.engines[i]!;
  let owned = 0;
  let moved = 0;
  for (const p of e.store.partitions()) {
    if (p === EVERYWHERE) continue;
    if (e.executor.replicasOf(p).includes(e.id)) owned += e.store.recordCount(p);
    else moved += e.store.recordCount(p);
  }
  return { owned, moved };
}

/** Advances simulated time until no live engine holds records of a partition it does not replicate; false after `limitMs`. */
async function untilMovedDropped(grid: SimGrid, limitMs: number): Promise<boolean> {
  for (let t = 0; t < limitMs; t += 250) {
    if (grid.live().every((i) => held(grid, i).moved === 0)) return true;
    await grid.advance(250);
  }
  return grid.live().every((i) => held(grid, i).moved === 0);
}

describe('moved partitions are dropped once their new replicas hold them', () => {
  it('returns every engine to the records it holds as a replica while engines leave and join, back and forth, losing nothing', async () => {
    const grid = await SimGrid.started(4, { replicationFactor: 2 });
    const any = grid.anyEngine();
    const sessions = new Map<string, string>();
    const values = new Map<string, string>();
    for (let i = 0; i < 150; i++) {
      const s = await any.sessions.create({ subject: `user-${i}`, attributes: { note: 'x'.repeat(200) }, ...TTL });
      sessions.set(s.id, s.subject);
    }
    for (let i = 0; i < 50; i++) {
      await any.requestState.put(`key-${i}`, `value-${i}`, 3_600_000);
      values.set(`key-${i}`, `value-${i}`);
    }
    await grid.advance(3000);
    const initial = grid.engines.map((_, i) => held(grid, i));
    for (const h of initial) assert.equal(h.moved, 0, 'nothing moved yet');

    // Each engine leaves in turn (its partitions move to the others, which pull them) and joins
    // again empty (they move back: the others hold them as non-replicas until they drop them).
    for (const leaver of [3, 1, 2, 0]) {
      grid.crash(leaver);
      const rest = grid.live();
      grid.setActive(rest);
      await grid.advance(3000);
      // A write while it is away: the partition's copy on the current replicas is newer than the one moving back later.
      const during = await grid.provider(rest[0]!).sessions.create({ subject: `during-${leaver}`, ...TTL });
      sessions.set(during.id, during.subject);
      assert.ok(await untilMovedDropped(grid, 20_000), `after engine ${leaver} left: ${JSON.stringify(grid.live().map((i) => held(grid, i)))}`);

      grid.restart(leaver);
      grid.setActive(grid.engines.map((_, i) => i));
      await grid.untilReady();
      assert.ok(await untilMovedDropped(grid, 20_000), `after engine ${leaver} joined again: ${JSON.stringify(grid.engines.map((_, i) => held(grid, i)))}`);
      for (const [id, subject] of sessions) {
        for (const i of grid.live()) assert.equal((await grid.provider(i).sessions.get(id))?.subject, subject, `${id} on ${grid.engines[i]!.id} after engine ${leaver} returned`);
      }
    }
    for (const [key, value] of values) assert.equal(await grid.provider(0).requestState.get(key), value);

    // Back to the first placement: every engine holds what it held then, plus its share of the
    // sessions written meanwhile (one per round), and nothing of the partitions it gave away.
    const extra = [...sessions.keys()].slice(150);
    grid.engines.forEach((e, i) => {
      const added = extra.filter((id) => e.executor.replicasOf(Number(id.split('.')[0])).includes(e.id)).length;
      assert.deepEqual(held(grid, i), { owned: initial[i]!.owned + added, moved: 0 }, `${e.id}'s records`);
    });
    grid.close();
  });

  it('keeps the records of a moved partition while a new replica cannot confirm that it holds them, and drops them once it can', async () => {
    const grid = new SimGrid(4, { replicationFactor: 2 });
    grid.setActive([0, 1, 2], [0, 1, 2]); // engine-4 has not started
    for (let t = 0; t < 5000 && ![0, 1, 2].every((i) => grid.engines[i]!.executor.ready); t += 10) await grid.advance(10);
    const any = grid.provider(1);
    const ids: string[] = [];
    for (let i = 0; i < 80; i++) ids.push((await any.sessions.create({ subject: `user-${i}`, ...TTL })).id);
    await grid.advance(2000);
    const before = held(grid, 0);
    assert.equal(before.moved, 0);
    // engine-1 alone sees engine-4 as active, but engine-4's process is not there: the
    // partitions that move to it cannot be confirmed, so engine-1 keeps every record.
    grid.crash(3);
    grid.setActive([0, 1, 2, 3], [0]);
    await grid.advance(10_000);
    const kept = held(grid, 0);
    assert.ok(kept.moved > 0, `engine-1 gave partitions to engine-4: ${JSON.stringify(kept)}`);
    assert.equal(kept.owned + kept.moved, before.owned, 'engine-1 dropped nothing');
    // engine-4 starts and every engine sees it: it takes its partitions, and engine-1 lets its copies go.
    grid.restart(3);
    grid.setActive([0, 1, 2, 3]);
    await grid.untilReady();
    assert.ok(await untilMovedDropped(grid, 20_000), JSON.stringify(grid.engines.map((_, i) => held(grid, i))));
    assert.ok(held(grid, 0).owned < before.owned, 'engine-1 holds less than before engine-4 joined');
    for (const id of ids) for (const i of grid.live()) assert.ok(await grid.provider(i).sessions.get(id), `${id} on ${grid.engines[i]!.id}`);
    grid.close();
  });

  it('drops a partition this engine wrote to as its primary, once its writes have settled and the partition moved away', async () => {
    const grid = new SimGrid(4, { replicationFactor: 1 });
    grid.setActive([0, 1, 2], [0, 1, 2]);
    for (let t = 0; t < 5000 && ![0, 1, 2].every((i) => grid.engines[i]!.executor.ready); t += 10) await grid.advance(10);
    // Every session written through engine-1 itself: the writes of its own partitions run through its primary path.
    const own = grid.provider(0);
    for (let i = 0; i < 120; i++) await own.sessions.create({ subject: `user-${i}`, ...TTL });
    await grid.advance(2000);
    const before = held(grid, 0);
    assert.ok(before.owned > 0 && before.moved === 0, JSON.stringify(before));
    grid.restart(3);
    grid.setActive([0, 1, 2, 3]);
    await grid.untilReady();
    assert.ok(await untilMovedDropped(grid, 20_000), JSON.stringify(grid.engines.map((_, i) => held(grid, i))));
    assert.ok(held(grid, 0).owned < before.owned, 'engine-1 gave partitions to engine-4 and let them go');
    grid.close();
  });
});
