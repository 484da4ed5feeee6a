/**
 * `sessions.getNow` on the grid: a session lookup that this engine's own copy answers comes
 * back at once, without a promise (the session lookup lane's hot path), and is the same answer
 * `get` gives; anything that must ask elsewhere — a partition held by other engines, a touch
 * (written by the primary), read_local_only = false — comes back as a promise.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isPromise } from '../../src/core/maybe-async.js';
import { GridProvider } from '../../src/state/grid/grid-provider.js';
import { SimGrid } from '../helpers/sim-grid.js';

const TTL = { idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 };

describe('grid sessions.getNow', () => {
  it('answers at once from the engine\'s own copy, as get does; a revoked or unknown session at once too', async () => {
    const grid = await SimGrid.started(3);
    const session = await grid.provider(0).sessions.create({ subject: 'alice', attributes: { team: 'blue' }, ...TTL });
    for (let i = 0; i < 3; i++) {
      const p = grid.engines[i]!.provider;
      const now = p.sessions.getNow!(session.id);
      assert.equal(isPromise(now), false, `engine ${i + 1} holds every partition (RF 3 on 3): no promise`);
      assert.deepEqual(now, await grid.drive(p.sessions.get(session.id)));
      assert.equal((now as { id: string } | undefined)?.id, session.id);
      assert.equal(p.sessions.getNow!('0.unknown-session'), undefined);
    }
    await grid.provider(1).revocations.revoke(session.id);
    await grid.advance(100);
    for (let i = 0; i < 3; i++) assert.equal(grid.engines[i]!.provider.sessions.getNow!(session.id), undefined, `engine ${i + 1}: revoked`);
    grid.close();
  });

  it('comes back as a promise where it must ask elsewhere: another engine\'s partition, a touch, read_local_only = false', async () => {
    const grid = await SimGrid.started(4, { replicationFactor: 2 });
    const session = await grid.provider(0).sessions.create({ subject: 'bob', ...TTL });
    const partition = Number(session.id.slice(0, session.id.indexOf('.')));
    const holders = grid.engines[0]!.executor.replicasOf(partition);
    const outsider = grid.engines.find((e) => !holders.includes(e.id))!;
    const holder = grid.engines.find((e) => holders.includes(e.id))!;
    const away = outsider.provider.sessions.getNow!(session.id);
    assert.equal(isPromise(away), true, 'not held here: asked of a replica');
    assert.equal((await grid.drive(away))?.id, session.id);
    assert.equal(isPromise(holder.provider.sessions.getNow!(session.id)), false);
    const touched = holder.provider.sessions.getNow!(session.id, { touch: true });
    assert.equal(isPromise(touched), true, 'a touch is a write: the primary makes it');
    assert.equal((await grid.drive(touched))?.id, session.id);
    const consulting = new GridProvider(holder.executor, grid.clock, undefined, undefined, { readLocalOnly: false });
    const consulted = consulting.sessions.getNow!(session.id);
    assert.equal(isPromise(consulted), true, 'read_local_only = false asks the others first');
    assert.equal((await grid.drive(consulted))?.id, session.id);
    grid.close();
  });
});
