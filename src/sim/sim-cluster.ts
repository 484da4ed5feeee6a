/**
 * A whole simulated cluster: N real `Membership` instances on a `SimNetwork`, driven by one
 * `ManualClock` and one seeded PRNG, so a run is reproduced exactly from its seed.
 */
import { ManualClock } from '../core/clock.js';
import { silentLogger } from '../core/logger.js';
import { seededRandom, type Random } from '../core/random.js';
import { Membership } from '../cluster/membership.js';
import { nodeMembershipDelegate } from '../node/membership-delegate.js';
import type { MemberStatus } from '../cluster/member-list.js';
import type { MemberState } from '../cluster/messages.js';
import type { MembershipTiming } from '../cluster/timing.js';
import { TransportMux } from '../transport/mux.js';
import type { PausableClock } from './pausable-clock.js';
import { SimNetwork, type NetworkConditions } from './sim-network.js';

export interface SimClusterOptions {
  nodes: number;
  seed: number;
  timing: MembershipTiming;
  conditions?: Partial<NetworkConditions>;
  /** Called after node `index` saw a member change (for layers built on membership). */
  onMemberChange?(index: number): void;
}

export interface SimNodeHandle {
  index: number;
  id: string;
  address: string;
  membership: Membership;
  /** The node's transport multiplexer, for other protocols (rpc) to share its network. */
  mux: TransportMux;
  /** The node's own clock: stops while the node is paused, dies with it (pausable-clock.ts). */
  clock: PausableClock;
  crashed: boolean;
}

/** One status change seen by one node. */
export interface ObservedChange {
  at: number;
  observer: string;
  member: string;
  from: MemberStatus | undefined;
  to: MemberStatus;
}

export class SimCluster {
  readonly clock = new ManualClock(1_700_000_000_000);
  readonly random: Random;
  readonly network: SimNetwork;
  readonly nodes: SimNodeHandle[] = [];
  readonly changes: ObservedChange[] = [];
  readonly startedAt: number;

  constructor(readonly options: SimClusterOptions) {
    this.random = seededRandom(options.seed);
    this.network = new SimNetwork(this.clock, this.random);
    this.network.conditions = { ...this.network.conditions, ...options.conditions };
    this.startedAt = this.clock.now();
    for (let i = 0; i < options.nodes; i++) this.nodes.push(this.createNode(i));
    // Every node starts knowing every other: the join path is exercised by real-process
    // tests; here it would cost N full-state transfers for nothing.
    const states: MemberState[] = this.nodes.map((n) => ({
      id: n.id, address: n.address, incarnation: n.membership.currentIncarnation, state: 'alive', meta: n.membership.get(n.id)!.meta,
    }));
    for (const n of this.nodes) {
      n.membership.bootstrap(states);
      n.membership.start();
    }
  }

  private createNode(index: number): SimNodeHandle {
    const id = `n${index}`;
    const address = `10.0.${Math.floor(index / 250)}.${(index % 250) + 1}:7946`;
    const { clock, transport } = this.network.addNode(id, address);
    const mux = new TransportMux(transport);
    const membership = new Membership({
      id,
      address,
      // The node's own delegate: the simulator judges joins by the rules a node applies.
      delegate: nodeMembershipDelegate({ role: 'engine', version: '1.0.0', mode: 'sideband', group: null }),
      timing: this.options.timing,
      clock,
      random: this.random,
      mux,
      logger: silentLogger(),
      listener: {
        onMemberChange: (m, from) => {
          this.changes.push({ at: this.clock.now(), observer: id, member: m.id, from, to: m.status });
          this.options.onMemberChange?.(index);
        },
      },
    });
    void transport.start(mux.handlers());
    return { index, id, address, membership, mux, clock, crashed: false };
  }

  /**
   * Starts a new process for node `index` (a crashed or stopped one, at its address; or a new
   * node at the next index): a fresh membership that joins through the live members, as a
   * node's start joins through its peers. Resolves once it joined, or rejects when no member
   * could be reached (CLUSTER_JOIN_NO_PEER): the caller tries again.
   */
  async start(index: number, peers: readonly number[]): Promise<SimNodeHandle> {
    const old = this.nodes[index];
    if (old && !old.crashed) throw new Error(`node ${index} is running`);
    const node = this.createNode(index);
    this.nodes[index] = node;
    node.membership.start();
    try {
      await node.membership.join(peers.map((i) => this.nodes[i]!.address));
    } catch (err) {
      this.crash(index);
      throw err;
    }
    return node;
  }

  /**
   * Graceful leave: node `index` tells the others it leaves (they list it as left), keeps
   * answering for `handoffMs` (node/cluster-member.ts LEAVE_HANDOFF_MS), then its process exits.
   */
  leave(index: number, handoffMs: number, then?: () => void): void {
    const node = this.nodes[index]!;
    node.membership.leave();
    node.clock.setTimeout(() => {
      then?.();
      node.crashed = true;
      this.network.crash(node.address);
    }, handoffMs);
  }

  /** Advances simulated time by `ms`. */
  run(ms: number): void {
    this.clock.advance(ms);
  }

  get now(): number {
    return this.clock.now();
  }

  crash(i: number): void {
    const n = this.nodes[i]!;
    n.crashed = true;
    n.membership.stop();
    this.network.crash(n.address);
  }

  pause(i: number): void {
    this.network.pause(this.nodes[i]!.address);
  }

  resume(i: number): void {
    this.network.resume(this.nodes[i]!.address);
  }

  /** Node i's wall clock runs `skewMs` ahead of the others (behind when negative). */
  skewClock(i: number, skewMs: number): void {
    this.network.skewClock(this.nodes[i]!.address, skewMs);
  }

  isPaused(i: number): boolean {
    return this.network.isPaused(this.nodes[i]!.address);
  }

  partition(a: number[], b: number[]): void {
    this.network.partition(a.map((i) => this.nodes[i]!.address), b.map((i) => this.nodes[i]!.address));
  }

  cutOneWay(from: number, to: number): void {
    this.network.cutLink(this.nodes[from]!.address, this.nodes[to]!.address, true);
  }

  heal(): void {
    this.network.healAll();
  }

  live(): SimNodeHandle[] {
    return this.nodes.filter((n) => !n.crashed);
  }

  /** How `observer` currently sees `member`. */
  statusOf(observer: SimNodeHandle, member: SimNodeHandle): MemberStatus | undefined {
    return observer.membership.get(member.id)?.status;
  }

  /**
   * All live nodes agree: each sees every live node alive and every crashed node dead or left.
   * Returns the disagreements (empty when converged).
   */
  disagreements(): string[] {
    const out: string[] = [];
    for (const o of this.live()) {
      for (const m of this.nodes) {
        if (m === o) continue;
        const s = this.statusOf(o, m);
        if (!m.crashed && s !== 'alive') out.push(`${o.id} sees live ${m.id} as ${s}`);
        if (m.crashed && s !== 'dead' && s !== 'left' && s !== undefined) out.push(`${o.id} sees crashed ${m.id} as ${s}`);
      }
    }
    return out;
  }

  /** Runs until converged or `limitMs` passes; returns the time it took, or undefined. */
  runUntilConverged(limitMs: number, stepMs = 50): number | undefined {
    const start = this.clock.now();
    while (this.clock.now() - start <= limitMs) {
      if (this.disagreements().length === 0) return this.clock.now() - start;
      this.run(stepMs);
    }
    return undefined;
  }

  /** Messages sent by all nodes so far. */
  totalMessagesSent(): number {
    return this.nodes.reduce((sum, n) => sum + n.membership.stats.messagesSent, 0);
  }
}
