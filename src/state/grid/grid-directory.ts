/**
 * What the grid engine (grid-engine.ts) needs to know of the cluster, and nothing more: the
 * engines that are active and those that hold their share, the scopes they keep state in, a
 * way to announce this engine's own state, member-change events, and the clock to wait by.
 *
 * The node implements it over its membership (node/cluster-member.ts), the simulator over
 * each simulated node's membership and its own pausable clock (sim/grid-chaos.ts), and unit
 * tests over views they set by hand (test/helpers/sim-grid.ts); all three run the same engine.
 * `engineDirectoryView` derives the answers from a member list, so the node and the simulator
 * also share that derivation.
 */
import type { Clock } from '../../core/clock.js';
import { isActive, type Member } from '../../cluster/member-list.js';
import { CLUSTER_SCOPE, type EngineScopeInfo } from './scopes.js';
import type { Witnesses } from './replicated-executor.js';

export interface GridDirectory {
  /** The clock this engine waits by (a simulated node's own pausable clock in the simulator). */
  readonly clock: Clock;
  /** Active engines (this one included when active): node id → cluster address. */
  activeEngines(): Map<string, string>;
  /**
   * Active engines that announced they hold their share of the grid's state. Undefined: every
   * active engine holds its share, this one included, with no staged join (unit tests that
   * place partitions by hand, test/helpers/sim-grid.ts); a node always answers a set.
   */
  servingEngines(): ReadonlySet<string> | undefined;
  /** Active engines under suspicion (a probe failed, no refutation yet): placed on, but not counted by the write majority. */
  suspectEngines(): ReadonlySet<string>;
  /** Engines known and not left (active or failed): the base of write majorities. */
  knownEngineCount(): number;
  /** The ids of those engines (kept on disk for the next start: grid-engine.ts). */
  knownEngineIds(): ReadonlySet<string>;
  /**
   * The largest number of engines an active engine announces it counts in the cluster
   * (`announceEngineCount`); 0 when none announces one.
   */
  announcedEngineCount(): number;
  /** Consoles and replicas known (not left), and those of them active (write-majority.ts). */
  witnesses(): Witnesses;
  /** Group and node index of every known engine (placement of subcluster and directed scopes). */
  engineScopeInfo(): Map<string, EngineScopeInfo>;
  /** Every scope key the engines use, the cluster-wide one included. */
  scopeKeysInUse(): Set<string>;
  /** The session scope of subcluster `group` as its engines tell it; undefined when none is known. */
  sessionScopeOfGroup(group: string): string | undefined;
  /** Tells the cluster this engine now holds its share: the others place partitions on it. */
  announceHoldsState(): void;
  /**
   * Tells the cluster how many engines this engine counts in it (those it knows, and those its
   * previous run knew until it serves), so that an engine whose own list is shorter (it joined
   * through a member that knew few others) counts as many voters (grid-engine.ts).
   */
  announceEngineCount(count: number): void;
  /** Tells the cluster whether this engine refuses writes now (shown by `cluster info`). */
  announceWriteRefusal(refusing: boolean): void;
  /** Calls `listener` whenever a member is added, changes state or metadata, or is deleted. */
  onMembersChanged(listener: () => void): void;
}

/** The member-list half of a directory: every answer of GridDirectory that a member list decides. */
export type EngineDirectoryView = Pick<GridDirectory, 'activeEngines' | 'suspectEngines' | 'knownEngineCount' | 'knownEngineIds' | 'announcedEngineCount' | 'witnesses' | 'engineScopeInfo' | 'scopeKeysInUse' | 'sessionScopeOfGroup'> & {
  servingEngines(): ReadonlySet<string>;
};

/** The directory's answers over a member list (membership's `list()`), read afresh at each call. */
export function engineDirectoryView(list: () => readonly Member[]): EngineDirectoryView {
  const engines = (): Member[] => list().filter((m) => m.meta.role === 'engine');
  return {
    activeEngines: () => new Map(engines().filter(isActive).map((m) => [m.id, m.address])),
    servingEngines: () => new Set(engines().filter((m) => m.meta.holdsState === true && isActive(m)).map((m) => m.id)),
    suspectEngines: () => new Set(engines().filter((m) => m.status === 'suspect').map((m) => m.id)),
    knownEngineCount: () => engines().filter((m) => m.status !== 'left').length,
    knownEngineIds: () => new Set(engines().flatMap((m) => (m.status === 'left' ? [] : [m.id]))),
    announcedEngineCount: () => engines().reduce((most, m) => (isActive(m) && m.meta.engineCount !== undefined && m.meta.engineCount > most ? m.meta.engineCount : most), 0),
    witnesses: () => {
      const members = list().filter((m) => (m.meta.role === 'console' || m.meta.role === 'replica') && m.status !== 'left');
      return { known: members.length, active: members.filter(isActive).length };
    },
    engineScopeInfo: () => new Map(engines().map((m) => [m.id, { id: m.id, group: m.meta.group, index: m.meta.index ?? null }])),
    scopeKeysInUse: () => new Set([CLUSTER_SCOPE, ...engines().flatMap((m) => (m.status === 'left' ? [] : (m.meta.scopes ?? [])))]),
    sessionScopeOfGroup: (group) => {
      const members = engines().filter((m) => m.meta.group === group && m.status !== 'left');
      return (members.find(isActive) ?? members[0])?.meta.sessionScope ?? (members.length > 0 ? group : undefined);
    },
  };
}
