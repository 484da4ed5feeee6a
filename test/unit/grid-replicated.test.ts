/**
 * The replicated grid on the simulated network: the state contract through any engine of a
 * three-engine grid, and what must survive engine failures.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EVERYWHERE, partitionOfSessionId } from '../../src/state/grid/grid-provider.js';
import { applyOperation } from '../../src/state/grid/operations.js';
import { SimGrid } from '../helpers/sim-grid.js';
import { stateContract } from '../helpers/state-contract.js';

stateContract('grid, three engines, each call through the next engine', async () => {
  const grid = await SimGrid.started(3);
  return grid.contractHarness();
});

describe('replicated grid under failures', () => {
  it('keeps every acknowledged session readable from every engine after its primary crashes', async () => {
    const grid = await SimGrid.started(5);
    const any = grid.anyEngine();
    const sessions = [];
    for (let i = 0; i < 60; i++) sessions.push(await any.sessions.create({ subject: `user-${i}`, idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 }));
    // Crash the engine that is primary of the most sessions.
    const primaryOf = (id: string): string => grid.engines[0]!.executor.replicasOf(partitionOfSessionId(id)!)[0]!;
    const counts = new Map<string, number>();
    for (const s of sessions) counts.set(primaryOf(s.id), (counts.get(primaryOf(s.id)) ?? 0) + 1);
    const victimId = [...counts].sort((a, b) => b[1] - a[1])[0]![0];
    const victim = grid.engines.findIndex((e) => e.id === victimId);
    grid.crash(victim);
    const survivors = grid.live();
    grid.setActive(survivors);
    for (const i of survivors) {
      for (const s of sessions) {
        const got = await grid.provider(i).sessions.get(s.id);
        assert.equal(got?.subject, s.subject, `${grid.engines[i]!.id} reads ${s.id} (primary was ${primaryOf(s.id)})`);
      }
    }
  });

  it('loses no acknowledged write with replication_factor - 1 engines down at once, and heals when they return', async () => {
    const grid = await SimGrid.started(5);
    const any = grid.anyEngine();
    const ids = [];
    for (let i = 0; i < 40; i++) ids.push((await any.sessions.create({ subject: `s-${i}`, idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 })).id);
    grid.crash(1);
    grid.crash(3);
    grid.setActive([0, 2, 4]);
    for (const id of ids) assert.ok(await grid.provider(0).sessions.get(id), `${id} survived two failures`);
    // Writes still work on the three survivors, and the two engines come back empty and resync.
    const later = (await grid.provider(2).sessions.create({ subject: 'later', idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 })).id;
    grid.restart(1);
    grid.restart(3);
    grid.setActive([0, 1, 2, 3, 4]);
    await grid.untilReady();
    for (const id of [...ids, later]) assert.ok(await grid.provider(3).sessions.get(id), `${id} readable from the returned engine`);
  });

  it('accepts a replay id once even when every engine is asked at the same moment', async () => {
    const grid = await SimGrid.started(5);
    for (let round = 0; round < 10; round++) {
      const verdicts = await Promise.all(grid.live().map((i) => grid.provider(i).replay.checkAndInsert(`assertion-${round}`, 60_000)));
      assert.equal(verdicts.filter(Boolean).length, 1, `round ${round}: ${verdicts}`);
    }
  });

  it('answers 503 (STATE_UNAVAILABLE) rather than accepting a replay id without a majority', async () => {
    const grid = await SimGrid.started(3);
    grid.crash(1);
    grid.crash(2);
    // Engine 0 has not yet heard of the failures: it still sees three engines.
    let answered = 0;
    let unavailable = 0;
    for (let i = 0; i < 20; i++) {
      try {
        await grid.provider(0).replay.checkAndInsert(`id-${i}`, 60_000);
        answered++;
      } catch (err) {
        assert.equal((err as { code?: string }).code, 'STATE_UNAVAILABLE');
        unavailable++;
      }
    }
    assert.equal(answered, 0, 'no replay id accepted without a majority of its replicas');
    assert.equal(unavailable, 20);
  });

  it('spreads revocations to every engine, and a starting engine downloads them before it is ready', async () => {
    const grid = new SimGrid(4);
    grid.setActive([0, 1, 2], [0, 1, 2]); // engine 4 has not started yet
    for (let t = 0; t < 2000 && ![0, 1, 2].every((i) => grid.engines[i]!.executor.ready); t += 10) await grid.advance(10);
    await grid.provider(1).revocations.revoke('token-1');
    for (const i of [0, 1, 2]) assert.equal(await grid.provider(i).revocations.isRevoked('token-1'), true);
    grid.setActive([0, 1, 2, 3]);
    assert.equal(grid.engines[3]!.executor.ready, false);
    await grid.untilReady();
    assert.equal(grid.engines[3]!.store.get('revocation', 'token-1'), true, 'downloaded at start');
  });

  it('compares revocation lists with a joining engine once it serves, not while it downloads them', async () => {
    const grid = new SimGrid(4, { stagedJoin: true });
    grid.setActive([0, 1, 2], [0, 1, 2]); // engine 4 has not started yet
    for (let t = 0; t < 5000 && ![0, 1, 2].every((i) => grid.engines[i]!.executor.ready); t += 10) await grid.advance(10);
    await grid.provider(1).revocations.revoke('token-1');
    // Engine 4 starts with a revocation the others never had (from its saved state).
    const joiner = grid.engines[3]!;
    applyOperation(joiner.store, { t: 'revocation.put', id: 'token-saved', expiresAt: grid.clock.now() + 3_600_000 }, grid.clock.now(), EVERYWHERE);
    // Transfers the others start with it before it announced that it holds its share: pulls
    // from it, pushes to it.
    const transfersWhileStarting: string[] = [];
    grid.watchDeliveries(({ fromId, to, payload }) => {
      const method = /"m":"(grid\.pull|grid\.mergeLines)"/.exec(Buffer.from(payload).toString('latin1'))?.[1];
      if (to === joiner.address && method && !grid.holdsState.has(joiner.id)) transfersWhileStarting.push(`${method} from ${fromId}`);
    });
    grid.setActive([0, 1, 2, 3]);
    await grid.untilReady();
    assert.equal(joiner.store.get('revocation', 'token-1'), true, 'downloaded at start');
    assert.deepEqual(transfersWhileStarting, [], 'no engine pulled from or pushed to it before it served');
    // Once it serves, the lists are compared: the others take what only it held.
    for (let t = 0; t < 5000 && ![0, 1, 2].every((i) => grid.engines[i]!.store.get('revocation', 'token-saved') === true); t += 10) await grid.advance(10);
    for (const i of [0, 1, 2]) assert.equal(grid.engines[i]!.store.get('revocation', 'token-saved'), true, `${grid.engines[i]!.id} has the joiner's revocation`);
    grid.close();
  });
});
