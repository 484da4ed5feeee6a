/**
 * An in-memory network for the simulator: delivers messages between simulated nodes with
 * seeded delay and loss, and can cut links (partitions, one-way partitions), pause nodes and
 * crash them. It implements the same Transport interface as the real TCP transport and
 * imitates the connection-level signals the membership relies on:
 *
 * - a crashed node's peers see their connections close (`closed`), and later sends to it are
 *   refused (`refused`), like a process whose port is no longer open;
 * - a paused node's input waits in its socket buffer until it resumes;
 * - a cut link drops traffic silently, like a network that black-holes packets.
 *
 * Per-link delivery is FIFO, as over one TCP connection. A message larger than the TCP
 * transport's frame limit is dropped and counted (`framesOversized`) exactly as TCP drops it,
 * so code that would build too large a message fails here as it would between real nodes.
 */
import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Random } from '../core/random.js';
import { MAX_FRAME_BYTES } from '../transport/frame-codec.js';
import { PROTOCOL_VERSION_MAX } from '../transport/handshake.js';
import { FRAME_OVERHEAD_BYTES } from '../transport/secure-channel.js';
import { emptyStats, type Channel, type PeerIdentity, type Transport, type TransportHandlers, type TransportStats } from '../transport/transport.js';
import { PausableClock } from './pausable-clock.js';

export interface NetworkConditions {
  /** One-way delay: base plus uniform jitter (ms). */
  delayMs: number;
  jitterMs: number;
  /** Probability that a message is lost (0..1). */
  loss: number;
}

interface SimNode {
  id: string;
  address: string;
  clock: PausableClock;
  transport: SimTransport;
  crashed: boolean;
  /** Deliveries that arrived while paused, run in order at resume. */
  inbox: Array<() => void>;
  /** Peers this node has exchanged traffic with: they see its connections close when it crashes. */
  contacts: Set<string>;
}

export class SimNetwork {
  private readonly nodes = new Map<string, SimNode>();
  private readonly cut = new Set<string>();
  private readonly lastDelivery = new Map<string, number>();
  conditions: NetworkConditions = { delayMs: 0.5, jitterMs: 0.5, loss: 0 };
  /** Largest message a node may send, as over TCP: the frame limit less the sealing overhead (bytes). */
  maxMessageBytes = MAX_FRAME_BYTES - FRAME_OVERHEAD_BYTES;

  constructor(
    readonly clock: Clock,
    private readonly random: Random,
  ) {}

  /** Adds a node (or replaces a crashed one at the same address) and returns its clock and transport. */
  addNode(id: string, address: string): { clock: PausableClock; transport: SimTransport } {
    const clock = new PausableClock(this.clock);
    const node: SimNode = { id, address, clock, transport: undefined as unknown as SimTransport, crashed: false, inbox: [], contacts: new Set() };
    node.transport = new SimTransport(this, node.id, address);
    this.nodes.set(address, node);
    return { clock, transport: node.transport };
  }

  // ------------------------------------------------------------------ faults

  /** Drops traffic from `a` to `b` (and back, unless `oneWay`). */
  cutLink(a: string, b: string, oneWay = false): void {
    this.cut.add(`${a}>${b}`);
    if (!oneWay) this.cut.add(`${b}>${a}`);
  }

  /** Cuts every link between the two groups. */
  partition(groupA: string[], groupB: string[]): void {
    for (const a of groupA) for (const b of groupB) this.cutLink(a, b);
  }

  healAll(): void {
    this.cut.clear();
  }

  pause(address: string): void {
    this.nodeAt(address).clock.pause();
  }

  /** Sets how far the node's wall clock is ahead of the others (ms). */
  skewClock(address: string, skewMs: number): void {
    this.nodeAt(address).clock.skewMs = skewMs;
  }

  /** Resumes a paused node: first its buffered input is read, then its overdue timers run. */
  resume(address: string): void {
    const node = this.nodeAt(address);
    const held = node.clock.resume();
    const inbox = node.inbox;
    node.inbox = [];
    for (const deliver of inbox) this.clock.setTimeout(deliver, 0);
    for (const fn of held) this.clock.setTimeout(fn, 0);
  }

  /** Kills a node: it never runs again; its peers see their connections to it close. */
  crash(address: string): void {
    const node = this.nodeAt(address);
    node.crashed = true;
    node.clock.kill();
    node.inbox = [];
    for (const contact of node.contacts) {
      const peer = this.nodes.get(contact);
      if (!peer || peer.crashed || this.isCut(address, contact)) continue;
      this.schedule(peer, this.delay(), () => peer.transport.handlers?.onPeerDown(address, 'closed'));
    }
  }

  isPaused(address: string): boolean {
    return this.nodeAt(address).clock.isPaused;
  }

  // ------------------------------------------------------------------ delivery

  /** @internal used by SimTransport */
  deliver(fromAddress: string, fromId: string, to: string, channel: Channel, payload: Uint8Array): void {
    const sender = this.nodes.get(fromAddress);
    const target = this.nodes.get(to);
    if (!sender || sender.crashed) return;
    if (!target) {
      this.schedule(sender, this.delay(), () => sender.transport.handlers?.onPeerDown(to, 'error'));
      return;
    }
    if (this.isCut(fromAddress, to) || this.random() < this.conditions.loss) return;
    if (target.crashed) {
      this.schedule(sender, 2 * this.delay(), () => sender.transport.handlers?.onPeerDown(to, 'refused'));
      return;
    }
    sender.contacts.add(to);
    target.contacts.add(fromAddress);
    const link = `${fromAddress}>${to}`;
    const at = Math.max(this.clock.now() + this.delay(), (this.lastDelivery.get(link) ?? 0) + 0.001);
    this.lastDelivery.set(link, at);
    const copy = payload.slice();
    this.clock.setTimeout(() => {
      if (target.crashed) return;
      const run = (): void => target.transport.receive({ nodeId: fromId, address: fromAddress }, channel, copy);
      if (target.clock.isPaused) target.inbox.push(run);
      else run();
    }, at - this.clock.now());
  }

  /** @internal used by SimTransport.connect */
  reachable(from: string, to: string): 'ok' | 'refused' | 'silent' | 'unknown' {
    const target = this.nodes.get(to);
    if (!target) return 'unknown';
    if (this.isCut(from, to) || this.isCut(to, from)) return 'silent';
    if (target.crashed) return 'refused';
    return 'ok';
  }

  /** @internal */
  idAt(address: string): string | undefined {
    return this.nodes.get(address)?.id;
  }

  delay(): number {
    return this.conditions.delayMs + this.random() * this.conditions.jitterMs;
  }

  private isCut(from: string, to: string): boolean {
    return this.cut.size > 0 && this.cut.has(`${from}>${to}`);
  }

  /** Runs `fn` on `node` after `ms`, respecting its pause (events wait in its inbox). */
  private schedule(node: SimNode, ms: number, fn: () => void): void {
    this.clock.setTimeout(() => {
      if (node.crashed) return;
      if (node.clock.isPaused) node.inbox.push(fn);
      else fn();
    }, ms);
  }

  private nodeAt(address: string): SimNode {
    const node = this.nodes.get(address);
    if (!node) throw new Error(`no simulated node at ${address}`);
    return node;
  }
}

/** The Transport of one simulated node. */
export class SimTransport implements Transport {
  handlers: TransportHandlers | undefined;
  private readonly counters: TransportStats = emptyStats();

  constructor(
    private readonly network: SimNetwork,
    private readonly nodeId: string,
    readonly localAddress: string,
  ) {}

  async start(handlers: TransportHandlers): Promise<void> {
    this.handlers = handlers;
  }

  send(to: string, channel: Channel, payload: Uint8Array): void {
    if (payload.length > this.network.maxMessageBytes) {
      this.counters.framesOversized++;
      return;
    }
    this.counters.framesSent++;
    this.counters.bytesSent += payload.length;
    this.network.deliver(this.localAddress, this.nodeId, to, channel, payload);
  }

  /** Every simulated node runs this build: it speaks this build's newest version to all. */
  protocolTo(): number {
    return PROTOCOL_VERSION_MAX;
  }

  connect(to: string): Promise<PeerIdentity> {
    return new Promise((resolve, reject) => {
      const verdict = this.network.reachable(this.localAddress, to);
      const rtt = 2 * this.network.delay();
      if (verdict === 'silent') {
        this.network.clock.setTimeout(() => reject(new CohortError('TRANSPORT_PEER_UNREACHABLE', `connecting to ${to} timed out`, { reason: 'timeout' })), 1000);
        return;
      }
      this.network.clock.setTimeout(() => {
        if (verdict === 'ok') resolve({ nodeId: this.network.idAt(to)!, address: to });
        else reject(new CohortError('TRANSPORT_PEER_UNREACHABLE', `connection to ${to} ${verdict}`, { reason: verdict === 'refused' ? 'refused' : 'error' }));
      }, rtt);
    });
  }

  /** @internal called by the network */
  receive(from: PeerIdentity, channel: Channel, payload: Uint8Array): void {
    this.counters.framesReceived++;
    this.counters.bytesReceived += payload.length;
    this.handlers?.onMessage(from, channel, payload);
  }

  /**
   * Addresses whose connections the node closed, in order: the simulated network keeps no
   * connections (nothing is ever stuck on one), so this only records that the node asked.
   */
  readonly disconnected: string[] = [];

  disconnect(address: string): void {
    this.disconnected.push(address);
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  async close(): Promise<void> {
    this.handlers = undefined;
  }
}
