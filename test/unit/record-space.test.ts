/** RecordSpace: a namespace's records, split by the key's leading partition number, behaving as one map. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StoredRecord } from '../../src/state/grid/grid-store.js';
import { RecordSpace, splitIndexOf } from '../../src/state/grid/record-space.js';

const record = (version: number): StoredRecord => ({ json: 'null', expiresAt: 1, version, partition: 0 });

describe('record space', () => {
  it('splits by the leading number before the first dot, below 1024; anything else shares one map', () => {
    const cases: Array<[string, number]> = [
      ['0.abc', 0], ['7.x', 7], ['270.Zz-_', 270], ['1023.a', 1023], ['0012.a', 12],
      ['1024.a', 1024], ['99999.a', -1], ['.abc', -1], ['abc', -1], ['', -1], ['12', -1], ['12x.a', -1], ['east.12.abc', -1], ['r-1', -1],
    ];
    for (const [key, index] of cases) assert.equal(splitIndexOf(key), index, key);
  });

  it('answers get, has, set, delete, size and iteration as one Map would, split or not', () => {
    // Few distinct keys, so that gets and deletes find what was set; the split's edges among them.
    const partition = fc.oneof(fc.constantFrom(0, 1, 9, 10, 270, 1022, 1023, 1024, 10_000), fc.nat(1100));
    const key = fc.oneof(
      fc.tuple(partition, fc.constantFrom('', 'a', 'b.c')).map(([p, rest]) => `${p}.${rest}`),
      fc.constantFrom('', 'x', '.a', 'east.3.a', '12', 'r-1'),
    );
    const op = fc.tuple(fc.constantFrom('set', 'delete', 'get'), key, fc.nat(1000));
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { minLength: 50, maxLength: 300 }), (split, ops) => {
        const space = new RecordSpace(split);
        const map = new Map<string, StoredRecord>();
        for (const [what, k, version] of ops) {
          if (what === 'set') {
            const r = record(version);
            space.set(k, r);
            map.set(k, r);
          } else if (what === 'delete') assert.equal(space.delete(k), map.delete(k));
          else {
            assert.equal(space.get(k), map.get(k));
            assert.equal(space.has(k), map.has(k));
          }
          assert.equal(space.size, map.size);
        }
        const seen = [...space].map(([k, r]) => [k, r.version]);
        assert.deepEqual(new Map(seen as Array<[string, number]>), new Map([...map].map(([k, r]) => [k, r.version])));
        assert.equal(seen.length, map.size, 'each key once');
        if (!split) assert.deepEqual([...space.entries()].map(([k]) => k), [...map.keys()], 'one map, in insertion order');
      }),
      { numRuns: 500 },
    );
  });

  it('may be deleted from while it is iterated, as a Map may (the sweep does)', () => {
    const space = new RecordSpace(true);
    for (let p = 0; p < 5; p++) for (let i = 0; i < 4; i++) space.set(`${p}.k${i}`, record(i));
    space.set('east.1.a', record(9));
    let visited = 0;
    for (const [k] of space) {
      visited++;
      space.delete(k);
    }
    assert.equal(visited, 21);
    assert.equal(space.size, 0);
    assert.deepEqual([...space], []);
  });
});
