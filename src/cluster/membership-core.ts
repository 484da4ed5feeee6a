/**
 * What the parts of one membership share (membership.ts builds it, member-states.ts,
 * probing.ts and join-protocol.ts work on it): the member list, the queue of updates to
 * gossip, local health, counters, and the one way out to the network.
 *
 * Invariants: every membership message leaves through `send` (counted in `stats`); the list
 * always holds this node itself; `activePeers` is recomputed only when the list changed.
 */
import type { Clock } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Random } from '../core/random.js';
import { ProtocolId, type TransportMux } from '../transport/mux.js';
import { Awareness } from './awareness.js';
import { BroadcastQueue } from './broadcast-queue.js';
import { isActive, MemberList, type Member } from './member-list.js';
import { encodeMessage, MessageType, type AliveMsg, type Broadcast, type MemberState, type Message } from './messages.js';
import { retransmitLimit, type MembershipTiming } from './timing.js';

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

/** Most updates piggy-backed on one probe, ack or gossip message. */
export const MAX_PIGGYBACK = 32;

export interface MembershipCoreOptions {
  id: string;
  address: string;
  timing: MembershipTiming;
  clock: Clock;
  random: Random;
  mux: TransportMux;
  logger: Logger;
}

export class MembershipCore {
  readonly id: string;
  readonly address: string;
  readonly timing: MembershipTiming;
  readonly clock: Clock;
  readonly random: Random;
  readonly mux: TransportMux;
  readonly log: Logger;
  readonly members = new MemberList();
  readonly awareness: Awareness;
  readonly broadcasts: BroadcastQueue;
  /** Probing, gossip and the periodic rounds run (start until stop). */
  running = false;
  /** This node announced its leave: it answers nothing more and refutes nothing. */
  leaving = false;
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
  private peersCache: { version: number; peers: Member[] } | undefined;

  constructor(options: MembershipCoreOptions) {
    this.id = options.id;
    this.address = options.address;
    this.timing = options.timing;
    this.clock = options.clock;
    this.random = options.random;
    this.mux = options.mux;
    this.log = options.logger;
    this.awareness = new Awareness(options.timing.awarenessMaxMultiplier);
    this.broadcasts = new BroadcastQueue(() => retransmitLimit(this.timing.retransmitMult, this.members.activeCount()));
  }

  send(to: string, msg: Message): void {
    this.stats.messagesSent++;
    this.mux.send(ProtocolId.Membership, to, 'control', encodeMessage(msg));
  }

  /**
   * An operator's update (stop, forget, user message): sent straight to every active member,
   * which takes effect at once, and queued for gossip, which reaches those the direct send
   * missed.
   */
  broadcastNow(msg: Broadcast): void {
    this.broadcasts.enqueue(msg);
    for (const m of this.activePeers()) this.send(m.address, msg);
  }

  /** Queued updates to ride along on a probe or ack; undefined when there is no news. */
  piggyback(): Broadcast[] | undefined {
    const g = this.broadcasts.take(MAX_PIGGYBACK);
    return g.length > 0 ? g : undefined;
  }

  /** Active members other than this node; cached until the member list changes. */
  activePeers(): Member[] {
    if (this.peersCache?.version !== this.members.version) {
      this.peersCache = { version: this.members.version, peers: this.members.all().filter((m) => m.id !== this.id && isActive(m)) };
    }
    return this.peersCache.peers;
  }

  /** This node itself, as listed. */
  self(): Member {
    return this.members.get(this.id)!;
  }
}

export function aliveMessage(m: Member): AliveMsg {
  return { t: MessageType.Alive, id: m.id, address: m.address, incarnation: m.incarnation, meta: m.meta };
}

/** A member as push-pull and join replies carry it. */
export function toState(m: Member): MemberState {
  return { id: m.id, address: m.address, incarnation: m.incarnation, state: m.status, meta: m.meta };
}
