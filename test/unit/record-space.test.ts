/** RecordSpace: a namespace's records, split by the key's leading partition number, behaving as one map. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StoredRecord } from '../../src/state/grid/grid-store.js';
import { RecordSpace, splitIndexOf } from '../../src/state/grid/record-space.js';

const record = (version: number): StoredRecord => ({ json: 'null', expiresAt: 1, version, partition: 0 });

/** A record with every field set or not, so a slot used again shows whether anything of its last record stayed. */
const anyRecord = fc.record(
  {
    json: fc.constantFrom('null', '{"a":1}', '"x"'),
    expiresAt: fc.oneof(fc.constant(Number.POSITIVE_INFINITY), fc.integer({ min: 1, max: 2 ** 52 })),
    version: fc.integer({ min: 0, max: 2 ** 53 - 1 }),
    partition: fc.integer({ min: -1, max: 5000 }),
    deleted: fc.constant(true as const),
    index: fc.constantFrom('u-1', 'u-2'),
    origin: fc.constantFrom('engine-1', 'engine-2'),
  },
  { requiredKeys: ['json', 'expiresAt', 'version', 'partition'] },
);

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
    const op = fc.tuple(fc.constantFrom('set', 'delete', 'get'), key, anyRecord);
    fc.assert(
      fc.property(fc.boolean(), fc.array(op, { minLength: 50, maxLength: 300 }), (split, ops) => {
        const space = new RecordSpace(split);
        const map = new Map<string, StoredRecord>();
        for (const [what, k, r] of ops) {
          if (what === 'set') {
            space.set(k, r);
            map.set(k, { ...r });
          } else if (what === 'delete') assert.equal(space.delete(k), map.delete(k));
          else {
            // The space keeps a record's fields, not the object: an equal record comes back.
            assert.deepEqual(space.get(k), map.get(k));
            assert.equal(space.has(k), map.has(k));
          }
          assert.equal(space.size, map.size);
        }
        const seen = [...space];
        assert.deepEqual(new Map(seen), map);
        assert.equal(seen.length, map.size, 'each key once');
        if (!split) assert.deepEqual([...space.entries()].map(([k]) => k), [...map.keys()], 'one map, in insertion order');
      }),
      { numRuns: 500 },
    );
  });

  it('hands out copies: changing a record read changes nothing held', () => {
    const space = new RecordSpace(true);
    space.set('3.a', { json: '{"n":1}', expiresAt: 10, version: 7, partition: 3, index: 'u-1', origin: 'engine-1' });
    const read = space.get('3.a')!;
    read.json = 'changed';
    read.version = 99;
    read.deleted = true;
    delete read.index;
    assert.deepEqual(space.get('3.a'), { json: '{"n":1}', expiresAt: 10, version: 7, partition: 3, index: 'u-1', origin: 'engine-1' });
  });

  it('keeps every field of a million records exactly (versions and expiries past 2^32)', () => {
    const space = new RecordSpace(true);
    const base = 1_800_000_000_000 * 1024;
    for (let i = 0; i < 1_000_000; i++) space.set(`${i % 1024}.k${i}`, { json: `${i}`, expiresAt: base + i, version: base + 2 * i, partition: i % 1024 });
    assert.equal(space.size, 1_000_000);
    // Across the first block's growth (64 slots doubling) and the edges of whole blocks (4,096 slots).
    for (const i of [0, 1, 63, 64, 65, 4095, 4096, 4097, 8191, 8192, 524_287, 999_999]) assert.deepEqual(space.get(`${i % 1024}.k${i}`), { json: `${i}`, expiresAt: base + i, version: base + 2 * i, partition: i % 1024 });
  });

  it('uses the slots of deleted keys again, across blocks, without anything of their last record', () => {
    const space = new RecordSpace(false);
    for (let i = 0; i < 10_000; i++) space.set(`k${i}`, { json: `${i}`, expiresAt: i, version: i, partition: i, deleted: true, index: `u${i}`, origin: 'engine-1' });
    for (let i = 0; i < 10_000; i += 2) space.delete(`k${i}`);
    for (let i = 0; i < 5_000; i++) space.set(`n${i}`, { json: 'null', expiresAt: 1, version: 2, partition: 3 });
    assert.equal(space.size, 10_000);
    for (let i = 0; i < 5_000; i++) assert.deepEqual(space.get(`n${i}`), { json: 'null', expiresAt: 1, version: 2, partition: 3 });
    for (let i = 1; i < 10_000; i += 2) assert.deepEqual(space.get(`k${i}`), { json: `${i}`, expiresAt: i, version: i, partition: i, deleted: true, index: `u${i}`, origin: 'engine-1' });
    assert.equal([...space].length, 10_000);
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
