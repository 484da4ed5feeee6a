/**
 * What the parts of the replicated grid share on one engine (replicated-executor.ts and the
 * files it is split into: primary-routing.ts, backup-replicas.ts, partition-sync.ts,
 * partition-transfer.ts, anti-entropy.ts): the engine set and placement as membership last
 * told them, and which partitions are being changed or synchronised here.
 *
 * Invariants:
 * - Only the executor façade (`setEngines`, its start-up sync) changes the engine set, the
 *   serving set and the placement; the parts read them and change only the sync and write
 *   bookkeeping below, each the part that owns it.
 * - `unsynced` marks a partition with the placement `generation` that marked it: a sync
 *   clears only marks not newer than the generation it started under, so a change of the
 *   engine set during a sync is synchronised again.
 * - `closed` is final: once set, no part starts anything new.
 */
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../core/logger.js';
import type { GridRpc } from './grid-protocol.js';
import type { GridStore, StoredRecord } from './grid-store.js';
import type { Placement } from './placement.js';

/** How soon partitions (and revocation pushes and exchanges) that could not be synchronised are tried again (ms). */
export const REPAIR_RETRY_MS = 1000;

/**
 * How soon a start-up download is tried again when an engine it waits for is still loading
 * its saved state (it answered RPC_NO_HANDLER: the grid answers once its records are in). It
 * answers within a fraction of a second once loaded, so a full start should not wait out the
 * repair delay for it: with three engines loading a million records each on two cores, up to a
 * second of every full start went to that wait. The calls it repeats are fingerprint requests
 * (a few kilobytes) to engines that answer them at once.
 */
export const LOADING_RETRY_MS = 100;

export interface ReplicaDeps {
  store: GridStore;
  rpc: GridRpc;
  clock: Clock;
  logger: Logger;
  /** This engine's node id. */
  self: string;
  replicationFactor: number;
  /** `[state] bulk_revocation_timeout`: how long the start-up download, and one bulk message, may take (ms). */
  bulkTimeoutMs: number;
}

export class ReplicaState {
  readonly store: GridStore;
  readonly rpc: GridRpc;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly self: string;
  readonly replicationFactor: number;
  readonly bulkTimeoutMs: number;
  /** Active engines: node id → cluster address (this engine included). */
  engines = new Map<string, string>();
  /** Active engines that hold their share; partitions are placed on these only. */
  serving = new Set<string>();
  /** This engine finished its start-up sync and said so. */
  selfServing = false;
  placement: Placement = new Map();
  /**
   * Partitions this engine must pull before it serves them as primary, each with the
   * placement generation that marked it (see the invariants).
   */
  readonly unsynced = new Map<number, number>();
  generation = 0;
  /** Syncs running, by partition (partition-sync.ts). */
  readonly syncing = new Map<number, Promise<void>>();
  initialSyncDone = false;
  /**
   * Per partition, the last change this primary is replicating (primary-routing.ts); undefined
   * once it settled. An entry is kept rather than deleted: a map that grows and shrinks with
   * every write reallocates its table each time, and those tables, held by a long-lived map,
   * outlived the young generation and were a large share of what a busy engine promoted.
   * At most one entry per partition.
   */
  readonly writesInFlight = new Map<number, Promise<void> | undefined>();
  /**
   * Per partition, the records the change being replicated replaced (`ns key` → the record
   * before it, undefined when there was none): transfers send those, not the change
   * (partition-transfer.ts `acknowledged`).
   */
  readonly replaced = new Map<number, Map<string, StoredRecord | undefined>>();
  closed = false;

  constructor(deps: ReplicaDeps) {
    this.store = deps.store;
    this.rpc = deps.rpc;
    this.clock = deps.clock;
    this.logger = deps.logger;
    this.self = deps.self;
    this.replicationFactor = deps.replicationFactor;
    this.bulkTimeoutMs = deps.bulkTimeoutMs;
  }

  primaryOf(partition: number): string | undefined {
    return this.placement.get(partition)?.[0];
  }

  /** The other serving engines, id → address. */
  servingOthers(): Array<[string, string]> {
    return [...this.serving].filter((id) => id !== this.self && this.engines.has(id)).map((id) => [id, this.engines.get(id)!]);
  }

  /**
   * The other active engines: the sources of a sync. Engines not serving yet count too: at a
   * full restart their saved state is the only copy of what they held (an engine answers
   * only once its saved state is loaded: node/state-provider.ts), and a version never loses
   * to an older one, so a stale copy changes nothing.
   */
  activeOthers(): Array<[string, string]> {
    return [...this.engines].filter(([id]) => id !== this.self);
  }

  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => this.clock.setTimeout(resolve, ms));
  }
}
