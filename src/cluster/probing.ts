/**
 * Failure detection (SWIM with the Lifeguard refinements): the probe loop, direct probes,
 * indirect probes through `indirectChecks` helpers (ping-req) and their nacks, acks, the
 * crash fast path, and the local-health feed (awareness.ts) that slows a struggling node's
 * own judgements. Verdicts go to member-states.ts as suspect or dead updates.
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
 * Invariants: at most one direct probe per member is in flight; every probe's timers are
 * cleared when it finishes (done), and a finished probe ignores late acks and nacks.
 */
import type { TimerHandle } from '../core/clock.js';
import { pickRandom } from '../core/random.js';
import type { PeerDownReason, PeerIdentity } from '../transport/transport.js';
import { isActive, type Member } from './member-list.js';
import type { MemberStates } from './member-states.js';
import type { MembershipCore } from './membership-core.js';
import { MessageType, type AckMsg, type NackMsg, type PingMsg, type PingReqMsg } from './messages.js';
import { probeRing, roundOf, targetOnRing } from './probe-schedule.js';

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

/** Wall clocks further apart than this (ms) are worth a warning: time-based state needs NTP. */
const SKEW_WARNING_MS = 1000;

export class Probing {
  private readonly core: MembershipCore;
  private readonly states: MemberStates;
  private readonly onProbeRoundTrip: ((ms: number) => void) | undefined;
  private readonly probes = new Map<number, DirectProbe | RelayedProbe>();
  /** Last time a connection-loss hint triggered a probe, per member id, to rate-limit hints. */
  private readonly lastHintProbe = new Map<string, number>();
  private readonly skewWarned = new Set<string>();
  /** Where in each probe slot this node probes: spread so that nodes do not all fire at once. */
  private readonly probeOffset: number;
  private ring: { round: number; version: number; ids: string[] } | undefined;
  private seq = 0;
  private timer: TimerHandle | undefined;

  constructor(core: MembershipCore, states: MemberStates, onProbeRoundTrip: ((ms: number) => void) | undefined) {
    this.core = core;
    this.states = states;
    this.onProbeRoundTrip = onProbeRoundTrip;
    this.probeOffset = Math.floor(core.random() * core.timing.probeIntervalMs * 0.5);
  }

  /** Stops the loop and drops every probe in flight. */
  stop(): void {
    this.core.clock.clearTimeout(this.timer);
    this.timer = undefined;
    for (const p of this.probes.values()) this.finishProbe(p);
    this.probes.clear();
  }

  /**
   * Probes run at a fixed offset within each wall-clock slot of one probe interval, so that
   * every node agrees on the step number (probe-schedule.ts). A struggling node (health score
   * above 0) skips slots.
   */
  scheduleProbe(): void {
    const { clock } = this.core;
    const interval = this.core.timing.probeIntervalMs;
    const now = clock.now();
    const slotStart = Math.floor(now / interval) * interval;
    let next = slotStart + this.probeOffset;
    if (next <= now) next += interval;
    next += this.core.awareness.scale(interval) - interval;
    this.timer = clock.setTimeout(() => {
      if (!this.core.running) return;
      this.probeNext();
      this.scheduleProbe();
    }, next - now);
  }

  private probeNext(): void {
    const { members } = this.core;
    const step = Math.floor(this.core.clock.now() / this.core.timing.probeIntervalMs);
    const round = roundOf(step, members.activeCount());
    // The ring only changes with the round or the active set: sorting it per probe would cost
    // O(N log N) hashes per node per second in a large cluster.
    if (!this.ring || this.ring.round !== round || this.ring.version !== members.version) {
      const ids = members.all().filter(isActive).map((m) => m.id);
      this.ring = { round, version: members.version, ids: probeRing(ids, round) };
    }
    const targetId = targetOnRing(this.ring.ids, this.core.id, step);
    const target = targetId === undefined ? undefined : members.get(targetId);
    if (target) this.probe(target);
  }

  /** Probes `target` now (unless a probe of it is already in flight). */
  probe(target: Member): void {
    const { core } = this;
    if (this.directProbeOf(target.id)) return;
    const seq = ++this.seq;
    const now = core.clock.now();
    const probe: DirectProbe = {
      kind: 'direct', seq, target, sentAt: now, refused: false, indirectStarted: false, expectedNacks: 0, nacks: 0, refusedNacks: 0, timers: [], done: false,
    };
    this.probes.set(seq, probe);
    core.stats.probes++;
    // Lifeguard's buddy system: a suspect member hears of the suspicion in the probe itself, so
    // it can refute at once instead of waiting for gossip to reach it.
    const g = core.piggyback() ?? [];
    if (target.status === 'suspect') g.unshift({ t: MessageType.Suspect, id: target.id, incarnation: target.incarnation, from: core.id });
    const ping: PingMsg = { t: MessageType.Ping, seq, from: core.id, inc: this.states.incarnation, target: target.id, sentAt: now, g: g.length > 0 ? g : undefined };
    core.send(target.address, ping);
    const timeout = core.awareness.scale(core.timing.probeTimeoutMs);
    const interval = core.awareness.scale(core.timing.probeIntervalMs);
    probe.timers.push(this.afterDeadline(timeout, () => this.startIndirect(probe)));
    probe.timers.push(this.afterDeadline(Math.max(interval, timeout * 2), () => this.probeFailed(probe)));
  }

  /** The in-flight direct probe of member `id`, if any. */
  private directProbeOf(id: string): DirectProbe | undefined {
    for (const p of this.probes.values()) if (p.kind === 'direct' && !p.done && p.target.id === id) return p;
    return undefined;
  }

  /**
   * Runs `fn` after `ms`, unless the event loop was stalled: a timer that fires much later than
   * asked means this node was blocked (or paused), and replies may be sitting unread in its
   * socket buffers. Then the verdict waits one more turn of the loop, so they are read first,
   * and the stall counts against this node's own health rather than the peer's.
   */
  private afterDeadline(ms: number, fn: () => void): TimerHandle {
    const { clock, awareness } = this.core;
    const due = clock.now() + ms;
    return clock.setTimeout(() => {
      const late = clock.now() - due;
      if (late > Math.max(50, ms / 2)) {
        awareness.apply(1);
        clock.setTimeout(fn, 0);
        return;
      }
      fn();
    }, ms);
  }

  private startIndirect(probe: DirectProbe): void {
    const { core } = this;
    if (probe.done || probe.indirectStarted) return;
    probe.indirectStarted = true;
    const helpers = pickRandom(core.activePeers(), core.timing.indirectChecks, core.random, (m) => m.id === probe.target.id);
    probe.expectedNacks = helpers.length;
    const req: PingReqMsg = { t: MessageType.PingReq, seq: probe.seq, from: core.id, target: probe.target.id, targetAddress: probe.target.address };
    for (const h of helpers) core.send(h.address, req);
    if (probe.refused && helpers.length === 0) this.declareCrashed(probe);
  }

  private probeFailed(probe: DirectProbe): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    this.core.stats.probesFailed++;
    // Helpers that answered nothing at all suggest the problem is on our side.
    if (probe.expectedNacks > 0 && probe.nacks < probe.expectedNacks) this.core.awareness.apply(1);
    const m = this.core.members.get(probe.target.id);
    if (!m || !isActive(m)) return;
    this.states.applySuspect({ t: MessageType.Suspect, id: m.id, incarnation: m.incarnation, from: this.core.id });
  }

  private probeSucceeded(probe: DirectProbe, ack: AckMsg): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    this.core.awareness.apply(-1);
    const m = this.core.members.get(probe.target.id);
    if (m && ack.from === m.id) {
      this.recordClockOffset(m, probe.sentAt, ack.at);
      this.onProbeRoundTrip?.(this.core.clock.now() - probe.sentAt);
    }
  }

  /** The target's port refused our connection and every helper saw the same: it crashed. */
  private declareCrashed(probe: DirectProbe): void {
    if (probe.done) return;
    this.finishProbe(probe);
    this.probes.delete(probe.seq);
    const m = this.core.members.get(probe.target.id);
    if (!m || !isActive(m)) return;
    this.core.log.info({ member: m.id, address: m.address }, 'member crashed: its cluster port refuses connections');
    this.states.applyDead({ t: MessageType.Dead, id: m.id, incarnation: m.incarnation, from: this.core.id });
  }

  private finishProbe(p: DirectProbe | RelayedProbe): void {
    p.done = true;
    if (p.kind === 'direct') for (const t of p.timers) this.core.clock.clearTimeout(t);
    else this.core.clock.clearTimeout(p.timer);
  }

  private recordClockOffset(m: Member, sentAt: number, remoteAt: number): void {
    const now = this.core.clock.now();
    const offset = Math.round(remoteAt - (sentAt + now) / 2);
    m.clockOffsetMs = m.clockOffsetMs === undefined ? offset : Math.round(m.clockOffsetMs * 0.8 + offset * 0.2);
    if (Math.abs(m.clockOffsetMs) > SKEW_WARNING_MS && !this.skewWarned.has(m.id)) {
      this.skewWarned.add(m.id);
      this.core.log.warn({ member: m.id, skewMs: m.clockOffsetMs }, 'wall clocks differ by more than 1 s; time-based state needs NTP on every node');
    }
  }

  // ---------------------------------------------------------------- probe messages received

  handlePing(from: PeerIdentity, msg: PingMsg): void {
    const { core } = this;
    if (msg.g) this.states.applyBroadcasts(msg.g);
    this.states.learnIncarnation(msg.from, msg.inc);
    // A ping meant for a previous occupant of this address is not ours to answer.
    if (msg.target !== core.id) return;
    core.send(from.address, { t: MessageType.Ack, seq: msg.seq, from: core.id, inc: this.states.incarnation, at: core.clock.now(), g: core.piggyback() });
  }

  handleAck(msg: AckMsg): void {
    if (msg.g) this.states.applyBroadcasts(msg.g);
    this.states.learnIncarnation(msg.from, msg.inc);
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
    this.core.send(probe.originAddress, { t: MessageType.Ack, seq: probe.originSeq, from: probe.target, inc: msg.inc, at: msg.at });
  }

  handlePingReq(from: PeerIdentity, msg: PingReqMsg): void {
    const { core } = this;
    const seq = ++this.seq;
    const relay: RelayedProbe = {
      kind: 'relay', seq, target: msg.target, targetAddress: msg.targetAddress, origin: msg.from, originAddress: from.address, originSeq: msg.seq, timer: undefined, done: false,
    };
    this.probes.set(seq, relay);
    core.send(msg.targetAddress, { t: MessageType.Ping, seq, from: core.id, inc: this.states.incarnation, target: msg.target, sentAt: core.clock.now() });
    relay.timer = this.afterDeadline(core.awareness.scale(core.timing.probeTimeoutMs), () => this.relayFailed(relay, false));
  }

  private relayFailed(relay: RelayedProbe, refused: boolean): void {
    if (relay.done) return;
    this.finishProbe(relay);
    this.probes.delete(relay.seq);
    const nack: NackMsg = { t: MessageType.Nack, seq: relay.originSeq, from: this.core.id, refused };
    this.core.send(relay.originAddress, nack);
  }

  handleNack(msg: NackMsg): void {
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
  handlePeerDown(address: string, reason: PeerDownReason): void {
    const { core } = this;
    if (!core.running) return;
    for (const p of this.probes.values()) {
      if (p.done) continue;
      if (p.kind === 'direct' && p.target.address === address && reason === 'refused') {
        p.refused = true;
        if (!p.indirectStarted) this.startIndirect(p);
      } else if (p.kind === 'relay' && p.targetAddress === address && reason === 'refused') {
        this.relayFailed(p, true);
      }
    }
    const m = core.members.getByAddress(address);
    if (!m || m.id === core.id || !isActive(m)) return;
    const now = core.clock.now();
    const last = this.lastHintProbe.get(m.id);
    if (last !== undefined && now - last < core.timing.probeTimeoutMs) return;
    this.lastHintProbe.set(m.id, now);
    // A ping already in flight may have been lost with the connection: send it again (which
    // reconnects, and a refusal then takes the crash fast path), else probe now.
    const inFlight = this.directProbeOf(m.id);
    if (inFlight) core.send(m.address, { t: MessageType.Ping, seq: inFlight.seq, from: core.id, inc: this.states.incarnation, target: m.id, sentAt: inFlight.sentAt });
    else this.probe(m);
  }
}
