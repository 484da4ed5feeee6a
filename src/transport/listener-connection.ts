/**
 * The listener's side of one incoming connection: check the HELLO, challenge, verify the
 * proof against the current and previous secrets, then open and deliver sealed frames.
 *
 * A refused handshake is answered with REFUSE (so the dialer can tell its operator why) and the
 * connection is half-closed; the handshake timer, left running, destroys it if the dialer does
 * not close its end. Refusals are counted and logged through `onRefusal`, which the transport
 * rate-limits to one line per remote address and reason.
 */
import type { Socket } from 'node:net';
import { Connection, type CloseCause, type ConnectionContext } from './connection.js';
import {
  checkHello,
  computeProof,
  createNonce,
  decodeHandshakeMessage,
  deriveSessionKeys,
  encodeTranscript,
  matchProof,
  type HelloMessage,
} from './handshake.js';
import type { RefusalCode } from './transport.js';

type Stage = 'hello' | 'proof' | 'open' | 'refused';

/** What the transport learns from a listener connection. */
export interface ListenerEvents {
  /** The handshake was refused; `reason` is a log-ready description, `hello` if one was read. */
  refused(connection: ListenerConnection, code: RefusalCode | 'malformed', reason: string, hello: HelloMessage | undefined): void;
  ended(connection: ListenerConnection, cause: CloseCause): void;
}

export class ListenerConnection extends Connection {
  private stage: Stage = 'hello';
  private hello: HelloMessage | undefined;
  private transcript: Buffer | undefined;
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
      this.hello = msg;
      this.channel = msg.channel;
      const verdict = checkHello(msg, { clusterId: this.ctx.clusterId });
      if (!verdict.ok) {
        const reason =
          verdict.code === 'cluster-id-mismatch'
            ? `wrong cluster id "${msg.clusterId}" (this cluster is "${this.ctx.clusterId}")`
            : `no common protocol version (it speaks ${msg.protoMin}-${msg.protoMax})`;
        this.refuse(verdict.code, verdict.code, verdict.message, reason);
        return;
      }
      this.transcript = encodeTranscript({
        proto: verdict.proto,
        clusterId: this.ctx.clusterId,
        dialerNodeId: msg.nodeId,
        dialerAddress: msg.address,
        channel: msg.channel,
        dialerNonce: msg.nonce,
        listenerNodeId: this.ctx.nodeId,
        listenerAddress: this.ctx.localAddress(),
        listenerNonce: this.listenerNonce,
      });
      this.stage = 'proof';
      this.sendHandshake({ type: 'challenge', proto: verdict.proto, nodeId: this.ctx.nodeId, address: this.ctx.localAddress(), nonce: this.listenerNonce });
      return;
    }
    if (this.stage === 'proof') {
      if (msg?.type !== 'proof') {
        this.refuse('malformed', 'protocol-mismatch', 'not a Cohort cluster handshake', `unexpected ${msg?.type ?? 'malformed'} message instead of a proof`);
        return;
      }
      const hello = this.hello!;
      // Previous secrets are accepted so that nodes still on the old key can join during rotation.
      const matched = matchProof(this.ctx.authKeys, 'dialer', this.transcript!, msg.mac);
      if (matched < 0) {
        this.refuse('secret-mismatch', 'secret-mismatch', 'the connecting node could not prove the cluster secret (check cluster.secret_key)', 'wrong cluster secret');
        return;
      }
      this.sendHandshake({ type: 'welcome', mac: computeProof(this.ctx.authKeys[matched]!, 'listener', this.transcript!) });
      const keys = deriveSessionKeys(this.ctx.secrets[matched]!.reveal(), this.ctx.clusterId, hello.nonce, this.listenerNonce);
      this.secure(keys.listenerToDialer, keys.dialerToListener, { nodeId: hello.nodeId, address: hello.address });
      this.stage = 'open';
    }
  }

  /** Answers REFUSE, then half-closes; the handshake timer ends it if the dialer lingers. */
  private refuse(kind: RefusalCode | 'malformed', code: RefusalCode, message: string, reason: string): void {
    this.stage = 'refused';
    this.events.refused(this, kind, reason, this.hello);
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
