/**
 * What the cluster layer asks of the application that embeds it (memberlist's Delegate and
 * MergeDelegate): this node's own metadata, which metadata from others it can use, and
 * whether a node may join. The cluster layer carries metadata without reading it
 * (member-meta.ts); every judgement that depends on what is in it is made here.
 *
 * A node implements it in node/membership-delegate.ts; the simulator and the tests construct
 * their memberships through that same implementation, so the rules are written once.
 */
import type { ErrorCode } from '../core/errors.js';
import type { MemberMeta } from './member-meta.js';

/** A node asking to join, as its join request describes it. */
export interface JoinCandidate {
  id: string;
  address: string;
  meta: MemberMeta;
}

/** A member already listed, as the join rules see it. */
export interface ExistingMember {
  id: string;
  address: string;
  /** True while the member is alive or suspect (and not this node leaving). */
  active: boolean;
}

export type JoinVerdict = { ok: true } | { ok: false; code: ErrorCode; message: string };

export interface MembershipDelegate {
  /** This node's metadata when the membership starts (`Membership.updateMeta` changes it later). */
  localMeta(): MemberMeta;
  /**
   * Whether metadata another member announced has what this application needs, of the right
   * types. Fields it does not know must be let through (newer nodes add fields). A message
   * carrying metadata it refuses is dropped as malformed, as any malformed message is.
   */
  acceptsMeta(meta: MemberMeta): boolean;
  /**
   * Whether `candidate` may join, judged by this node (`local` its own metadata) against the
   * members it lists. Must refuse an id held by an active member at another address (the same
   * id at the same address is that node restarting). Cluster id, secret and membership
   * protocol were checked before, and the metadata's size: the candidate's metadata was
   * accepted by `acceptsMeta`.
   */
  judgeJoin(candidate: JoinCandidate, local: MemberMeta, members: readonly ExistingMember[]): JoinVerdict;
}
