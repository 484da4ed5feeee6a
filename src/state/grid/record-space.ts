/**
 * One namespace's records by key (grid-store.ts): a map, split by what the key itself says
 * where the namespace's keys carry their partition.
 *
 * Session ids begin with their partition (`<partition>.<random>`, grid-provider.ts), and a
 * namespace of sessions held whole in one map of a million keys made every lookup of a load or
 * a join a miss in the processor's cache: records arrive a partition at a time, and a map of a
 * few thousand keys stays in the cache while its partition arrives (one map per partition took
 * a third of the time of one map of a million in a scratch measurement). The split is a pure
 * function of the key — its leading digits up to the first `.` — so one key always lands in
 * the same map, whatever partition a record of it is written to; keys without such a prefix
 * (a subcluster's session ids, `east.12.…`) share one map.
 *
 * A space that is not split is one map, in insertion order (the revocation list evicts its
 * oldest by that order).
 */
import type { StoredRecord } from './grid-store.js';

/** Keys whose leading number is below this are split by it; the rest share one map. */
const SPLIT_LIMIT = 1024;

/** The map index of `key`: its leading decimal number when it is followed by `.` and below SPLIT_LIMIT, else -1 (pure). */
export function splitIndexOf(key: string): number {
  let n = 0;
  for (let i = 0; i < 5; i++) {
    const c = key.charCodeAt(i);
    if (c === 46 /* . */) return i === 0 ? -1 : n;
    // NaN past the end fails the test as any non-digit does.
    if (!(c >= 48 && c <= 57)) return -1;
    n = n * 10 + (c - 48);
  }
  return -1;
}

export class RecordSpace {
  /** Keys split by their leading number (empty when the space is not split). */
  private readonly byIndex: Array<Map<string, StoredRecord> | undefined>;
  /** Every key of a space that is not split; the keys without a leading number of one that is. */
  private readonly rest = new Map<string, StoredRecord>();

  constructor(split: boolean) {
    this.byIndex = split ? new Array<Map<string, StoredRecord> | undefined>(SPLIT_LIMIT).fill(undefined) : [];
  }

  /** How many records (a sum over the maps: asked about once a second, by the sweep). */
  get size(): number {
    let n = this.rest.size;
    for (const map of this.byIndex) if (map !== undefined) n += map.size;
    return n;
  }

  get(key: string): StoredRecord | undefined {
    return this.mapOf(key)?.get(key);
  }

  has(key: string): boolean {
    return this.mapOf(key)?.has(key) ?? false;
  }

  set(key: string, record: StoredRecord): void {
    this.mapOf(key, true)!.set(key, record);
  }

  delete(key: string): boolean {
    return this.mapOf(key)?.delete(key) ?? false;
  }

  /** Every record, map by map (in insertion order within each); safe to delete from while iterating, as a Map is. */
  *entries(): Generator<[string, StoredRecord]> {
    yield* this.rest;
    for (const map of this.byIndex) if (map !== undefined) yield* map;
  }

  [Symbol.iterator](): Generator<[string, StoredRecord]> {
    return this.entries();
  }

  /** The map `key` belongs in; a split map not made yet is made with `create`, else undefined. */
  private mapOf(key: string, create = false): Map<string, StoredRecord> | undefined {
    const index = this.byIndex.length === 0 ? -1 : splitIndexOf(key);
    if (index < 0 || index >= SPLIT_LIMIT) return this.rest;
    return create ? (this.byIndex[index] ??= new Map()) : this.byIndex[index];
  }
}
