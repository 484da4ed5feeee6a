/**
 * `[state] read_local_only = false`: a revocation check that this engine's own copy does not
 * answer "revoked" asks the other engines, and answers once a majority of the engines (this one
 * included) has been heard, or one of them holds the revocation. A revocation is acknowledged
 * once a majority holds it, so the two majorities meet: an engine whose own copy missed an
 * acknowledged revocation still answers "revoked". With the default (true) the engine answers
 * from its own copy alone, at no cost, and may answer "not revoked" until the revocation
 * reaches it.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isCohortError } from '../../src/core/errors.js';
import { GridProvider } from '../../src/state/grid/grid-provider.js';
import { SimGrid } from '../helpers/sim-grid.js';
import { stateContract } from '../helpers/state-contract.js';

const TTL = { idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 };

/** Engine 3's providers with read_local_only true and false, over the same executor, each call driving the clock. */
function providersOf(grid: SimGrid, i: number): { local: GridProvider; consulting: GridProvider } {
  const e = grid.engines[i]!;
  return { local: e.provider, consulting: new GridProvider(e.executor, grid.clock, undefined, undefined, { readLocalOnly: false }) };
}

// The whole service contract holds with every check consulting the other engines.
stateContract('grid, three engines, read_local_only = false, each call through the next engine', async () => {
  const grid = await SimGrid.started(3, { readLocalOnly: false });
  return grid.contractHarness();
});

describe('read_local_only = false: revocation checks consult the other engines', () => {
  it('answers revoked on an engine whose own copy missed an acknowledged revocation, where read_local_only = true answers not revoked', async () => {
    const grid = await SimGrid.started(3);
    const session = await grid.provider(1).sessions.create({ subject: 'alice', ...TTL });
    // engine-3 hears nothing from engine-1 (one way): engine-1's revocation is acknowledged by engine-2 alone.
    grid.network.cutLink(grid.engines[0]!.address, grid.engines[2]!.address, true);
    await grid.provider(0).revocations.revoke(session.id);
    await grid.provider(0).revocations.revoke('token-7');
    await grid.advance(3000); // engine-1's resends to engine-3 are lost too
    assert.equal(grid.engines[2]!.store.has('revocation', session.id), false, "engine-3's own copy missed the revocation");

    const { local, consulting } = providersOf(grid, 2);
    assert.equal(await grid.drive(local.revocations.isRevoked('token-7')), false, 'read_local_only = true: its own copy answers');
    assert.equal(await grid.drive(consulting.revocations.isRevoked('token-7')), true, 'read_local_only = false: engine-2 holds it');
    // The session itself: a lookup and a listing through engine-3 no longer show it.
    assert.equal((await grid.drive(local.sessions.get(session.id)))?.id, session.id);
    assert.equal(await grid.drive(consulting.sessions.get(session.id)), undefined);
    assert.deepEqual((await grid.drive(local.sessions.listBySubject('alice'))).map((s) => s.id), [session.id]);
    assert.deepEqual(await grid.drive(consulting.sessions.listBySubject('alice')), []);
    assert.deepEqual((await grid.drive(consulting.sessions.pageBySubject('alice', { limit: 10 }))).sessions, []);
    // What nobody revoked is still not revoked, and what its own copy holds is answered at once.
    assert.equal(await grid.drive(consulting.revocations.isRevoked('never-revoked')), false);
    await grid.provider(2).revocations.revoke('token-8');
    assert.equal(await grid.drive(consulting.revocations.isRevoked('token-8')), true);
    grid.close();
  });

  it('fails closed (STATE_UNAVAILABLE) when no majority of the engines can be asked, where read_local_only = true still answers', async () => {
    const grid = await SimGrid.started(3);
    // engine-3 still sees the others as active, but none of them answers it.
    grid.network.partition([grid.engines[2]!.address], [grid.engines[0]!.address, grid.engines[1]!.address]);
    const { local, consulting } = providersOf(grid, 2);
    assert.equal(await grid.drive(local.revocations.isRevoked('token-1')), false);
    await assert.rejects(grid.drive(consulting.revocations.isRevoked('token-1')), (err: unknown) => isCohortError(err, 'STATE_UNAVAILABLE'));
    grid.close();
  });

  it('answers from its own copy when it is the only engine', async () => {
    const grid = await SimGrid.started(1, { readLocalOnly: false });
    const p = grid.provider(0);
    await p.revocations.revoke('token-1');
    assert.equal(await p.revocations.isRevoked('token-1'), true);
    assert.equal(await p.revocations.isRevoked('token-2'), false);
    grid.close();
  });
});
