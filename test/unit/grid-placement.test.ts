import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { changedPartitions, placePartitions, placeScopes, writeQuorum } from '../../src/state/grid/placement.js';
import { CLUSTER_SCOPE, scopedPartition } from '../../src/state/grid/scopes.js';
import { createHash } from 'node:crypto';
import { PARTITION_COUNT, partitionOf, RECENT_PARTITIONS_MAX, rememberedPartitions } from '../../src/state/grid/grid-provider.js';

const engines = (n: number): string[] => Array.from({ length: n }, (_, i) => `engine-${i + 1}`);

describe('grid placement (rendezvous hashing)', () => {
  it('gives every partition min(rf, N) distinct engines, the same on every node whatever the input order', () => {
    const a = placePartitions(engines(5), 271, 3);
    const b = placePartitions([...engines(5)].reverse(), 271, 3);
    assert.deepEqual(a, b);
    for (const set of a) assert.equal(new Set(set).size, 3);
    assert.ok(placePartitions(engines(2), 271, 3).every((s) => s.length === 2));
    assert.ok(placePartitions([], 271, 3).every((s) => s.length === 0));
  });

  it('hands out a placement computed before again, and never one of another engine set, replication factor or partition count', () => {
    const first = placePartitions(engines(4), 271, 3);
    assert.equal(placePartitions(engines(4), 271, 3), first, 'the same engines again: the same sets, not ranked again');
    const rf2 = placePartitions(engines(4), 271, 2);
    assert.ok(rf2.every((set, p) => set.length === 2 && set[0] === first[p]![0] && set[1] === first[p]![1]), 'another replication factor: the top two of the same ranking');
    assert.equal(placePartitions(engines(4), 7, 3).length, 7);
    const others = placePartitions(['engine-1', 'engine-2', 'engine-3', 'engine-5'], 271, 3);
    assert.ok(others.every((set) => !set.includes('engine-4')) && others.some((set) => set.includes('engine-5')));
    // Many engine sets in turn: the oldest are forgotten, and each set asked for again is right.
    for (let n = 1; n <= 100; n++) placePartitions(engines(n), 31, 3);
    assert.deepEqual(placePartitions(engines(4), 271, 3), first);
    assert.deepEqual(changedPartitions(new Map(first.map((set, p) => [p, set])), new Map(first.map((set, p) => [p, [...set]]))), [], 'equal sets that are not the same arrays are unchanged too');
  });

  // Hash placement is a fair lottery: each engine's count is binomial, so the check allows
  // four standard deviations around the mean (and these fixed ids always give the same sets).
  it('spreads primaries and replicas evenly (each count within 4 standard deviations of the mean)', () => {
    for (const n of [3, 5, 10]) {
      const placement = placePartitions(engines(n), 271, 3);
      const primaries = new Map<string, number>();
      const held = new Map<string, number>();
      for (const set of placement) {
        primaries.set(set[0]!, (primaries.get(set[0]!) ?? 0) + 1);
        for (const e of set) held.set(e, (held.get(e) ?? 0) + 1);
      }
      const bound = (p: number): { mean: number; slack: number } => ({ mean: 271 * p, slack: 4 * Math.sqrt(271 * p * (1 - p)) });
      const primary = bound(1 / n);
      const holder = bound(Math.min(3, n) / n);
      for (const e of engines(n)) {
        assert.ok(Math.abs((primaries.get(e) ?? 0) - primary.mean) <= primary.slack, `${n} engines: ${e} is primary of ${primaries.get(e)} (mean ${primary.mean.toFixed(1)})`);
        assert.ok(Math.abs((held.get(e) ?? 0) - holder.mean) <= holder.slack + 1e-9, `${n} engines: ${e} holds ${held.get(e)} (mean ${holder.mean.toFixed(1)})`);
      }
    }
  });

  it('moves only the partitions of an engine that leaves or joins', () => {
    const five = placePartitions(engines(5), 271, 3);
    const four = placePartitions(engines(4), 271, 3); // engine-5 left
    const asMap = (sets: ReturnType<typeof placePartitions>) => new Map(sets.map((set, p) => [p, set]));
    const changed = changedPartitions(asMap(five), asMap(four));
    for (let p = 0; p < 271; p++) {
      const touchedEngine5 = five[p]!.includes('engine-5');
      assert.equal(changed.includes(p), touchedEngine5, `partition ${p}`);
      // The survivors keep their order: an old backup becomes primary, nobody else moves up.
      if (touchedEngine5) assert.deepEqual(four[p]!.slice(0, 2), five[p]!.filter((e) => e !== 'engine-5').slice(0, 2));
    }
    assert.ok(changed.length < 271 * 0.8);
  });

  it('places each scope over its own members, on partitions of its own', () => {
    const info = [
      { id: 'engine-1', group: 'east', index: 1 },
      { id: 'engine-2', group: 'east', index: 2 },
      { id: 'engine-3', group: 'west', index: 3 },
      { id: 'engine-4', group: 'west', index: 4 },
      { id: 'engine-5', group: 'west', index: 5 },
    ];
    const placement = placeScopes(info, [CLUSTER_SCOPE, 'east', 'west', 'west|3,4', 'nobody'], 271, 3);
    const setsOf = (key: string) => Array.from({ length: 271 }, (_, p) => placement.get(scopedPartition(key, p)));
    assert.ok(setsOf(CLUSTER_SCOPE).every((s) => s!.length === 3), 'cluster-wide: any 3 of the 5');
    assert.deepEqual(setsOf(CLUSTER_SCOPE), placePartitions(engines(5), 271, 3), 'the cluster scope is the plain placement');
    assert.ok(setsOf('east').every((s) => s!.length === 2 && s!.every((e) => e === 'engine-1' || e === 'engine-2')));
    assert.ok(setsOf('west').every((s) => s!.length === 3 && s!.every((e) => ['engine-3', 'engine-4', 'engine-5'].includes(e))));
    assert.ok(setsOf('west|3,4').every((s) => s!.length === 2 && s!.every((e) => e === 'engine-3' || e === 'engine-4')));
    assert.ok(setsOf('nobody').every((s) => s === undefined), 'a scope without members has nothing placed');
    assert.equal(placement.size, 271 * 4);
  });

  it('write quorum is a majority of the replica set', () => {
    assert.deepEqual([1, 2, 3, 4, 5].map(writeQuorum), [1, 2, 2, 3, 3]);
  });

  it('maps a key to its partition by SHA-1, the same every time it is asked, also once the remembered keys were let go', () => {
    // Fixed for the life of a cluster, across versions: engines of two versions must agree.
    assert.equal(PARTITION_COUNT, 271);
    const bySha1 = (key: string): number => createHash('sha1').update(key).digest().readUInt32BE(0) % PARTITION_COUNT;
    for (const [key, partition] of [['subject:alice', bySha1('subject:alice')], ['bucket:std:access:subject:alice', bySha1('bucket:std:access:subject:alice')]] as const) {
      assert.equal(partitionOf(key), partition);
    }
    // More keys than are remembered, each asked for twice (once when new, once remembered or
    // let go), in an order that crosses the bound several times.
    const keys = Array.from({ length: RECENT_PARTITIONS_MAX * 2 + 500 }, (_, i) => `bucket:std:access:subject:user-${i}`);
    for (let i = 0; i < keys.length; i++) {
      assert.equal(partitionOf(keys[i]!), bySha1(keys[i]!));
      const again = keys[Math.max(0, i - 7)]!;
      assert.equal(partitionOf(again), bySha1(again), again);
      assert.ok(rememberedPartitions() <= RECENT_PARTITIONS_MAX);
    }
  });
});
