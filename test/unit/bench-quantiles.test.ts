/** The percentiles of a bench row measured in slices (bench/quantiles.ts): request-weighted, exact on a single slice. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mergedPercentile } from '../../bench/quantiles.js';

const flat = (requests: number, ms: number) => ({ requests, points: [[1, ms], [50, ms], [99, ms], [100, ms]] as Array<[number, number]> });

describe('percentiles of slices together', () => {
  it('one slice gives its own points back', () => {
    const slice = { requests: 1000, points: [[1, 0.2], [50, 1.1], [99, 4.5], [100, 9]] as Array<[number, number]> };
    assert.equal(mergedPercentile([slice], 50), 1.1);
    assert.equal(mergedPercentile([slice], 99), 4.5);
    assert.equal(mergedPercentile([slice], 100), 9);
  });

  it('weighs slices by their requests', () => {
    assert.equal(mergedPercentile([flat(500, 1), flat(500, 3)], 50), 1);
    assert.equal(mergedPercentile([flat(500, 1), flat(500, 3)], 99), 3);
    assert.equal(mergedPercentile([flat(990, 1), flat(10, 100)], 99), 1);
    assert.equal(mergedPercentile([flat(980, 1), flat(20, 100)], 99), 100);
    assert.ok(Number.isNaN(mergedPercentile([], 50)));
  });
});
