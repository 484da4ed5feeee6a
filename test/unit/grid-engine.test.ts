/**
 * The grid engine (src/state/grid/grid-engine.ts), the one wiring the node, the simulator and
 * the tests' simulated grid share: the directory it reads from a member list, the saved state
 * it loads or sets aside at start, and the staged join of an engine started afresh.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import type { Member, MemberStatus } from '../../src/cluster/member-list.js';
import type { NodeMeta } from '../../src/node/node-meta.js';
import { Rpc } from '../../src/rpc/rpc.js';
import { SimGridState } from '../../src/sim/sim-grid-state.js';
import { SimNetwork } from '../../src/sim/sim-network.js';
import { engineDirectoryView, type GridDirectory } from '../../src/state/grid/grid-directory.js';
import { openGridEngine } from '../../src/state/grid/grid-engine.js';
import { partitionOf } from '../../src/state/grid/grid-provider.js';
import { GridStore, TOMBSTONE_MS } from '../../src/state/grid/grid-store.js';
import { CLUSTER_SCOPE, scopeKeys } from '../../src/state/grid/scopes.js';
import { TransportMux } from '../../src/transport/mux.js';
import { SimGrid } from '../helpers/sim-grid.js';

const TTL = { idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 };

function member(id: string, status: MemberStatus, meta: Partial<NodeMeta>): Member {
  return { id, address: `${id}:7946`, incarnation: 1, status, meta: { role: 'engine', version: '1.0.0', mode: 'sideband', group: null, ...meta }, statusSince: 0, clockOffsetMs: 0 };
}

describe('grid engine directory over a member list', () => {
  const members = [
    member('e1', 'alive', { holdsState: true, index: 1 }),
    member('e2', 'suspect', { holdsState: true, group: 'eu', scopes: ['eu'], sessionScope: 'eu' }),
    member('e3', 'alive', { engineCount: 5 }),
    member('e4', 'dead', { holdsState: true, group: 'us', scopes: ['us'], engineCount: 9 }),
    member('e5', 'left', { holdsState: true, scopes: ['gone'] }),
    member('c1', 'alive', { role: 'console' }),
    member('r1', 'dead', { role: 'replica' }),
    member('c2', 'left', { role: 'console' }),
  ];
  const view = engineDirectoryView(() => members);

  it('active engines are the alive and suspect ones; serving ones also announced that they hold state', () => {
    assert.deepEqual([...view.activeEngines()], [['e1', 'e1:7946'], ['e2', 'e2:7946'], ['e3', 'e3:7946']]);
    assert.deepEqual([...view.servingEngines()].sort(), ['e1', 'e2']);
  });

  it('known engines and witnesses count every member that did not leave', () => {
    assert.equal(view.knownEngineCount(), 4);
    assert.deepEqual([...view.knownEngineIds()].sort(), ['e1', 'e2', 'e3', 'e4']);
    assert.deepEqual(view.witnesses(), { known: 2, active: 1 });
  });

  it('the engines the others count: the most any active engine announces (a failed one\'s count is not read)', () => {
    assert.equal(view.announcedEngineCount(), 5);
    assert.equal(engineDirectoryView(() => members.slice(0, 2)).announcedEngineCount(), 0);
  });

  it('scopes: every known engine group and index, the keys of members that did not leave, and a group\'s session scope', () => {
    assert.deepEqual(view.engineScopeInfo().get('e1'), { id: 'e1', group: null, index: 1 });
    assert.deepEqual(view.engineScopeInfo().get('e4'), { id: 'e4', group: 'us', index: null });
    assert.deepEqual([...view.scopeKeysInUse()].sort(), [CLUSTER_SCOPE, 'eu', 'us'].sort());
    assert.equal(view.sessionScopeOfGroup('eu'), 'eu');
    assert.equal(view.sessionScopeOfGroup('us'), 'us', 'no session scope told: the group itself');
    assert.equal(view.sessionScopeOfGroup('asia'), undefined);
  });
});

describe('grid engine saved state', () => {
  /**
   * Engines on a simulated network whose active engines the test sets (one list for all);
   * `engine-N` is at 10.1.0.N. `othersCount`: the most engines another engine announces it
   * counts in the cluster.
   */
  function setUp(active: string[], othersCount = 0, bulkTimeoutMs = 1000) {
    const clock = new ManualClock(1_800_000_000_000);
    const network = new SimNetwork(clock, seededRandom(1));
    const addressOf = (id: string): string => `10.1.0.${Number(id.split('-')[1])}:8020`;
    const serving = new Set<string>();
    /** What engine-1 announced. */
    const announced: string[] = [];
    const openAs = (self: string, disk: SimGridState) => {
      const { clock: own, transport } = network.addNode(self, addressOf(self));
      const mux = new TransportMux(transport);
      void transport.start(mux.handlers());
      const rpc = new Rpc({ mux, clock: own, logger: silentLogger(), timeoutMs: 500 });
      const told = (what: string): void => void (self === 'engine-1' && announced.push(what));
      const directory: GridDirectory = {
        clock: own,
        activeEngines: () => new Map(active.map((id) => [id, addressOf(id)])),
        servingEngines: () => new Set([...serving].filter((id) => active.includes(id))),
        suspectEngines: () => new Set<string>(),
        knownEngineCount: () => active.length,
        knownEngineIds: () => new Set(active),
        announcedEngineCount: () => othersCount,
        announceEngineCount: (count) => told(`engineCount=${count}`),
        witnesses: () => ({ known: 0, active: 0 }),
        engineScopeInfo: () => new Map(),
        scopeKeysInUse: () => new Set([CLUSTER_SCOPE]),
        sessionScopeOfGroup: () => undefined,
        announceHoldsState: () => {
          serving.add(self);
          told('holdsState');
        },
        announceWriteRefusal: (refusing) => told(`refusesWrites=${refusing}`),
        onMembersChanged: () => undefined,
      };
      return openGridEngine({ self, directory, rpc, logger: silentLogger(), replicationFactor: 3, bulkTimeoutMs, scopeKeys: scopeKeys({ architecture: 'adaptive', groupId: null, interGroup: [], preferredNodeIndices: {} }), savedState: disk });
    };
    const open = (disk: SimGridState) => openAs('engine-1', disk);
    return { clock, open, openAs, announced };
  }

  async function diskWithOneSession(clock: ManualClock): Promise<SimGridState> {
    const disk = new SimGridState(clock);
    const store = new GridStore(clock, 'engine-1');
    store.set('session', 's-1', { id: 's-1' }, clock.now() + 3_600_000, 7);
    await disk.save(store);
    return disk;
  }

  it('a lone engine loads what it saved, serves, marks the saved state served and announces it holds state', async () => {
    const { clock, open, announced } = setUp(['engine-1']);
    const disk = await diskWithOneSession(clock);
    clock.advance(TOMBSTONE_MS + 1); // a full stop: however old, nothing changed meanwhile
    const engine = await open(disk);
    assert.deepEqual(engine.savedStateAtStart, { kind: 'loaded', loaded: 1, records: 1 });
    for (let i = 0; i < 20 && !engine.ready; i++) {
      clock.advance(10);
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(engine.ready, true);
    assert.deepEqual(engine.store.get('session', 's-1'), { id: 's-1' });
    assert.ok(announced.includes('holdsState'));
    const servedSince = disk.saved()?.servedSince;
    assert.ok(servedSince !== undefined && servedSince > disk.saved()!.savedAt, 'the saved state is marked as served from');
    engine.close();
  });

  /** Advances the simulated time by `ms` in small steps, letting the engine's promises run. */
  async function run(clock: ManualClock, ms: number): Promise<void> {
    for (let t = 0; t < ms; t += 10) {
      clock.advance(10);
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  it('an engine restarted alone that remembers a cluster of three does not serve on its own: it waits for a majority of them, then serves and forgets them', async () => {
    const active = ['engine-1'];
    const { clock, open, openAs, announced } = setUp(active);
    const disk = await diskWithOneSession(clock);
    disk.rememberEngines(['engine-1', 'engine-2', 'engine-3']);
    const engine = await open(disk);
    await run(clock, 5000); // well past bulk_revocation_timeout (1 s here)
    assert.equal(engine.ready, false, 'alone, it would accept writes the rest of the cluster also accepts');
    assert.match(engine.notReadyReasons().join(), /needs 2 of the cluster's 3 engines.*1 in view/);
    assert.ok(announced.includes('engineCount=3'), 'announced, so that an engine started beside it waits too');
    assert.ok(!announced.includes('holdsState'));
    assert.deepEqual(disk.rememberedEngines(), ['engine-1', 'engine-2', 'engine-3'], 'still remembered should it stop again before it serves');
    // A second engine of the cluster comes into view, restarted with the same memory.
    const secondDisk = new SimGridState(clock);
    secondDisk.rememberEngines(['engine-1', 'engine-2', 'engine-3']);
    active.push('engine-2');
    const second = await openAs('engine-2', secondDisk);
    engine.applyMembership();
    for (let i = 0; i < 30 && !(engine.ready && second.ready); i++) await run(clock, 1000);
    assert.equal(engine.ready, true, 'a majority of the remembered engines is in view');
    assert.ok(announced.includes('holdsState'));
    engine.applyMembership();
    assert.equal(announced.at(-1), 'engineCount=2', 'serving, it counts the engines membership knows, no longer its earlier run');
    assert.equal(second.ready, true);
    assert.deepEqual(second.store.get('session', 's-1'), { id: 's-1' }, 'a full start serves what the engines saved');
    assert.deepEqual(disk.rememberedEngines(), ['engine-1', 'engine-2'], 'from then on membership decides what is kept');
    engine.close();
    second.close();
  });

  it('at a full start, an engine asks one still loading its saved state again within moments, not after the repair delay', async () => {
    const { clock, openAs, announced } = setUp(['engine-1', 'engine-2'], 0, 60_000);
    const firstDisk = await diskWithOneSession(clock);
    /** engine-2's disk: its load waits until the test lets it finish. */
    class SlowDisk extends SimGridState {
      finish: () => void = () => undefined;
      private readonly gate = new Promise<void>((resolve) => (this.finish = resolve));
      override async load(store: GridStore) {
        await this.gate;
        return super.load(store);
      }
    }
    const secondDisk = new SlowDisk(clock);
    const secondStore = new GridStore(clock, 'engine-2');
    secondStore.set('session', 's-2', { id: 's-2' }, clock.now() + 3_600_000, 8);
    await secondDisk.save(secondStore);
    const opening = openAs('engine-2', secondDisk);
    const first = await openAs('engine-1', firstDisk);
    // engine-1 asks engine-2 (still loading: RPC_NO_HANDLER) again and again; the load ends
    // half-way between two of the repair delay's retries.
    await run(clock, 3500);
    assert.ok(!announced.includes('holdsState'), 'a full start waits for every engine while bulk_revocation_timeout lasts');
    secondDisk.finish();
    const second = await opening;
    await run(clock, 300);
    // Its download done, it announces that it holds state (being seen serving, which makes it
    // ready, takes membership rounds this test does not run).
    assert.ok(announced.includes('holdsState'), 'downloaded within a few retries of the other engine\'s load ending');
    assert.deepEqual(first.store.get('session', 's-2'), { id: 's-2' }, 'with what the other engine saved');
    first.close();
    second.close();
  });

  it('a new engine beside one that announces a larger earlier cluster waits for a majority of that cluster too', async () => {
    const { clock, open, announced } = setUp(['engine-1', 'engine-9'], 5);
    const engine = await open(new SimGridState(clock));
    await run(clock, 5000);
    assert.equal(engine.ready, false);
    assert.match(engine.notReadyReasons().join(), /needs 3 of the cluster's 5 engines.*2 in view/);
    assert.match(engine.writeRefusal() ?? '', /sees 2 of 5 voters/, 'writes count the engines another engine counts, too');
    assert.deepEqual(announced.filter((a) => a.startsWith('engineCount')), ['engineCount=2'], 'a new engine counts the engines it knows');
    engine.close();
  });

  it('sets aside, unloaded, a saved state older than the cluster remembers deletions when other engines run', async () => {
    const { clock, open } = setUp(['engine-1', 'engine-2']);
    const disk = await diskWithOneSession(clock);
    clock.advance(TOMBSTONE_MS + 1);
    const engine = await open(disk);
    assert.equal(engine.savedStateAtStart.kind, 'stale');
    assert.equal(disk.setAsideCount, 1);
    assert.equal(engine.store.get('session', 's-1'), undefined);
    engine.close();
  });

  it('keeps the replay ids it witnesses across a graceful stop: the next start refuses them again; expired ones are dropped', async () => {
    const { clock, open } = setUp(['engine-1']);
    const disk = await diskWithOneSession(clock);
    const engine = await open(disk);
    await run(clock, 200);
    const now = clock.now();
    // As a witness for another engine's partition (grid.witness): held here, not in the store.
    assert.equal(engine.executor.replayWitnesses.restore([['assertion-1', now + 60_000], ['assertion-2', now + 1_000], ['assertion-old', now - 1]]), 2);
    assert.equal(engine.store.has('replay', 'assertion-1'), false);
    await engine.shutdown();
    assert.deepEqual(disk.witnesses(), [['assertion-1', now + 60_000], ['assertion-2', now + 1_000]]);

    clock.advance(5_000); // assertion-2 expires while the engine is down
    const again = await open(disk);
    assert.equal(again.executor.replayWitnesses.holds('assertion-1'), true, 'witnessed before the stop: still seen');
    assert.equal(again.executor.replayWitnesses.holds('assertion-2'), false, 'expired meanwhile');
    assert.equal(again.executor.replayWitnesses.size, 1);
    again.close();

    // A restart without a graceful stop keeps what the last one saved: nothing is lost, nothing invented.
    const third = await open(disk);
    assert.equal(third.executor.replayWitnesses.holds('assertion-1'), true);
    third.close();
  });
});

describe('grid engine staged join (simulated grid, staged)', () => {
  it('the others place partitions on a restarted engine only once it synchronised and announced that it holds state', async () => {
    const grid = await SimGrid.started(3, { stagedJoin: true });
    const ids: string[] = [];
    for (let i = 0; i < 30; i++) ids.push((await grid.provider(i % 3).sessions.create({ subject: `user-${i}`, ...TTL })).id);
    const placedOn = (observer: number, id: string): boolean => [...grid.engines[observer]!.executor.placedPartitions().values()].some((set) => set.includes(id));
    assert.ok(placedOn(0, 'engine-3'));
    grid.crash(2);
    grid.setActive([0, 1], [0, 1]);
    await grid.advance(500);
    assert.equal(placedOn(0, 'engine-3'), false, 'a crashed engine holds nothing');
    const fresh = grid.restart(2);
    grid.setActive([0, 1, 2]);
    assert.equal(fresh.executor.ready, false);
    assert.equal(placedOn(0, 'engine-3'), false, 'not placed on before it announced');
    await grid.untilReady();
    assert.ok(grid.holdsState.has('engine-3'));
    assert.ok(placedOn(0, 'engine-3'), 'placed on once it announced');
    for (const id of ids) {
      const replicas = grid.engines[0]!.executor.replicasOf(Number(id.split('.')[0]));
      if (replicas.includes('engine-3')) assert.ok(fresh.store.get('session', id), `${id} on the restarted engine`);
      for (const i of grid.live()) assert.ok(await grid.provider(i).sessions.get(id), `${id} readable on ${grid.engines[i]!.id}`);
    }
    grid.close();
  });
});

describe('grid engine write majority', () => {
  it('does not count suspect engines as seen: an engine on the far side of a split, still suspect here, lets no two sides both accept writes', async () => {
    const grid = await SimGrid.started(5);
    // Engines 4 and 5 are cut off with engine 3 on their side; engine 1 (with 2) has declared
    // 4 and 5 failed and still suspects 3: it sees 2 engines alive of 5 known, not 3.
    grid.setView(0, [0, 1, 2], { knownEngines: 5, witnesses: { known: 0, active: 0 }, suspects: [2] });
    assert.match(grid.engines[0]!.executor.writeRefusal() ?? '', /sees 2 of 5 voters/);
    await assert.rejects(grid.provider(0).revocations.revoke('token-1'), (err: { code?: string; message?: string }) => err.code === 'STATE_UNAVAILABLE' && /sees 2 of 5 voters/.test(err.message ?? ''));
    // Engine 3 answers a probe again: 3 of 5, writes accepted.
    grid.setView(0, [0, 1, 2], { knownEngines: 5, witnesses: { known: 0, active: 0 } });
    assert.equal(grid.engines[0]!.executor.writeRefusal(), undefined);
    await grid.provider(0).revocations.revoke('token-2');
    grid.close();
  });
});

describe('grid engine replay witnesses', () => {
  it('accepts a replay id on at most one side of a split even when both sides still count an engine across it, with more engines than replicas', async () => {
    const grid = await SimGrid.started(7);
    const ids = grid.engines.map((e) => e.address);
    // Engines 0-2 are cut off from 3-6. Side A (0-2) still counts engine 3, which no one
    // suspects yet: 4 of 7 engines. Side B (3-6) sees 4 of 7 as well.
    grid.network.partition(ids.slice(0, 3), ids.slice(3));
    for (const i of [0, 1, 2]) grid.setView(i, [0, 1, 2, 3], { knownEngines: 7, witnesses: { known: 0, active: 0 } });
    for (const i of [3, 4, 5, 6]) grid.setView(i, [3, 4, 5, 6], { knownEngines: 7, witnesses: { known: 0, active: 0 } });
    await grid.advance(200);
    let acceptedOnA = 0;
    let acceptedOnB = 0;
    for (let n = 0; n < 40; n++) {
      const id = `assertion-${n}`;
      const [a, b] = await Promise.allSettled([grid.provider(n % 3).replay.checkAndInsert(id, 60_000), grid.provider(3 + (n % 4)).replay.checkAndInsert(id, 60_000)]);
      if (a.status === 'fulfilled' && a.value) acceptedOnA++;
      if (b.status === 'fulfilled' && b.value) acceptedOnB++;
      assert.ok(!(a.status === 'fulfilled' && a.value && b.status === 'fulfilled' && b.value), `${id} accepted on both sides`);
    }
    assert.equal(acceptedOnA, 0, 'side A reaches no majority of the engines: 3 replicas and a witness across the split');
    assert.equal(acceptedOnB, 40, 'side B, a true majority, accepts every id once');
    const held = grid.engines.slice(3).reduce((sum, e) => sum + e.executor.replayWitnesses.size, 0);
    assert.ok(held >= 40, `every id accepted on side B is held by a witness besides its 3 replicas (${held})`);
    grid.close();
  });

  it('needs no witness while the replicas are a majority of the engines (5 engines, 3 replicas)', async () => {
    const grid = await SimGrid.started(5);
    for (let n = 0; n < 20; n++) assert.equal(await grid.provider(n % 5).replay.checkAndInsert(`assertion-${n}`, 60_000), true);
    assert.equal(await grid.provider(1).replay.checkAndInsert('assertion-3', 60_000), false);
    assert.equal(grid.engines.reduce((sum, e) => sum + e.executor.replayWitnesses.size, 0), 0);
    grid.close();
  });
});

describe('grid engine revocation anti-entropy', () => {
  it('an engine cut off while a revocation was acknowledged gets it even when its sender fails before resending it', async () => {
    const grid = await SimGrid.started(3);
    const [a, , c] = grid.engines;
    grid.network.cutLink(a!.address, c!.address);
    // Acknowledged by engines 1 and 2 (a majority of three); engine 3 is cut off from the sender.
    await grid.provider(0).revocations.revoke('token-1');
    assert.equal(grid.engines[2]!.store.has('revocation', 'token-1'), false);
    // The sender fails before its resend; engine 3 was never declared failed by anyone.
    grid.crash(0);
    grid.network.healAll();
    grid.setActive([1, 2]);
    await grid.advance(10_000);
    assert.equal(grid.engines[2]!.store.has('revocation', 'token-1'), true, 'engine 3 learned the revocation from engine 2');
    assert.equal(await grid.provider(2).revocations.isRevoked('token-1'), true);
    grid.close();
  });
});

describe('grid engine transfers during a write', () => {
  it('a partition pulled while a change of it is being replicated comes as it was before the change, so a revert of the change cannot take the puller\'s copy', async () => {
    const grid = await SimGrid.started(3);
    const ids = grid.engines.map((e) => e.id);
    // A state key whose primary is engine 1.
    let key = '';
    for (let i = 0; key === ''; i++) if (grid.engines[0]!.executor.replicasOf(partitionOf(`state:k-${i}`))[0] === ids[0]) key = `k-${i}`;
    const partition = partitionOf(`state:${key}`);
    const backup = ids.indexOf(grid.engines[0]!.executor.replicasOf(partition)[1]!);
    const other = [1, 2].find((i) => i !== backup)!;
    await grid.provider(0).requestState.put(key, 'acknowledged', 3_600_000);
    // The change's replication to one backup is lost: it stays in flight until its timeout.
    grid.network.cutLink(grid.engines[0]!.address, grid.engines[backup]!.address, true);
    const write = grid.provider(0).requestState.put(key, 'in flight', 3_600_000).then(
      () => 'acknowledged',
      (err: { code?: string }) => err.code,
    );
    await grid.advance(2);
    const pulled = await grid.drive(grid.engines[other]!.rpc.call<{ text: string }>(grid.engines[0]!.address, 'grid.pull', { partitions: [partition] }));
    assert.match(pulled.text, /"acknowledged"/, 'the value before the change');
    assert.doesNotMatch(pulled.text, /in flight/, 'not the change in flight');
    assert.equal(await write, 'STATE_UNAVAILABLE');
    grid.network.healAll();
    for (const i of [0, 1, 2]) assert.equal(await grid.provider(i).requestState.get(key), 'acknowledged');
    grid.close();
  });
});
