/**
 * The node's side of the membership protocol (cluster/delegate.ts): its own metadata, the
 * check of what other members announce (node-meta.ts), and the join rules
 * (compatibility.ts). `cluster-member.ts` builds its membership with it; the simulator and
 * the tests build theirs with it too, so every membership judges joins by the same rules.
 */
import type { MembershipDelegate } from '../cluster/delegate.js';
import { judgeJoin } from './compatibility.js';
import { isNodeMeta, type NodeMeta } from './node-meta.js';

/** A delegate announcing `meta` for this node. */
export function nodeMembershipDelegate(meta: NodeMeta): MembershipDelegate {
  return {
    localMeta: () => meta,
    acceptsMeta: isNodeMeta,
    // The candidate's metadata passed acceptsMeta, and ours is the node's own.
    judgeJoin: (candidate, local, members) => judgeJoin(candidate, local, members),
  };
}
