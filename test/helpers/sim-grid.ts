/**
 * A replicated grid of N engines on the simulated network: each engine is the production grid
 * engine (src/state/grid/grid-engine.ts) on its own pausable clock, over a directory whose
 * view of the cluster the test sets (`setActive`, `setView`) as membership would tell it;
 * what engines announce (that they hold state) reaches every engine's view at once, as a
 * member-change event. Calls made through `provider(i)` advance simulated time until they
 * settle.
 */
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import { Rpc } from '../../src/rpc/rpc.js';
import { nextTurn, runUntil } from '../../src/sim/drive.js';
import type { PausableClock } from '../../src/sim/pausable-clock.js';
import { SimNetwork, type SimTransport } from '../../src/sim/sim-network.js';
import type { GridDirectory } from '../../src/state/grid/grid-directory.js';
import { GridEngine } from '../../src/state/grid/grid-engine.js';
import type { GridProvider } from '../../src/state/grid/grid-provider.js';
import { CLUSTER_SCOPE, scopeKeys, type EngineScopeInfo, type ScopeSettings } from '../../src/state/grid/scopes.js';
import type { GridStore } from '../../src/state/grid/grid-store.js';
import type { ReplicatedExecutor, Witnesses } from '../../src/state/grid/replicated-executor.js';
import type { StateProvider } from '../../src/state/services.js';
import type { StateHarness } from './state-contract.js';
import { TransportMux } from '../../src/transport/mux.js';

export interface SimEngine {
  id: string;
  address: string;
  /** Its simulated transport (stats: e.g. messages dropped for exceeding the frame limit). */
  transport: SimTransport;
  store: GridStore;
  rpc: Rpc;
  executor: ReplicatedExecutor;
  provider: GridProvider;
  /** The production grid engine that holds the three above. */
  engine: GridEngine;
  /** What this engine's directory tells it (set by the test). */
  view: SimView;
  crashed: boolean;
}

/**
 * One engine's directory: the active engines and witnesses the test set for it, the engines
 * that announced they hold state, and the scopes of every engine (its settings in the grid).
 */
class SimView implements GridDirectory {
  active = new Map<string, string>();
  /** Engines in the member list (failed ones included); undefined: the active ones. */
  knownEngines: number | undefined;
  witnessView: Witnesses = { known: 0, active: 0 };
  /** Active engines this one suspects (a probe failed): placed on, not counted by the write majority. */
  suspects: string[] = [];
  readonly listeners: Array<() => void> = [];

  constructor(
    readonly clock: PausableClock,
    private readonly self: string,
    private readonly grid: SimGrid,
  ) {}

  activeEngines(): Map<string, string> {
    return new Map(this.active);
  }

  servingEngines(): ReadonlySet<string> | undefined {
    if (!this.grid.stagedJoin) return undefined;
    return new Set([...this.active.keys()].filter((id) => this.grid.holdsState.has(id)));
  }

  suspectEngines(): ReadonlySet<string> {
    return new Set(this.suspects);
  }

  knownEngineCount(): number {
    return this.knownEngines ?? this.active.size;
  }

  knownEngineIds(): ReadonlySet<string> {
    return new Set(this.active.keys());
  }

  announcedEngineCount(): number {
    return 0;
  }

  announceEngineCount(): void {
    // The tests here set each engine's view by hand (knownEngines).
  }

  witnesses(): Witnesses {
    return { ...this.witnessView };
  }

  engineScopeInfo(): Map<string, EngineScopeInfo> {
    return this.grid.scopeInfo();
  }

  scopeKeysInUse(): Set<string> {
    return this.grid.scopeKeysInUse();
  }

  sessionScopeOfGroup(group: string): string | undefined {
    return this.grid.sessionScopeOfGroup(group);
  }

  announceHoldsState(): void {
    this.grid.holdsState.add(this.self);
    this.grid.metadataChanged();
  }

  announceWriteRefusal(): void {
    // Shown by `cluster info` on a node; nothing in the grid reads it.
  }

  onMembersChanged(listener: () => void): void {
    this.listeners.push(listener);
  }
}

export interface SimGridOptions {
  replicationFactor?: number;
  seed?: number;
  scopes?: ScopeSettings[];
  /** `[state] read_local_only` of every engine's provider (default true). */
  readLocalOnly?: boolean;
  /**
   * Engines join in stages as nodes do: placed on by the others only once they announced
   * that they hold their share. Default false: every engine a view names is placed on at
   * once (the test places partitions by hand).
   */
  stagedJoin?: boolean;
}

export class SimGrid {
  readonly clock = new ManualClock(1_800_000_000_000);
  readonly network: SimNetwork;
  readonly engines: SimEngine[] = [];
  private pending = 0;
  private readonly tick = (ms: number): void => this.clock.advance(ms);
  private driving = false;

  /** Per engine, its scope settings (subclusters, directed); none: every service cluster-wide. Engine i has node index i + 1. */
  private readonly scopes: ScopeSettings[] | undefined;
  private readonly readLocalOnly: boolean;
  private readonly replicationFactor: number;
  readonly stagedJoin: boolean;
  /** Engines that announced they hold state (membership metadata `holdsState`). */
  readonly holdsState = new Set<string>();

  constructor(count: number, options: SimGridOptions = {}) {
    this.scopes = options.scopes;
    this.readLocalOnly = options.readLocalOnly ?? true;
    this.replicationFactor = options.replicationFactor ?? 3;
    this.stagedJoin = options.stagedJoin ?? false;
    this.network = new SimNetwork(this.clock, seededRandom(options.seed ?? 1));
    for (let i = 0; i < count; i++) this.engines.push(this.createEngine(i));
  }

  /**
   * A grid of `count` engines that all know each other, have finished their start-up sync
   * (each joined in stages: synchronised, announced, placed on by the others), and are at
   * rest: no partition waits to be resynchronised after the last announcement.
   */
  static async started(count: number, options: SimGridOptions = {}): Promise<SimGrid> {
    const grid = new SimGrid(count, options);
    grid.setActive(grid.engines.map((_, i) => i));
    await grid.untilReady();
    if (!(await runUntil(grid.tick, () => grid.engines.every((e) => e.executor.synchronised), 5000, 1))) throw new Error('engines not synchronised in time');
    return grid;
  }

  /** Tells engines `observers` (default: the live ones) that exactly `active` are the engines. */
  setActive(active: number[], observers = this.live()): void {
    for (const i of observers) {
      const e = this.engines[i]!;
      e.view.active = this.addresses(active);
      e.view.knownEngines = undefined;
      e.view.witnessView = { known: 0, active: 0 };
      e.view.suspects = [];
      e.engine.applyMembership();
    }
  }

  /**
   * What engine `observer` sees, as membership would tell it: `active` engines (of which
   * `suspects` are under suspicion), `knownEngines` in the member list (failed ones included),
   * and the console/replica witnesses it knows and sees active (the write majority,
   * state/grid/write-majority.ts).
   */
  setView(observer: number, active: number[], view: { knownEngines: number; witnesses: { known: number; active: number }; suspects?: number[] }): void {
    const e = this.engines[observer]!;
    e.view.active = this.addresses(active);
    e.view.knownEngines = view.knownEngines;
    e.view.witnessView = { ...view.witnesses };
    e.view.suspects = (view.suspects ?? []).map((i) => this.engines[i]!.id);
    e.engine.applyMembership();
  }

  private addresses(engines: number[]): Map<string, string> {
    return new Map(engines.map((i) => [this.engines[i]!.id, this.engines[i]!.address]));
  }

  /** Metadata changed (an engine announced it holds state): every live engine hears of it. */
  metadataChanged(): void {
    for (const i of this.live()) for (const listener of this.engines[i]!.view.listeners) listener();
  }

  /** Every engine's group and node index (engine i has node index i + 1). */
  scopeInfo(): Map<string, EngineScopeInfo> {
    return new Map(this.engines.map((e, k) => [e.id, { id: e.id, group: this.scopes?.[k]!.groupId ?? null, index: k + 1 }]));
  }

  scopeKeysInUse(): Set<string> {
    return new Set([CLUSTER_SCOPE, ...(this.scopes ?? []).flatMap((sc) => Object.values(scopeKeys(sc)))]);
  }

  sessionScopeOfGroup(group: string): string | undefined {
    const k = (this.scopes ?? []).findIndex((sc) => sc.groupId === group);
    return k < 0 ? undefined : scopeKeys(this.scopes![k]!).session;
  }

  live(): number[] {
    return this.engines.map((e, i) => (e.crashed ? -1 : i)).filter((i) => i >= 0);
  }

  crash(i: number): void {
    const e = this.engines[i]!;
    e.crashed = true;
    e.engine.close();
    this.network.crash(e.address);
  }

  /** Replaces engine i by a fresh process (empty memory) at the same address. */
  restart(i: number): SimEngine {
    const fresh = this.createEngine(i);
    this.engines[i] = fresh;
    // A new process announces its metadata afresh: it does not hold state until it says so.
    if (this.holdsState.delete(fresh.id)) this.metadataChanged();
    return fresh;
  }

  /** Engine i's provider; every call drives the simulated clock until it settles. */
  provider(i: number): StateProvider {
    return this.driven(this.engines[i]!.provider);
  }

  /** A provider that sends each call to the next live engine in turn. */
  anyEngine(): StateProvider {
    let next = 0;
    return this.drivenVia(() => {
      const live = this.live();
      return this.engines[live[next++ % live.length]!]!.provider;
    });
  }

  /** Lets `ms` of simulated time pass (messages flow, timers fire). */
  /**
   * The state contract's harness over this grid: every call through the next engine; every
   * engine holds every revocation (those that got it late too), so its expiry is the latest.
   */
  contractHarness(): StateHarness {
    return {
      provider: this.anyEngine(),
      now: () => this.clock.now(),
      advance: (ms) => this.advance(ms),
      revocationExpiresAt: async (id) => {
        const found = this.engines.map((e) => e.store.record('revocation', id)?.expiresAt).filter((at): at is number => at !== undefined);
        return found.length === 0 ? undefined : Math.max(...found);
      },
      close: async () => this.close(),
    };
  }

  async advance(ms: number): Promise<void> {
    await runUntil(this.tick, () => false, ms, 1);
  }

  /** Advances time until every engine reports ready (or `limitMs` passes). */
  async untilReady(limitMs = 5000): Promise<void> {
    if (!(await runUntil(this.tick, () => this.live().every((i) => this.engines[i]!.executor.ready), limitMs, 1))) throw new Error('engines not ready in time');
  }

  /** Calls `watch` with every message the network delivers from now on, before it is delivered. */
  watchDeliveries(watch: (m: { fromAddress: string; fromId: string; to: string; payload: Uint8Array }) => void): void {
    const deliver = this.network.deliver.bind(this.network);
    this.network.deliver = (fromAddress, fromId, to, channel, payload) => {
      watch({ fromAddress, fromId, to, payload });
      deliver(fromAddress, fromId, to, channel, payload);
    };
  }

  close(): void {
    for (const e of this.engines) {
      e.engine.close();
      e.rpc.close();
    }
  }

  /** Advances simulated time until `promise` settles (a value at hand, as some calls answer, is just given back). */
  drive<T>(promise: T | Promise<T>): Promise<T> {
    if (!(promise instanceof Promise)) return Promise.resolve(promise);
    this.pending++;
    const done = promise.finally(() => this.pending--);
    if (!this.driving) void this.runDriver();
    return done;
  }

  private async runDriver(): Promise<void> {
    this.driving = true;
    try {
      await nextTurn();
      await runUntil(this.tick, () => this.pending === 0, 120_000, 1);
    } finally {
      this.driving = false;
    }
  }

  private driven(provider: StateProvider): StateProvider {
    return this.drivenVia(() => provider);
  }

  /** A provider whose every call goes to `pick()`'s provider and drives the clock until it settles. */
  private drivenVia(pick: () => StateProvider): StateProvider {
    const services = ['sessions', 'revocations', 'lockout', 'replay', 'artifacts', 'requestState', 'tokens', 'rateLimits'] as const;
    const out: Record<string, unknown> = { name: 'grid', close: async () => undefined };
    for (const s of services) {
      out[s] = new Proxy({}, { get: (_t, method: string) => (...args: unknown[]) => this.drive((pick()[s] as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!(...args)) });
    }
    return out as unknown as StateProvider;
  }

  private createEngine(i: number): SimEngine {
    const id = `engine-${i + 1}`;
    const address = `10.1.0.${i + 1}:8020`;
    const { clock, transport } = this.network.addNode(id, address);
    const mux = new TransportMux(transport);
    void transport.start(mux.handlers());
    const rpc = new Rpc({ mux, clock, logger: silentLogger(), timeoutMs: 500 });
    const view = new SimView(clock, id, this);
    const keys = scopeKeys(this.scopes?.[i] ?? { architecture: 'adaptive', groupId: null, interGroup: [], preferredNodeIndices: {} });
    const engine = GridEngine.empty({ self: id, directory: view, rpc, logger: silentLogger(), replicationFactor: this.replicationFactor, bulkTimeoutMs: 10_000, readLocalOnly: this.readLocalOnly, scopeKeys: keys });
    return { id, address, transport, store: engine.store, rpc, executor: engine.executor, provider: engine.provider, engine, view, crashed: false };
  }
}
