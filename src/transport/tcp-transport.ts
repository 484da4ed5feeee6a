/**
 * The real-socket `Transport`: a listener for connections peers open to this node, and one
 * lazily opened outbound connection per (peer, channel) for what this node sends.
 *
 * Security: every connection starts with the mutual-authentication handshake of
 * `handshake.ts` and then carries only AES-256-GCM frames (`secure-channel.ts`) under keys
 * unique to the connection. Payloads and secrets are never logged.
 *
 * Failure reporting: an outbound connection that cannot be opened, or that closes, is reported
 * once through `onPeerDown` (or `onRefused` when the peer refused the handshake); what was
 * queued for it is dropped and counted. The transport never reconnects on its own: the next
 * `send` or `connect` opens a fresh connection, so a dead peer costs one attempt per send the
 * upper layer chooses to make, not a reconnect loop.
 *
 * Secret rotation: a dialer offers a proof per secret it holds (current and previous) in one
 * handshake, and a listener accepts any made with its current or a previous secret. So a node
 * already moved to the new secret reaches one that has not, and vice versa, at the first
 * attempt, with nothing refused or logged.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Clock } from '../core/clock.js';
import { CohortError, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Secret } from '../config/secret.js';
import { formatAddress, parseAddress, type Address } from '../config/values.js';
import type { CloseCause, ConnectionContext } from './connection.js';
import { DialerConnection } from './dialer-connection.js';
import { MAX_FRAME_BYTES } from './frame-codec.js';
import { deriveAuthKey, deriveSecretKey, type HandshakeIdentity } from './handshake.js';
import { ListenerConnection } from './listener-connection.js';
import { FRAME_OVERHEAD_BYTES } from './secure-channel.js';
import { WarningLimiter } from '../core/warning-limiter.js';
import {
  emptyStats,
  type Channel,
  type PeerDownReason,
  type PeerIdentity,
  type RefusalCode,
  type Transport,
  type TransportHandlers,
  type TransportStats,
} from './transport.js';

export interface TcpTransportOptions {
  clusterId: string;
  nodeId: string;
  /** Where the listener binds. */
  bind: { host: string; port: number };
  /** The address peers reach this node at (`host:port`); default: the bind address. */
  advertisedAddress?: string;
  /** The cluster secret (`cluster.secret_key`); must not be empty. */
  secret: Secret;
  /** Earlier secrets, still accepted from peers during a rotation. Default none. */
  previousSecrets?: Secret[];
  clock: Clock;
  logger: Logger;
  /** Largest frame body, sealing overhead included, in bytes. Default 16 MiB (`MAX_FRAME_BYTES`). */
  maxFrameBytes?: number;
  /** How long a handshake may take, in ms, on either side. Default 2000. */
  handshakeTimeoutMs?: number;
  /** How long a TCP connect may take, in ms. Default 1000. */
  connectTimeoutMs?: number;
  /**
   * Bytes a connection may hold unsent (queued while connecting, or in the socket's buffer)
   * before further sends are dropped. Default 4 MiB for control, 64 MiB for bulk.
   */
  maxQueuedBytesPerConnection?: number;
}

export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 2000;
/** How long `close` waits for queued bytes to leave before it drops a connection. */
export const CLOSE_GRACE_MS = 500;
export const DEFAULT_CONNECT_TIMEOUT_MS = 1000;
export const DEFAULT_MAX_QUEUED_BYTES: Readonly<Record<Channel, number>> = { control: 4 * 1024 * 1024, bulk: 64 * 1024 * 1024 };

const REFUSAL_ERROR_CODES: Record<RefusalCode, ErrorCode> = {
  'cluster-id-mismatch': 'TRANSPORT_REFUSED_CLUSTER_ID',
  'secret-mismatch': 'TRANSPORT_REFUSED_SECRET',
  'protocol-mismatch': 'TRANSPORT_REFUSED_PROTOCOL',
};

const NO_HANDLERS: TransportHandlers = { onMessage() {}, onPeerDown() {}, onRefused() {} };

export class TcpTransport implements Transport {
  private readonly options: TcpTransportOptions;
  private readonly ctx: ConnectionContext;
  private readonly counters: TransportStats = emptyStats();
  private handlers: TransportHandlers = NO_HANDLERS;
  private advertised: string;
  private server: Server | undefined;
  private closing: Promise<void> | undefined;
  /** Outbound connections by `channel + ' ' + address`. */
  private readonly dialers = new Map<string, DialerConnection>();
  /** Every incoming connection, authenticated or not. */
  private readonly listeners = new Set<ListenerConnection>();
  /** Bounds the warnings remote parties can cause (see `warnOnce`). */
  private readonly warnings = new WarningLimiter();

  constructor(options: TcpTransportOptions) {
    this.options = options;
    const secrets = [options.secret, ...(options.previousSecrets ?? [])];
    secrets.forEach((s, i) => {
      if (s.reveal().length === 0) throw new RangeError(i === 0 ? 'secret must not be empty' : `previousSecrets[${i - 1}] must not be empty`);
    });
    if (options.clusterId.length === 0) throw new RangeError('clusterId must not be empty');
    const maxFrameBytes = positiveInteger('maxFrameBytes', options.maxFrameBytes ?? MAX_FRAME_BYTES);
    if (maxFrameBytes <= FRAME_OVERHEAD_BYTES || maxFrameBytes > 0xffff_ffff) {
      throw new RangeError(`maxFrameBytes must be more than ${FRAME_OVERHEAD_BYTES} and less than 4 GiB, got ${maxFrameBytes}`);
    }
    const queueBound = options.maxQueuedBytesPerConnection;
    if (queueBound !== undefined) positiveInteger('maxQueuedBytesPerConnection', queueBound);
    this.advertised = options.advertisedAddress ?? formatAddress(options.bind);
    this.ctx = {
      clusterId: options.clusterId,
      nodeId: options.nodeId,
      localAddress: () => this.advertised,
      secrets,
      authKeys: secrets.map((s) => deriveAuthKey(s.reveal(), options.clusterId)),
      secretKeys: secrets.map((s) => deriveSecretKey(s.reveal())),
      clock: options.clock,
      logger: options.logger,
      stats: this.counters,
      handlers: this.guardedHandlers(),
      maxFrameBytes,
      handshakeTimeoutMs: positiveInteger('handshakeTimeoutMs', options.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS),
      connectTimeoutMs: positiveInteger('connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
      maxQueuedBytes: (channel) => queueBound ?? DEFAULT_MAX_QUEUED_BYTES[channel],
      warnOnce: (logKey, fields, message) => this.warnOnce(logKey, fields, message),
    };
  }

  get localAddress(): string {
    return this.advertised;
  }

  async start(handlers: TransportHandlers): Promise<void> {
    if (this.server) throw new Error('TcpTransport already started');
    if (this.closing) throw new Error('TcpTransport is closed');
    this.handlers = handlers;
    const server = createServer({ noDelay: true });
    this.server = server;
    server.on('connection', (socket) => this.accept(socket));
    const { host, port } = this.options.bind;
    const bindAddress = formatAddress({ host, port });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.server = undefined;
        reject(
          new CohortError('NODE_BIND_FAILED', `cannot bind the cluster address ${bindAddress}: ${err.code ?? err.message}`, { address: bindAddress, code: err.code }, { cause: err }),
        );
      };
      server.once('error', onError);
      server.listen({ host, port }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    server.on('error', (err) => this.options.logger.error({ err }, `cluster listener on ${bindAddress} failed`));
    // Binding port 0 picks a free port; advertise it unless an address was given.
    const bound = server.address();
    if (this.options.advertisedAddress === undefined && port === 0 && bound && typeof bound === 'object') {
      this.advertised = formatAddress({ host, port: bound.port });
    }
  }

  send(to: string, channel: Channel, payload: Uint8Array): void {
    if (this.closing) {
      this.counters.sendsDropped++;
      return;
    }
    if (payload.length > this.ctx.maxFrameBytes - FRAME_OVERHEAD_BYTES) {
      // Counted as an oversized frame (it would be one), logged once per peer and channel.
      this.counters.framesOversized++;
      this.warnOnce(
        `send-oversized ${channel} ${to}`,
        { peer: to, channel, bytes: payload.length, limit: this.ctx.maxFrameBytes },
        `dropped a ${payload.length}-byte message to ${to}: larger than the ${this.ctx.maxFrameBytes}-byte frame limit`,
      );
      return;
    }
    this.dialer(to, channel)?.send(payload);
  }

  async connect(to: string, channel: Channel = 'control'): Promise<PeerIdentity> {
    if (this.closing) throw unreachable(to, channel, 'closed', 'the transport is closed');
    const dialer = this.dialer(to, channel);
    if (!dialer) throw unreachable(to, channel, 'error', `"${to}" is not a host:port address`);
    try {
      return await dialer.waitOpen();
    } catch (cause) {
      throw errorFor(to, channel, cause as CloseCause);
    }
  }

  protocolTo(to: string, channel: Channel): number | undefined {
    return this.dialers.get(key(channel, to))?.protocol;
  }

  disconnect(address: string): void {
    for (const channel of ['control', 'bulk'] as const) this.dialers.get(key(channel, address))?.close();
    for (const listener of this.listeners) if (listener.identity?.address === address) listener.close();
  }

  stats(): TransportStats {
    return { ...this.counters };
  }

  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const waits: Promise<void>[] = [];
    const server = this.server;
    if (server) waits.push(new Promise((resolve) => server.close(() => resolve())));
    // Gracefully: the last messages queued before close (a leave) still reach the peers.
    for (const connection of [...this.dialers.values(), ...this.listeners]) {
      waits.push(connection.closed);
      connection.closeGracefully(CLOSE_GRACE_MS);
    }
    await Promise.all(waits);
  }

  /** The outbound connection for (to, channel), opened if there is none. */
  private dialer(to: string, channel: Channel): DialerConnection | undefined {
    const existing = this.dialers.get(key(channel, to));
    if (existing) return existing;
    let target: Address;
    try {
      target = parseAddress(to);
    } catch {
      // Reported like any other failure, but asynchronously: send() must never call back
      // into its caller before returning.
      this.counters.sendsDropped++;
      process.nextTick(() => this.ctx.handlers.onPeerDown(to, 'error'));
      return undefined;
    }
    const dialer = new DialerConnection(this.ctx, to, target, channel, (d, cause) => this.dialerEnded(d, cause));
    this.dialers.set(key(channel, to), dialer);
    return dialer;
  }

  private dialerEnded(dialer: DialerConnection, cause: CloseCause): void {
    const k = key(dialer.channel, dialer.to);
    if (this.dialers.get(k) === dialer) this.dialers.delete(k);
    if (cause.kind === 'local' || this.closing) return;
    const log = this.options.logger;
    if (cause.kind === 'refused') {
      log.debug({ peer: dialer.to, channel: dialer.channel, code: cause.code }, `${dialer.to} refused the handshake: ${cause.message}`);
      this.ctx.handlers.onRefused(dialer.to, cause.code, cause.message);
      return;
    }
    log.debug({ peer: dialer.to, channel: dialer.channel, reason: cause.reason }, `connection to ${dialer.to} ended: ${cause.detail}`);
    this.ctx.handlers.onPeerDown(dialer.to, cause.reason);
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    const listener = new ListenerConnection(this.ctx, socket, {
      refused: (connection, code, reason, hello) => this.logRefusal(connection, code, reason, hello),
      ended: (connection, cause) => {
        this.listeners.delete(connection);
        // A closed incoming connection is a hint the peer may have crashed: probe it.
        if (connection.identity && cause.kind !== 'local') this.ctx.handlers.onPeerDown(connection.identity.address, 'closed');
      },
    });
    this.listeners.add(listener);
  }

  /**
   * Counts every refusal; logs at most one line per real source host and reason a minute. The
   * caller's node id and address appear only when it proved the secret (a cluster-id mismatch).
   */
  private logRefusal(connection: ListenerConnection, code: RefusalCode | 'malformed', reason: string, peer: HandshakeIdentity | undefined): void {
    this.counters.handshakesRefused++;
    const remote = connection.remoteEndpoint;
    // Keyed by host (not port: each attempt comes from a new one).
    const logKey = `refused ${code} ${remote.slice(0, remote.lastIndexOf(':'))}`;
    const from = peer ? `${remote} (node ${peer.nodeId} at ${peer.address})` : remote;
    this.warnOnce(
      logKey,
      { remote, peer: peer?.address, nodeId: peer?.nodeId, channel: connection.channel, refusal: code },
      `refused connection from ${from}: ${reason}`,
    );
  }

  /** Logs a warning unless the limiter holds it back; then, once a window, a summary line. */
  private warnOnce(logKey: string, fields: Record<string, unknown>, message: string): void {
    const verdict = this.warnings.check(logKey, this.options.clock.now());
    if (verdict.log) {
      this.options.logger.warn(fields, message);
    } else if (verdict.summary) {
      this.options.logger.warn(
        { suppressed: verdict.summary.suppressed },
        `${verdict.summary.suppressed} more refused or malformed connections were not logged one by one (at most one line per source and reason every ${verdict.summary.windowMs / 1000} s)`,
      );
    }
  }

  /** Handlers as connections see them: silent once closing, and never throwing. */
  private guardedHandlers(): TransportHandlers {
    const guard = (name: string, call: () => void) => {
      if (this.closing) return;
      try {
        call();
      } catch (err) {
        this.options.logger.error({ err }, `transport ${name} handler threw`);
      }
    };
    return {
      onMessage: (from, channel, payload) => guard('onMessage', () => this.handlers.onMessage(from, channel, payload)),
      onPeerDown: (address, reason) => guard('onPeerDown', () => this.handlers.onPeerDown(address, reason)),
      onRefused: (address, code, message) => guard('onRefused', () => this.handlers.onRefused(address, code, message)),
    };
  }
}

function key(channel: Channel, address: string): string {
  return `${channel} ${address}`;
}

function positiveInteger(name: string, value: number): number {
  if (!Number.isInteger(value) || value <= 0) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  return value;
}

function unreachable(to: string, channel: Channel, reason: PeerDownReason, detail: string): CohortError {
  return new CohortError('TRANSPORT_PEER_UNREACHABLE', `cannot reach ${to} (${reason}): ${detail}`, { address: to, channel, reason });
}

/** The error `connect` rejects with for a connection that ended before it was secure. */
function errorFor(to: string, channel: Channel, cause: CloseCause): CohortError {
  switch (cause.kind) {
    case 'refused':
      return new CohortError(REFUSAL_ERROR_CODES[cause.code], `${to} refused the connection: ${cause.message}`, {
        address: to,
        channel,
        refusal: cause.code,
      });
    case 'down':
      return unreachable(to, channel, cause.reason, cause.detail);
    case 'local':
      return unreachable(to, channel, 'closed', 'the connection was closed by this node');
  }
}
