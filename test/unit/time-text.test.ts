/** isoText: the text Date#toISOString gives, for any time; isoTime keeps null. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isoText, isoTime } from '../../src/core/time-text.js';

describe('isoText', () => {
  it('formats exactly as toISOString over the whole range it writes out itself', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253_402_300_799_999 }), (ms) => {
        assert.equal(isoText(ms), new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });

  it('is right at the edges of days, years, leap days and its own range, and over many days in turn (its cache of days starts again)', () => {
    const edges = [0, 1, 999, 1000, 59_999, 60_000, 3_599_999, 3_600_000, 86_399_999, 86_400_000, Date.UTC(2024, 1, 29, 23, 59, 59, 999), Date.UTC(2024, 2, 1), Date.UTC(1999, 11, 31, 23, 59, 59, 999), Date.UTC(2000, 0, 1), 253_402_300_799_999];
    for (const ms of edges) assert.equal(isoText(ms), new Date(ms).toISOString(), String(ms));
    for (let day = 0; day < 200; day++) {
      const ms = Date.UTC(2026, 0, 1) + day * 86_400_000 + ((day * 7_919_777) % 86_400_000);
      assert.equal(isoText(ms), new Date(ms).toISOString());
    }
  });

  it('leaves what it does not write out to toISOString: before 1970, from the year 10000, fractions, and what is not a time', () => {
    for (const ms of [-1, -86_400_001, -62_198_755_200_000, 253_402_300_800_000, 8_640_000_000_000_000, 1.5, 1_700_000_000_000.25]) {
      assert.equal(isoText(ms), new Date(ms).toISOString(), String(ms));
    }
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 8_640_000_000_000_001]) assert.throws(() => isoText(bad), RangeError);
  });

  it('isoTime: null stays null', () => {
    assert.equal(isoTime(null), null);
    assert.equal(isoTime(86_400_000), '1970-01-02T00:00:00.000Z');
  });
});
