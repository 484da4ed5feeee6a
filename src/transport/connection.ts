/**
 * What both ends of a cluster connection share: the socket, the frame decoder, the switch
 * from plaintext handshake frames to sealed frames, batched writes, one timer slot, and an
 * idempotent shutdown. `DialerConnection` and `ListenerConnection` add their side of the
 * handshake and what happens when the connection ends.
 *
 * Invariants:
 * - Nothing thrown while handling socket data escapes to the socket's event emitter: a bad
 *   peer costs its own connection, never the process.
 * - Before `secure()` every frame goes to `onHandshakeFrame` with the small handshake limit;
 *   after it every frame is opened with the receive key, with the full frame limit.
 * - `shutdown` runs its body once; the socket is destroyed, the timer cleared, `onShutdown`
 *   called, and `closed` resolves when the socket has fully closed.
 */
import type { Socket } from 'node:net';
import type { Clock, TimerHandle } from '../core/clock.js';
import type { Logger } from '../core/logger.js';
import type { Secret } from '../config/secret.js';
import { FrameDecoder, HANDSHAKE_MAX_FRAME_BYTES, LENGTH_PREFIX_BYTES, encodeFrame } from './frame-codec.js';
import { encodeHandshakeMessage, type HandshakeMessage } from './handshake.js';
import { FrameOpener, FrameSealer, FRAME_OVERHEAD_BYTES, type OpenFailure } from './secure-channel.js';
import type { Channel, PeerDownReason, PeerIdentity, RefusalCode, TransportHandlers, TransportStats } from './transport.js';

/** TCP keep-alive probes start after this much idleness; they find dead peers the OS knows of. */
export const KEEPALIVE_INITIAL_DELAY_MS = 15_000;

/** What the transport shares with each of its connections. */
export interface ConnectionContext {
  readonly clusterId: string;
  readonly nodeId: string;
  /** This node's advertised cluster address, sent in the handshake (known once bound). */
  localAddress(): string;
  /** Current secret first, then the previous ones (accepted for incoming handshakes). */
  readonly secrets: readonly Secret[];
  /** `deriveAuthKey` of each secret, in the same order. */
  readonly authKeys: readonly Buffer[];
  /** `deriveSecretKey` of each secret, in the same order. */
  readonly secretKeys: readonly Buffer[];
  readonly clock: Clock;
  readonly logger: Logger;
  /** Counters, mutated in place by every connection. */
  readonly stats: TransportStats;
  /** Never throws and does nothing once the transport is closing. */
  readonly handlers: TransportHandlers;
  readonly maxFrameBytes: number;
  readonly handshakeTimeoutMs: number;
  readonly connectTimeoutMs: number;
  maxQueuedBytes(channel: Channel): number;
  /**
   * Logs a warning unless one with the same key was logged already: for what a remote party
   * can trigger at will (refused or malformed connections), so it cannot flood the log.
   */
  warnOnce(key: string, fields: Record<string, unknown>, message: string): void;
}

/** Why a connection ended. */
export type CloseCause =
  | { kind: 'down'; reason: PeerDownReason; detail: string }
  /** `peerFailedProof`: the refusal is ours (the peer could not prove the secret), not the peer's. */
  | { kind: 'refused'; code: RefusalCode; message: string; peerFailedProof?: boolean }
  /** Closed by this node (disconnect or close): reported to nobody. */
  | { kind: 'local' };

const DROP_DESCRIPTIONS: Record<OpenFailure, string> = {
  rejected: 'it failed authentication (tampered, forged or from another cluster)',
  replayed: 'its sequence number was already used (replayed)',
  gap: 'its sequence number skips ahead (a frame before it was removed or held back); closing the connection',
};

/** Wire size of a payload once sealed and framed. */
export function sealedFrameBytes(payloadBytes: number): number {
  return LENGTH_PREFIX_BYTES + FRAME_OVERHEAD_BYTES + payloadBytes;
}

export abstract class Connection {
  /** The peer as proven by the handshake; set once the connection is secure. */
  identity: PeerIdentity | undefined;
  /** Resolves when the socket has closed (after `shutdown`, or when the peer closes). */
  readonly closed: Promise<void>;

  protected readonly decoder = new FrameDecoder(HANDSHAKE_MAX_FRAME_BYTES);
  protected finished = false;
  private sealer: FrameSealer | undefined;
  private opener: FrameOpener | undefined;
  private corked = false;
  private timer: TimerHandle | undefined;
  private warnedDrop = false;

  constructor(
    protected readonly ctx: ConnectionContext,
    protected readonly socket: Socket,
    /** The traffic class; a listener learns it from the HELLO. */
    public channel: Channel,
  ) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => this.shutdown(this.causeForError(err)));
    socket.on('close', () => this.shutdown(this.causeForClose()));
  }

  /** True once the handshake has completed and frames are sealed. */
  get isSecure(): boolean {
    return this.sealer !== undefined;
  }

  /** `host:port` of the socket's remote end (not the advertised address). */
  get remoteEndpoint(): string {
    const host = this.socket.remoteAddress ?? 'unknown';
    return `${host.includes(':') ? `[${host}]` : host}:${this.socket.remotePort ?? 0}`;
  }

  /** Closes the connection on this node's initiative; nobody is told. */
  close(): void {
    this.shutdown({ kind: 'local' });
  }

  /**
   * Like `close`, but what was already written leaves first: used when the node stops, so
   * that its last messages (a graceful leave) reach the peer. The socket is half-closed and
   * destroyed when the peer closes its side, or after `graceMs` at the latest.
   */
  closeGracefully(graceMs: number): void {
    if (this.finished) return;
    if (this.corked) this.flushCorked();
    this.finished = true;
    this.disarm();
    const timer = this.ctx.clock.setTimeout(() => this.socket.destroy(), graceMs);
    this.socket.once('close', () => this.ctx.clock.clearTimeout(timer));
    this.socket.end();
    try {
      this.onShutdown({ kind: 'local' });
    } catch (err) {
      this.ctx.logger.error({ err }, 'transport: error while closing a connection');
    }
  }

  protected abstract onHandshakeFrame(frame: Buffer): void;
  /** Called once, when the connection ends for whatever reason. */
  protected abstract onShutdown(cause: CloseCause): void;
  /** How a socket error maps to a cause at this stage of the connection. */
  protected abstract causeForError(err: NodeJS.ErrnoException): CloseCause;
  /** How the socket closing by itself maps to a cause at this stage. */
  protected abstract causeForClose(): CloseCause;

  protected configureSocket(): void {
    this.socket.setNoDelay(true);
    this.socket.setKeepAlive(true, KEEPALIVE_INITIAL_DELAY_MS);
  }

  /** Switches to sealed frames. Called by the subclass once both sides are proven. */
  protected secure(sendKey: Buffer, receiveKey: Buffer, identity: PeerIdentity): void {
    this.sealer = new FrameSealer(sendKey, this.ctx.clusterId);
    this.opener = new FrameOpener(receiveKey, this.ctx.clusterId);
    this.identity = identity;
    this.decoder.maxFrameBytes = this.ctx.maxFrameBytes;
    this.disarm();
  }

  protected sendHandshake(msg: HandshakeMessage): void {
    this.writeFrame([encodeFrame(encodeHandshakeMessage(msg))]);
  }

  /**
   * Seals and writes one payload, or drops it (counting `sendsDropped`) when the socket
   * already holds more unsent bytes than the bound: a slow or stuck peer must not make this
   * node buffer without limit.
   */
  protected sendSecure(payload: Uint8Array): boolean {
    if (this.finished || !this.sealer) {
      this.ctx.stats.sendsDropped++;
      return false;
    }
    if (this.socket.writableLength + sealedFrameBytes(payload.length) > this.ctx.maxQueuedBytes(this.channel)) {
      this.ctx.stats.sendsDropped++;
      return false;
    }
    let frame: Buffer[];
    try {
      frame = this.sealer.sealParts(payload);
    } catch (err) {
      this.ctx.stats.sendsDropped++;
      this.ctx.logger.error({ peer: this.identity?.address, err }, 'cannot seal a frame; closing the connection');
      this.shutdown({ kind: 'down', reason: 'error', detail: 'frame sequence exhausted' });
      return false;
    }
    this.writeFrame(frame);
    this.ctx.stats.framesSent++;
    return true;
  }

  /**
   * Writes a complete frame as the parts that make it up, one after another (one for a small
   * frame; a large sealed one comes in slices: secure-channel.ts `sealParts`). Writes made in
   * the same tick are corked and leave in one `writev` when the tick ends, which batches small
   * messages without delaying any.
   */
  protected writeFrame(frame: readonly Buffer[]): void {
    if (this.finished || this.socket.destroyed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(uncork, this);
    }
    let bytes = 0;
    for (const part of frame) {
      this.socket.write(part);
      bytes += part.length;
    }
    this.ctx.stats.bytesSent += bytes;
    if (this.channel === 'bulk') this.ctx.stats.bulkBytesSent += bytes;
  }

  /** Called from `uncork` on the next tick. */
  flushCorked(): void {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  }

  /** Runs `fn` after `ms` unless disarmed; one timer at a time (connect, then handshake). */
  protected arm(ms: number, fn: () => void): void {
    this.disarm();
    this.timer = this.ctx.clock.setTimeout(() => {
      this.timer = undefined;
      fn();
    }, ms);
  }

  protected disarm(): void {
    if (this.timer !== undefined) this.ctx.clock.clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Ends the connection once: the first cause wins. */
  protected shutdown(cause: CloseCause): void {
    if (this.finished) return;
    this.finished = true;
    this.disarm();
    this.socket.destroy();
    try {
      this.onShutdown(cause);
    } catch (err) {
      this.ctx.logger.error({ err }, 'transport: error while closing a connection');
    }
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    this.ctx.stats.bytesReceived += chunk.length;
    if (this.channel === 'bulk') this.ctx.stats.bulkBytesReceived += chunk.length;
    try {
      this.decoder.push(chunk);
      while (!this.finished) {
        // Secure frames as the chunks they arrived in, decrypted from there (frame-codec.ts `nextParts`).
        if (this.opener) {
          const frame = this.decoder.nextParts();
          if (frame === undefined) break;
          this.onSecureFrame(frame);
        } else {
          const frame = this.decoder.next();
          if (frame === undefined) break;
          this.onHandshakeFrame(frame);
        }
      }
      const oversized = this.decoder.oversizedLength;
      if (oversized !== undefined && !this.finished) {
        this.ctx.stats.framesOversized++;
        const remote = this.remoteEndpoint;
        const who = this.identity ? `${this.identity.address} (node ${this.identity.nodeId})` : remote;
        this.ctx.warnOnce(
          `oversized ${remote.slice(0, remote.lastIndexOf(':'))} ${this.identity?.address ?? ''}`,
          { remote, peer: this.identity?.address, length: oversized, limit: this.decoder.maxFrameBytes },
          `closing connection with ${who}: a frame of ${oversized} bytes exceeds the ${this.decoder.maxFrameBytes}-byte limit`,
        );
        this.shutdown({ kind: 'down', reason: 'error', detail: `received a frame of ${oversized} bytes, over the limit` });
      }
    } catch (err) {
      // Only a bug gets here; the connection is sacrificed, the process keeps running.
      this.ctx.logger.error({ err, remote: this.remoteEndpoint }, 'transport: unexpected error handling received data; closing the connection');
      this.shutdown({ kind: 'down', reason: 'error', detail: 'internal error' });
    }
  }

  private onSecureFrame(frame: readonly Buffer[]): void {
    const result = this.opener!.open(frame);
    if (typeof result === 'string') {
      if (result === 'rejected') this.ctx.stats.framesRejected++;
      else this.ctx.stats.framesOutOfSequence++;
      this.warnDropOnce(result);
      // TCP never reorders or loses bytes: after a gap the stream cannot deliver in order again,
      // so close it; the dialer reconnects (with fresh keys) on its next send.
      if (result === 'gap') this.shutdown({ kind: 'down', reason: 'closed', detail: 'frame sequence gap' });
      return;
    }
    this.ctx.stats.framesReceived++;
    this.ctx.handlers.onMessage(this.identity!, this.channel, result);
  }

  /** One warning per connection: a tampering or replaying path must not flood the log. */
  private warnDropOnce(failure: OpenFailure): void {
    if (this.warnedDrop) return;
    this.warnedDrop = true;
    const peer = this.identity!;
    this.ctx.logger.warn(
      { peer: peer.address, nodeId: peer.nodeId, channel: this.channel, remote: this.remoteEndpoint, drop: failure },
      `dropped a frame from ${peer.address} (node ${peer.nodeId}) on the ${this.channel} channel: ${DROP_DESCRIPTIONS[failure]}; further drops on this connection are counted, not logged`,
    );
  }
}

function uncork(connection: Connection): void {
  connection.flushCorked();
}
