/**
 * Scopes: which engines share a service's state. Pure functions, tested in
 * test/unit/grid-scopes.test.ts.
 *
 * - Without `group_id` every service is cluster-wide: its partitions are placed over every
 *   engine that holds state (scope `*`).
 * - An engine with `group_id = G` keeps the state of its services within subcluster G (the
 *   engines with the same group id), except the services listed in `inter_group`, which stay
 *   cluster-wide. Revocations are always on every engine.
 * - With `architecture = directed`, a service with `preferred_node_indices` keeps its state
 *   on the engines with those `node_index` values (within the subcluster when the engine has
 *   one); without, on all engines of its scope.
 *
 * A scope is named by a key: `*` (cluster-wide), `G` (subcluster G), `*|1,2,3` or `G|1,2,3`
 * (directed). Engines tell each other their scope keys (membership metadata), so every engine
 * computes the same placement for every scope in use, and can route a request for another
 * subcluster's state to it. Each scope has its own partitions: partition `p` of a scope is
 * numbered `code * SCOPE_STRIDE + p`, `code` being 0 for `*` and a hash of the key otherwise,
 * so records of different scopes never share a partition (nor its fingerprint).
 */
import { createHash } from 'node:crypto';
import type { NodeConfig } from '../../config/node-config.js';
import { SCOPED_SERVICES, type ScopedService } from '../../config/schema.js';

export const CLUSTER_SCOPE = '*';
/** Partition numbers of one scope: code * SCOPE_STRIDE + p (p < PARTITION_COUNT < SCOPE_STRIDE). */
export const SCOPE_STRIDE = 1000;
const SCOPE_CODES = 1_000_000;

export interface ScopeSettings {
  architecture: 'adaptive' | 'directed';
  groupId: string | null;
  /** Services that stay cluster-wide when the engine has a group. */
  interGroup: readonly ScopedService[];
  /** `directed` only: per service, the node indices that share its state (absent or empty: all). */
  preferredNodeIndices: Partial<Record<ScopedService, readonly number[]>>;
}

/** The scope settings of a node configuration. */
export function scopeSettings(config: NodeConfig): ScopeSettings {
  const { architecture, groupId, interGroup, preferredNodeIndices } = config.state;
  return { architecture, groupId, interGroup, preferredNodeIndices };
}

/** What the scopes need to know of an engine (from its membership metadata). */
export interface EngineScopeInfo {
  id: string;
  group: string | null;
  index: number | null;
}

interface ParsedScope {
  group: string | null;
  indices: ReadonlySet<number> | null;
}

/** The scope key of `service` on an engine with `settings`. */
export function scopeKeyOf(service: ScopedService, settings: ScopeSettings): string {
  const group = settings.groupId !== null && !settings.interGroup.includes(service) ? settings.groupId : null;
  const indices = settings.architecture === 'directed' ? (settings.preferredNodeIndices[service] ?? []) : [];
  if (indices.length === 0) return group ?? CLUSTER_SCOPE;
  return `${group ?? CLUSTER_SCOPE}|${[...new Set(indices)].sort((a, b) => a - b).join(',')}`;
}

/** Every service's scope key on an engine with `settings`. */
export function scopeKeys(settings: ScopeSettings): Record<ScopedService, string> {
  return Object.fromEntries(SCOPED_SERVICES.map((s) => [s, scopeKeyOf(s, settings)])) as Record<ScopedService, string>;
}

function parseScope(key: string): ParsedScope {
  const bar = key.indexOf('|');
  const group = bar < 0 ? key : key.slice(0, bar);
  const indices = bar < 0 ? null : new Set(key.slice(bar + 1).split(',').map(Number));
  return { group: group === CLUSTER_SCOPE ? null : group, indices };
}

/** The subcluster of scope `key`, or null for scopes across subclusters. */
export function scopeGroup(key: string): string | null {
  return parseScope(key).group;
}

/** The engines (of `engines`) that hold state of scope `key`. */
export function scopeMembers(key: string, engines: readonly EngineScopeInfo[]): string[] {
  const scope = parseScope(key);
  return engines
    .filter((e) => (scope.group === null || e.group === scope.group) && (scope.indices === null || (e.index !== null && scope.indices.has(e.index))))
    .map((e) => e.id);
}

/** Codes of the scope keys seen: every request for a scoped service, and every placement, asks. */
const codes = new Map<string, number>([[CLUSTER_SCOPE, 0]]);

/** The partition-number offset code of scope `key`: 0 for the cluster-wide scope. */
export function scopeCode(key: string): number {
  let code = codes.get(key);
  if (code === undefined) {
    code = 1 + (createHash('sha1').update(key).digest().readUInt32BE(0) % (SCOPE_CODES - 1));
    if (codes.size < 10_000) codes.set(key, code);
  }
  return code;
}

/** The scope-wide partition number of partition `p` of scope `key`. */
export function scopedPartition(key: string, p: number): number {
  return scopeCode(key) * SCOPE_STRIDE + p;
}

/** The partition of a scope-wide partition number within its scope. */
export function localPartition(scoped: number): number {
  return scoped % SCOPE_STRIDE;
}

/**
 * A node index from a node id ending in a number (`engine-3` → 3), used when `node_index`
 * is not set; null when the id has none.
 */
export function indexFromNodeId(id: string): number | null {
  const m = /(\d{1,4})$/.exec(id);
  return m ? Number(m[1]) : null;
}
