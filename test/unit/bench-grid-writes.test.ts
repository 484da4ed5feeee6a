/**
 * `npm run bench:grid-writes` ends with one line other tools read: its format.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { summaryLine } from '../../bench/grid-writes.js';

it('the last line of bench:grid-writes reads `grid-writes: grid <N>/s redis <N>/s ratio <R>`', () => {
  assert.equal(summaryLine({ writesPerSecond: 15022.4, redisWritesPerSecond: 36907.79 }), 'grid-writes: grid 15022/s redis 36908/s ratio 0.41');
  assert.equal(summaryLine({ writesPerSecond: 15022.4, redisWritesPerSecond: undefined }), 'grid-writes: grid 15022/s redis n/a ratio n/a', 'no Redis reachable');
});
