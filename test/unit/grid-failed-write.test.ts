/**
 * A write that fails to replicate is undone everywhere before the client hears of it, and
 * stays undone: a backup that took it but missed the revert (cut off at that moment) gets the
 * revert when it is back, and no engine takes the undone copy from it in a sync.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CLUSTER_ROUTING } from '../../src/state/grid/grid-provider.js';
import { GridStore } from '../../src/state/grid/grid-store.js';
import { SimGrid } from '../helpers/sim-grid.js';

describe('a write that failed to replicate', () => {
  it('is never readable anywhere, even from a backup that took it and was cut off before the revert', async () => {
    const grid = await SimGrid.started(3);
    const key = 'failed-write';
    const partition = CLUSTER_ROUTING.partition('state', `state:${key}`);
    const [primaryId, backupId] = grid.engines[0]!.executor.replicasOf(partition);
    const primary = grid.engines.findIndex((e) => e.id === primaryId);
    const backup = grid.engines.findIndex((e) => e.id === backupId);
    const p = grid.engines[primary]!;
    const b = grid.engines[backup]!;

    // The backup's answers are lost: the primary times out waiting for it.
    grid.network.cutLink(b.address, p.address, true);
    const put = p.provider.requestState.put(key, 'never acknowledged', 600_000).then(
      () => 'acknowledged',
      (err: Error & { code?: string }) => err.code,
    );
    // The backup takes the write; then the link the other way breaks too: no revert reaches it.
    for (let i = 0; i < 200 && !b.store.has('state', key); i++) await grid.advance(1);
    assert.ok(b.store.has('state', key), 'the backup took the write');
    grid.network.cutLink(p.address, b.address, true);
    let outcome: string | undefined;
    void put.then((o) => (outcome = o));
    for (let i = 0; i < 100 && outcome === undefined; i++) await grid.advance(50);
    assert.equal(outcome, 'STATE_UNAVAILABLE');
    for (const e of grid.engines) if (e !== b) assert.equal(e.store.has('state', key), false, `${e.id} undid the write before the client heard of it`);

    // The link heals and the backup reappears (membership saw it fail, then come back).
    grid.network.healAll();
    const all = grid.engines.map((_, i) => i);
    grid.setActive(all.filter((i) => i !== backup));
    await grid.advance(500);
    grid.setActive(all);
    await grid.advance(5000);
    for (let i = 0; i < grid.engines.length; i++) {
      assert.equal(await grid.provider(i).requestState.get(key), undefined, `${grid.engines[i]!.id} answers the same: nothing`);
      assert.equal(grid.engines[i]!.store.has('state', key), false, `${grid.engines[i]!.id} holds no copy of the undone write`);
    }
    grid.close();
  });
});

describe('undone-write markers in the store', () => {
  const future = 1_800_000_000_000 + 3_600_000;

  it('a marker arriving where the undone version is held puts the record back as it was', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const primary = new GridStore(clock, 'p');
    const backup = new GridStore(clock, 'b');
    const first = primary.set('state', 'k', 'acknowledged', future, 7);
    backup.merge({ ns: 'state', key: 'k', record: { ...first } });
    primary.startJournal();
    const undone = primary.set('state', 'k', 'never acknowledged', future, 7);
    const journal = primary.takeJournal();
    backup.merge({ ns: 'state', key: 'k', record: { ...undone } });
    primary.startJournal();
    primary.undo(journal);
    const [, marker] = primary.takeJournal().map((e) => e.change);
    assert.equal(marker?.ns, 'undone');
    // The revert is lost; only the marker reaches the backup (a sync of the partition).
    backup.merge(marker!);
    assert.equal(backup.get('state', 'k'), 'acknowledged');
    // And the undone copy is refused from then on, wherever it comes from.
    assert.equal(backup.merge({ ns: 'state', key: 'k', record: { ...undone } }), false);
    assert.equal(primary.merge({ ns: 'state', key: 'k', record: { ...undone } }), false);
  });

  it('a revert never brings an undone version back: it puts back what came before it', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'p');
    const first = store.set('state', 'k', 'acknowledged', future, 7);
    store.startJournal();
    const undone = store.set('state', 'k', 'undone here', future, 7);
    store.undo(store.takeJournal());
    assert.equal(store.get('state', 'k'), 'acknowledged');
    // Another replica missed that revert, wrote on top of the undone version, and undid its
    // own write: its revert names the undone version as the one to put back.
    const later = { json: '"later"', expiresAt: future, version: undone.version + 10, partition: 7, origin: 'q' };
    store.merge({ ns: 'state', key: 'k', record: later });
    store.merge({ ns: 'state', key: 'k', record: { ...undone }, ifVersion: later.version, ifOrigin: 'q' });
    assert.equal(store.get('state', 'k'), 'acknowledged');
    assert.equal(store.record('state', 'k')?.version, first.version);
  });
});
