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

export interface StoredRecord {
  value: unknown;
  expiresAt: number;
  version: number;
  /** The partition the record belongs to (-1: held by every engine, e.g. revocations). */
  partition: number;
  /** A tombstone: the record was deleted at `version`. */
  deleted?: true;
}

/** One changed record, as shipped between replicas. */
export interface RecordChange {
  ns: Namespace;
  key: string;
  record: StoredRecord;
}

/** A change and the record it replaced (undefined: there was none), to undo a failed write. */
export interface JournalEntry {
  change: RecordChange;
  previous: StoredRecord | undefined;
}

/**
 * How long a deletion is remembered, so late copies of the record stay dead (ms). It also
 * bounds how old a saved grid state may be when an engine rejoins a running cluster
 * (node/grid-state-file.ts): older, it could bring deleted records back, so it is dropped.
 */
export const TOMBSTONE_MS = 15 * 60_000;

/** Namespaces of the grid: one per service (and one for the subject index). */
export type Namespace = 'session' | 'subject' | 'revocation' | 'lockout' | 'replay' | 'artifact' | 'state' | 'token' | 'bucket';

const SWEEP_EVERY_MS = 1000;
const SWEEP_SLICE = 10_000;

export class GridStore {
  private readonly spaces = new Map<Namespace, Map<string, StoredRecord>>();
  private sweepTimer: TimerHandle | undefined;
  private lastVersion = 0;
  /** Changes made since `startJournal` (with what each record was before), to ship or undo. */
  private journal: JournalEntry[] | undefined;
  private readonly cursors = new Map<Namespace, IterableIterator<[string, StoredRecord]>>();
  /** Which records each partition has (`ns \0 key`), so a partition is exported without a full scan. */
  private readonly byPartition = new Map<number, Set<string>>();

  constructor(private readonly clock: Clock) {}

  /** Starts the periodic expiry sweep. */
  start(): void {
    this.scheduleSweep();
  }

  stop(): void {
    this.clock.clearTimeout(this.sweepTimer);
    this.sweepTimer = undefined;
  }

  get(ns: Namespace, key: string): unknown {
    const r = this.space(ns).get(key);
    if (!r || r.deleted) return undefined;
    if (r.expiresAt <= this.clock.now()) {
      this.remove(ns, key);
      return undefined;
    }
    return r.value;
  }

  /** The record itself (with expiry and version), if live. */
  record(ns: Namespace, key: string): StoredRecord | undefined {
    return this.get(ns, key) === undefined ? undefined : this.space(ns).get(key);
  }

  set(ns: Namespace, key: string, value: unknown, expiresAt: number, partition: number): StoredRecord {
    const r: StoredRecord = { value, expiresAt, version: this.nextVersion(), partition };
    this.journal?.push({ change: { ns, key, record: r }, previous: this.space(ns).get(key) });
    this.put(ns, key, r);
    return r;
  }

  /** Deletes (leaving a tombstone); true when a live record was there. */
  delete(ns: Namespace, key: string, partition: number): boolean {
    const existed = this.get(ns, key) !== undefined;
    const r: StoredRecord = { value: null, expiresAt: this.clock.now() + TOMBSTONE_MS, version: this.nextVersion(), partition, deleted: true };
    this.journal?.push({ change: { ns, key, record: r }, previous: this.space(ns).get(key) });
    this.put(ns, key, r);
    return existed;
  }

  /** Applies a record shipped from another engine if it is newer than ours; true if applied. */
  merge(change: RecordChange): boolean {
    this.lastVersion = Math.max(this.lastVersion, change.record.version);
    const current = this.space(change.ns).get(change.key);
    if (current && current.version >= change.record.version) return false;
    if (change.record.expiresAt <= this.clock.now()) return false;
    this.put(change.ns, change.key, change.record);
    return true;
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
   * Undoes journalled changes, newest first: each record goes back to what it was (or is
   * deleted if it was new), under a new version, so the undo also wins over any copy of the
   * undone change that reached another engine.
   */
  undo(entries: readonly JournalEntry[]): void {
    for (const { change, previous } of [...entries].reverse()) {
      if (previous && !previous.deleted) this.put(change.ns, change.key, { ...previous, version: this.nextVersion() });
      else this.delete(change.ns, change.key, change.record.partition);
    }
  }

  /** Every unexpired record (tombstones included) of the given partitions. */
  exportPartitions(partitions: ReadonlySet<number>): RecordChange[] {
    const now = this.clock.now();
    const out: RecordChange[] = [];
    for (const p of partitions) {
      for (const indexKey of this.byPartition.get(p) ?? []) {
        const sep = indexKey.indexOf('\u0000');
        const ns = indexKey.slice(0, sep) as Namespace;
        const key = indexKey.slice(sep + 1);
        const record = this.spaces.get(ns)?.get(key);
        if (record && record.expiresAt > now) out.push({ ns, key, record });
      }
    }
    return out;
  }

  /**
   * A fingerprint of what this store holds of `partition` (unexpired records and tombstones,
   * with their versions): two engines with the same fingerprint hold the same records, so a
   * sync can skip the transfer. Order-independent (XOR of version halves).
   */
  digest(partition: number): string {
    const now = this.clock.now();
    let count = 0;
    let hi = 0;
    let lo = 0;
    for (const indexKey of this.byPartition.get(partition) ?? []) {
      const sep = indexKey.indexOf('\u0000');
      const record = this.spaces.get(indexKey.slice(0, sep) as Namespace)?.get(indexKey.slice(sep + 1));
      if (!record || record.expiresAt <= now) continue;
      count++;
      hi ^= Math.floor(record.version / 0x1_0000_0000) | 0;
      lo ^= record.version % 0x1_0000_0000 | 0;
    }
    return `${count}:${hi >>> 0}:${lo >>> 0}`;
  }

  /** Every unexpired record of the store (snapshots at a graceful stop). */
  exportAll(): RecordChange[] {
    const now = this.clock.now();
    const out: RecordChange[] = [];
    for (const [ns, space] of this.spaces) for (const [key, record] of space) if (record.expiresAt > now) out.push({ ns, key, record });
    return out;
  }

  /** Hybrid logical clock: wall time in ms x 1024, strictly increasing. */
  private nextVersion(): number {
    this.lastVersion = Math.max(this.clock.now() * 1024, this.lastVersion + 1);
    return this.lastVersion;
  }

  /** Live records in `ns` (for snapshots and transfers). */
  *entries(ns: Namespace): IterableIterator<[string, StoredRecord]> {
    const now = this.clock.now();
    for (const [k, r] of this.space(ns)) if (r.expiresAt > now && !r.deleted) yield [k, r];
  }

  /** Number of records held, expired ones not yet swept included. */
  size(ns?: Namespace): number {
    if (ns) return this.space(ns).size;
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

  /** Puts a record in its namespace and the partition index (moving it if its partition changed). */
  private put(ns: Namespace, key: string, record: StoredRecord): void {
    const space = this.space(ns);
    const old = space.get(key);
    const indexKey = `${ns}\u0000${key}`;
    if (old && old.partition !== record.partition) this.byPartition.get(old.partition)?.delete(indexKey);
    space.set(key, record);
    let set = this.byPartition.get(record.partition);
    if (!set) this.byPartition.set(record.partition, (set = new Set()));
    set.add(indexKey);
  }

  /** Removes a record from its namespace and the partition index. */
  private remove(ns: Namespace, key: string): void {
    const space = this.space(ns);
    const old = space.get(key);
    if (!old) return;
    space.delete(key);
    this.byPartition.get(old.partition)?.delete(`${ns}\u0000${key}`);
  }

  private space(ns: Namespace): Map<string, StoredRecord> {
    let s = this.spaces.get(ns);
    if (!s) {
      s = new Map();
      this.spaces.set(ns, s);
    }
    return s;
  }

  private scheduleSweep(): void {
    this.sweepTimer = this.clock.setTimeout(() => {
      this.sweep();
      this.scheduleSweep();
    }, SWEEP_EVERY_MS);
  }
}
