import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { WarningLimiter } from '../../src/core/warning-limiter.js';

describe('WarningLimiter', () => {
  it('logs a key once a window, then again after the window', () => {
    const limiter = new WarningLimiter(1000, 10);
    assert.deepEqual(limiter.check('a', 0), { log: true });
    assert.equal(limiter.check('a', 500).log, false);
    assert.deepEqual(limiter.check('b', 600), { log: true });
    assert.deepEqual(limiter.check('a', 1000), { log: true });
  });

  it('stops admitting keys when full instead of starting over, and summarises what it held back a window after the first held back', () => {
    const limiter = new WarningLimiter(1000, 3);
    let logged = 0;
    const summaries: number[] = [];
    for (let i = 0; i < 10_000; i++) {
      const verdict = limiter.check(`host-${i}`, i / 100); // 10,000 distinct sources within 100 ms
      if (verdict.log) logged++;
      else if (verdict.summary) summaries.push(verdict.summary.suppressed);
    }
    assert.equal(logged, 3);
    assert.deepEqual(summaries, []);
    // The next window: the summary counts everything held back since the last one (this one too).
    const next = limiter.check('host-x', 1100);
    assert.equal(next.log, true);
    const after = limiter.check('host-x', 1200);
    assert.deepEqual(after, { log: false, summary: { suppressed: 9998, windowMs: 1000 } });
  });
});
