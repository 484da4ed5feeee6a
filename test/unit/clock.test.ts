import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';

describe('ManualClock', () => {
  it('fires timers in due order, ties in creation order, only when time reaches them', () => {
    const clock = new ManualClock(1000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push('b@20'), 20);
    clock.setTimeout(() => fired.push('a@10'), 10);
    clock.setTimeout(() => fired.push('c@20'), 20);
    clock.advance(9);
    assert.deepEqual(fired, []);
    clock.advance(11);
    assert.deepEqual(fired, ['a@10', 'b@20', 'c@20']);
    assert.equal(clock.now(), 1020);
  });

  it('shows a timer the time it was due, and runs timers created while advancing', () => {
    const clock = new ManualClock(0);
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 5);
    }, 10);
    clock.advance(100);
    assert.deepEqual(seen, [10, 15]);
    assert.equal(clock.now(), 100);
  });

  it('cancels a timer', () => {
    const clock = new ManualClock(0);
    let fired = false;
    const h = clock.setTimeout(() => (fired = true), 5);
    clock.clearTimeout(h);
    clock.advance(10);
    assert.equal(fired, false);
    assert.equal(clock.pendingCount, 0);
  });
});
