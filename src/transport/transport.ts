/**
 * What the cluster layers need from the network: authenticated messages to and from peers
 * named by their cluster address, and hints when a peer's connection goes away.
 *
 * Two implementations: `TcpTransport` (real sockets, encrypted and authenticated with the
 * cluster secret) and `SimNetwork`'s in-memory transport for the deterministic simulator.
 * The membership, rpc and state code only ever sees this interface.
 *
 * Connection model: a node sends over its own outbound connection to the peer's advertised
 * cluster address and receives over the connections peers opened to it. Each traffic class has
 * its own connection, so a probe never waits behind a bulk transfer.
 */

/** Traffic classes, each on its own connection per peer. */
export type Channel = 'control' | 'bulk';
export const CHANNELS: readonly Channel[] = ['control', 'bulk'];

/** Who sent a message, as proven during the handshake. */
export interface PeerIdentity {
  nodeId: string;
  /** The peer's advertised cluster address (`host:port`), which is how it is addressed. */
  address: string;
}

/**
 * Why a peer's connection was lost or could not be opened.
 * - `refused`: the peer's host answered that nothing listens on the port (the process is gone).
 * - `closed`: an open connection was closed by the other side or reset.
 * - `timeout`: connecting or the handshake took too long (silent host or network).
 * - `error`: anything else (unreachable network, DNS failure).
 */
export type PeerDownReason = 'refused' | 'closed' | 'timeout' | 'error';

/** Why a peer refused our handshake. A joining node treats these as fatal. */
export type RefusalCode = 'cluster-id-mismatch' | 'secret-mismatch' | 'protocol-mismatch';

export interface TransportHandlers {
  /** An authenticated message from a peer. */
  onMessage(from: PeerIdentity, channel: Channel, payload: Uint8Array): void;
  /** A connection to or from `address` was lost or could not be opened: a hint to probe it. */
  onPeerDown(address: string, reason: PeerDownReason): void;
  /** The peer at `address` refused our handshake. */
  onRefused(address: string, code: RefusalCode, message: string): void;
}

export interface TransportStats {
  framesSent: number;
  framesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  /** Of bytesSent and bytesReceived, those on the bulk channel (partition transfers, saved-state downloads). */
  bulkBytesSent: number;
  bulkBytesReceived: number;
  /** Frames dropped because they failed authentication (tampered or foreign). */
  framesRejected: number;
  /** Frames dropped because their sequence number was not the next expected (replayed or reordered). */
  framesOutOfSequence: number;
  /** Frames dropped because they exceeded the frame size limit. */
  framesOversized: number;
  /** Messages dropped because a send queue was full or the connection failed. */
  sendsDropped: number;
  /** Handshakes this node refused (wrong cluster id, secret or protocol). */
  handshakesRefused: number;
}

export interface Transport {
  /** This node's advertised cluster address (`host:port`). */
  readonly localAddress: string;
  /** Binds the listener and starts delivering to `handlers`. */
  start(handlers: TransportHandlers): Promise<void>;
  /**
   * Sends one message. Connects lazily and queues while connecting; never throws. When the
   * message cannot be delivered it is dropped and `onPeerDown` (or `onRefused`) reports why.
   */
  send(to: string, channel: Channel, payload: Uint8Array): void;
  /** Opens (or reuses) the connection to `to` and resolves with the peer's proven identity. */
  connect(to: string, channel?: Channel): Promise<PeerIdentity>;
  /**
   * The wire-protocol version agreed with `to` on this node's open connection for `channel`
   * (transport/handshake.ts), or undefined while there is none: what the peer is known to read
   * now. A message encoded for that version and sent in the same turn goes out on that
   * connection, unless it is lost in that turn: then on the next one (rpc/compact-codec.ts says
   * what an older peer does with it).
   */
  protocolTo(to: string, channel: Channel): number | undefined;
  /** Closes every connection to and from `address` (used when a member is removed). */
  disconnect(address: string): void;
  stats(): TransportStats;
  /** Closes the listener and every connection. */
  close(): Promise<void>;
}

export function emptyStats(): TransportStats {
  return {
    framesSent: 0,
    framesReceived: 0,
    bytesSent: 0,
    bytesReceived: 0,
    bulkBytesSent: 0,
    bulkBytesReceived: 0,
    framesRejected: 0,
    framesOutOfSequence: 0,
    framesOversized: 0,
    sendsDropped: 0,
    handshakesRefused: 0,
  };
}
