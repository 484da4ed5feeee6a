/**
 * The cluster as one node sees it, in the shape of `cohort cluster info --json` and
 * GET /manage/v1/cluster (documented in docs/operations.md). A pure function of the member list, so it is tested
 * without a network.
 */
import { versionSummary } from './compatibility.js';
import { isActive, reportedState, type Member, type ReportedState } from '../cluster/member-list.js';

/** Skew between two nodes' wall clocks above which operators are warned: time-based state needs NTP. */
export const CLOCK_SKEW_WARNING_MS = 1000;

export type NodeState = ReportedState | 'not-resolved';

export interface ClusterInfoNode {
  /** `null` for a configured peer that was never reached (not-resolved). */
  id: string | null;
  address: string;
  role: string | null;
  version: string | null;
  state: NodeState;
  group: string | null;
  /** How far this node's wall clock is ahead of ours (ms); null until measured. */
  clockOffsetMs: number | null;
  /** True for the node that answered. */
  self: boolean;
  /** An engine's runtime API address (`host:port`), as it announces it. */
  runtime?: string;
  /**
   * Engines: whether the engine accepts changes to the runtime state (`refused` while it sees
   * no majority of the cluster, as it last announced); absent for other roles and inactive nodes.
   */
  writes?: 'accepted' | 'refused';
}

export interface ClusterInfo {
  clusterId: string;
  /** Id of the node that answered. */
  node: string;
  mixedVersions: boolean;
  /** Distinct versions of the active members. */
  versions: string[];
  /** Largest difference between two active members' wall clocks that this node measured (ms). */
  clockSkewMs: number;
  /** True when clockSkewMs is over CLOCK_SKEW_WARNING_MS: time-based state needs NTP. */
  clockSkewWarning: boolean;
  nodes: ClusterInfoNode[];
}

const ROLE_ORDER: Record<string, number> = { console: 0, replica: 1, engine: 2 };

export function clusterInfo(clusterId: string, selfId: string, members: readonly Member[], notResolved: readonly string[] = []): ClusterInfo {
  const active = members.filter(isActive);
  const { versions, mixedVersions } = versionSummary(active.map((m) => m.meta.version));
  const offsets = active.map((m) => (m.id === selfId ? 0 : m.clockOffsetMs)).filter((o): o is number => o !== undefined);
  const clockSkewMs = offsets.length > 1 ? Math.max(...offsets) - Math.min(...offsets) : 0;
  const nodes: ClusterInfoNode[] = members.map((m) => ({
    id: m.id,
    address: m.address,
    role: m.meta.role,
    version: m.meta.version,
    state: reportedState(m.status),
    group: m.meta.group,
    clockOffsetMs: m.id === selfId ? 0 : (m.clockOffsetMs ?? null),
    self: m.id === selfId,
    ...(m.meta.runtime !== undefined ? { runtime: m.meta.runtime } : {}),
    ...(m.meta.role === 'engine' && isActive(m) ? { writes: m.meta.refusesWrites === true ? ('refused' as const) : ('accepted' as const) } : {}),
  }));
  nodes.sort((a, b) => (ROLE_ORDER[a.role ?? ''] ?? 9) - (ROLE_ORDER[b.role ?? ''] ?? 9) || (a.id ?? '').localeCompare(b.id ?? ''));
  const listed = new Set(members.map((m) => m.address));
  for (const address of notResolved) {
    if (listed.has(address)) continue;
    nodes.push({ id: null, address, role: null, version: null, state: 'not-resolved', group: null, clockOffsetMs: null, self: false });
  }
  return { clusterId, node: selfId, mixedVersions, versions, clockSkewMs, clockSkewWarning: clockSkewMs > CLOCK_SKEW_WARNING_MS, nodes };
}
