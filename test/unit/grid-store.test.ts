/** GridStore details the service contract does not reach: the revocation cap. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { EVERYWHERE } from '../../src/state/grid/grid-provider.js';
import { GridStore } from '../../src/state/grid/grid-store.js';

const HOUR = 3_600_000;

describe('grid store: revocation cap', () => {
  it('evicts the oldest revocations past the cap, counts them, and refuses evicted copies from other engines', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1', 1000);
    for (let i = 0; i < 1500; i++) {
      store.set('revocation', `r-${i}`, true, clock.now() + HOUR, EVERYWHERE);
      clock.advance(1);
    }
    assert.equal(store.size('revocation'), 1000);
    assert.equal(store.revocationsEvicted, 500);
    assert.equal(store.has('revocation', 'r-499'), false, 'the oldest went first');
    assert.equal(store.has('revocation', 'r-500'), true);
    assert.equal(store.has('revocation', 'r-1499'), true);

    // Another engine that still holds r-10 offers it in a sync: refused, it was evicted here.
    const other = new GridStore(clock, 'engine-2');
    other.set('revocation', 'r-10', true, clock.now() + HOUR, EVERYWHERE);
    const old = { ns: 'revocation' as const, key: 'r-10', record: { ...other.record('revocation', 'r-10')!, version: 1 } };
    assert.equal(store.merge(old), false);
    assert.equal(store.has('revocation', 'r-10'), false);
    // A newer one is taken, and the oldest held makes room for it.
    assert.equal(store.merge({ ns: 'revocation', key: 'r-new', record: other.record('revocation', 'r-10')! }), true);
    assert.equal(store.size('revocation'), 1000);
    assert.equal(store.has('revocation', 'r-500'), false);
    assert.equal(store.revocationsEvicted, 501);
    // Other namespaces have no cap.
    for (let i = 0; i < 1500; i++) store.set('state', `k-${i}`, i, clock.now() + HOUR, 1);
    assert.equal(store.size('state'), 1500);
  });
});

describe('grid store: sweeping everything at once', () => {
  it('removes every expired record in one call, even behind a slice of live ones', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    for (let i = 0; i < 12_000; i++) store.set('state', `live-${i}`, i, clock.now() + HOUR, 1);
    for (let i = 0; i < 3_000; i++) store.set('state', `short-${i}`, i, clock.now() + 1000, 1);
    clock.advance(2000);
    assert.equal(store.sweepAll(), 3_000);
    assert.equal(store.size('state'), 12_000);
  });
});
