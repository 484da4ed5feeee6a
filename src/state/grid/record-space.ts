/**
 * One namespace's records by key (grid-store.ts), held as columns: each key maps to a slot
 * number, and a slot's fields sit in arrays, one per field (the value's JSON text, the
 * version, the expiry, the partition, the tombstone flag, the secondary key, the origin).
 *
 * Why columns and not one object per record: an engine holds a million records and takes them
 * in a few seconds (a saved state's load, a joining engine's transfers). Each record as an
 * object came with two more (its version and expiry are beyond the small integers V8 keeps in
 * place, so each was a separate heap number), and every one of those objects was copied twice
 * by the young generation's collector and marked by every full collection while the store
 * grew: a scratch load of a million sessions spent half its CPU collecting garbage. With
 * columns the numbers live in typed arrays outside the heap, and a record read is made on
 * demand (`get`), short-lived and cheap to collect. The JSON text and keys stay strings. The
 * columns keep as many slots as the space ever held at once (37 bytes a slot; a deleted
 * record's strings are let go at once), and later records take the freed slots first.
 *
 * Keys are split into maps by what the key itself says where the namespace's keys carry their
 * partition. Session ids begin with their partition (`<partition>.<random>`, grid-provider.ts),
 * and a namespace of sessions held whole in one map of a million keys made every lookup of a
 * load or a join a miss in the processor's cache: records arrive a partition at a time, and a
 * map of a few thousand keys stays in the cache while its partition arrives (one map per
 * partition took a third of the time of one map of a million in a scratch measurement). The
 * split is a pure function of the key — its leading digits up to the first `.` — so one key
 * always lands in the same map, whatever partition a record of it is written to; keys without
 * such a prefix (a subcluster's session ids, `east.12.…`) share one map.
 *
 * A space that is not split is one map, in insertion order (the revocation list evicts its
 * oldest by that order); a key set again keeps its place, as in a Map.
 */
import type { StoredRecord } from './grid-store.js';

/** Keys whose leading number is below this are split by it; the rest share one map. */
const SPLIT_LIMIT = 1024;
/** Slots of the first block when a space is made; it doubles up to BLOCK. */
const INITIAL_SLOTS = 64;
const BLOCK_BITS = 12;
/** Slots of a whole block. */
const BLOCK = 1 << BLOCK_BITS;
const BLOCK_MASK = BLOCK - 1;

/**
 * One block of every column. The string columns are filled when made, so they never have a
 * hole and V8 keeps them as plain arrays.
 */
interface ColumnBlock {
  json: string[];
  index: Array<string | undefined>;
  origin: Array<string | undefined>;
  version: Float64Array;
  expiresAt: Float64Array;
  partition: Float64Array;
  deleted: Uint8Array;
}

function newBlock(slots: number): ColumnBlock {
  return {
    json: new Array<string>(slots).fill(''),
    index: new Array<string | undefined>(slots).fill(undefined),
    origin: new Array<string | undefined>(slots).fill(undefined),
    version: new Float64Array(slots),
    expiresAt: new Float64Array(slots),
    partition: new Float64Array(slots),
    deleted: new Uint8Array(slots),
  };
}

/** `block` copied into a new one of `slots` slots. */
function grownBlock(block: ColumnBlock, slots: number): ColumnBlock {
  const next = newBlock(slots);
  const n = block.version.length;
  for (let i = 0; i < n; i++) {
    next.json[i] = block.json[i]!;
    next.index[i] = block.index[i];
    next.origin[i] = block.origin[i];
  }
  next.version.set(block.version);
  next.expiresAt.set(block.expiresAt);
  next.partition.set(block.partition);
  next.deleted.set(block.deleted);
  return next;
}

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
  /** Keys split by their leading number (empty when the space is not split): key → slot. */
  private readonly byIndex: Array<Map<string, number> | undefined>;
  /** Every key of a space that is not split; the keys without a leading number of one that is. */
  private readonly rest = new Map<string, number>();
  private count = 0;

  /**
   * The columns, in blocks of BLOCK slots (the first grows to that size from a few slots, so a
   * small space stays small): a column that grew as one array was copied whole each time it
   * grew, and the copies' fresh pages cost a twentieth of a million-record load.
   */
  private readonly blocks: ColumnBlock[] = [newBlock(INITIAL_SLOTS)];
  /** Slots handed out so far (the next new one). */
  private slots = 0;
  /** Slots given up by deleted keys, taken again before new ones. */
  private readonly free: number[] = [];

  constructor(split: boolean) {
    this.byIndex = split ? new Array<Map<string, number> | undefined>(SPLIT_LIMIT).fill(undefined) : [];
  }

  /** How many records. */
  get size(): number {
    return this.count;
  }

  /** The record of `key`, made for this call (changing it changes nothing held), or undefined. */
  get(key: string): StoredRecord | undefined {
    const slot = this.mapOf(key)?.get(key);
    return slot === undefined ? undefined : this.recordAt(slot);
  }

  has(key: string): boolean {
    return this.mapOf(key)?.has(key) ?? false;
  }

  /** Holds `record`'s fields under `key` (the object itself is not kept). */
  set(key: string, record: StoredRecord): void {
    const map = this.mapOf(key, true)!;
    let slot = map.get(key);
    if (slot === undefined) {
      slot = this.takeSlot();
      map.set(key, slot);
      this.count++;
    }
    const b = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & BLOCK_MASK;
    b.json[i] = record.json;
    b.index[i] = record.index;
    b.origin[i] = record.origin;
    b.version[i] = record.version;
    b.expiresAt[i] = record.expiresAt;
    b.partition[i] = record.partition;
    b.deleted[i] = record.deleted === true ? 1 : 0;
  }

  delete(key: string): boolean {
    const map = this.mapOf(key);
    const slot = map?.get(key);
    if (slot === undefined) return false;
    map!.delete(key);
    this.count--;
    // The strings go with the record; the slot is used again.
    const b = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & BLOCK_MASK;
    b.json[i] = '';
    b.index[i] = undefined;
    b.origin[i] = undefined;
    this.free.push(slot);
    return true;
  }

  /** Every record, map by map (in insertion order within each); safe to delete from while iterating, as a Map is. */
  *entries(): Generator<[string, StoredRecord]> {
    for (const [key, slot] of this.rest) yield [key, this.recordAt(slot)];
    for (const map of this.byIndex) if (map !== undefined) for (const [key, slot] of map) yield [key, this.recordAt(slot)];
  }

  [Symbol.iterator](): Generator<[string, StoredRecord]> {
    return this.entries();
  }

  /**
   * A record as an object, its fields in the order record lines and the store make them (so
   * the objects share a few shapes).
   */
  private recordAt(slot: number): StoredRecord {
    const b = this.blocks[slot >>> BLOCK_BITS]!;
    const i = slot & BLOCK_MASK;
    const r: StoredRecord = { json: b.json[i]!, expiresAt: b.expiresAt[i]!, version: b.version[i]!, partition: b.partition[i]! };
    if (b.deleted[i] === 1) r.deleted = true;
    const index = b.index[i];
    if (index !== undefined) r.index = index;
    const origin = b.origin[i];
    if (origin !== undefined) r.origin = origin;
    return r;
  }

  private takeSlot(): number {
    const reused = this.free.pop();
    if (reused !== undefined) return reused;
    const slot = this.slots++;
    const last = this.blocks.length - 1;
    const room = (last << BLOCK_BITS) + this.blocks[last]!.version.length;
    if (slot === room) {
      // The first block doubles until it is a whole block; past it, whole blocks are added.
      if (last === 0 && room < BLOCK) this.blocks[0] = grownBlock(this.blocks[0]!, room * 2);
      else this.blocks.push(newBlock(BLOCK));
    }
    return slot;
  }

  /** The map `key` belongs in; a split map not made yet is made with `create`, else undefined. */
  private mapOf(key: string, create = false): Map<string, number> | undefined {
    const index = this.byIndex.length === 0 ? -1 : splitIndexOf(key);
    if (index < 0 || index >= SPLIT_LIMIT) return this.rest;
    return create ? (this.byIndex[index] ??= new Map()) : this.byIndex[index];
  }
}
