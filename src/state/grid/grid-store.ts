/**
 * One engine's in-memory share of the grid: records by namespace and key, each with an
 * expiry. Reads never return an expired record; a sweep removes them in slices so a large
 * store never blocks the event loop.
 *
 * Every mutation goes through `set` / `delete`, which also bump a per-record version; the
 * replicated grid ships (key, record) pairs, and a replica keeps the newer version, so
 * replaying a shipment is harmless.
 */
import type { Clock, TimerHandle } from '../../core/clock.js';

export interface StoredRecord {
  value: unknown;
  expiresAt: number;
  version: number;
}

/** Namespaces of the grid: one per service (and one for the subject index). */
export type Namespace = 'session' | 'subject' | 'revocation' | 'lockout' | 'replay' | 'artifact' | 'state' | 'token' | 'bucket';

const SWEEP_EVERY_MS = 1000;
const SWEEP_SLICE = 10_000;

export class GridStore {
  private readonly spaces = new Map<Namespace, Map<string, StoredRecord>>();
  private sweepTimer: TimerHandle | undefined;
  private versionCounter = 0;
  private readonly cursors = new Map<Namespace, IterableIterator<[string, StoredRecord]>>();

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
    if (!r) return undefined;
    if (r.expiresAt <= this.clock.now()) {
      this.space(ns).delete(key);
      return undefined;
    }
    return r.value;
  }

  /** The record itself (with expiry and version), if live. */
  record(ns: Namespace, key: string): StoredRecord | undefined {
    return this.get(ns, key) === undefined ? undefined : this.space(ns).get(key);
  }

  set(ns: Namespace, key: string, value: unknown, expiresAt: number): StoredRecord {
    const r: StoredRecord = { value, expiresAt, version: ++this.versionCounter };
    this.space(ns).set(key, r);
    return r;
  }

  delete(ns: Namespace, key: string): boolean {
    const existed = this.get(ns, key) !== undefined;
    this.space(ns).delete(key);
    return existed;
  }

  /** Live records in `ns` (for snapshots and transfers). */
  *entries(ns: Namespace): IterableIterator<[string, StoredRecord]> {
    const now = this.clock.now();
    for (const [k, r] of this.space(ns)) if (r.expiresAt > now) yield [k, r];
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
          space.delete(k);
          removed++;
        }
      }
      if (cursor) this.cursors.set(ns, cursor);
      else this.cursors.delete(ns);
    }
    return removed;
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
