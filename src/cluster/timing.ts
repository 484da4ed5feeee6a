/**
 * Membership timings: the named profiles and the pure functions that turn them into
 * timeouts. Every function here is table-tested in test/unit/cluster-timing.test.ts.
 */
import type { Profile } from '../config/schema.js';

export interface MembershipTiming {
  /** How often this node probes one peer (ms). */
  probeIntervalMs: number;
  /** How long a direct probe waits for its ack before asking others to try (ms). */
  probeTimeoutMs: number;
  /** How many peers are asked to probe an unresponsive peer on our behalf. */
  indirectChecks: number;
  /** Scales the suspicion timeout: minimum = mult x max(1, log10(N)) x probe interval. */
  suspicionMult: number;
  /** The suspicion timeout starts at this multiple of its minimum and shrinks with confirmations. */
  suspicionMaxTimeoutMult: number;
  /** How often queued updates are gossiped (ms). */
  gossipIntervalMs: number;
  /** To how many random peers each gossip round sends. */
  gossipNodes: number;
  /** How often a full-state exchange with one random peer runs (ms), before scaling for large clusters. */
  pushPullIntervalMs: number;
  /** An update is retransmitted about mult x ceil(log10(N + 1)) times. */
  retransmitMult: number;
  /** Upper bound of the local-health multiplier that stretches a struggling node's own timeouts. */
  awarenessMaxMultiplier: number;
  /** How often this node tries to reach one inactive member, so healed partitions merge (ms). */
  reconnectIntervalMs: number;
  /** How long an inactive member stays listed before it is forgotten (ms). */
  reapTimeoutMs: number;
}

/**
 * `lan`: one data centre. `wan`: slow or lossy links. `local`: one machine and tests.
 * A silent node is declared inactive after roughly one probe round, the indirect probes and
 * the suspicion timeout: about 5 s on `lan`, under 2 s on `local`.
 */
export const PROFILES: Record<Profile, MembershipTiming> = {
  lan: {
    probeIntervalMs: 1000,
    probeTimeoutMs: 500,
    indirectChecks: 3,
    suspicionMult: 4,
    suspicionMaxTimeoutMult: 6,
    gossipIntervalMs: 200,
    gossipNodes: 3,
    pushPullIntervalMs: 30_000,
    retransmitMult: 4,
    awarenessMaxMultiplier: 8,
    reconnectIntervalMs: 2000,
    reapTimeoutMs: 24 * 3600_000,
  },
  wan: {
    probeIntervalMs: 5000,
    probeTimeoutMs: 3000,
    indirectChecks: 3,
    suspicionMult: 6,
    suspicionMaxTimeoutMult: 6,
    gossipIntervalMs: 500,
    gossipNodes: 4,
    pushPullIntervalMs: 60_000,
    retransmitMult: 4,
    awarenessMaxMultiplier: 8,
    reconnectIntervalMs: 10_000,
    reapTimeoutMs: 24 * 3600_000,
  },
  local: {
    probeIntervalMs: 200,
    probeTimeoutMs: 100,
    indirectChecks: 3,
    suspicionMult: 3,
    suspicionMaxTimeoutMult: 6,
    gossipIntervalMs: 100,
    gossipNodes: 3,
    pushPullIntervalMs: 5000,
    retransmitMult: 4,
    awarenessMaxMultiplier: 8,
    reconnectIntervalMs: 500,
    reapTimeoutMs: 24 * 3600_000,
  },
};

/** Minimum suspicion timeout: mult x max(1, log10(n)) x interval (ms). */
export function suspicionTimeout(suspicionMult: number, n: number, intervalMs: number): number {
  const nodeScale = Math.max(1, Math.log10(Math.max(1, n)));
  return Math.round(suspicionMult * nodeScale * intervalMs);
}

/**
 * Lifeguard's shrinking suspicion timeout. With `confirmations` independent suspicions out of
 * the `k` expected, the timeout falls from `max` towards `min` logarithmically:
 *
 *   timeout = max(min, max - (max - min) x log(c + 1) / log(k + 1))
 *
 * and the time left is that minus what has `elapsed`. With k = 0 the minimum applies at once.
 */
export function remainingSuspicionTime(confirmations: number, k: number, elapsedMs: number, minMs: number, maxMs: number): number {
  const frac = k <= 0 ? 1 : Math.log(confirmations + 1) / Math.log(k + 1);
  const timeout = Math.max(minMs, Math.floor(maxMs - (maxMs - minMs) * frac));
  return timeout - elapsedMs;
}

/** How many independent confirmations a suspicion expects: mult - 2, but none in tiny clusters. */
export function expectedConfirmations(suspicionMult: number, n: number): number {
  const k = suspicionMult - 2;
  return n - 2 < k ? 0 : k;
}

/** How many times one update is retransmitted: mult x ceil(log10(n + 1)). */
export function retransmitLimit(retransmitMult: number, n: number): number {
  return retransmitMult * Math.ceil(Math.log10(n + 1));
}

/**
 * Push-pull interval for a cluster of n members. Beyond 32 members it grows with log2(n / 32)
 * so that full-state exchanges (whose size grows with n) do not swamp a large cluster.
 */
export function pushPullInterval(intervalMs: number, n: number): number {
  const threshold = 32;
  if (n <= threshold) return intervalMs;
  const multiplier = Math.ceil(Math.log2(n) - Math.log2(threshold)) + 1;
  return intervalMs * multiplier;
}

/** A profile's timings with the operator's overrides (`[cluster]` timing keys) applied. */
export function resolveTiming(profile: Profile, overrides: Partial<MembershipTiming>): MembershipTiming {
  return { ...PROFILES[profile], ...overrides };
}

/**
 * What is wrong with a combination of timings that each passed their own range check; empty
 * when nothing is. A probe timeout at or past the probe interval would start the next probe
 * before the last one could fail, and gossip slower than probing would let a suspicion expire
 * before its refutation could spread.
 */
export function timingProblems(t: MembershipTiming): string[] {
  const problems: string[] = [];
  if (t.probeTimeoutMs >= t.probeIntervalMs) problems.push(`probe_timeout (${t.probeTimeoutMs} ms) must be less than probe_interval (${t.probeIntervalMs} ms)`);
  if (t.gossipIntervalMs > t.probeIntervalMs) problems.push(`gossip_interval (${t.gossipIntervalMs} ms) must not exceed probe_interval (${t.probeIntervalMs} ms)`);
  return problems;
}
