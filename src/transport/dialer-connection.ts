/**
 * The dialer's side of one outbound connection (one per peer and channel): connect, run the
 * handshake, then seal and write payloads. Payloads sent before the connection is secure wait
 * in a bounded queue and leave, in order, as soon as it is.
 *
 * Stages: connecting (TCP connect, bounded by connectTimeoutMs) → handshaking (HELLO ...
 * WELCOME, bounded by handshakeTimeoutMs) → open → done. How the connection ended decides
 * what the peer-down reason is; see `causeForError` / `causeForClose`.
 */
import { connect as netConnect } from 'node:net';
import type { Address } from '../config/values.js';
import { Connection, KEEPALIVE_INITIAL_DELAY_MS, sealedFrameBytes, type CloseCause, type ConnectionContext } from './connection.js';
import {
  computeProof,
  createNonce,
  decodeHandshakeMessage,
  deriveSessionKeys,
  encodeOpeningTranscript,
  encodeTranscript,
  matchProof,
  MAX_PROOFS,
  openIdentity,
  PROTOCOL_VERSION_MAX,
  PROTOCOL_VERSION_MIN,
  sealIdentity,
  type OpeningTranscript,
} from './handshake.js';
import type { Channel, PeerIdentity } from './transport.js';

type Stage = 'connecting' | 'handshaking' | 'open' | 'done';

export interface Waiter {
  resolve(identity: PeerIdentity): void;
  reject(cause: CloseCause): void;
}

export class DialerConnection extends Connection {
  private stage: Stage = 'connecting';
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private waiters: Waiter[] = [];
  private readonly dialerNonce = createNonce();
  private opening: OpeningTranscript | undefined;

  constructor(
    ctx: ConnectionContext,
    /** The address dialed, as the caller named it. */
    readonly to: string,
    target: Address,
    channel: Channel,
    private readonly onEnd: (connection: DialerConnection, cause: CloseCause) => void,
  ) {
    super(
      ctx,
      netConnect({ host: target.host, port: target.port, noDelay: true, keepAlive: true, keepAliveInitialDelay: KEEPALIVE_INITIAL_DELAY_MS }),
      channel,
    );
    this.arm(ctx.connectTimeoutMs, () =>
      this.shutdown({ kind: 'down', reason: 'timeout', detail: `TCP connect did not complete within ${ctx.connectTimeoutMs} ms` }),
    );
    this.socket.once('connect', () => this.onConnect());
  }

  get isOpen(): boolean {
    return this.stage === 'open';
  }

  /** The wire-protocol version the handshake agreed on, once the connection is open. */
  get protocol(): number | undefined {
    return this.stage === 'open' ? this.opening?.proto : undefined;
  }

  /** Sends now if open, else queues (bounded); counts a drop when it cannot. */
  send(payload: Uint8Array): void {
    if (this.stage === 'open') {
      this.sendSecure(payload);
      return;
    }
    // Counted as the frame it will become, so the bound means the same before and after the
    // connection opens (where the socket's unsent bytes are what is bounded).
    const frameBytes = sealedFrameBytes(payload.length);
    if (this.stage === 'done' || this.queuedBytes + frameBytes > this.ctx.maxQueuedBytes(this.channel)) {
      this.ctx.stats.sendsDropped++;
      return;
    }
    // Copied: the caller may reuse its buffer once send() returns, and this one waits.
    this.queue.push(Buffer.from(payload));
    this.queuedBytes += frameBytes;
  }

  /** Resolves with the peer's identity once the connection is secure. */
  waitOpen(): Promise<PeerIdentity> {
    if (this.stage === 'open') return Promise.resolve(this.identity!);
    return new Promise((resolve, reject) => {
      if (this.stage === 'done') reject({ kind: 'local' } satisfies CloseCause);
      else this.waiters.push({ resolve, reject });
    });
  }

  private onConnect(): void {
    if (this.finished) return;
    this.configureSocket();
    this.stage = 'handshaking';
    this.arm(this.ctx.handshakeTimeoutMs, () =>
      this.shutdown({ kind: 'down', reason: 'timeout', detail: `the handshake did not complete within ${this.ctx.handshakeTimeoutMs} ms` }),
    );
    this.sendHandshake({
      type: 'hello',
      protoMin: PROTOCOL_VERSION_MIN,
      protoMax: PROTOCOL_VERSION_MAX,
      channel: this.channel,
      nonce: this.dialerNonce,
    });
  }

  protected onHandshakeFrame(frame: Buffer): void {
    const msg = decodeHandshakeMessage(frame);
    if (!msg) {
      this.shutdown({ kind: 'down', reason: 'error', detail: 'the peer does not speak the Cohort cluster protocol' });
      return;
    }
    if (msg.type === 'refuse') {
      this.shutdown({ kind: 'refused', code: msg.code, message: msg.message });
      return;
    }
    if (msg.type === 'challenge' && this.opening === undefined) {
      if (msg.proto < PROTOCOL_VERSION_MIN || msg.proto > PROTOCOL_VERSION_MAX) {
        this.shutdown({ kind: 'down', reason: 'error', detail: `the peer chose protocol version ${msg.proto}, which this node does not speak` });
        return;
      }
      const opening = { proto: msg.proto, channel: this.channel, dialerNonce: this.dialerNonce, listenerNonce: msg.nonce };
      this.opening = opening;
      const openingBytes = encodeOpeningTranscript(opening);
      const own = { clusterId: this.ctx.clusterId, nodeId: this.ctx.nodeId, address: this.ctx.localAddress() };
      // A proof per secret held (current first): during a rotation the peer may know only one.
      this.sendHandshake({
        type: 'proof',
        proofs: this.ctx.secrets.slice(0, MAX_PROOFS).map((secret, i) => ({
          mac: computeProof(this.ctx.secretKeys[i]!, 'dialer', openingBytes),
          sealed: sealIdentity(secret.reveal(), 'dialer', opening, own),
        })),
      });
      return;
    }
    if (msg.type === 'welcome' && this.opening !== undefined) {
      // The listener accepted one of our proofs, and must answer with the same secret.
      const index = msg.choice;
      const secret = index < Math.min(this.ctx.secrets.length, MAX_PROOFS) ? this.ctx.secrets[index]!.reveal() : undefined;
      const peer = secret === undefined ? undefined : openIdentity(secret, 'listener', this.opening, msg.sealed);
      const transcript =
        peer &&
        encodeTranscript({
          proto: this.opening.proto,
          clusterId: this.ctx.clusterId,
          dialerNodeId: this.ctx.nodeId,
          dialerAddress: this.ctx.localAddress(),
          channel: this.channel,
          dialerNonce: this.dialerNonce,
          listenerNodeId: peer.nodeId,
          listenerAddress: peer.address,
          listenerNonce: this.opening.listenerNonce,
        });
      if (!secret || !peer || !transcript || peer.clusterId !== this.ctx.clusterId || matchProof([this.ctx.authKeys[index]!], 'listener', transcript, msg.mac) !== 0) {
        this.shutdown({ kind: 'refused', code: 'secret-mismatch', message: 'the peer could not prove the cluster secret', peerFailedProof: true });
        return;
      }
      const keys = deriveSessionKeys(secret, this.ctx.clusterId, this.dialerNonce, this.opening.listenerNonce);
      this.secure(keys.dialerToListener, keys.listenerToDialer, { nodeId: peer.nodeId, address: peer.address });
      this.stage = 'open';
      this.flushQueue();
      for (const waiter of this.waiters.splice(0)) waiter.resolve(this.identity!);
      return;
    }
    this.shutdown({ kind: 'down', reason: 'error', detail: `unexpected ${msg.type} message during the handshake` });
  }

  private flushQueue(): void {
    const queue = this.queue;
    this.queue = [];
    this.queuedBytes = 0;
    for (const payload of queue) this.sendSecure(payload);
  }

  protected causeForError(err: NodeJS.ErrnoException): CloseCause {
    const detail = err.code ? `${err.code}: ${err.message}` : err.message;
    if (this.stage === 'connecting') {
      if (err.code === 'ECONNREFUSED') return { kind: 'down', reason: 'refused', detail };
      if (err.code === 'ETIMEDOUT') return { kind: 'down', reason: 'timeout', detail };
      return { kind: 'down', reason: 'error', detail };
    }
    if (this.stage === 'open' || err.code === 'ECONNRESET' || err.code === 'EPIPE') return { kind: 'down', reason: 'closed', detail };
    return { kind: 'down', reason: 'error', detail };
  }

  protected causeForClose(): CloseCause {
    return { kind: 'down', reason: 'closed', detail: 'the peer closed the connection' };
  }

  protected onShutdown(cause: CloseCause): void {
    this.stage = 'done';
    // The transport may hand queue and waiters over to a retry; whatever is left is dropped.
    this.onEnd(this, cause);
    this.ctx.stats.sendsDropped += this.queue.length;
    this.queue = [];
    this.queuedBytes = 0;
    for (const waiter of this.waiters.splice(0)) waiter.reject(cause);
  }
}
