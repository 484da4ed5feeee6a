/**
 * Member state transitions (SWIM's alive, suspect, dead, plus left and forgotten): applying
 * the updates gossip, probes and push-pull bring, refuting rumours about this node, and
 * merging a peer's full state. Probing (probing.ts) and the wire handlers feed it; it tells
 * the listener of every change.
 *
 * Invariants:
 * - Incarnation numbers only grow; only a member itself raises its own (refutation, a change
 *   of its metadata, its leave).
 * - An update about a member is applied only if its incarnation is at least as new as what we
 *   hold (strictly newer for alive after suspect/dead), so old news never overwrites new.
 * - Metadata is taken whole and never read (member-meta.ts): a change of it at a new
 *   incarnation is a member change for the listener.
 * - Dead and left members stay listed (inactive) until reap_timeout or an operator's forget.
 */
import type { Member, MemberStatus } from './member-list.js';
import { isActive } from './member-list.js';
import { sameMeta, type MemberMeta } from './member-meta.js';
import { aliveMessage, toState, type MembershipCore } from './membership-core.js';
import { MessageType, type AliveMsg, type Broadcast, type DeadMsg, type MemberState, type Message, type SuspectMsg } from './messages.js';
import { Suspicion } from './suspicion.js';
import { expectedConfirmations, suspicionTimeout } from './timing.js';

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

export interface MemberStatesOptions {
  core: MembershipCore;
  listener: MembershipListener;
  meta: MemberMeta;
  incarnation: number;
  /** Probes `member` now, out of turn (probing.ts): a suspicion heard from others is checked here too. */
  probeNow(member: Member): void;
}

export class MemberStates {
  private readonly core: MembershipCore;
  private readonly listener: MembershipListener;
  private readonly probeNow: (member: Member) => void;
  private ownIncarnation: number;
  private meta: MemberMeta;
  /**
   * Members whose incarnation was learned from a ping or ack, metadata not seen yet: the
   * incarnation their metadata was last seen with (`sharedStates`).
   */
  private readonly metaUnconfirmed = new Map<string, number>();
  private readonly suspicions = new Map<string, Suspicion>();
  private stopClusterSeen = false;

  constructor(options: MemberStatesOptions) {
    this.core = options.core;
    this.listener = options.listener;
    this.probeNow = options.probeNow;
    this.ownIncarnation = options.incarnation;
    this.meta = options.meta;
    this.core.members.set({
      id: this.core.id,
      address: this.core.address,
      incarnation: this.ownIncarnation,
      status: 'alive',
      meta: this.meta,
      statusSince: this.core.clock.now(),
      clockOffsetMs: 0,
    });
  }

  get incarnation(): number {
    return this.ownIncarnation;
  }

  get localMeta(): MemberMeta {
    return this.meta;
  }

  /** Cancels every running suspicion timer (the membership stops). */
  cancelSuspicions(): void {
    for (const s of this.suspicions.values()) s.cancel();
    this.suspicions.clear();
  }

  /**
   * Changes what this node tells about itself under a new incarnation, so it outranks the old
   * picture everywhere it spreads.
   */
  updateMeta(changes: Partial<MemberMeta>): void {
    this.meta = { ...this.meta, ...changes };
    this.ownIncarnation++;
    this.announceSelf();
    const me = this.core.self();
    this.listener.onMemberChange?.({ ...me }, me.status);
  }

  /** This node leaves: marks itself left under a new incarnation; returns the message to tell the others. */
  leave(): DeadMsg {
    this.ownIncarnation++;
    const msg: DeadMsg = { t: MessageType.Dead, id: this.core.id, incarnation: this.ownIncarnation, from: this.core.id };
    this.applyDead(msg);
    return msg;
  }

  applyBroadcasts(list: Broadcast[]): void {
    for (const b of list) this.applyBroadcast(b);
  }

  applyBroadcast(b: Message): void {
    switch (b.t) {
      case MessageType.Alive:
        return this.applyAlive(b);
      case MessageType.Suspect:
        return this.applySuspect(b);
      case MessageType.Dead:
        return this.applyDead(b);
      case MessageType.Forget:
        if (this.core.members.get(b.id) && !isActive(this.core.members.get(b.id)!)) {
          this.applyForget(b.id);
          this.core.broadcasts.enqueue(b);
        }
        return;
      case MessageType.StopCluster:
        if (!this.stopClusterSeen) this.core.broadcasts.enqueue(b);
        return this.handleStopCluster(b.by);
      case MessageType.User:
        return this.listener.onUserMessage?.(b.topic, b.body, b.from);
      default:
        return;
    }
  }

  /**
   * Probes and acks carry their sender's current incarnation. One heard directly that is newer
   * than ours for that member is as good as its alive message, and it reaches us even when
   * the gossiped refutation did not.
   */
  learnIncarnation(id: string, incarnation: number): void {
    const m = this.core.members.get(id);
    if (m && id !== this.core.id && incarnation > m.incarnation) this.applyAlive(aliveMessage({ ...m, incarnation }), true);
  }

  /**
   * `learned`: the incarnation came from a ping or ack, which carry no metadata, so the alive
   * message was made here with the metadata known so far. It is not passed on (it could carry
   * stale metadata at the new incarnation), and the member's own alive message at the same
   * incarnation is still taken for its metadata (an engine that just announced new metadata).
   */
  applyAlive(msg: AliveMsg, learned = false): void {
    const { core } = this;
    if (msg.id === core.id) {
      // Someone spreads an older or equal picture of us with another address or incarnation
      // (for instance our previous life before a restart): outrank it.
      if (msg.incarnation > this.ownIncarnation || (msg.incarnation === this.ownIncarnation && (msg.address !== core.address || !sameMeta(msg.meta, this.meta)))) this.refute(msg.incarnation);
      return;
    }
    const m = core.members.get(msg.id);
    if (!m) {
      const member: Member = {
        id: msg.id, address: msg.address, incarnation: msg.incarnation, status: 'alive', meta: msg.meta, statusSince: core.clock.now(), clockOffsetMs: undefined,
      };
      core.members.set(member);
      core.broadcasts.enqueue(msg);
      this.notify(member, undefined);
      return;
    }
    const confirmsMeta = !learned && msg.incarnation === m.incarnation && this.metaUnconfirmed.has(m.id);
    if (msg.incarnation <= m.incarnation && !confirmsMeta) return;
    if (!learned) this.metaUnconfirmed.delete(m.id);
    else if (!this.metaUnconfirmed.has(m.id)) this.metaUnconfirmed.set(m.id, m.incarnation);
    const previous = m.status;
    const oldAddress = m.address;
    const metaBefore = m.meta;
    m.incarnation = msg.incarnation;
    m.meta = msg.meta;
    m.address = msg.address;
    if (oldAddress !== m.address) core.members.readdress(m, oldAddress);
    this.suspicions.get(m.id)?.cancel();
    this.suspicions.delete(m.id);
    if (!learned) core.broadcasts.enqueue(msg);
    if (previous !== 'alive') {
      m.status = 'alive';
      core.members.touched();
      m.statusSince = core.clock.now();
      this.notify(m, previous);
    } else if (!sameMeta(metaBefore, m.meta)) {
      core.members.touched();
      this.listener.onMemberChange?.({ ...m }, previous);
    }
  }

  applySuspect(msg: SuspectMsg): void {
    const { core } = this;
    if (msg.id === core.id) {
      if (msg.incarnation >= this.ownIncarnation && !core.leaving) this.refute(msg.incarnation, msg.from);
      else if (!core.leaving) this.tellCurrent(msg.from);
      return;
    }
    const m = core.members.get(msg.id);
    if (!m || msg.incarnation < m.incarnation || !isActive(m)) return;
    if (m.status === 'suspect') {
      if (this.suspicions.get(m.id)?.confirm(msg.from)) core.broadcasts.enqueue(msg);
      return;
    }
    m.incarnation = msg.incarnation;
    m.status = 'suspect';
    core.members.touched();
    m.statusSince = core.clock.now();
    core.stats.suspicionsRaised++;
    const n = core.members.activeCount();
    const min = suspicionTimeout(core.timing.suspicionMult, n, core.timing.probeIntervalMs);
    const max = core.timing.suspicionMaxTimeoutMult * min;
    const incarnation = m.incarnation;
    this.suspicions.set(
      m.id,
      new Suspicion(core.clock, msg.from, expectedConfirmations(core.timing.suspicionMult, n), min, max, () => {
        this.suspicions.delete(m.id);
        const current = core.members.get(m.id);
        if (current && current.status === 'suspect' && current.incarnation === incarnation) {
          this.applyDead({ t: MessageType.Dead, id: m.id, incarnation, from: core.id });
        }
      }),
    );
    core.broadcasts.enqueue(msg);
    // The accuser also tells the suspect itself: gossip alone may spend its few retransmissions
    // on members this node cannot reach (it is cut off from some of them, which is also why
    // its indirect probes failed), and a suspect that never hears of the suspicion cannot
    // refute it before it expires into a false death every member then believes.
    if (msg.from === core.id) core.send(m.address, { t: MessageType.Gossip, from: core.id, g: [msg] });
    this.notify(m, 'alive');
    // Check for ourselves rather than wait for our turn in the probe round: a failure is an
    // independent confirmation that shortens everyone's timer, a success changes nothing
    // (only the member itself can refute).
    if (msg.from !== core.id && core.running) this.probeNow(m);
  }

  applyDead(msg: DeadMsg): void {
    const { core } = this;
    if (msg.id === core.id && msg.from !== core.id) {
      if (msg.incarnation >= this.ownIncarnation && !core.leaving) this.refute(msg.incarnation, msg.from);
      else if (!core.leaving) this.tellCurrent(msg.from);
      return;
    }
    const m = core.members.get(msg.id);
    if (!m || msg.incarnation < m.incarnation) return;
    const next: MemberStatus = msg.from === msg.id ? 'left' : 'dead';
    if (m.status === next || (m.status === 'left' && next === 'dead')) return;
    const previous = m.status;
    m.incarnation = msg.incarnation;
    m.status = next;
    core.members.touched();
    m.statusSince = core.clock.now();
    this.suspicions.get(m.id)?.cancel();
    this.suspicions.delete(m.id);
    if (next === 'dead') {
      core.stats.deathsDeclared++;
      // Its connections may be ones the network stopped carrying without a word (a cut link
      // sends no reset): TCP keeps retransmitting their unacknowledged bytes, further apart
      // each time (tens of seconds after a minute), and whatever is sent on them after the
      // network heals, the reconnect rounds' push-pulls among it, waits behind those bytes.
      // Closed now, the next send opens a fresh connection, answered as soon as the link is back;
      // the transfers in flight to it end at once (rpc.ts), to be asked for again.
      core.mux.disconnect(m.address);
    }
    core.broadcasts.enqueue(msg);
    this.notify(m, previous);
  }

  applyForget(id: string): void {
    const m = this.core.members.delete(id);
    if (m) {
      this.core.mux.disconnect(m.address);
      this.core.log.info({ member: id, address: m.address }, 'member deleted from the cluster');
      // Who is known changed: the grid's write majority is counted over the known members.
      this.listener.onMemberForgotten?.(m);
    }
  }

  handleStopCluster(by: string): void {
    if (this.stopClusterSeen) return;
    this.stopClusterSeen = true;
    this.core.log.info({ by }, 'cluster stop requested');
    this.listener.onStopCluster?.(by);
  }

  /**
   * Merges a full state from push-pull or a join reply. A peer's "dead" is taken as a
   * suspicion only (it may just be on the other side of a partition); "left" is believed.
   */
  /**
   * Every member as told to a peer in a state exchange (push-pull, join reply). A member whose
   * incarnation this node learned from a probe is told under the incarnation its metadata was
   * seen with: under the newer one, the metadata known here (older than what the member
   * announced with it) would outrank the member's own announcement wherever it spread, for
   * good (an engine's `holdsState` lost that way kept partitions placed differently there).
   */
  sharedStates(): MemberState[] {
    return this.core.members.all().map((m) => {
      const state = toState(m);
      const seenWith = this.metaUnconfirmed.get(m.id);
      return seenWith !== undefined && m.status === 'alive' ? { ...state, incarnation: seenWith } : state;
    });
  }

  mergeRemoteState(states: MemberState[], from: string): void {
    const { core } = this;
    for (const s of states) {
      if (s.id === core.id) {
        if ((s.state === 'suspect' || s.state === 'dead') && s.incarnation >= this.ownIncarnation && !core.leaving) this.refute(s.incarnation);
        else if (s.incarnation > this.ownIncarnation) this.refute(s.incarnation);
        // Our incarnation with other metadata: a member that learned the incarnation from a
        // probe (which carries none) passed it on with what it knew before. Outrank it.
        else if (s.state === 'alive' && s.incarnation === this.ownIncarnation && !sameMeta(s.meta, this.meta)) this.refute(s.incarnation);
        continue;
      }
      const known = core.members.get(s.id);
      if (s.state === 'alive') {
        this.applyAlive({ t: MessageType.Alive, id: s.id, address: s.address, incarnation: s.incarnation, meta: s.meta });
      } else if (!known) {
        // A member we never saw: list it as the peer reports it, so cluster info shows it.
        const status: MemberStatus = s.state === 'left' ? 'left' : s.state === 'suspect' ? 'alive' : 'dead';
        const member: Member = { id: s.id, address: s.address, incarnation: s.incarnation, status, meta: s.meta, statusSince: core.clock.now(), clockOffsetMs: undefined };
        core.members.set(member);
        if (status === 'alive') this.applySuspect({ t: MessageType.Suspect, id: s.id, incarnation: s.incarnation, from });
        else this.notify(member, undefined);
      } else if (s.state === 'left') {
        this.applyDead({ t: MessageType.Dead, id: s.id, incarnation: s.incarnation, from: s.id });
      } else {
        this.applySuspect({ t: MessageType.Suspect, id: s.id, incarnation: s.incarnation, from });
      }
    }
  }

  /**
   * Someone thinks we are suspect or dead (or out of date): outrank the rumour. The accuser,
   * when known, is told directly: gossip alone reaches any one member only with high
   * probability, and the accuser is the one whose timer is running.
   */
  private refute(heard: number, accuser?: string): void {
    this.ownIncarnation = Math.max(this.ownIncarnation, heard) + 1;
    this.core.stats.refutations++;
    this.core.awareness.apply(1);
    this.announceSelf();
    if (accuser !== undefined) this.tellCurrent(accuser);
  }

  private announceSelf(): void {
    const me = this.core.self();
    me.incarnation = this.ownIncarnation;
    me.meta = this.meta;
    this.core.broadcasts.enqueue(aliveMessage(me));
  }

  /** Sends our current alive message straight to `id` (an accuser still holding old news). */
  private tellCurrent(id: string): void {
    const to = id !== this.core.id ? this.core.members.get(id) : undefined;
    if (to) this.core.send(to.address, { t: MessageType.Gossip, from: this.core.id, g: [aliveMessage(this.core.self())] });
  }

  private notify(member: Member, previous: MemberStatus | undefined): void {
    this.core.log.info({ member: member.id, address: member.address, from: previous ?? 'unknown', to: member.status }, `member ${member.id} is ${member.status}`);
    this.listener.onMemberChange?.({ ...member }, previous);
  }
}
