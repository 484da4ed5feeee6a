import type { MemberMeta } from './member-meta.js';

/** A member's status as this node's membership protocol tracks it. */
export type MemberStatus = 'alive' | 'suspect' | 'dead' | 'left';

/** The state names operators see in `cohort cluster info` and the admin API. */
export type ReportedState = 'active' | 'suspect' | 'inactive' | 'left';

export function reportedState(status: MemberStatus): ReportedState {
  switch (status) {
    case 'alive':
      return 'active';
    case 'suspect':
      return 'suspect';
    case 'dead':
      return 'inactive';
    case 'left':
      return 'left';
  }
}

export interface Member {
  id: string;
  address: string;
  incarnation: number;
  status: MemberStatus;
  /** Opaque to the cluster layer (member-meta.ts); its fields are the node's (node/node-meta.ts). */
  meta: MemberMeta;
  /** When this node last saw the status change (its own clock, ms). */
  statusSince: number;
  /** Estimated offset of the member's wall clock from ours (ms, positive = ahead), from probe round trips. */
  clockOffsetMs: number | undefined;
}

/** Alive and suspect members take part in probing, gossip and placement. */
export function isActive(m: Pick<Member, 'status'>): boolean {
  return m.status === 'alive' || m.status === 'suspect';
}

/** Members by id, with a secondary index by address (transport events name addresses). */
export class MemberList {
  private readonly byId = new Map<string, Member>();
  private readonly byAddress = new Map<string, Member>();
  /**
   * Bumped whenever a member is added or removed or its status may have changed, so that
   * views derived from the list (the probe ring) know when to recompute.
   */
  version = 0;

  get(id: string): Member | undefined {
    return this.byId.get(id);
  }

  getByAddress(address: string): Member | undefined {
    return this.byAddress.get(address);
  }

  set(member: Member): void {
    this.version++;
    const previous = this.byId.get(member.id);
    if (previous && previous.address !== member.address && this.byAddress.get(previous.address) === previous) {
      this.byAddress.delete(previous.address);
    }
    this.byId.set(member.id, member);
    this.byAddress.set(member.address, member);
  }

  /** Updates the address index after `member.address` changed in place. */
  readdress(member: Member, oldAddress: string): void {
    if (this.byAddress.get(oldAddress) === member) this.byAddress.delete(oldAddress);
    this.byAddress.set(member.address, member);
  }

  delete(id: string): Member | undefined {
    const m = this.byId.get(id);
    if (!m) return undefined;
    this.version++;
    this.byId.delete(id);
    if (this.byAddress.get(m.address) === m) this.byAddress.delete(m.address);
    return m;
  }

  all(): Member[] {
    return [...this.byId.values()];
  }

  get size(): number {
    return this.byId.size;
  }

  /** Records that a member's status changed in place. */
  touched(): void {
    this.version++;
  }

  /** Number of alive or suspect members (this node included when it is in the list). */
  activeCount(): number {
    if (this.activeCache?.version === this.version) return this.activeCache.count;
    let n = 0;
    for (const m of this.byId.values()) if (isActive(m)) n++;
    this.activeCache = { version: this.version, count: n };
    return n;
  }

  private activeCache: { version: number; count: number } | undefined;
}
