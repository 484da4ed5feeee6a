/**
 * Adaptive placement: which engines hold each partition. Pure functions, table-tested in
 * test/unit/grid-placement.test.ts. Each scope (scopes.ts: cluster-wide, a subcluster, a
 * directed set of engines) is placed the same way over its own members.
 *
 * Rendezvous (highest-random-weight) hashing: every engine gets a score per partition, and
 * the `replicationFactor` highest scores form the partition's replica set, highest first
 * (the primary). Every node computes the same sets from the same member list, and when an
 * engine joins or leaves only the partitions it scores high on move: about 1/N of them.
 */
import { createHash } from 'node:crypto';
import { quorumSize } from '../../rpc/rpc.js';
import { scopeMembers, scopedPartition, type EngineScopeInfo } from './scopes.js';

/** Replica sets of one scope's partitions, by partition (0 … count - 1). */
export type ReplicaSets = readonly (readonly string[])[];

/** Replica sets of every scope in use, by scope-wide partition number (scopes.ts). */
export type Placement = ReadonlyMap<number, readonly string[]>;

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

/**
 * Placements computed lately, by engine list, partition count and replication factor: a
 * membership change that leaves a scope's engines as they were (a member's state or metadata
 * changed, an engine of another scope came or went), and an engine set seen again (a restart
 * that ended), cost a lookup instead of ranking every engine for every partition. The sets are
 * read-only and shared.
 */
const placementCache = new Map<string, ReplicaSets>();
const PLACEMENT_CACHE_LIMIT = 64;

/** Replica sets of `partitions` partitions over `engines` (ids), each of min(rf, N) engines. */
export function placePartitions(engines: readonly string[], partitions: number, replicationFactor: number): ReplicaSets {
  const key = `${partitions}\u0000${replicationFactor}\u0000${engines.join('\u0000')}`;
  const cached = placementCache.get(key);
  if (cached) return cached;
  const placed = rankPartitions(engines, partitions, replicationFactor);
  // Oldest first out (Map order): enough for the engine sets a cluster goes through.
  if (placementCache.size >= PLACEMENT_CACHE_LIMIT) placementCache.delete(placementCache.keys().next().value!);
  placementCache.set(key, placed);
  return placed;
}

function rankPartitions(engines: readonly string[], partitions: number, replicationFactor: number): ReplicaSets {
  const size = Math.min(replicationFactor, engines.length);
  const scored = engines.map((e) => ({ e, s: scoresOf(e, partitions) }));
  const out: string[][] = [];
  for (let p = 0; p < partitions; p++) {
    const ranked = scored.map(({ e, s }) => ({ e, s: s[p]! })).sort((a, b) => b.s - a.s || (a.e < b.e ? -1 : 1));
    out.push(ranked.slice(0, size).map((r) => r.e));
  }
  return out;
}

/**
 * The placement of every scope in `scopeKeys` over the engines that hold state: each scope's
 * partitions over that scope's members (scopes.ts). A scope with no member has no partitions
 * placed (its operations fail as unavailable).
 */
export function placeScopes(engines: readonly EngineScopeInfo[], scopeKeys: Iterable<string>, partitions: number, replicationFactor: number): Placement {
  const out = new Map<number, readonly string[]>();
  for (const key of new Set(scopeKeys)) {
    const members = scopeMembers(key, engines);
    if (members.length === 0) continue;
    placePartitions(members, partitions, replicationFactor).forEach((set, p) => out.set(scopedPartition(key, p), set));
  }
  return out;
}

/** Partitions placed in `after` whose replica set differs from `before` (order included: a new primary counts). */
export function changedPartitions(before: Placement, after: Placement): number[] {
  const changed: number[] = [];
  for (const [p, b] of after) {
    const a = before.get(p) ?? [];
    if (a === b) continue; // the same set (placements are shared: see placementCache)
    if (a.length !== b.length || a.some((e, i) => e !== b[i])) changed.push(p);
  }
  return changed;
}

/** A majority of `n` engines (the rpc layer's majority quorum). */
export function writeQuorum(n: number): number {
  return quorumSize('majority', n);
}
