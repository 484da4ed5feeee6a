/**
 * The write majority: who may accept changes when engines fail or are cut off, with the
 * console and replica as witnesses when the engines are even in number.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { decideWrites, type WriteVotes } from '../../src/state/grid/write-majority.js';
import { SimGrid } from '../helpers/sim-grid.js';

describe('decideWrites', () => {
  const cases: Array<[string, WriteVotes, boolean]> = [
    ['one engine, alone', { knownEngines: 1, activeEngines: 1, knownWitnesses: 1, activeWitnesses: 0 }, true],
    ['console + 2 engines, all up', { knownEngines: 2, activeEngines: 2, knownWitnesses: 1, activeWitnesses: 1 }, true],
    ['console + 2 engines, the other engine crashed', { knownEngines: 2, activeEngines: 1, knownWitnesses: 1, activeWitnesses: 1 }, true],
    ['console + 2 engines, cut off from both', { knownEngines: 2, activeEngines: 1, knownWitnesses: 1, activeWitnesses: 0 }, false],
    ['console + 2 engines, console away, both engines up', { knownEngines: 2, activeEngines: 2, knownWitnesses: 1, activeWitnesses: 0 }, true],
    ['2 engines and no witness, the other crashed', { knownEngines: 2, activeEngines: 1, knownWitnesses: 0, activeWitnesses: 0 }, false],
    ['2 engines after the dead one was deleted', { knownEngines: 1, activeEngines: 1, knownWitnesses: 0, activeWitnesses: 0 }, true],
    ['console + replica + 2 engines, one engine crashed', { knownEngines: 2, activeEngines: 1, knownWitnesses: 2, activeWitnesses: 2 }, true],
    ['console + replica + 2 engines, one engine and the replica down', { knownEngines: 2, activeEngines: 1, knownWitnesses: 2, activeWitnesses: 1 }, false],
    // Odd engine counts: engines alone decide, so a console that is away changes nothing.
    ['3 engines, one crashed, console away', { knownEngines: 3, activeEngines: 2, knownWitnesses: 1, activeWitnesses: 0 }, true],
    ['3 engines, alone with the console', { knownEngines: 3, activeEngines: 1, knownWitnesses: 1, activeWitnesses: 1 }, false],
    ['4 engines, two crashed, console up', { knownEngines: 4, activeEngines: 2, knownWitnesses: 1, activeWitnesses: 1 }, true],
    ['4 engines split 2 | 2 + console: the side without the console', { knownEngines: 4, activeEngines: 2, knownWitnesses: 1, activeWitnesses: 0 }, false],
    ['5 engines, two crashed', { knownEngines: 5, activeEngines: 3, knownWitnesses: 2, activeWitnesses: 2 }, true],
    ['5 engines, three crashed', { knownEngines: 5, activeEngines: 2, knownWitnesses: 2, activeWitnesses: 2 }, false],
  ];
  for (const [name, votes, accepted] of cases) {
    it(`${name}: ${accepted ? 'accepts' : 'refuses'}`, () => assert.equal(decideWrites(votes).accepted, accepted));
  }

  it('never lets two disjoint groups both accept, for any split of engines and witnesses', () => {
    for (let engines = 1; engines <= 7; engines++) {
      for (let witnesses = 0; witnesses <= 2; witnesses++) {
        for (let a = 0; a <= engines; a++) {
          for (let wa = 0; wa <= witnesses; wa++) {
            const sideA = decideWrites({ knownEngines: engines, activeEngines: a, knownWitnesses: witnesses, activeWitnesses: wa });
            const sideB = decideWrites({ knownEngines: engines, activeEngines: engines - a, knownWitnesses: witnesses, activeWitnesses: witnesses - wa });
            const bothHaveEngines = a > 0 && engines - a > 0;
            assert.ok(!(bothHaveEngines && sideA.accepted && sideB.accepted), `${engines} engines, ${witnesses} witnesses, split ${a}+${wa} | ${engines - a}+${witnesses - wa}`);
          }
        }
      }
    }
  });
});

describe('write majority on the simulated grid (console + 2 engines)', () => {
  const session = { idleTimeoutMs: 600_000, maxLifetimeMs: 600_000 };

  it('the surviving engine keeps accepting writes after the other crashes, and revocations too', async () => {
    const grid = await SimGrid.started(2);
    const before = await grid.provider(0).sessions.create({ subject: 'before', ...session });
    grid.crash(1);
    grid.setView(0, [0], { knownEngines: 2, witnesses: { known: 1, active: 1 } });
    await grid.advance(100);
    assert.equal(grid.engines[0]!.executor.writeRefusal(), undefined);
    const after = await grid.provider(0).sessions.create({ subject: 'after', ...session });
    await grid.provider(0).revocations.revoke(before.id);
    assert.equal(await grid.provider(0).revocations.isRevoked(before.id), true);
    assert.equal((await grid.provider(0).sessions.get(after.id))?.subject, 'after');
    grid.close();
  });

  it('an engine cut off from the console and the other engine refuses writes; the other side accepts; they agree after healing', async () => {
    const grid = await SimGrid.started(2);
    const shared = await grid.provider(0).sessions.create({ subject: 'shared', ...session });
    const kept = await grid.provider(0).sessions.create({ subject: 'kept', ...session });
    // engine-1 is cut off from everyone; engine-2 still sees the console.
    grid.network.partition([grid.engines[0]!.address], [grid.engines[1]!.address]);
    grid.setView(0, [0], { knownEngines: 2, witnesses: { known: 1, active: 0 } });
    grid.setView(1, [1], { knownEngines: 2, witnesses: { known: 1, active: 1 } });
    await grid.advance(100);
    assert.match(grid.engines[0]!.executor.writeRefusal() ?? '', /sees 1 of 3 voters/);
    await assert.rejects(grid.provider(0).sessions.create({ subject: 'minority', ...session }), (e: Error & { code?: string }) => e.code === 'STATE_UNAVAILABLE');
    await assert.rejects(grid.provider(0).revocations.revoke(shared.id), (e: Error & { code?: string }) => e.code === 'STATE_UNAVAILABLE');
    const majority = await grid.provider(1).sessions.create({ subject: 'majority', ...session });
    await grid.provider(1).revocations.revoke(shared.id);
    // Reads still answer on the cut-off engine, from its own copy. (The revocation it refused to
    // acknowledge is kept here and sent on: a revocation errs on the side of refusing.)
    assert.equal((await grid.provider(0).sessions.get(kept.id))?.subject, 'kept');
    // Heal: both see each other and the console again.
    grid.network.healAll();
    grid.setView(0, [0, 1], { knownEngines: 2, witnesses: { known: 1, active: 1 } });
    grid.setView(1, [0, 1], { knownEngines: 2, witnesses: { known: 1, active: 1 } });
    await grid.advance(5000);
    for (const i of [0, 1]) {
      assert.equal((await grid.provider(i).sessions.get(majority.id))?.subject, 'majority', `engine ${i + 1} reads the majority's session`);
      assert.equal(await grid.provider(i).revocations.isRevoked(shared.id), true, `engine ${i + 1} sees the revocation`);
    }
    grid.close();
  });

  it('without a console witness, one engine alone refuses until the dead engine is deleted', async () => {
    const grid = await SimGrid.started(2);
    grid.crash(1);
    grid.setView(0, [0], { knownEngines: 2, witnesses: { known: 0, active: 0 } });
    await grid.advance(100);
    await assert.rejects(grid.provider(0).sessions.create({ subject: 'x', ...session }), (e: Error & { code?: string }) => e.code === 'STATE_UNAVAILABLE');
    // delete-node: the member list no longer knows engine-2.
    grid.setView(0, [0], { knownEngines: 1, witnesses: { known: 0, active: 0 } });
    const s = await grid.provider(0).sessions.create({ subject: 'x', ...session });
    assert.equal((await grid.provider(0).sessions.get(s.id))?.subject, 'x');
    grid.close();
  });
});
