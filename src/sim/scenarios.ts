/**
 * Named simulator scenarios. Each builds a SimCluster from a seed, injects faults, and returns
 * measurements and invariant violations; a failing run is reproduced with the same seed.
 */
import type { TimerHandle } from '../core/clock.js';
import type { Random } from '../core/random.js';
import { PROFILES, type MembershipTiming } from '../cluster/timing.js';
import type { Profile } from '../config/schema.js';
import { SimCluster } from './sim-cluster.js';

export interface ScenarioOptions {
  nodes: number;
  seed: number;
  profile: Profile;
  timing?: MembershipTiming;
  /** Called with the cluster at the end of a run, to look inside a failing seed. */
  inspect?: (cluster: SimCluster) => void;
}

function timingOf(o: ScenarioOptions): MembershipTiming {
  return o.timing ?? PROFILES[o.profile];
}

function randInt(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** Lets the cluster settle after start-up (every node probed at least once). */
function warmUp(c: SimCluster, timing: MembershipTiming): void {
  c.run(timing.probeIntervalMs * 3 + 1000);
}

export interface DetectionResult {
  /** Time until the first node declared the victim inactive (ms). */
  firstMs: number | undefined;
  /** Time until every live node listed the victim as inactive (ms). */
  allMs: number | undefined;
  falsePositives: number;
}

/**
 * Crashes (process gone: connections close, port refuses) or silences (paused or cut off)
 * one node and measures how long until it is declared inactive.
 */
export function detection(o: ScenarioOptions, kind: 'crash' | 'pause' | 'cut'): DetectionResult {
  const timing = timingOf(o);
  const c = new SimCluster({ nodes: o.nodes, seed: o.seed, timing });
  warmUp(c, timing);
  const victim = randInt(c.random, 0, o.nodes - 1);
  const victimId = c.nodes[victim]!.id;
  const t0 = c.now;
  if (kind === 'crash') c.crash(victim);
  else if (kind === 'pause') c.pause(victim);
  else c.partition([victim], c.nodes.map((n) => n.index).filter((i) => i !== victim));
  const limit = 120_000;
  let allMs: number | undefined;
  while (c.now - t0 < limit) {
    c.run(10);
    const observers = c.live().filter((n) => n.index !== victim);
    if (observers.every((n) => c.statusOf(n, c.nodes[victim]!) === 'dead')) {
      allMs = c.now - t0;
      break;
    }
  }
  o.inspect?.(c);
  const deaths = c.changes.filter((ch) => ch.member === victimId && ch.to === 'dead' && ch.at >= t0);
  const falsePositives = c.changes.filter((ch) => ch.member !== victimId && ch.to === 'dead').length;
  return { firstMs: deaths.length ? deaths[0]!.at - t0 : undefined, allMs, falsePositives };
}

export interface SteadyResult {
  messagesPerNodePerSecond: number;
  falsePositives: number;
  suspicions: number;
}

/** No faults: the protocol's background cost. */
export function steady(o: ScenarioOptions, durationMs: number): SteadyResult {
  const timing = timingOf(o);
  const c = new SimCluster({ nodes: o.nodes, seed: o.seed, timing });
  warmUp(c, timing);
  const before = c.totalMessagesSent();
  const t0 = c.now;
  c.run(durationMs);
  const sent = c.totalMessagesSent() - before;
  return {
    messagesPerNodePerSecond: sent / o.nodes / (durationMs / 1000),
    falsePositives: c.changes.filter((ch) => ch.to === 'dead' && ch.at >= t0).length,
    suspicions: c.changes.filter((ch) => ch.to === 'suspect' && ch.at >= t0).length,
  };
}

/** One node's event loop blocked `blockMs` every `everyMs` (a pause of the whole node). */
export function blockedNode(o: ScenarioOptions, durationMs: number, blockMs = 400, everyMs = 2000): SteadyResult {
  const timing = timingOf(o);
  const c = new SimCluster({ nodes: o.nodes, seed: o.seed, timing });
  warmUp(c, timing);
  const t0 = c.now;
  const victim = randInt(c.random, 0, o.nodes - 1);
  while (c.now - t0 < durationMs) {
    c.pause(victim);
    c.run(blockMs);
    c.resume(victim);
    c.run(everyMs - blockMs);
  }
  return {
    messagesPerNodePerSecond: 0,
    falsePositives: c.changes.filter((ch) => ch.to === 'dead' && ch.at >= t0).length,
    suspicions: c.changes.filter((ch) => ch.to === 'suspect' && ch.at >= t0).length,
  };
}

export interface MixedResult {
  seed: number;
  violations: string[];
  convergedAfterMs: number | undefined;
  faults: string[];
}

/**
 * Random crashes, pauses, partitions, one-way cuts and loss bursts for `faultWindowMs`, then
 * everything heals. Three "protected" nodes are never paused or crashed and no link of theirs
 * is cut (they only suffer the loss bursts).
 *
 * Invariants checked:
 * - no protected node ever declares another protected node inactive: between nodes that are
 *   neither paused nor cut off, a 5% loss burst alone causes no false positive (an observer
 *   that is itself partitioned away may legitimately lose sight of anyone);
 * - every crash is detected by every live node within `crashBoundMs` when no other fault is
 *   under way at the time;
 * - within 10 s of the faults ending, all live nodes agree on every member.
 */
export function mixedFaults(o: ScenarioOptions, faultWindowMs = 40_000, crashBoundMs = 2000): MixedResult {
  const timing = timingOf(o);
  const c = new SimCluster({ nodes: o.nodes, seed: o.seed, timing });
  warmUp(c, timing);
  const faults: string[] = [];
  const violations: string[] = [];
  const indices = c.nodes.map((n) => n.index);
  const protectedSet = new Set(indices.slice(0, 3));
  const faultable = indices.filter((i) => !protectedSet.has(i));
  const maxCrashes = Math.max(1, Math.floor((o.nodes - 2) / 3));
  const paused = new Map<number, TimerHandle>();
  let crashes = 0;
  const t0 = c.now;

  while (c.now - t0 < faultWindowMs) {
    const kind = randInt(c.random, 0, 4);
    const live = faultable.filter((i) => !c.nodes[i]!.crashed);
    const target = live[randInt(c.random, 0, Math.max(0, live.length - 1))];
    const at = Math.round(c.now - t0);
    if (kind === 0 && crashes < maxCrashes && target !== undefined && paused.size === 0) {
      crashes++;
      const crashedAt = c.now;
      c.crash(target);
      faults.push(`${at}ms crash n${target}`);
      // With no other fault in progress, every live node must see the crash within the bound.
      c.heal();
      c.network.conditions.loss = 0;
      while (c.now - crashedAt < crashBoundMs) c.run(10);
      const missed = c.live().filter((n) => c.statusOf(n, c.nodes[target]!) !== 'dead');
      if (missed.length > 0) violations.push(`crash of n${target} at ${at}ms not detected within ${crashBoundMs}ms by ${missed.map((n) => n.id).join(',')}`);
    } else if (kind === 1 && target !== undefined && !paused.has(target)) {
      const ms = randInt(c.random, 300, 6000);
      c.pause(target);
      faults.push(`${at}ms pause n${target} ${ms}ms`);
      paused.set(
        target,
        c.clock.setTimeout(() => {
          paused.delete(target);
          c.resume(target);
        }, ms),
      );
    } else if (kind === 2 && live.length >= 2) {
      const side = live.filter(() => c.random() < 0.5);
      const other = live.filter((i) => !side.includes(i));
      if (side.length > 0 && other.length > 0) {
        c.partition(side, other);
        faults.push(`${at}ms partition [${side}] | [${other}]`);
      }
    } else if (kind === 3 && live.length >= 2) {
      const a = live[randInt(c.random, 0, live.length - 1)]!;
      const b = live[randInt(c.random, 0, live.length - 1)]!;
      if (a !== b) {
        c.cutOneWay(a, b);
        faults.push(`${at}ms one-way n${a} -> n${b}`);
      }
    } else if (kind === 4) {
      c.network.conditions.loss = 0.05;
      faults.push(`${at}ms loss 5%`);
    }
    c.run(randInt(c.random, 1000, 5000));
    if (c.random() < 0.4) {
      c.heal();
      c.network.conditions.loss = 0;
    }
  }

  // Faults end: heal links, stop loss, resume everyone still paused.
  c.heal();
  c.network.conditions.loss = 0;
  for (const [i, timer] of paused) {
    c.clock.clearTimeout(timer);
    c.resume(i);
  }
  paused.clear();
  const converged = c.runUntilConverged(10_000);
  if (converged === undefined) violations.push(`not converged within 10 s of the faults ending: ${c.disagreements().slice(0, 5).join('; ')}`);

  for (const ch of c.changes) {
    const idx = Number(ch.member.slice(1));
    const observer = Number(ch.observer.slice(1));
    if (ch.to === 'dead' && protectedSet.has(idx) && protectedSet.has(observer)) {
      violations.push(`${ch.observer} declared ${ch.member} inactive at ${ch.at - t0}ms, though neither was paused or cut off`);
    }
  }
  o.inspect?.(c);
  return { seed: o.seed, violations, convergedAfterMs: converged, faults };
}
