/**
 * SWIM membership with the Lifeguard refinements: who is in the cluster and who has failed.
 * This is the façade the rest of the code uses; the work is split along memberlist's seams:
 *
 * - membership-core.ts: what the parts share (member list, gossip queue, local health, sending).
 * - probing.ts: failure detection (probe loop, indirect probes, nacks, acks, crash fast path).
 * - member-states.ts: state transitions, refutation, incarnations, merging a peer's state.
 * - join-protocol.ts: join requests and their answers.
 * - here: the lifecycle, the periodic rounds (gossip, push-pull, reconnection, reaping), the
 *   dispatch of received messages, and the operator's actions (leave, stop, forget).
 *
 * Member metadata is opaque here (member-meta.ts): the delegate (delegate.ts) supplies this
 * node's, checks others', and judges joins.
 *
 * Everything that waits goes through the injected Clock, everything random through the
 * injected Random, and every byte through the injected transport, so the simulator in sim/
 * runs exactly this code.
 *
 * Invariants: a stopped membership sends nothing on its own (no timer runs); a leaving one
 * answers nothing; every received message is decoded and checked before any part sees it,
 * and a malformed one is counted and dropped, never thrown.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { pickRandom, type Random } from '../core/random.js';
import { ProtocolId, type TransportMux } from '../transport/mux.js';
import type { PeerIdentity } from '../transport/transport.js';
import type { MembershipDelegate } from './delegate.js';
import { JoinProtocol } from './join-protocol.js';
import { isActive, type Member } from './member-list.js';
import { MAX_META_BYTES, metaBytes, type MemberMeta } from './member-meta.js';
import { MemberStates, type MembershipListener } from './member-states.js';
import { MAX_PIGGYBACK, MembershipCore, type MembershipStats } from './membership-core.js';
import { MessageType, decodeMessage, metasIn, type MemberState, type Message, type PushPullMsg } from './messages.js';
import { Probing } from './probing.js';
import { pushPullInterval, type MembershipTiming } from './timing.js';

export type { MembershipListener } from './member-states.js';
export type { MembershipStats } from './membership-core.js';

export interface MembershipOptions {
  id: string;
  /** This node's advertised cluster address. */
  address: string;
  /** This node's metadata, the check of others' and the join rules (node/membership-delegate.ts). */
  delegate: MembershipDelegate;
  timing: MembershipTiming;
  clock: Clock;
  random: Random;
  mux: TransportMux;
  logger: Logger;
  listener?: MembershipListener;
  /** First incarnation; defaults to the clock's time so a restarted node outranks its old self. */
  incarnation?: number;
  /** Told the round-trip time (ms, by the clock) of every direct probe a member answered: the node's metrics. */
  onProbeRoundTrip?: (ms: number) => void;
}

export class Membership {
  readonly id: string;
  readonly address: string;
  readonly stats: MembershipStats;
  private readonly core: MembershipCore;
  private readonly delegate: MembershipDelegate;
  private readonly states: MemberStates;
  private readonly probing: Probing;
  private readonly joins: JoinProtocol;
  private timers: { gossip?: TimerHandle; pushPull?: TimerHandle; reconnect?: TimerHandle; reap?: TimerHandle } = {};

  constructor(options: MembershipOptions) {
    this.id = options.id;
    this.address = options.address;
    this.delegate = options.delegate;
    const meta = options.delegate.localMeta();
    checkOwnMetaSize(meta);
    this.core = new MembershipCore(options);
    this.stats = this.core.stats;
    this.states = new MemberStates({
      core: this.core,
      listener: options.listener ?? {},
      meta,
      incarnation: options.incarnation ?? options.clock.now(),
      probeNow: (member) => this.probing.probe(member),
    });
    this.probing = new Probing(this.core, this.states, options.onProbeRoundTrip);
    this.joins = new JoinProtocol(this.core, this.states, this.delegate);
    options.mux.register(ProtocolId.Membership, {
      onMessage: (from, _channel, payload) => this.handlePayload(from, payload),
      onPeerDown: (address, reason) => this.probing.handlePeerDown(address, reason),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  /** Starts probing, gossip, push-pull, reconnection and reaping. */
  start(): void {
    if (this.core.running) return;
    this.core.running = true;
    this.probing.scheduleProbe();
    this.scheduleGossip();
    this.schedulePushPull(Math.floor(this.core.random() * this.core.timing.pushPullIntervalMs));
    this.scheduleReconnect();
    this.scheduleReap();
  }

  /** Stops every timer; the node falls silent (used after leave, and by crash simulation). */
  stop(): void {
    this.core.running = false;
    for (const t of Object.values(this.timers)) this.core.clock.clearTimeout(t);
    this.timers = {};
    this.probing.stop();
    this.states.cancelSuspicions();
  }

  /**
   * Asks the members at `peers` (tried in order) to let this node join; resolves with the
   * address of the member that accepted (join-protocol.ts says what it throws).
   */
  join(peers: string[]): Promise<string> {
    return this.joins.join(peers);
  }

  /**
   * Starts from a known member list instead of (or before) joining: used to restore the list
   * a node persisted, and by the simulator to build large clusters without N joins.
   */
  bootstrap(states: MemberState[]): void {
    this.states.mergeRemoteState(states, this.id);
    // What we were told at start is not news to spread: the others know it already.
    this.core.broadcasts.clear();
  }

  /**
   * Graceful leave: tells every active member directly (and queues the news for gossip) that
   * this node left, then stops. Other members list it as `left`, not `inactive`.
   */
  leave(): void {
    if (this.core.leaving) return;
    this.core.leaving = true;
    const msg = this.states.leave();
    for (const m of this.core.activePeers()) this.core.send(m.address, msg);
    this.stop();
  }

  /** Asks every member, and then this node, to stop (`cohort cluster stop`). */
  stopCluster(): void {
    this.core.broadcastNow({ t: MessageType.StopCluster, by: this.id, at: this.core.clock.now() });
    this.states.handleStopCluster(this.id);
  }

  /**
   * Removes an inactive or left member from every node's list (`cohort cluster delete-node`).
   * Refuses an active (alive or suspect) member.
   */
  forget(address: string): Member {
    const m = this.core.members.getByAddress(address) ?? this.core.members.get(address);
    if (!m) throw new CohortError('CLUSTER_NODE_UNKNOWN', `no member has the address ${address}`);
    if (isActive(m)) throw new CohortError('CLUSTER_NODE_ACTIVE', `${m.id} at ${m.address} is active (${m.status}); only inactive or left members can be deleted; stop it first`);
    this.states.applyForget(m.id);
    this.core.broadcastNow({ t: MessageType.Forget, id: m.id, by: this.id });
    return m;
  }

  /** Sends a cluster-wide message to every active member (directly, and by gossip). */
  broadcastUser(topic: string, body: unknown): void {
    this.core.broadcastNow({ t: MessageType.User, topic, body, from: this.id });
  }

  /**
   * Changes what this node tells about itself (for instance an engine that now holds its
   * state) under a new incarnation, so it outranks the old picture everywhere it spreads.
   * Throws CLUSTER_META_TOO_LARGE, announcing nothing, when the result is over MAX_META_BYTES.
   */
  updateMeta(changes: Partial<MemberMeta>): void {
    checkOwnMetaSize({ ...this.states.localMeta, ...changes });
    this.states.updateMeta(changes);
  }

  // ---------------------------------------------------------------- views

  get(id: string): Member | undefined {
    return this.core.members.get(id);
  }

  /** Every listed member, this node included, as copies (for cluster info and persistence). */
  list(): Member[] {
    return this.core.members.all().map((m) => ({ ...m }));
  }

  get currentIncarnation(): number {
    return this.states.incarnation;
  }

  // ---------------------------------------------------------------- periodic rounds

  private scheduleGossip(): void {
    this.timers.gossip = this.core.clock.setTimeout(() => {
      if (!this.core.running) return;
      this.gossip();
      this.scheduleGossip();
    }, this.core.timing.gossipIntervalMs);
  }

  /** Sends queued updates to a few random members; sends nothing when there is no news. */
  private gossip(): void {
    const { core } = this;
    if (core.broadcasts.size === 0) return;
    const targets = pickRandom(core.activePeers(), core.timing.gossipNodes, core.random);
    for (const t of targets) {
      const g = core.broadcasts.take(MAX_PIGGYBACK);
      if (g.length === 0) return;
      core.send(t.address, { t: MessageType.Gossip, from: this.id, g });
    }
  }

  private schedulePushPull(delay: number): void {
    const { core } = this;
    this.timers.pushPull = core.clock.setTimeout(() => {
      if (!core.running) return;
      const [peer] = pickRandom(core.activePeers(), 1, core.random);
      if (peer) core.send(peer.address, this.pushPullMessage(true));
      this.schedulePushPull(pushPullInterval(core.timing.pushPullIntervalMs, core.members.activeCount()));
    }, delay);
  }

  /** Tries one inactive member now and then, so that the two sides of a healed partition merge. */
  private scheduleReconnect(): void {
    const { core } = this;
    this.timers.reconnect = core.clock.setTimeout(() => {
      if (!core.running) return;
      const dead = core.members.all().filter((m) => m.status === 'dead');
      const [peer] = pickRandom(dead, 1, core.random);
      if (peer) core.send(peer.address, this.pushPullMessage(true));
      this.scheduleReconnect();
    }, core.timing.reconnectIntervalMs);
  }

  private scheduleReap(): void {
    const { core } = this;
    const every = Math.min(core.timing.reapTimeoutMs, 60_000);
    this.timers.reap = core.clock.setTimeout(() => {
      if (!core.running) return;
      const cutoff = core.clock.now() - core.timing.reapTimeoutMs;
      for (const m of core.members.all()) {
        if (!isActive(m) && m.id !== this.id && m.statusSince <= cutoff) {
          core.members.delete(m.id);
          core.log.info({ member: m.id }, 'forgot a member inactive for longer than reap_timeout');
        }
      }
      this.scheduleReap();
    }, every);
  }

  private pushPullMessage(reply: boolean): PushPullMsg {
    return { t: MessageType.PushPull, from: this.id, reply, members: this.states.sharedStates() };
  }

  // ---------------------------------------------------------------- receiving

  private handlePayload(from: PeerIdentity, payload: Uint8Array): void {
    const msg = decodeMessage(payload);
    // Metadata is checked by the delegate, which knows its fields; unknown fields pass.
    if (!msg || !metasIn(msg).every((meta) => this.delegate.acceptsMeta(meta))) {
      this.stats.malformedDropped++;
      return;
    }
    this.stats.messagesReceived++;
    if (this.core.leaving) return;
    this.handleMessage(from, msg);
  }

  /** One handler per message type. */
  private handleMessage(from: PeerIdentity, msg: Message): void {
    switch (msg.t) {
      case MessageType.Ping:
        return this.probing.handlePing(from, msg);
      case MessageType.Ack:
        return this.probing.handleAck(msg);
      case MessageType.PingReq:
        return this.probing.handlePingReq(from, msg);
      case MessageType.Nack:
        return this.probing.handleNack(msg);
      case MessageType.PushPull:
        // Merge first: if the sender thinks we are dead, the refutation is in our reply.
        this.states.mergeRemoteState(msg.members, msg.from);
        if (msg.reply) this.core.send(from.address, this.pushPullMessage(false));
        return;
      case MessageType.Join:
        return this.joins.handleJoin(from, msg);
      case MessageType.JoinReply:
        return this.joins.handleJoinReply(from, msg);
      case MessageType.Gossip:
        return this.states.applyBroadcasts(msg.g);
      default:
        return this.states.applyBroadcast(msg);
    }
  }
}

/** This node's own metadata must fit what every member carries: refused before it is announced. */
function checkOwnMetaSize(meta: MemberMeta): void {
  const size = metaBytes(meta);
  if (size > MAX_META_BYTES) {
    throw new CohortError('CLUSTER_META_TOO_LARGE', `this node's metadata is ${size} bytes as JSON; at most ${MAX_META_BYTES} are carried`);
  }
}
