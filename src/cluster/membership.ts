/**
 * SWIM membership with the Lifeguard refinements: who is in the cluster and who has failed.
 *
 * Everything that waits goes through the injected Clock, everything random through the
 * injected Random, and every byte through the injected transport, so the simulator in sim/
 * runs exactly this code.
 *
 * Probing follows probe-schedule.ts: a randomized round-robin all nodes compute alike.
 *
 * Detection paths:
 * - A silent member (paused, cut off): a direct probe times out, `indirectChecks` peers probe
 *   it for us, then it is suspected; the suspicion timeout shrinks as others confirm
 *   (suspicion.ts) and the member is declared dead unless it refutes first.
 * - A crashed process: its connections close, which triggers an immediate probe. When the
 *   probe's connection is refused (nothing listens on its port) and every peer asked to check
 *   reports the same refusal, the member is declared dead at once: a refused port is proof,
 *   not a guess. A false verdict is refuted by the member itself like any other.
 *
 * Invariants:
 * - Incarnation numbers only grow; only a member itself raises its own (refutation).
 * - An update about a member is applied only if its incarnation is at least as new as what we
 *   hold (strictly newer for alive after suspect/dead), so old news never overwrites new.
 * - Dead and left members stay listed (inactive) until reap_timeout or an operator's forget.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { pickRandom, type Random } from '../core/random.js';
import { ProtocolId, type TransportMux } from '../transport/mux.js';
import type { PeerDownReason, PeerIdentity } from '../transport/transport.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { judgeJoin } from './compatibility.js';
import { probeRing, roundOf, targetOnRing } from './probe-schedule.js';
import { isActive, MemberList, type Member, type MemberStatus } from './member-list.js';
import {
  MEMBERSHIP_PROTOCOL_MAX,
  MEMBERSHIP_PROTOCOL_MIN,
  MessageType,
  decodeMessage,
  encodeMessage,
  type AckMsg,
  type AliveMsg,
  type Broadcast,
  type DeadMsg,
  type JoinMsg,
  type JoinReplyMsg,
  type MemberState,
  type Message,
  type NackMsg,
  type NodeMeta,
  type PingMsg,
  type PingReqMsg,
  type PushPullMsg,
  type SuspectMsg,
} from './messages.js';
import { Suspicion } from './suspicion.js';
import { expectedConfirmations, pushPullInterval, retransmitLimit, suspicionTimeout, type MembershipTiming } from './timing.js';

export interface MembershipListener {
  /** A member was added or its status changed. */
  onMemberChange?(member: Member, previous: MemberStatus | undefined): void;
  /** A member was removed from the list (`cohort cluster delete-node`, here or on another node). */
  onMemberForgotten?(member: Member): void;
  /** An operator asked the whole cluster to stop (`cohort cluster stop`). */
  onStopCluster?(by: string): void;
  /** A cluster-wide user message (used by higher layers, e.g. configuration notifications). */
  onUserMessage?(topic: string, body: unknown, from: string): void;
}

export interface MembershipOptions {
  id: string;
  /** This node's advertised cluster address. */
  address: string;
  meta: NodeMeta;
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

/** Counters for tests, benchmarks and the simulator. */
export interface MembershipStats {
  messagesSent: number;
  messagesReceived: number;
  malformedDropped: number;
  probes: number;
  probesFailed: number;
  refutations: number;
  suspicionsRaised: number;
  deathsDeclared: number;
}

interface DirectProbe {
  kind: 'direct';
  seq: number;
  target: Member;
  sentAt: number;
  refused: boolean;
  indirectStarted: boolean;
  expectedNacks: number;
  nacks: number;
  refusedNacks: number;
  timers: TimerHandle[];
  done: boolean;
}

interface RelayedProbe {
  kind: 'relay';
  seq: number;
  target: string;
  targetAddress: string;
  origin: string;
  originAddress: string;
  originSeq: number;
  timer: TimerHandle | undefined;
  done: boolean;
}

const MAX_PIGGYBACK = 32;
const JOIN_TIMEOUT_MS = 3000;

export class Membership {
  readonly id: string;
  readonly address: string;
  private incarnation: number;
  private meta: NodeMeta;
  /** Members whose incarnation was learned from a ping or ack, metadata not seen yet. */
  private readonly metaUnconfirmed = new Set<string>();
  private readonly members = new MemberList();
  private readonly timing: MembershipTiming;
  private readonly clock: Clock;
  private readonly random: Random;
  private readonly mux: TransportMux;
  private readonly log: Logger;
  private readonly listener: MembershipListener;
  private readonly awareness: Awareness;
  private readonly onProbeRoundTrip: ((ms: number) => void) | undefined;
  private readonly broadcasts: BroadcastQueue;
  private readonly suspicions = new Map<string, Suspicion>();
  private readonly probes = new Map<number, DirectProbe | RelayedProbe>();
  private readonly pendingJoins = new Map<string, (reply: JoinReplyMsg) => void>();
  /** Last time a connection-loss hint triggered a probe, per member id, to rate-limit hints. */
  private readonly lastHintProbe = new Map<string, number>();
  private readonly skewWarned = new Set<string>();
  /** Where in each probe slot this node probes: spread so that nodes do not all fire at once. */
  private readonly probeOffset: number;
  private ring: { round: number; version: number; ids: string[] } | undefined;
  private peersCache: { version: number; peers: Member[] } | undefined;
  private seq = 0;
  private timers: { probe?: TimerHandle; gossip?: TimerHandle; pushPull?: TimerHandle; reconnect?: TimerHandle; reap?: TimerHandle } = {};
  private running = false;
  private leaving = false;
  private stopClusterSeen = false;
  readonly stats: MembershipStats = {
    messagesSent: 0,
    messagesReceived: 0,
    malformedDropped: 0,
    probes: 0,
    probesFailed: 0,
    refutations: 0,
    suspicionsRaised: 0,
    deathsDeclared: 0,
  };

  constructor(options: MembershipOptions) {
    this.id = options.id;
    this.address = options.address;
    this.meta = options.meta;
    this.timing = options.timing;
    this.onProbeRoundTrip = options.onProbeRoundTrip;
    this.clock = options.clock;
    this.random = options.random;
    this.mux = options.mux;
    this.log = options.logger;
    this.listener = options.listener ?? {};
    this.incarnation = options.incarnation ?? options.clock.now();
    this.awareness = new Awareness(options.timing.awarenessMaxMultiplier);
    this.probeOffset = Math.floor(this.random() * options.timing.probeIntervalMs * 0.5);
    this.broadcasts = new BroadcastQueue(() => retransmitLimit(this.timing.retransmitMult, this.members.activeCount()));
    this.members.set({
      id: this.id,
      address: this.address,
      incarnation: this.incarnation,
      status: 'alive',
      meta: this.meta,
      statusSince: this.clock.now(),
      clockOffsetMs: 0,
    });
    this.mux.register(ProtocolId.Membership, {
      onMessage: (from, _channel, payload) => this.handlePayload(from, payload),
      onPeerDown: (address, reason) => this.handlePeerDown(address, reason),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  /** Starts probing, gossip, push-pull, reconnection and reaping. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.scheduleProbe();
    this.scheduleGossip();
    this.schedulePushPull(this.randomDelay(this.timing.pushPullIntervalMs));
    this.scheduleReconnect();
    this.scheduleReap();
  }

  /** Stops every timer; the node falls silent (used after leave, and by crash simulation). */
  stop(): void {
    this.running = false;
    for (const t of Object.values(this.timers)) this.clock.clearTimeout(t);
    this.timers = {};
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
    for (const p of this.probes.values()) this.finishProbe(p);
    this.probes.clear();
  }

  /**
   * Asks the members at `peers` (tried in order) to let this node join. Resolves with the
   * address of the member that accepted. Throws CohortError: a transport refusal (cluster id,
   * secret, protocol) or a join refusal (mode, version, duplicate id) at once, since another
   * peer would say the same; CLUSTER_JOIN_NO_PEER when no peer could be reached.
   */
  async join(peers: string[]): Promise<string> {
    const failures: string[] = [];
    for (const peer of peers) {
      if (peer === this.address) continue;
      let identity: PeerIdentity;
      try {
        identity = await this.mux.transport.connect(peer, 'control');
      } catch (err) {
        if (err instanceof CohortError && err.code.startsWith('TRANSPORT_REFUSED')) throw err;
        failures.push(`${peer}: ${(err as Error).message}`);
        continue;
      }
      // Our own port under another name (a host name, localhost): not a peer to join through.
      if (identity.nodeId === this.id && identity.address === this.address) continue;
      const reply = await this.requestJoin(identity.address);
      if (!reply) {
        failures.push(`${peer}: no answer to the join request`);
        continue;
      }
      if (!reply.accepted) {
        const code = (reply.code ?? 'CLUSTER_JOIN_NO_PEER') as CohortError['code'];
        throw new CohortError(code, `join refused by ${identity.nodeId} at ${identity.address}: ${reply.message ?? 'no reason given'}`);
      }
      this.mergeRemoteState(reply.members ?? [], identity.nodeId);
      this.log.info({ via: identity.address, members: this.members.size }, 'joined the cluster');
      return identity.address;
    }
    throw new CohortError('CLUSTER_JOIN_NO_PEER', `no peer could be reached to join through (${failures.join('; ') || 'no peers configured'})`);
  }

  /**
   * Starts from a known member list instead of (or before) joining: used to restore the list
   * a node persisted, and by the simulator to build large clusters without N joins.
   */
  bootstrap(states: MemberState[]): void {
    this.mergeRemoteState(states, this.id);
    // What we were told at start is not news to spread: the others know it already.
    this.broadcasts.clear();
  }

  /**
   * Graceful leave: tells every active member directly (and queues the news for gossip) that
   * this node left, then stops. Other members list it as `left`, not `inactive`.
   */
  leave(): void {
    if (this.leaving) return;
    this.leaving = true;
    this.incarnation++;
    const msg: DeadMsg = { t: MessageType.Dead, id: this.id, incarnation: this.incarnation, from: this.id };
    this.applyDead(msg);
    for (const m of this.activePeers()) this.send(m.address, msg);
    this.stop();
  }

  /** Asks every member, and then this node, to stop (`cohort cluster stop`). */
  stopCluster(): void {
    this.broadcastNow({ t: MessageType.StopCluster, by: this.id, at: this.clock.now() });
    this.handleStopCluster(this.id);
  }

  /**
   * Removes an inactive or left member from every node's list (`cohort cluster delete-node`).
   * Refuses an active (alive or suspect) member.
   */
  forget(address: string): Member {
    const m = this.members.getByAddress(address) ?? this.members.get(address);
    if (!m) throw new CohortError('CLUSTER_NODE_UNKNOWN', `no member has the address ${address}`);
    if (isActive(m)) throw new CohortError('CLUSTER_NODE_ACTIVE', `${m.id} at ${m.address} is active (${m.status}); only inactive or left members can be deleted; stop it first`);
    this.applyForget(m.id);
    this.broadcastNow({ t: MessageType.Forget, id: m.id, by: this.id });
    return m;
  }

  /** Sends a cluster-wide message to every active member (directly, and by gossip). */
  broadcastUser(topic: string, body: unknown): void {
    this.broadcastNow({ t: MessageType.User, topic, body, from: this.id });
  }

  // ---------------------------------------------------------------- views

  get(id: string): Member | undefined {
    return this.members.get(id);
  }

  /** Every listed member, this node included, as copies (for cluster info and persistence). */
  list(): Member[] {
    return this.members.all().map((m) => ({ ...m }));
  }

  get currentIncarnation(): number {
    return this.incarnation;
  }

  // ---------------------------------------------------------------- sending

  private send(to: string, msg: Message): void {
    this.stats.messagesSent++;
    this.mux.send(ProtocolId.Membership, to, 'control', encodeMessage(msg));
  }

  /** Active members other than this node; cached until the member list changes. */
  /**
   * An operator's update (stop, forget, user message): sent straight to every active member,
   * which takes effect at once, and queued for gossip, which reaches those the direct send
   * missed.
   */
  private broadcastNow(msg: Broadcast): void {
    this.broadcasts.enqueue(msg);
    for (const m of this.activePeers()) this.send(m.address, msg);
  }

  /** The in-flight direct probe of member `id`, if any. */
  private directProbeOf(id: string): DirectProbe | undefined {
    for (const p of this.probes.values()) if (p.kind === 'direct' && !p.done && p.target.id === id) return p;
    return undefined;
  }

  private activePeers(): Member[] {
    if (this.peersCache?.version !== this.members.version) {
      this.peersCache = { version: this.members.version, peers: this.members.all().filter((m) => m.id !== this.id && isActive(m)) };
    }
    return this.peersCache.peers;
  }

  /**
   * Changes what this node tells about itself (for instance an engine that now holds its
   * state) under a new incarnation, so it outranks the old picture everywhere it spreads.
   */
  updateMeta(changes: Partial<NodeMeta>): void {
    this.meta = { ...this.meta, ...changes };
    this.incarnation++;
    this.announceSelf();
    const me = this.members.get(this.id);
    if (me) this.listener.onMemberChange?.({ ...me }, me.status);
  }

  private announceSelf(): void {
    const me = this.members.get(this.id)!;
    me.incarnation = this.incarnation;
    me.meta = this.meta;
    this.broadcasts.enqueue(this.aliveMessage(me));
  }

  private aliveMessage(m: Member): AliveMsg {
    return { t: MessageType.Alive, id: m.id, address: m.address, incarnation: m.incarnation, meta: m.meta };
  }

  private piggyback(): Broadcast[] | undefined {
    const g = this.broadcasts.take(MAX_PIGGYBACK);
    return g.length > 0 ? g : undefined;
  }

  // ---------------------------------------------------------------- probing

  /**
   * Probes run at a fixed offset within each wall-clock slot of one probe interval, so that
   * every node agrees on the step number (probe-schedule.ts). A struggling node (health score
   * above 0) skips slots.
   */
  private scheduleProbe(): void {
    const interval = this.timing.probeIntervalMs;
    const now = this.clock.now();
    const slotStart = Math.floor(now / interval) * interval;
    let next = slotStart + this.probeOffset;
    if (next <= now) next += interval;
    next += (this.awareness.scale(interval) - interval);
    this.timers.probe = this.clock.setTimeout(() => {
      if (!this.running) return;
      this.probeNext();
      this.scheduleProbe();
    }, next - now);
  }

  private probeNext(): void {
    const step = Math.floor(this.clock.now() / this.timing.probeIntervalMs);
    const active = this.members.activeCount();
    const round = roundOf(step, active);
    // The ring only changes with the round or the active set: sorting it per probe would cost
    // O(N log N) hashes per node per second in a large cluster.
    if (!this.ring || this.ring.round !== round || this.ring.version !== this.members.version) {
      const ids = this.members.all().filter(isActive).map((m) => m.id);
      this.ring = { round, version: this.members.version, ids: probeRing(ids, round) };
    }
    const targetId = targetOnRing(this.ring.ids, this.id, step);
    const target = targetId === undefined ? undefined : this.members.get(targetId);
    if (target) this.probe(target);
  }

  private probe(target: Member): void {
    if (this.directProbeOf(target.id)) return;
    const seq = ++this.seq;
    const now = this.clock.now();
    const probe: DirectProbe = {
      kind: 'direct', seq, target, sentAt: now, refused: false, indirectStarted: false, expectedNacks: 0, nacks: 0, refusedNacks: 0, timers: [], done: false,
    };
    this.probes.set(seq, probe);
    this.stats.probes++;
    // Lifeguard's buddy system: a suspect member hears of the suspicion in the probe itself, so
    // it can refute at once instead of waiting for gossip to reach it.
    const g = this.piggyback() ?? [];
    if (target.status === 'suspect') g.unshift({ t: MessageType.Suspect, id: target.id, incarnation: target.incarnation, from: this.id });
    const ping: PingMsg = { t: MessageType.Ping, seq, from: this.id, inc: this.incarnation, target: target.id, sentAt: now, g: g.length > 0 ? g : undefined };
    this.send(target.address, ping);
    const timeout = this.awareness.scale(this.timing.probeTimeoutMs);
    const interval = this.awareness.scale(this.timing.probeIntervalMs);
    probe.timers.push(this.afterDeadline(timeout, () => this.startIndirect(probe)));
    probe.timers.push(this.afterDeadline(Math.max(interval, timeout * 2), () => this.probeFailed(probe)));
  }

  /**
   * Runs `fn` after `ms`, unless the event loop was stalled: a timer that fires much later than
   * asked means this node was blocked (or paused), and replies may be sitting unread in its
   * socket buffers. Then the verdict waits one more turn of the loop, so they are read first,
   * and the stall counts against this node's own health rather than the peer's.
   */
  private afterDeadline(ms: number, fn: () => void): TimerHandle {
    const due = this.clock.now() + ms;
    return this.clock.setTimeout(() => {
      const late = this.clock.now() - due;
      if (late > Math.max(50, ms / 2)) {
        this.awareness.apply(1);
        this.clock.setTimeout(fn, 0);
        return;
      }
      fn();
    }, ms);
  }

  private startIndirect(probe: DirectProbe): void {
    if (probe.done || probe.indirectStarted) return;
    probe.indirectStarted = true;
    const helpers = pickRandom(this.activePeers(), this.timing.indirectChecks, this.random, (m) => m.id === probe.target.id);
    probe.expectedNacks = helpers.length;
    const req: PingReqMsg = { t: MessageType.PingReq, seq: probe.seq, from: this.id, target: probe.target.id, targetAddress: probe.target.address };
    for (const h of helpers) this.send(h.address, req);
    if (probe.refused && helpers.length === 0) this.declareCrashed(probe);
  }

  private probeFailed(probe: DirectProbe): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    this.stats.probesFailed++;
    // Helpers that answered nothing at all suggest the problem is on our side.
    if (probe.expectedNacks > 0 && probe.nacks < probe.expectedNacks) this.awareness.apply(1);
    const m = this.members.get(probe.target.id);
    if (!m || !isActive(m)) return;
    this.applySuspect({ t: MessageType.Suspect, id: m.id, incarnation: m.incarnation, from: this.id });
  }

  private probeSucceeded(probe: DirectProbe, ack: AckMsg): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    this.awareness.apply(-1);
    const m = this.members.get(probe.target.id);
    if (m && ack.from === m.id) {
      this.recordClockOffset(m, probe.sentAt, ack.at);
      this.onProbeRoundTrip?.(this.clock.now() - probe.sentAt);
    }
  }

  /** The target's port refused our connection and every helper saw the same: it crashed. */
  private declareCrashed(probe: DirectProbe): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    const m = this.members.get(probe.target.id);
    if (!m || !isActive(m)) return;
    this.log.info({ member: m.id, address: m.address }, 'member crashed: its cluster port refuses connections');
    this.applyDead({ t: MessageType.Dead, id: m.id, incarnation: m.incarnation, from: this.id });
  }

  private finishProbe(p: DirectProbe | RelayedProbe): void {
    p.done = true;
    if (p.kind === 'direct') for (const t of p.timers) this.clock.clearTimeout(t);
    else this.clock.clearTimeout(p.timer);
  }

  private recordClockOffset(m: Member, sentAt: number, remoteAt: number): void {
    const now = this.clock.now();
    const offset = Math.round(remoteAt - (sentAt + now) / 2);
    m.clockOffsetMs = m.clockOffsetMs === undefined ? offset : Math.round(m.clockOffsetMs * 0.8 + offset * 0.2);
    if (Math.abs(m.clockOffsetMs) > 1000 && !this.skewWarned.has(m.id)) {
      this.skewWarned.add(m.id);
      this.log.warn({ member: m.id, skewMs: m.clockOffsetMs }, 'wall clocks differ by more than 1 s; time-based state needs NTP on every node');
    }
  }

  // ---------------------------------------------------------------- periodic rounds

  private scheduleGossip(): void {
    this.timers.gossip = this.clock.setTimeout(() => {
      if (!this.running) return;
      this.gossip();
      this.scheduleGossip();
    }, this.timing.gossipIntervalMs);
  }

  /** Sends queued updates to a few random members; sends nothing when there is no news. */
  private gossip(): void {
    if (this.broadcasts.size === 0) return;
    const targets = pickRandom(this.activePeers(), this.timing.gossipNodes, this.random);
    for (const t of targets) {
      const g = this.broadcasts.take(MAX_PIGGYBACK);
      if (g.length === 0) return;
      this.send(t.address, { t: MessageType.Gossip, from: this.id, g });
    }
  }

  private schedulePushPull(delay: number): void {
    this.timers.pushPull = this.clock.setTimeout(() => {
      if (!this.running) return;
      const [peer] = pickRandom(this.activePeers(), 1, this.random);
      if (peer) this.send(peer.address, this.pushPullMessage(true));
      this.schedulePushPull(pushPullInterval(this.timing.pushPullIntervalMs, this.members.activeCount()));
    }, delay);
  }

  /** Tries one inactive member now and then, so that the two sides of a healed partition merge. */
  private scheduleReconnect(): void {
    this.timers.reconnect = this.clock.setTimeout(() => {
      if (!this.running) return;
      const dead = this.members.all().filter((m) => m.status === 'dead');
      const [peer] = pickRandom(dead, 1, this.random);
      if (peer) this.send(peer.address, this.pushPullMessage(true));
      this.scheduleReconnect();
    }, this.timing.reconnectIntervalMs);
  }

  private scheduleReap(): void {
    const every = Math.min(this.timing.reapTimeoutMs, 60_000);
    this.timers.reap = this.clock.setTimeout(() => {
      if (!this.running) return;
      const cutoff = this.clock.now() - this.timing.reapTimeoutMs;
      for (const m of this.members.all()) {
        if (!isActive(m) && m.id !== this.id && m.statusSince <= cutoff) {
          this.members.delete(m.id);
          this.log.info({ member: m.id }, 'forgot a member inactive for longer than reap_timeout');
        }
      }
      this.scheduleReap();
    }, every);
  }

  private pushPullMessage(reply: boolean): PushPullMsg {
    return { t: MessageType.PushPull, from: this.id, reply, members: this.members.all().map(toState) };
  }

  private randomDelay(max: number): number {
    return Math.floor(this.random() * max);
  }

  // ---------------------------------------------------------------- receiving

  private handlePayload(from: PeerIdentity, payload: Uint8Array): void {
    const msg = decodeMessage(payload);
    if (!msg) {
      this.stats.malformedDropped++;
      return;
    }
    this.stats.messagesReceived++;
    if (this.leaving) return;
    this.handleMessage(from, msg);
  }

  /** One handler per message type. */
  private handleMessage(from: PeerIdentity, msg: Message): void {
    switch (msg.t) {
      case MessageType.Ping:
        return this.handlePing(from, msg);
      case MessageType.Ack:
        return this.handleAck(msg);
      case MessageType.PingReq:
        return this.handlePingReq(from, msg);
      case MessageType.Nack:
        return this.handleNack(msg);
      case MessageType.PushPull:
        return this.handlePushPull(from, msg);
      case MessageType.Join:
        return this.handleJoin(from, msg);
      case MessageType.JoinReply:
        return this.pendingJoins.get(from.address)?.(msg);
      case MessageType.Gossip:
        return this.applyBroadcasts(msg.g);
      default:
        return this.applyBroadcast(msg);
    }
  }

  private handlePing(from: PeerIdentity, msg: PingMsg): void {
    if (msg.g) this.applyBroadcasts(msg.g);
    this.learnIncarnation(msg.from, msg.inc);
    // A ping meant for a previous occupant of this address is not ours to answer.
    if (msg.target !== this.id) return;
    this.send(from.address, { t: MessageType.Ack, seq: msg.seq, from: this.id, inc: this.incarnation, at: this.clock.now(), g: this.piggyback() });
  }

  /**
   * Probes and acks carry their sender's current incarnation. One heard directly that is newer
   * than ours for that member is as good as its alive message, and it reaches us even when
   * the gossiped refutation did not.
   */
  private learnIncarnation(id: string, incarnation: number): void {
    const m = this.members.get(id);
    if (m && id !== this.id && incarnation > m.incarnation) this.applyAlive(this.aliveMessage({ ...m, incarnation }), true);
  }

  private handleAck(msg: AckMsg): void {
    if (msg.g) this.applyBroadcasts(msg.g);
    this.learnIncarnation(msg.from, msg.inc);
    const probe = this.probes.get(msg.seq);
    if (!probe || probe.done) return;
    if (probe.kind === 'direct') {
      // Direct acks and acks relayed by helpers both name the target in `from`.
      if (msg.from === probe.target.id) this.probeSucceeded(probe, msg);
      return;
    }
    // We probed on someone's behalf: pass the good news on.
    if (msg.from !== probe.target) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    this.send(probe.originAddress, { t: MessageType.Ack, seq: probe.originSeq, from: probe.target, inc: msg.inc, at: msg.at });
  }

  private handlePingReq(from: PeerIdentity, msg: PingReqMsg): void {
    const seq = ++this.seq;
    const relay: RelayedProbe = {
      kind: 'relay', seq, target: msg.target, targetAddress: msg.targetAddress, origin: msg.from, originAddress: from.address, originSeq: msg.seq, timer: undefined, done: false,
    };
    this.probes.set(seq, relay);
    this.send(msg.targetAddress, { t: MessageType.Ping, seq, from: this.id, inc: this.incarnation, target: msg.target, sentAt: this.clock.now() });
    relay.timer = this.afterDeadline(this.awareness.scale(this.timing.probeTimeoutMs), () => this.relayFailed(relay, false));
  }

  private relayFailed(relay: RelayedProbe, refused: boolean): void {
    if (relay.done) return;
    this.finishProbe(relay);
    this.probes.delete(relay.seq);
    const nack: NackMsg = { t: MessageType.Nack, seq: relay.originSeq, from: this.id, refused };
    this.send(relay.originAddress, nack);
  }

  private handleNack(msg: NackMsg): void {
    const probe = this.probes.get(msg.seq);
    if (!probe || probe.kind !== 'direct' || probe.done) return;
    probe.nacks++;
    if (msg.refused) probe.refusedNacks++;
    if (probe.refused && probe.expectedNacks > 0 && probe.refusedNacks === probe.expectedNacks) this.declareCrashed(probe);
  }

  /**
   * Connection-level news. A refused connection during a probe is evidence for the crash fast
   * path; a lost connection to an active member is a hint worth an immediate probe.
   */
  private handlePeerDown(address: string, reason: PeerDownReason): void {
    if (!this.running) return;
    for (const p of this.probes.values()) {
      if (p.done) continue;
      if (p.kind === 'direct' && p.target.address === address && reason === 'refused') {
        p.refused = true;
        if (!p.indirectStarted) this.startIndirect(p);
      } else if (p.kind === 'relay' && p.targetAddress === address && reason === 'refused') {
        this.relayFailed(p, true);
      }
    }
    const m = this.members.getByAddress(address);
    if (!m || m.id === this.id || !isActive(m)) return;
    const now = this.clock.now();
    const last = this.lastHintProbe.get(m.id);
    if (last !== undefined && now - last < this.timing.probeTimeoutMs) return;
    this.lastHintProbe.set(m.id, now);
    // A ping already in flight may have been lost with the connection: send it again (which
    // reconnects, and a refusal then takes the crash fast path), else probe now.
    const inFlight = this.directProbeOf(m.id);
    if (inFlight) this.send(m.address, { t: MessageType.Ping, seq: inFlight.seq, from: this.id, inc: this.incarnation, target: m.id, sentAt: inFlight.sentAt });
    else this.probe(m);
  }

  private handlePushPull(from: PeerIdentity, msg: PushPullMsg): void {
    // Merge first: if the sender thinks we are dead, the refutation is in our reply.
    this.mergeRemoteState(msg.members, msg.from);
    if (msg.reply) this.send(from.address, this.pushPullMessage(false));
  }

  private handleJoin(from: PeerIdentity, msg: JoinMsg): void {
    const reply = (r: JoinReplyMsg): void => this.send(from.address, r);
    if (msg.protocol < MEMBERSHIP_PROTOCOL_MIN || msg.protocol > MEMBERSHIP_PROTOCOL_MAX) {
      this.log.warn({ node: msg.id, address: from.address }, `refused join: membership protocol ${msg.protocol} not supported`);
      return reply({ t: MessageType.JoinReply, accepted: false, code: 'TRANSPORT_REFUSED_PROTOCOL', message: `membership protocol ${msg.protocol} is not supported` });
    }
    const existing = this.members.all().map((m) => ({ id: m.id, address: m.address, active: isActive(m) && !(m.id === this.id && this.leaving) }));
    const verdict = judgeJoin({ id: msg.id, address: msg.address, meta: msg.meta }, this.meta, existing);
    if (!verdict.ok) {
      this.log.warn({ node: msg.id, address: from.address, code: verdict.code }, `refused join: ${verdict.message}`);
      return reply({ t: MessageType.JoinReply, accepted: false, code: verdict.code, message: verdict.message });
    }
    this.applyAlive({ t: MessageType.Alive, id: msg.id, address: msg.address, incarnation: msg.incarnation, meta: msg.meta });
    reply({ t: MessageType.JoinReply, accepted: true, members: this.members.all().map(toState) });
  }

  private requestJoin(address: string): Promise<JoinReplyMsg | undefined> {
    return new Promise((resolve) => {
      const timer = this.clock.setTimeout(() => {
        this.pendingJoins.delete(address);
        resolve(undefined);
      }, JOIN_TIMEOUT_MS);
      this.pendingJoins.set(address, (reply) => {
        this.clock.clearTimeout(timer);
        this.pendingJoins.delete(address);
        resolve(reply);
      });
      this.send(address, { t: MessageType.Join, id: this.id, address: this.address, incarnation: this.incarnation, meta: this.meta, protocol: MEMBERSHIP_PROTOCOL_MAX });
    });
  }

  // ---------------------------------------------------------------- state changes

  private applyBroadcasts(list: Broadcast[]): void {
    for (const b of list) this.applyBroadcast(b);
  }

  private applyBroadcast(b: Message): void {
    switch (b.t) {
      case MessageType.Alive:
        return this.applyAlive(b);
      case MessageType.Suspect:
        return this.applySuspect(b);
      case MessageType.Dead:
        return this.applyDead(b);
      case MessageType.Forget:
        if (this.members.get(b.id) && !isActive(this.members.get(b.id)!)) {
          this.applyForget(b.id);
          this.broadcasts.enqueue(b);
        }
        return;
      case MessageType.StopCluster:
        if (!this.stopClusterSeen) this.broadcasts.enqueue(b);
        return this.handleStopCluster(b.by);
      case MessageType.User:
        return this.listener.onUserMessage?.(b.topic, b.body, b.from);
      default:
        return;
    }
  }

  /**
   * `learned`: the incarnation came from a ping or ack, which carry no metadata, so the alive
   * message was made here with the metadata known so far. It is not passed on (it could carry
   * stale metadata at the new incarnation), and the member's own alive message at the same
   * incarnation is still taken for its metadata (an engine that just announced `holdsState`).
   */
  private applyAlive(msg: AliveMsg, learned = false): void {
    if (msg.id === this.id) {
      // Someone spreads an older or equal picture of us with another address or incarnation
      // (for instance our previous life before a restart): outrank it.
      if (msg.incarnation > this.incarnation || (msg.incarnation === this.incarnation && msg.address !== this.address)) this.refute(msg.incarnation);
      return;
    }
    const m = this.members.get(msg.id);
    if (!m) {
      const member: Member = {
        id: msg.id, address: msg.address, incarnation: msg.incarnation, status: 'alive', meta: msg.meta, statusSince: this.clock.now(), clockOffsetMs: undefined,
      };
      this.members.set(member);
      this.broadcasts.enqueue(msg);
      this.notify(member, undefined);
      return;
    }
    const confirmsMeta = !learned && msg.incarnation === m.incarnation && this.metaUnconfirmed.has(m.id);
    if (msg.incarnation <= m.incarnation && !confirmsMeta) return;
    if (learned) this.metaUnconfirmed.add(m.id);
    else this.metaUnconfirmed.delete(m.id);
    const previous = m.status;
    const oldAddress = m.address;
    const metaBefore = m.meta;
    m.incarnation = msg.incarnation;
    m.meta = msg.meta;
    m.address = msg.address;
    if (oldAddress !== m.address) this.members.readdress(m, oldAddress);
    this.suspicions.get(m.id)?.cancel();
    this.suspicions.delete(m.id);
    if (!learned) this.broadcasts.enqueue(msg);
    if (previous !== 'alive') {
      m.status = 'alive';
      this.members.touched();
      m.statusSince = this.clock.now();
      this.notify(m, previous);
    } else if (!sameMeta(metaBefore, m.meta)) {
      this.members.touched();
      this.listener.onMemberChange?.({ ...m }, previous);
    }
  }

  private applySuspect(msg: SuspectMsg): void {
    if (msg.id === this.id) {
      if (msg.incarnation >= this.incarnation && !this.leaving) this.refute(msg.incarnation, msg.from);
      else if (!this.leaving) this.tellCurrent(msg.from);
      return;
    }
    const m = this.members.get(msg.id);
    if (!m || msg.incarnation < m.incarnation || !isActive(m)) return;
    if (m.status === 'suspect') {
      if (this.suspicions.get(m.id)?.confirm(msg.from)) this.broadcasts.enqueue(msg);
      return;
    }
    m.incarnation = msg.incarnation;
    m.status = 'suspect';
    this.members.touched();
    m.statusSince = this.clock.now();
    this.stats.suspicionsRaised++;
    const n = this.members.activeCount();
    const min = suspicionTimeout(this.timing.suspicionMult, n, this.timing.probeIntervalMs);
    const max = this.timing.suspicionMaxTimeoutMult * min;
    const incarnation = m.incarnation;
    this.suspicions.set(
      m.id,
      new Suspicion(this.clock, msg.from, expectedConfirmations(this.timing.suspicionMult, n), min, max, () => {
        this.suspicions.delete(m.id);
        const current = this.members.get(m.id);
        if (current && current.status === 'suspect' && current.incarnation === incarnation) {
          this.applyDead({ t: MessageType.Dead, id: m.id, incarnation, from: this.id });
        }
      }),
    );
    this.broadcasts.enqueue(msg);
    this.notify(m, 'alive');
    // Check for ourselves rather than wait for our turn in the probe round: a failure is an
    // independent confirmation that shortens everyone's timer, a success changes nothing
    // (only the member itself can refute).
    if (msg.from !== this.id && this.running) this.probe(m);
  }

  private applyDead(msg: DeadMsg): void {
    if (msg.id === this.id && msg.from !== this.id) {
      if (msg.incarnation >= this.incarnation && !this.leaving) this.refute(msg.incarnation, msg.from);
      else if (!this.leaving) this.tellCurrent(msg.from);
      return;
    }
    const m = this.members.get(msg.id);
    if (!m || msg.incarnation < m.incarnation) return;
    const next: MemberStatus = msg.from === msg.id ? 'left' : 'dead';
    if (m.status === next || (m.status === 'left' && next === 'dead')) return;
    const previous = m.status;
    m.incarnation = msg.incarnation;
    m.status = next;
    this.members.touched();
    m.statusSince = this.clock.now();
    this.suspicions.get(m.id)?.cancel();
    this.suspicions.delete(m.id);
    if (next === 'dead') {
      this.stats.deathsDeclared++;
      // Its connections may be ones the network stopped carrying without a word (a cut link
      // sends no reset): TCP keeps retransmitting their unacknowledged bytes, further apart
      // each time (tens of seconds after a minute), and whatever is sent on them after the
      // network heals, the reconnect rounds' push-pulls among it, waits behind those bytes.
      // Closed now, the next send opens a fresh connection, answered as soon as the link is back.
      this.mux.transport.disconnect(m.address);
    }
    this.broadcasts.enqueue(msg);
    this.notify(m, previous);
  }

  private applyForget(id: string): void {
    const m = this.members.delete(id);
    if (m) {
      this.mux.transport.disconnect(m.address);
      this.log.info({ member: id, address: m.address }, 'member deleted from the cluster');
      // Who is known changed: the grid's write majority is counted over the known members.
      this.listener.onMemberForgotten?.(m);
    }
  }

  private handleStopCluster(by: string): void {
    if (this.stopClusterSeen) return;
    this.stopClusterSeen = true;
    this.log.info({ by }, 'cluster stop requested');
    this.listener.onStopCluster?.(by);
  }

  /**
   * Someone thinks we are suspect or dead (or out of date): outrank the rumour. The accuser,
   * when known, is told directly: gossip alone reaches any one member only with high
   * probability, and the accuser is the one whose timer is running.
   */
  private refute(heard: number, accuser?: string): void {
    this.incarnation = Math.max(this.incarnation, heard) + 1;
    this.stats.refutations++;
    this.awareness.apply(1);
    this.announceSelf();
    if (accuser !== undefined) this.tellCurrent(accuser);
  }

  /** Sends our current alive message straight to `id` (an accuser still holding old news). */
  private tellCurrent(id: string): void {
    const to = id !== this.id ? this.members.get(id) : undefined;
    if (to) this.send(to.address, { t: MessageType.Gossip, from: this.id, g: [this.aliveMessage(this.members.get(this.id)!)] });
  }

  /**
   * Merges a full state from push-pull or a join reply. A peer's "dead" is taken as a
   * suspicion only (it may just be on the other side of a partition); "left" is believed.
   */
  private mergeRemoteState(states: MemberState[], from: string): void {
    for (const s of states) {
      if (s.id === this.id) {
        if ((s.state === 'suspect' || s.state === 'dead') && s.incarnation >= this.incarnation && !this.leaving) this.refute(s.incarnation);
        else if (s.incarnation > this.incarnation) this.refute(s.incarnation);
        continue;
      }
      const known = this.members.get(s.id);
      if (s.state === 'alive') {
        this.applyAlive({ t: MessageType.Alive, id: s.id, address: s.address, incarnation: s.incarnation, meta: s.meta });
      } else if (!known) {
        // A member we never saw: list it as the peer reports it, so cluster info shows it.
        const status: MemberStatus = s.state === 'left' ? 'left' : s.state === 'suspect' ? 'alive' : 'dead';
        const member: Member = { id: s.id, address: s.address, incarnation: s.incarnation, status, meta: s.meta, statusSince: this.clock.now(), clockOffsetMs: undefined };
        this.members.set(member);
        if (status === 'alive') this.applySuspect({ t: MessageType.Suspect, id: s.id, incarnation: s.incarnation, from });
        else this.notify(member, undefined);
      } else if (s.state === 'left') {
        this.applyDead({ t: MessageType.Dead, id: s.id, incarnation: s.incarnation, from: s.id });
      } else {
        this.applySuspect({ t: MessageType.Suspect, id: s.id, incarnation: s.incarnation, from });
      }
    }
  }

  private notify(member: Member, previous: MemberStatus | undefined): void {
    this.log.info({ member: member.id, address: member.address, from: previous ?? 'unknown', to: member.status }, `member ${member.id} is ${member.status}`);
    this.listener.onMemberChange?.({ ...member }, previous);
  }
}

function sameMeta(a: NodeMeta, b: NodeMeta): boolean {
  return (
    a.role === b.role &&
    a.version === b.version &&
    a.mode === b.mode &&
    a.group === b.group &&
    a.holdsState === b.holdsState &&
    a.index === b.index &&
    a.sessionScope === b.sessionScope &&
    a.epoch === b.epoch &&
    a.runtime === b.runtime &&
    (a.scopes ?? []).join('\n') === (b.scopes ?? []).join('\n')
  );
}

function toState(m: Member): MemberState {
  return { id: m.id, address: m.address, incarnation: m.incarnation, state: m.status, meta: m.meta };
}
