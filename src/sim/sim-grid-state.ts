/**
 * A simulated node's disk for the state its grid engine saves at a graceful stop: the same
 * record lines the node's file holds (state/grid/record-lines.ts), kept in memory so that a
 * seed replays exactly (no real I/O deciding how much simulated time a load takes). It
 * outlives the node's process: a node restarted at the same index finds what it saved, as a
 * node finds its data directory. The file's own checks (checksum, atomic rename, damage) are
 * tested on real files (test/unit/grid-state-file.test.ts, the durability tests).
 */
import type { Clock } from '../core/clock.js';
import type { GridStateStorage, SavedGridState } from '../state/grid/grid-state-file.js';
import type { GridStore } from '../state/grid/grid-store.js';
import { parseRecordLine, recordLine } from '../state/grid/record-lines.js';

export class SimGridState implements GridStateStorage {
  private lines: string[] | undefined;
  private state: SavedGridState | undefined;
  private engines: string[] | undefined;
  private witnessed: Array<[string, number]> = [];
  /** How many saved states were set aside as too old to load (grid-state-file.ts `staleGridStateReason`). */
  setAsideCount = 0;

  /** `clock`: the simulation's wall clock (a file's modification time is the machine's, not the process's). */
  constructor(private readonly clock: Clock) {}

  saved(): SavedGridState | undefined {
    return this.state && { ...this.state };
  }

  async load(store: GridStore): Promise<{ loaded: number; records: number } | undefined> {
    if (this.lines === undefined) return undefined;
    let loaded = 0;
    for (const line of this.lines) if (store.merge(parseRecordLine(line)!)) loaded++;
    return { loaded, records: this.lines.length };
  }

  async save(store: GridStore): Promise<number> {
    const lines: string[] = [];
    for (const p of store.partitions()) for (const [ns, key, record] of store.records(p)) lines.push(recordLine(ns, key, record).slice(0, -1));
    this.lines = lines;
    this.state = { savedAt: this.clock.now() };
    return lines.length;
  }

  markServed(): void {
    if (this.state) this.state.servedSince = this.clock.now();
  }

  rememberedEngines(): readonly string[] | undefined {
    return this.engines && [...this.engines];
  }

  rememberEngines(ids: readonly string[]): void {
    this.engines = [...ids];
  }

  witnesses(): Array<[string, number]> {
    return this.witnessed.map(([id, expiresAt]) => [id, expiresAt]);
  }

  keepWitnesses(entries: ReadonlyArray<readonly [string, number]>): void {
    this.witnessed = entries.map(([id, expiresAt]) => [id, expiresAt]);
  }

  setAside(): string {
    this.lines = undefined;
    this.state = undefined;
    this.setAsideCount++;
    return 'grid-state.tsv.stale (simulated)';
  }
}
