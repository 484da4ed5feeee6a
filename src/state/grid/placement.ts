/**
 * Adaptive placement: which engines hold each partition. Pure functions, table-tested in
 * test/unit/grid-placement.test.ts.
 *
 * Rendezvous (highest-random-weight) hashing: every engine gets a score per partition, and
 * the `replicationFactor` highest scores form the partition's replica set, highest first
 * (the primary). Every node computes the same sets from the same member list, and when an
 * engine joins or leaves only the partitions it scores high on move: about 1/N of them.
 */
import { createHash } from 'node:crypto';

export type Placement = readonly (readonly string[])[];

function score(partition: number, engine: string): number {
  return createHash('sha1').update(`${partition}\u0000${engine}`).digest().readUInt32BE(0);
}

/** Replica sets of `partitions` partitions over `engines` (ids), each of min(rf, N) engines. */
export function placePartitions(engines: readonly string[], partitions: number, replicationFactor: number): Placement {
  const size = Math.min(replicationFactor, engines.length);
  const out: string[][] = [];
  for (let p = 0; p < partitions; p++) {
    const ranked = engines.map((e) => ({ e, s: score(p, e) })).sort((a, b) => b.s - a.s || (a.e < b.e ? -1 : 1));
    out.push(ranked.slice(0, size).map((r) => r.e));
  }
  return out;
}

/** Partitions whose replica set differs between two placements (order included: a new primary counts). */
export function changedPartitions(before: Placement, after: Placement): number[] {
  const changed: number[] = [];
  for (let p = 0; p < after.length; p++) {
    const a = before[p] ?? [];
    const b = after[p]!;
    if (a.length !== b.length || a.some((e, i) => e !== b[i])) changed.push(p);
  }
  return changed;
}

/** How many replicas must hold a write before it is acknowledged: a majority of the set. */
export function writeQuorum(replicaSetSize: number): number {
  return Math.floor(replicaSetSize / 2) + 1;
}
