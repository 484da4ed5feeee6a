/**
 * Joining: asking members to let this node in, and answering such requests. The answer is
 * the delegate's (delegate.ts: versions, modes, duplicate ids, whatever the metadata decides)
 * after the checks the cluster layer owns: the membership protocol version and the size of
 * the metadata. An accepted node receives the full member list.
 *
 * Invariants: a refusal carries a stable error code, which the joining node throws at once
 * (another member would say the same); at most one join request per peer address is
 * pending, and it gives up after JOIN_TIMEOUT_MS by the injected clock.
 */
import { CohortError } from '../core/errors.js';
import type { PeerIdentity } from '../transport/transport.js';
import type { MembershipDelegate } from './delegate.js';
import { isActive } from './member-list.js';
import { MAX_META_BYTES, metaBytes } from './member-meta.js';
import type { MemberStates } from './member-states.js';
import type { MembershipCore } from './membership-core.js';
import { MEMBERSHIP_PROTOCOL_MAX, MEMBERSHIP_PROTOCOL_MIN, MessageType, type JoinMsg, type JoinReplyMsg } from './messages.js';

const JOIN_TIMEOUT_MS = 3000;

export class JoinProtocol {
  private readonly pendingJoins = new Map<string, (reply: JoinReplyMsg) => void>();

  constructor(
    private readonly core: MembershipCore,
    private readonly states: MemberStates,
    private readonly delegate: MembershipDelegate,
  ) {}

  /**
   * Asks the members at `peers` (tried in order) to let this node join. Resolves with the
   * address of the member that accepted. Throws CohortError: a transport refusal (cluster id,
   * secret, protocol) or a join refusal (mode, version, duplicate id, metadata size) at once,
   * since another peer would say the same; CLUSTER_JOIN_NO_PEER when no peer could be reached.
   */
  async join(peers: string[]): Promise<string> {
    const { core } = this;
    const failures: string[] = [];
    for (const peer of peers) {
      if (peer === core.address) continue;
      let identity: PeerIdentity;
      try {
        identity = await core.mux.transport.connect(peer, 'control');
      } catch (err) {
        if (err instanceof CohortError && err.code.startsWith('TRANSPORT_REFUSED')) throw err;
        failures.push(`${peer}: ${(err as Error).message}`);
        continue;
      }
      // Our own port under another name (a host name, localhost): not a peer to join through.
      if (identity.nodeId === core.id && identity.address === core.address) continue;
      const reply = await this.requestJoin(identity.address);
      if (!reply) {
        failures.push(`${peer}: no answer to the join request`);
        continue;
      }
      if (!reply.accepted) {
        const code = (reply.code ?? 'CLUSTER_JOIN_NO_PEER') as CohortError['code'];
        throw new CohortError(code, `join refused by ${identity.nodeId} at ${identity.address}: ${reply.message ?? 'no reason given'}`);
      }
      this.states.mergeRemoteState(reply.members ?? [], identity.nodeId);
      core.log.info({ via: identity.address, members: core.members.size }, 'joined the cluster');
      return identity.address;
    }
    throw new CohortError('CLUSTER_JOIN_NO_PEER', `no peer could be reached to join through (${failures.join('; ') || 'no peers configured'})`);
  }

  private requestJoin(address: string): Promise<JoinReplyMsg | undefined> {
    const { core } = this;
    return new Promise((resolve) => {
      const timer = core.clock.setTimeout(() => {
        this.pendingJoins.delete(address);
        resolve(undefined);
      }, JOIN_TIMEOUT_MS);
      this.pendingJoins.set(address, (reply) => {
        core.clock.clearTimeout(timer);
        this.pendingJoins.delete(address);
        resolve(reply);
      });
      core.send(address, { t: MessageType.Join, id: core.id, address: core.address, incarnation: this.states.incarnation, meta: this.states.localMeta, protocol: MEMBERSHIP_PROTOCOL_MAX });
    });
  }

  /** The answer to a join request this node sent to `from`. */
  handleJoinReply(from: PeerIdentity, msg: JoinReplyMsg): void {
    this.pendingJoins.get(from.address)?.(msg);
  }

  handleJoin(from: PeerIdentity, msg: JoinMsg): void {
    const { core } = this;
    const reply = (r: JoinReplyMsg): void => core.send(from.address, r);
    const refuse = (code: CohortError['code'], message: string): void => {
      core.log.warn({ node: msg.id, address: from.address, code }, `refused join: ${message}`);
      reply({ t: MessageType.JoinReply, accepted: false, code, message });
    };
    if (msg.protocol < MEMBERSHIP_PROTOCOL_MIN || msg.protocol > MEMBERSHIP_PROTOCOL_MAX) {
      return refuse('TRANSPORT_REFUSED_PROTOCOL', `membership protocol ${msg.protocol} is not supported`);
    }
    const size = metaBytes(msg.meta);
    if (size > MAX_META_BYTES) {
      return refuse('CLUSTER_META_TOO_LARGE', `node ${msg.id} announces ${size} bytes of metadata; at most ${MAX_META_BYTES} are carried`);
    }
    const existing = core.members.all().map((m) => ({ id: m.id, address: m.address, active: isActive(m) && !(m.id === core.id && core.leaving) }));
    const verdict = this.delegate.judgeJoin({ id: msg.id, address: msg.address, meta: msg.meta }, this.states.localMeta, existing);
    if (!verdict.ok) return refuse(verdict.code, verdict.message);
    this.states.applyAlive({ t: MessageType.Alive, id: msg.id, address: msg.address, incarnation: msg.incarnation, meta: msg.meta });
    reply({ t: MessageType.JoinReply, accepted: true, members: this.states.sharedStates() });
  }
}
