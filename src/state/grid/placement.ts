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
import { quorumSize } from '../../rpc/rpc.js';

export type Placement = readonly (readonly string[])[];

/** Scores of one engine for every partition; an engine's scores never change, so they are kept. */
const scoreCache = new Map<string, Uint32Array>();
const SCORE_CACHE_LIMIT = 10_000;

function scoresOf(engine: string, partitions: number): Uint32Array {
  const cached = scoreCache.get(engine);
  if (cached && cached.length === partitions) return cached;
  const scores = new Uint32Array(partitions);
  for (let p = 0; p < partitions; p++) scores[p] = createHash('sha1').update(`${p}\u0000${engine}`).digest().readUInt32BE(0);
  if (scoreCache.size >= SCORE_CACHE_LIMIT) scoreCache.clear();
  scoreCache.set(engine, scores);
  return scores;
}

/** Replica sets of `partitions` partitions over `engines` (ids), each of min(rf, N) engines. */
export function placePartitions(engines: readonly string[], partitions: number, replicationFactor: number): Placement {
  const size = Math.min(replicationFactor, engines.length);
  const scored = engines.map((e) => ({ e, s: scoresOf(e, partitions) }));
  const out: string[][] = [];
  for (let p = 0; p < partitions; p++) {
    const ranked = scored.map(({ e, s }) => ({ e, s: s[p]! })).sort((a, b) => b.s - a.s || (a.e < b.e ? -1 : 1));
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

/** A majority of `n` engines (the rpc layer's majority quorum). */
export function writeQuorum(n: number): number {
  return quorumSize('majority', n);
}
