/**
 * A replicated grid of N engines on the simulated network, driven by one manual clock: the
 * real executor, store, rpc and provider code, with membership changes applied by the test
 * (`setActive`). Calls made through `provider(i)` advance simulated time until they settle.
 */
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { seededRandom } from '../../src/core/random.js';
import { Rpc } from '../../src/rpc/rpc.js';
import { nextTurn, runUntil } from '../../src/sim/drive.js';
import { SimNetwork, type SimTransport } from '../../src/sim/sim-network.js';
import { GridProvider, PARTITION_COUNT, scopedRouting } from '../../src/state/grid/grid-provider.js';
import { placeScopes } from '../../src/state/grid/placement.js';
import { CLUSTER_SCOPE, scopeKeys, type ScopeSettings } from '../../src/state/grid/scopes.js';
import { GridStore } from '../../src/state/grid/grid-store.js';
import { ReplicatedExecutor } from '../../src/state/grid/replicated-executor.js';
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
  crashed: boolean;
}

export interface SimGridOptions {
  replicationFactor?: number;
  seed?: number;
  scopes?: ScopeSettings[];
  /** `[state] read_local_only` of every engine's provider (default true). */
  readLocalOnly?: boolean;
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

  constructor(count: number, options: SimGridOptions = {}) {
    this.scopes = options.scopes;
    this.readLocalOnly = options.readLocalOnly ?? true;
    this.network = new SimNetwork(this.clock, seededRandom(options.seed ?? 1));
    for (let i = 0; i < count; i++) this.engines.push(this.createEngine(i, options.replicationFactor ?? 3));
  }

  /** A grid of `count` engines that all know each other and have finished their start-up sync. */
  static async started(count: number, options: SimGridOptions = {}): Promise<SimGrid> {
    const grid = new SimGrid(count, options);
    grid.setActive(grid.engines.map((_, i) => i));
    await grid.untilReady();
    return grid;
  }

  /** Tells engines `observers` (default: the live ones) that exactly `active` are the engines. */
  setActive(active: number[], observers = this.live()): void {
    const map = new Map(active.map((i) => [this.engines[i]!.id, this.engines[i]!.address]));
    for (const i of observers) this.engines[i]!.executor.setEngines(map);
  }

  /**
   * What engine `observer` sees, as membership would tell it: `active` engines, `knownEngines`
   * in the member list (failed ones included), and the console/replica witnesses it knows and
   * sees active (the write majority, state/grid/write-majority.ts).
   */
  setView(observer: number, active: number[], view: { knownEngines: number; witnesses: { known: number; active: number } }): void {
    const map = new Map(active.map((i) => [this.engines[i]!.id, this.engines[i]!.address]));
    this.engines[observer]!.executor.setEngines(map, view.knownEngines, undefined, view.witnesses);
  }

  live(): number[] {
    return this.engines.map((e, i) => (e.crashed ? -1 : i)).filter((i) => i >= 0);
  }

  crash(i: number): void {
    const e = this.engines[i]!;
    e.crashed = true;
    e.store.stop();
    this.network.crash(e.address);
  }

  /** Replaces engine i by a fresh process (empty memory) at the same address. */
  restart(i: number): SimEngine {
    const fresh = this.createEngine(i, this.engines[i]!.executor.replicationFactor);
    this.engines[i] = fresh;
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

  close(): void {
    for (const e of this.engines) {
      e.store.stop();
      e.rpc.close();
    }
  }

  drive<T>(promise: Promise<T>): Promise<T> {
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

  private createEngine(i: number, replicationFactor: number): SimEngine {
    const id = `engine-${i + 1}`;
    const address = `10.1.0.${i + 1}:8020`;
    const { clock, transport } = this.network.addNode(id, address);
    const mux = new TransportMux(transport);
    void transport.start(mux.handlers());
    const rpc = new Rpc({ mux, clock, logger: silentLogger(), timeoutMs: 500 });
    const store = new GridStore(clock, id);
    store.start();
    const scopes = this.scopes;
    if (!scopes) {
      const executor = new ReplicatedExecutor({ store, rpc, clock, logger: silentLogger(), self: id, replicationFactor, bulkTimeoutMs: 10_000 });
      return { id, address, transport, store, rpc, executor, provider: new GridProvider(executor, clock, undefined, undefined, { readLocalOnly: this.readLocalOnly }), crashed: false };
    }
    // What membership metadata tells a node: every engine's group, node index and scope keys.
    const keysOf = (k: number) => scopeKeys(scopes[k]!);
    const place = (serving: readonly string[]) => {
      const engines = serving.map((e) => {
        const k = Number(e.slice('engine-'.length)) - 1;
        return { id: e, group: scopes[k]!.groupId, index: k + 1 };
      });
      const inUse = [CLUSTER_SCOPE, ...scopes.flatMap((_, k) => Object.values(keysOf(k)))];
      return placeScopes(engines, inUse, PARTITION_COUNT, replicationFactor);
    };
    const sessionScopeOfGroup = (group: string) => {
      const k = scopes.findIndex((sc) => sc.groupId === group);
      return k < 0 ? undefined : keysOf(k).session;
    };
    const executor = new ReplicatedExecutor({ store, rpc, clock, logger: silentLogger(), self: id, replicationFactor, bulkTimeoutMs: 10_000, place });
    const provider = new GridProvider(executor, clock, undefined, scopedRouting(keysOf(i), sessionScopeOfGroup), { readLocalOnly: this.readLocalOnly });
    return { id, address, transport, store, rpc, executor, provider, crashed: false };
  }
}
