/**
 * The rules by which nodes of different versions and modes may share a cluster: who may
 * join (the node's membership delegate applies them, membership-delegate.ts), and the
 * versions `cluster info` reports. They read the node's metadata (node-meta.ts), which the
 * cluster layer carries without reading.
 */
import { parseVersion } from '../core/version.js';
import type { ExistingMember, JoinCandidate, JoinVerdict } from '../cluster/delegate.js';
import type { NodeMeta } from './node-meta.js';

/**
 * Whether a node may join, judged by the member it asked. Cluster id and
 * secret are checked earlier, by the transport handshake.
 *
 * - `mode` must be the same: inline and sideband engines enforce differently.
 * - major and minor versions must match; maintenance versions may differ (reported as
 *   mixedVersions).
 * - the node id must not be held by an active member at another address. The same id at the
 *   same address is that node restarting before its failure was noticed, which is allowed.
 */
export function judgeJoin(candidate: JoinCandidate, local: NodeMeta, members: Iterable<ExistingMember>): JoinVerdict {
  if (candidate.meta.mode !== local.mode) {
    return { ok: false, code: 'CLUSTER_JOIN_MODE_MISMATCH', message: `node ${candidate.id} runs in ${candidate.meta.mode} mode but the cluster runs in ${local.mode} mode` };
  }
  const theirs = parseVersion(candidate.meta.version);
  const ours = parseVersion(local.version);
  if (!theirs || !ours || theirs.major !== ours.major || theirs.minor !== ours.minor) {
    return {
      ok: false,
      code: 'CLUSTER_JOIN_VERSION_MISMATCH',
      message: `node ${candidate.id} runs version ${candidate.meta.version} but the cluster runs ${local.version}; only maintenance versions may differ`,
    };
  }
  for (const m of members) {
    if (m.id === candidate.id && m.active && m.address !== candidate.address) {
      return { ok: false, code: 'CLUSTER_JOIN_DUPLICATE_NODE_ID', message: `node id ${candidate.id} is already held by the active member at ${m.address}` };
    }
  }
  return { ok: true };
}

/** Distinct versions across members, sorted, and whether more than one is present. */
export function versionSummary(versions: Iterable<string>): { versions: string[]; mixedVersions: boolean } {
  const distinct = [...new Set(versions)].sort();
  return { versions: distinct, mixedVersions: distinct.length > 1 };
}
