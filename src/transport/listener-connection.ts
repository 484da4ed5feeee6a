/**
 * The listener's side of one incoming connection: check the HELLO's versions, challenge, verify
 * the proof against the current and previous secrets, only then learn who the caller is and say
 * who this node is, then open and deliver sealed frames.
 *
 * A refused handshake is answered with REFUSE (so the dialer can tell its operator why) and the
 * connection is half-closed; the handshake timer, left running, destroys it if the dialer does
 * not close its end. Refusals are counted and logged through `onRefusal`, which the transport
 * rate-limits per real source address (the socket's, not anything the caller claims).
 */
import type { Socket } from 'node:net';
import { Connection, type CloseCause, type ConnectionContext } from './connection.js';
import {
  checkHello,
  clusterIdMismatch,
  computeProof,
  createNonce,
  decodeHandshakeMessage,
  deriveSessionKeys,
  encodeOpeningTranscript,
  encodeTranscript,
  matchProof,
  openIdentity,
  sealIdentity,
  type HandshakeIdentity,
  type OpeningTranscript,
} from './handshake.js';
import type { RefusalCode } from './transport.js';

type Stage = 'hello' | 'proof' | 'open' | 'refused';

/** What the transport learns from a listener connection. */
export interface ListenerEvents {
  /**
   * The handshake was refused; `reason` is a log-ready description, `peer` the caller's identity
   * when it proved the secret (a cluster-id mismatch), else undefined: what an unproven caller
   * claims is never trusted, not even for logging.
   */
  refused(connection: ListenerConnection, code: RefusalCode | 'malformed', reason: string, peer: HandshakeIdentity | undefined): void;
  ended(connection: ListenerConnection, cause: CloseCause): void;
}

export class ListenerConnection extends Connection {
  private stage: Stage = 'hello';
  private opening: OpeningTranscript | undefined;
  /** The caller's identity, known only once it proved the secret. */
  private peer: HandshakeIdentity | undefined;
  private readonly listenerNonce = createNonce();

  constructor(
    ctx: ConnectionContext,
    socket: Socket,
    private readonly events: ListenerEvents,
  ) {
    // The channel is provisional until the HELLO names it.
    super(ctx, socket, 'control');
    this.configureSocket();
    this.arm(ctx.handshakeTimeoutMs, () =>
      this.shutdown({ kind: 'down', reason: 'timeout', detail: `the handshake did not complete within ${ctx.handshakeTimeoutMs} ms` }),
    );
  }

  protected onHandshakeFrame(frame: Buffer): void {
    if (this.stage === 'refused') return;
    const msg = decodeHandshakeMessage(frame);
    if (this.stage === 'hello') {
      if (msg?.type !== 'hello') {
        this.refuse('malformed', 'protocol-mismatch', 'not a Cohort cluster handshake', 'not a Cohort cluster handshake');
        return;
      }
      this.channel = msg.channel;
      const verdict = checkHello(msg);
      if (!verdict.ok) {
        this.refuse(verdict.code, verdict.code, verdict.message, `no common protocol version (it speaks ${msg.protoMin}-${msg.protoMax})`);
        return;
      }
      // Nothing identifying is said before the caller proves the secret: a nonce and the version.
      this.opening = { proto: verdict.proto, channel: msg.channel, dialerNonce: msg.nonce, listenerNonce: this.listenerNonce };
      this.stage = 'proof';
      this.sendHandshake({ type: 'challenge', proto: verdict.proto, nonce: this.listenerNonce });
      return;
    }
    if (this.stage === 'proof') {
      if (msg?.type !== 'proof') {
        this.refuse('malformed', 'protocol-mismatch', 'not a Cohort cluster handshake', `unexpected ${msg?.type ?? 'malformed'} message instead of a proof`);
        return;
      }
      const opening = this.opening!;
      // The dialer offers a proof per secret it holds; the first that one of ours (current or
      // previous) produces wins. Every pair is computed, so timing says nothing about which.
      const openingBytes = encodeOpeningTranscript(opening);
      let choice = -1;
      let matched = -1;
      msg.proofs.forEach((proof, i) => {
        const j = matchProof(this.ctx.secretKeys, 'dialer', openingBytes, proof.mac);
        if (j >= 0 && choice < 0) [choice, matched] = [i, j];
      });
      const secret = matched < 0 ? undefined : this.ctx.secrets[matched]!.reveal();
      const peer = secret === undefined ? undefined : openIdentity(secret, 'dialer', opening, msg.proofs[choice]!.sealed);
      if (peer === undefined) {
        this.refuse('secret-mismatch', 'secret-mismatch', 'the connecting node could not prove the cluster secret (check cluster.secret_key and cluster.id)', 'wrong cluster secret');
        return;
      }
      this.peer = peer;
      if (peer.clusterId !== this.ctx.clusterId) {
        // It holds the secret, so it is one of ours misconfigured: worth telling it exactly.
        this.refuse('cluster-id-mismatch', 'cluster-id-mismatch', clusterIdMismatch(this.ctx.clusterId, peer.clusterId), `wrong cluster id "${peer.clusterId}" (this cluster is "${this.ctx.clusterId}")`);
        return;
      }
      const own = { clusterId: this.ctx.clusterId, nodeId: this.ctx.nodeId, address: this.ctx.localAddress() };
      const transcript = encodeTranscript({
        proto: opening.proto,
        clusterId: this.ctx.clusterId,
        dialerNodeId: peer.nodeId,
        dialerAddress: peer.address,
        channel: opening.channel,
        dialerNonce: opening.dialerNonce,
        listenerNodeId: own.nodeId,
        listenerAddress: own.address,
        listenerNonce: opening.listenerNonce,
      });
      this.sendHandshake({
        type: 'welcome',
        choice,
        mac: computeProof(this.ctx.authKeys[matched]!, 'listener', transcript),
        sealed: sealIdentity(secret!, 'listener', opening, own),
      });
      const keys = deriveSessionKeys(secret!, this.ctx.clusterId, opening.dialerNonce, opening.listenerNonce);
      this.secure(keys.listenerToDialer, keys.dialerToListener, { nodeId: peer.nodeId, address: peer.address });
      this.stage = 'open';
    }
  }

  /** Answers REFUSE, then half-closes; the handshake timer ends it if the dialer lingers. */
  private refuse(kind: RefusalCode | 'malformed', code: RefusalCode, message: string, reason: string): void {
    this.stage = 'refused';
    this.events.refused(this, kind, reason, this.peer);
    this.sendHandshake({ type: 'refuse', code, message });
    this.socket.end();
  }

  protected causeForError(err: NodeJS.ErrnoException): CloseCause {
    return { kind: 'down', reason: 'closed', detail: err.code ? `${err.code}: ${err.message}` : err.message };
  }

  protected causeForClose(): CloseCause {
    return { kind: 'down', reason: 'closed', detail: 'the peer closed the connection' };
  }

  protected onShutdown(cause: CloseCause): void {
    this.events.ended(this, cause);
  }
}
