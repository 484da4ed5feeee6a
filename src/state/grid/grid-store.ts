/**
 * One engine's in-memory share of the grid: records by namespace and key, each with an
 * expiry. Reads never return an expired record; a sweep removes them in slices so a large
 * store never blocks the event loop.
 *
 * Every mutation goes through `set` / `delete` and gets a version from a hybrid logical
 * clock (wall-clock milliseconds x 1024, never going backwards, and ahead of every version
 * seen from other engines), so versions from successive primaries of a partition still order
 * correctly. The replicated grid ships (key, record) pairs and a replica keeps the newer
 * version (`merge`), so applying a shipment twice is harmless. A delete leaves a tombstone
 * for TOMBSTONE_MS, so an older copy arriving late cannot bring the record back.
 */
import type { Clock, TimerHandle } from '../../core/clock.js';
import { RecordSpace } from './record-space.js';

export interface StoredRecord {
  /**
   * The value as JSON text. Kept serialized: a record is copied to replicas, transfers and
   * the saved state far more often than it is read, and the text is also smaller in memory
   * than the object it stands for. `get` parses it (so callers never share a mutable value).
   */
  json: string;
  expiresAt: number;
  version: number;
  /** The partition the record belongs to (-1: held by every engine, e.g. revocations). */
  partition: number;
  /** A tombstone: the record was deleted at `version`. */
  deleted?: true;
  /**
   * A secondary key the store indexes this record under (a session's subject), so records
   * are found by it (`keysByIndex`) without a replicated index record of their own.
   */
  index?: string;
  /**
   * The engine whose write made this version. Versions of two engines can be equal (same
   * millisecond), so a revert and an undone-write marker name both (`ifVersion`, `ifOrigin`).
   * Saved and transferred with the record (record-lines.ts).
   */
  origin?: string;
}

/** One changed record, as shipped between replicas. */
export interface RecordChange {
  ns: Namespace;
  key: string;
  record: StoredRecord;
  /**
   * A revert (undo of a write that was not acknowledged): applies only where the record is
   * still at this version, and puts `record` back as it was, or removes the key when
   * `record.version` is 0 (there was nothing before).
   */
  ifVersion?: number;
  ifOrigin?: string;
}

/** A change and the record it replaced (undefined: there was none), to undo a failed write. */
export interface JournalEntry {
  change: RecordChange;
  previous: StoredRecord | undefined;
}

/**
 * How long a deletion is remembered, so late copies of the record stay dead (ms). It also
 * bounds how old a saved grid state may be when an engine rejoins a running cluster
 * (state/grid/grid-state-file.ts): older, it could bring deleted records back, so it is dropped.
 */
export const TOMBSTONE_MS = 15 * 60_000;

/** Namespaces of the grid: one per service. */
/**
 * `undone` holds markers, not state: "version V of record K was written and then undone" (a
 * write not acknowledged), with the record as it was before (see `undo`). A marker lives in
 * the partition of the record it concerns, so it travels with it wherever records go (to
 * backups with the revert, in syncs, hand-offs and the saved state): a copy of the undone
 * version that is still somewhere (a backup that took the write but missed the revert) is
 * then never merged again, and an engine holding it puts the record back when the marker
 * reaches it. Without markers a sync would spread the undone write: its version is newer
 * than the restored record's.
 */
export const NAMESPACES = ['session', 'revocation', 'lockout', 'replay', 'artifact', 'state', 'token', 'bucket', 'undone'] as const;
export type Namespace = (typeof NAMESPACES)[number];

/**
 * A partition's fingerprint, kept up to date on every change: the number of records and two
 * sums (mod 2^32) of independent 32-bit hashes of each record's namespace, key and version.
 * Sums, not XOR: equal records never cancel out, and nearby versions do not collide. Two
 * engines with the same fingerprint hold the same records (with odds of a chance match of
 * about 2^-64), so a sync skips the transfer.
 */
interface Fingerprint {
  count: number;
  a: number;
  b: number;
  /** `digest`'s text, made when first asked after a change (syncs ask for every partition). */
  text: string | undefined;
}

/** Murmur3's finalizer: spreads every input bit over the output. */
function fmix(h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return h ^ (h >>> 16);
}

/** Two independent 32-bit hashes of (ns, key, version), added into a partition's fingerprint. */
function recordHashes(ns: string, key: string, version: number): [number, number] {
  // The namespace, a 0, then the key, one character at a time (written out, not as a helper
  // closure: one made per record held or changed is a cost of its own, more so in the bundle).
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  const length = ns.length + 1 + key.length;
  for (let i = 0; i < length; i++) {
    const c = i < ns.length ? ns.charCodeAt(i) : i === ns.length ? 0 : key.charCodeAt(i - ns.length - 1);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  const lo = version % 0x1_0000_0000 | 0;
  const hi = Math.floor(version / 0x1_0000_0000) | 0;
  return [fmix(a ^ lo ^ Math.imul(hi, 0x9e3779b1)), fmix(b ^ hi ^ Math.imul(lo, 0x85ebca6b))];
}

/** The fingerprint of a partition of which nothing is held. */
export const EMPTY_DIGEST = '0:0:0';

/** Most revocations an engine holds by default (`[state] revocation_cap`); beyond, the oldest are evicted. */
export const DEFAULT_REVOCATION_CAP = 1_000_000;

/**
 * `text` as one contiguous string. V8 builds a long JSON.stringify result from several pieces
 * joined by reference (a "cons string": about 160 bytes more for a 460-character session,
 * a sixth of what a stored session costs); a string held for hours is worth flattening once.
 * Converting it to a number makes V8 flatten it in place (the pieces are freed at the next
 * garbage collection); the number is kept where the optimizing compiler cannot prove it
 * unused, or it would drop the conversion.
 */
function flattened(text: string): string {
  flattenSink.n = Number(text);
  return text;
}
const flattenSink = { n: 0 };

/**
 * Namespaces whose keys begin with their partition (session ids), held split by it
 * (record-space.ts): the only one that grows to millions of records. The others keep one map
 * each, in insertion order.
 */
const SPLIT_NAMESPACES: ReadonlySet<Namespace> = new Set(['session']);

const SWEEP_EVERY_MS = 1000;
const SWEEP_SLICE = 10_000;

export class GridStore {
  private readonly spaces = new Map<Namespace, RecordSpace>();
  private sweepTimer: TimerHandle | undefined;
  private lastVersion = 0;
  /** Changes made since `startJournal` (with what each record was before), to ship or undo. */
  private journal: JournalEntry[] | undefined;
  private readonly cursors = new Map<Namespace, Iterator<[string, StoredRecord]>>();
  /** Which keys each partition has, by namespace, so a partition is exported without a full scan. */
  private readonly byPartition = new Map<number, Map<Namespace, Set<string>>>();
  private readonly fingerprints = new Map<number, Fingerprint>();
  /**
   * Secondary keys (`StoredRecord.index`) → the key, or keys, of the live records under them,
   * by partition and namespace. Kept per partition because records arrive a partition at a time
   * (a saved state's load, a joining engine's transfers): filing a million subjects into maps of
   * a few thousand each, while each is in the processor's cache, took a third of the time that
   * one map of a million took. Records filed under one index share a partition (a subject's
   * sessions are placed by the subject), which is where `keysByIndex` is asked.
   */
  private readonly secondary = new Map<number, Map<Namespace, Map<string, string | string[]>>>();
  private readonly origins = new Map<string, string>();
  /**
   * Revocations at or below this version were evicted (the list was at its cap): copies of
   * them arriving from other engines are refused, so engines converge on the same newest ones
   * and a sync does not bring evicted revocations back.
   */
  private revocationFloor = 0;
  /** Revocations evicted since this store started (reported by the engine). */
  revocationsEvicted = 0;

  /**
   * `origin`: this engine's id, written into the records it makes (see StoredRecord.origin).
   * `revocationCap`: most revocations held; past it the oldest (first stored) are evicted.
   */
  constructor(
    private readonly clock: Clock,
    private readonly origin?: string,
    private readonly revocationCap = DEFAULT_REVOCATION_CAP,
  ) {}

  /** Starts the periodic expiry sweep. */
  start(): void {
    this.scheduleSweep();
  }

  stop(): void {
    this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  get(ns: Namespace, key: string): unknown {
    const r = this.record(ns, key);
    return r === undefined ? undefined : JSON.parse(r.json);
  }

  /** True when a live record is there (no parsing). */
  has(ns: Namespace, key: string): boolean {
    return this.record(ns, key) !== undefined;
  }

  /** The record itself (with expiry and version), if live. */
  record(ns: Namespace, key: string): StoredRecord | undefined {
    const r = this.spaces.get(ns)?.get(key);
    if (!r || r.deleted) return undefined;
    if (r.expiresAt <= this.clock.now()) {
      this.remove(ns, key);
      return undefined;
    }
    return r;
  }

  /**
   * Each record is made with all its fields at once, stamped with this engine as its origin (a
   * field added to an object after it was made goes to a separate property store: about 40
   * bytes more per record held).
   */
  set(ns: Namespace, key: string, value: unknown, expiresAt: number, partition: number, index?: string): StoredRecord {
    const json = flattened(JSON.stringify(value));
    const version = this.nextVersion();
    const origin = this.origin;
    let r: StoredRecord;
    if (index === undefined) r = origin === undefined ? { json, expiresAt, version, partition } : { json, expiresAt, version, partition, origin };
    else r = origin === undefined ? { json, expiresAt, version, partition, index } : { json, expiresAt, version, partition, index, origin };
    return this.write(ns, key, r);
  }

  /** Deletes (leaving a tombstone); true when a live record was there. */
  delete(ns: Namespace, key: string, partition: number): boolean {
    const existed = this.has(ns, key);
    const json = 'null';
    const expiresAt = this.clock.now() + TOMBSTONE_MS;
    const version = this.nextVersion();
    const origin = this.origin;
    this.write(ns, key, origin === undefined ? { json, expiresAt, version, partition, deleted: true } : { json, expiresAt, version, partition, deleted: true, origin });
    return existed;
  }

  /** A local change (made whole, with its origin, by `set` or `delete`): journalled, stored. */
  private write(ns: Namespace, key: string, r: StoredRecord): StoredRecord {
    const previous = this.spaces.get(ns)?.get(key);
    this.journal?.push({ change: { ns, key, record: r }, previous });
    this.put(ns, key, r, previous);
    return r;
  }

  /** Applies a record shipped from another engine if it is newer than ours; true if applied. */
  merge(change: RecordChange): boolean {
    if (change.record.version > this.lastVersion) this.lastVersion = change.record.version;
    const current = this.spaces.get(change.ns)?.get(change.key);
    if (change.ifVersion !== undefined) {
      if (current?.version !== change.ifVersion || current.origin !== change.ifOrigin) return false;
      this.restore(change.ns, change.key, change.record.version === 0 ? null : change.record);
      return true;
    }
    if (current && current.version >= change.record.version) return false;
    if (change.record.expiresAt <= this.clock.now()) return false;
    if (change.ns !== 'undone' && this.isUndone(change.ns, change.key, change.record)) return false;
    if (change.ns === 'revocation' && !current && change.record.version <= this.revocationFloor) return false;
    if (change.record.origin !== undefined) change.record.origin = this.intern(change.record.origin);
    this.put(change.ns, change.key, change.record, current);
    if (change.ns === 'undone') this.applyUndone(change.key, change.record);
    return true;
  }

  /** True when this version of `ns`/`key`, by its origin, was undone (a marker is held). */
  private isUndone(ns: Namespace, key: string, record: StoredRecord): boolean {
    const markers = this.spaces.get('undone');
    return markers !== undefined && markers.size > 0 && markers.has(undoneKey(ns, key, record.version, record.origin));
  }

  /** A marker arrived: where the record is still at the undone version, put it back as it was. */
  private applyUndone(markerKey: string, marker: StoredRecord): void {
    // ns \0 key \0 version \0 origin; the key is the only part that could hold a \0.
    const first = markerKey.indexOf('\u0000');
    const last = markerKey.lastIndexOf('\u0000');
    const beforeLast = markerKey.lastIndexOf('\u0000', last - 1);
    const ns = markerKey.slice(0, first) as Namespace;
    const key = markerKey.slice(first + 1, beforeLast);
    const version = Number(markerKey.slice(beforeLast + 1, last));
    const origin = markerKey.slice(last + 1);
    const current = this.spaces.get(ns)?.get(key);
    // Versions of two engines can be equal: only the undone engine's write is put back.
    if (current === undefined || current.version !== version || (current.origin ?? '') !== origin) return;
    this.restore(ns, key, (JSON.parse(marker.json) as { previous: StoredRecord | null }).previous);
  }

  /**
   * Puts a record back as it was before an undone write (null: there was none). The record
   * put back may itself be an undone write (a replica that missed a revert took it as its
   * own, then undid a write of its own on top): then what came before it is put back, and so
   * on, so no revert ever brings an undone version back.
   */
  private restore(ns: Namespace, key: string, previous: StoredRecord | null): void {
    let record = previous;
    for (let hops = 0; record !== null && record.version !== 0 && this.isUndone(ns, key, record) && hops < 100; hops++) {
      const marker = this.spaces.get('undone')!.get(undoneKey(ns, key, record.version, record.origin))!;
      record = (JSON.parse(marker.json) as { previous: StoredRecord | null }).previous;
    }
    if (record === null || record.version === 0) this.remove(ns, key);
    else this.put(ns, key, record, this.spaces.get(ns)?.get(key));
  }

  /** How many undone-write markers the store holds (for tests and diagnostics). */
  get undoneCount(): number {
    return this.spaces.get('undone')?.size ?? 0;
  }

  /**
   * Keys of the records filed under secondary key `index` (live or expired but not yet swept)
   * in `partition`; in every partition without it (a walk over all of them: for diagnostics
   * and tests, not for a request's path).
   */
  keysByIndex(ns: Namespace, index: string, partition?: number): string[] {
    if (partition !== undefined) return keysIn(this.secondary.get(partition)?.get(ns)?.get(index));
    const all: string[] = [];
    for (const spaces of this.secondary.values()) all.push(...keysIn(spaces.get(ns)?.get(index)));
    return all;
  }

  /** Starts collecting the changes made by `set` and `delete`. */
  startJournal(): void {
    this.journal = [];
  }

  /** Stops collecting and returns what changed since `startJournal`. */
  takeJournal(): JournalEntry[] {
    const out = this.journal ?? [];
    this.journal = undefined;
    return out;
  }

  /**
   * Undoes journalled changes, newest first: each record goes back exactly to what it was
   * (same version), or disappears if it was new, unless it was overwritten meanwhile. No new
   * version is made: a newer tombstone would also win over a write of the same key that
   * another primary made meanwhile (engines briefly disagreeing on placement) and delete it
   * wherever it spread. The journal gets the reverts (`ifVersion`) to send to the backups.
   */
  undo(entries: readonly JournalEntry[]): void {
    for (const { change, previous } of [...entries].reverse()) {
      const { ns, key } = change;
      const current = this.spaces.get(ns)?.get(key);
      if (current?.version !== change.record.version || current.origin !== change.record.origin) continue; // overwritten since: keep the newer write
      const revert: RecordChange = {
        ns,
        key,
        record: previous ?? { json: 'null', expiresAt: 0, version: 0, partition: change.record.partition, deleted: true },
        ifVersion: change.record.version,
        ifOrigin: change.record.origin,
      };
      this.journal?.push({ change: revert, previous: current });
      this.merge(revert);
      // The marker goes to the backups with the revert, and with the partition everywhere.
      const marker: StoredRecord = {
        json: JSON.stringify({ previous: previous ?? null }),
        expiresAt: this.clock.now() + TOMBSTONE_MS,
        version: this.nextVersion(),
        partition: change.record.partition,
      };
      const markerChange: RecordChange = { ns: 'undone', key: undoneKey(ns, key, change.record.version, change.record.origin), record: marker };
      this.journal?.push({ change: markerChange, previous: undefined });
      this.put('undone', markerChange.key, marker, this.spaces.get('undone')?.get(markerChange.key));
    }
  }

  /** Calls `f` for every unexpired record (tombstones included) of `partition`. */
  eachRecord(partition: number, f: (ns: Namespace, key: string, record: StoredRecord) => void): void {
    const now = this.clock.now();
    for (const [ns, keys] of this.byPartition.get(partition) ?? []) {
      const space = this.spaces.get(ns)!;
      for (const key of keys) {
        const record = space.get(key)!;
        if (record.expiresAt > now) f(ns, key, record);
      }
    }
  }

  /**
   * The unexpired records (tombstones included) of `partition`, one at a time, so a caller may
   * pause between two of them (a save streaming to disk) without copying the partition first.
   * Changes made meanwhile are safe: a record removed is skipped, one added may be seen.
   */
  *records(partition: number): Generator<[Namespace, string, StoredRecord]> {
    const now = this.clock.now();
    for (const [ns, keys] of this.byPartition.get(partition) ?? []) {
      const space = this.spaces.get(ns)!;
      for (const key of keys) {
        const record = space.get(key);
        if (record !== undefined && record.expiresAt > now) yield [ns, key, record];
      }
    }
  }

  /** The partitions this store holds records of (EVERYWHERE included). */
  partitions(): number[] {
    return [...this.byPartition.keys()];
  }

  /**
   * A fingerprint of what this store holds of `partition` (records and tombstones, with their
   * versions), kept up to date on every change so asking costs nothing: equal fingerprints on
   * two engines mean equal records, and a sync skips the transfer. Records past their expiry
   * count until the sweep removes them (engines sweep at different moments, so fingerprints
   * may differ briefly around an expiry; the sync then moves a partition for nothing).
   */
  digest(partition: number): string {
    const f = this.fingerprints.get(partition);
    if (!f) return EMPTY_DIGEST;
    return (f.text ??= `${f.count}:${(f.a >>> 0).toString(36)}:${(f.b >>> 0).toString(36)}`);
  }

  /**
   * Removes every record of `partition` (tombstones and markers included) without leaving
   * tombstones: the engine no longer replicates it and its new replicas hold what it held
   * (anti-entropy.ts `dropMoved`). Answers how many records went.
   */
  dropPartition(partition: number): number {
    const index = this.byPartition.get(partition);
    if (index === undefined) return 0;
    let dropped = 0;
    for (const [ns, keys] of index) {
      for (const key of [...keys]) {
        this.remove(ns, key);
        dropped++;
      }
    }
    this.byPartition.delete(partition);
    this.fingerprints.delete(partition);
    this.secondary.delete(partition);
    return dropped;
  }

  /** Records held of `partition` (tombstones, and expired records not swept yet, included). */
  recordCount(partition: number): number {
    return this.fingerprints.get(partition)?.count ?? 0;
  }

  /** One string per engine id, however many records name it. */
  private intern(origin: string): string {
    let known = this.origins.get(origin);
    if (known === undefined) {
      if (this.origins.size > 10_000) this.origins.clear();
      this.origins.set(origin, (known = origin));
    }
    return known;
  }

  /** Hybrid logical clock: wall time in ms x 1024, strictly increasing. */
  private nextVersion(): number {
    this.lastVersion = Math.max(this.clock.now() * 1024, this.lastVersion + 1);
    return this.lastVersion;
  }

  /**
   * Forgets every record (a saved state's load that met a damaged line after merging into
   * this store while it was empty: grid-state-file.ts). Versions seen stay seen: the next
   * version made here is still newer than any this store has held.
   */
  clear(): void {
    this.spaces.clear();
    this.cursors.clear();
    this.byPartition.clear();
    this.fingerprints.clear();
    this.secondary.clear();
    this.revocationFloor = 0;
    this.revocationsEvicted = 0;
  }

  /** Number of records held, expired ones not yet swept included. */
  size(ns?: Namespace): number {
    if (ns) return this.spaces.get(ns)?.size ?? 0;
    let n = 0;
    for (const s of this.spaces.values()) n += s.size;
    return n;
  }

  /**
   * Removes expired records, looking at up to SWEEP_SLICE records per namespace per call and
   * carrying on where the last call stopped, so a large store is swept over several calls.
   */
  sweep(): number {
    const now = this.clock.now();
    let removed = 0;
    for (const [ns, space] of this.spaces) {
      // Most spaces of most engines are empty most of the time: no iterator made each second.
      if (space.size === 0) continue;
      let cursor = this.cursors.get(ns);
      for (let seen = 0; seen < SWEEP_SLICE; seen++) {
        cursor ??= space.entries();
        const next = cursor.next();
        if (next.done) {
          cursor = undefined;
          break;
        }
        const [k, r] = next.value;
        if (r.expiresAt <= now) {
          this.remove(ns, k);
          removed++;
        }
      }
      if (cursor) this.cursors.set(ns, cursor);
      else this.cursors.delete(ns);
    }
    return removed;
  }

  /** Removes every expired record now, in one pass (the `purge-expired` job); how many went. */
  sweepAll(): number {
    const now = this.clock.now();
    let removed = 0;
    for (const [ns, space] of this.spaces) {
      for (const [k, r] of space) {
        if (r.expiresAt > now) continue;
        this.remove(ns, k);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Puts a record in its namespace, the partition index and the fingerprints, in place of `old`:
   * what the namespace holds under `key` now, which every caller has just looked up (a lookup in
   * a map of a million records is most of what a merge costs: not done twice).
   */
  private put(ns: Namespace, key: string, record: StoredRecord, old: StoredRecord | undefined): void {
    let space = this.spaces.get(ns);
    if (!space) this.spaces.set(ns, (space = new RecordSpace(SPLIT_NAMESPACES.has(ns))));
    if (old) this.unindex(ns, key, old);
    space.set(key, record);
    let index = this.byPartition.get(record.partition);
    if (!index) this.byPartition.set(record.partition, (index = new Map()));
    let keys = index.get(ns);
    if (!keys) index.set(ns, (keys = new Set()));
    keys.add(key);
    this.fingerprint(ns, key, record, +1);
    if (record.index !== undefined && !record.deleted) this.fileUnder(ns, record.partition, record.index, key);
    if (ns === 'revocation' && space.size > this.revocationCap) this.evictRevocations(space);
  }

  /** Evicts the oldest revocations (first stored: Map order) down to the cap. */
  private evictRevocations(space: RecordSpace): void {
    for (const [key, record] of space) {
      if (space.size <= this.revocationCap) break;
      this.revocationFloor = Math.max(this.revocationFloor, record.version);
      this.remove('revocation', key);
      this.revocationsEvicted++;
    }
  }

  /** Adds `key` under secondary key `index` (one key is kept as a plain string: most subjects have one session). */
  private fileUnder(ns: Namespace, partition: number, index: string, key: string): void {
    let spaces = this.secondary.get(partition);
    if (!spaces) this.secondary.set(partition, (spaces = new Map()));
    let space = spaces.get(ns);
    if (!space) spaces.set(ns, (space = new Map()));
    const keys = space.get(index);
    if (keys === undefined) space.set(index, key);
    else if (typeof keys === 'string') {
      if (keys !== key) space.set(index, [keys, key]);
    } else if (!keys.includes(key)) keys.push(key);
  }

  private unfile(ns: Namespace, partition: number, index: string, key: string): void {
    const space = this.secondary.get(partition)?.get(ns);
    const keys = space?.get(index);
    if (keys === undefined) return;
    if (typeof keys === 'string') {
      if (keys === key) space!.delete(index);
      return;
    }
    const rest = keys.filter((k) => k !== key);
    if (rest.length === 0) space!.delete(index);
    else space!.set(index, rest.length === 1 ? rest[0]! : rest);
  }

  /** Removes a record from its namespace, the partition index and the fingerprints. */
  private remove(ns: Namespace, key: string): void {
    const space = this.spaces.get(ns);
    const old = space?.get(key);
    if (!old) return;
    space!.delete(key);
    this.unindex(ns, key, old);
  }

  private unindex(ns: Namespace, key: string, old: StoredRecord): void {
    this.byPartition.get(old.partition)?.get(ns)?.delete(key);
    this.fingerprint(ns, key, old, -1);
    if (old.index !== undefined && !old.deleted) this.unfile(ns, old.partition, old.index, key);
  }

  private fingerprint(ns: Namespace, key: string, record: StoredRecord, delta: 1 | -1): void {
    let f = this.fingerprints.get(record.partition);
    if (!f) this.fingerprints.set(record.partition, (f = { count: 0, a: 0, b: 0, text: undefined }));
    const [a, b] = recordHashes(ns, key, record.version);
    f.count += delta;
    f.a = (f.a + delta * a) | 0;
    f.b = (f.b + delta * b) | 0;
    f.text = undefined;
  }

  private scheduleSweep(): void {
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweep();
      this.scheduleSweep();
    }, SWEEP_EVERY_MS);
  }
}

/** The keys of one secondary index entry (one is kept as a plain string), as a new array. */
function keysIn(keys: string | string[] | undefined): string[] {
  return keys === undefined ? [] : typeof keys === 'string' ? [keys] : [...keys];
}

/** The key of the marker saying that version `version` of `ns`/`key` was undone. */
function undoneKey(ns: Namespace, key: string, version: number, origin: string | undefined): string {
  return `${ns}\u0000${key}\u0000${version}\u0000${origin ?? ''}`;
}
