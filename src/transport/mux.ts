import type { Channel, PeerDownReason, PeerIdentity, RefusalCode, Transport, TransportHandlers } from './transport.js';

/**
 * Several protocols over one transport. Every payload starts with one byte naming its
 * protocol; the mux strips it and hands the rest to that protocol's handler. Connection
 * events (peer down, refusals, and this node disconnecting a peer) go to every protocol.
 *
 * Protocol ids are part of the wire contract: append-only, never reused.
 */
export enum ProtocolId {
  Membership = 1,
  Rpc = 2,
}

export interface ProtocolHandlers {
  onMessage(from: PeerIdentity, channel: Channel, payload: Uint8Array): void;
  onPeerDown?(address: string, reason: PeerDownReason): void;
  onRefused?(address: string, code: RefusalCode, message: string): void;
  /**
   * This node closed its connections to and from `address` (`disconnect`): an answer the peer
   * was already sending over a connection it opened is lost with it (one sent later comes over
   * a new connection). The transport reports no peer down for a close of its own.
   */
  onDisconnected?(address: string): void;
}

export class TransportMux {
  private readonly protocols = new Map<ProtocolId, ProtocolHandlers>();
  /** Payloads whose protocol byte is unknown or missing. */
  unknownProtocolDrops = 0;

  constructor(readonly transport: Transport) {}

  register(id: ProtocolId, handlers: ProtocolHandlers): void {
    this.protocols.set(id, handlers);
  }

  /** The handlers to give `transport.start`. */
  handlers(): TransportHandlers {
    return {
      onMessage: (from, channel, payload) => {
        const handler = payload.length > 0 ? this.protocols.get(payload[0] as ProtocolId) : undefined;
        if (!handler) {
          this.unknownProtocolDrops++;
          return;
        }
        handler.onMessage(from, channel, payload.subarray(1));
      },
      onPeerDown: (address, reason) => {
        for (const h of this.protocols.values()) h.onPeerDown?.(address, reason);
      },
      onRefused: (address, code, message) => {
        for (const h of this.protocols.values()) h.onRefused?.(address, code, message);
      },
    };
  }

  /** Closes every connection to and from `address` (a member declared dead or deleted), and tells every protocol. */
  disconnect(address: string): void {
    this.transport.disconnect(address);
    for (const h of this.protocols.values()) h.onDisconnected?.(address);
  }

  /** Sends `text` as UTF-8, written straight after the protocol byte (no extra copy). */
  sendText(id: ProtocolId, to: string, channel: Channel, text: string): void {
    this.sendTexts(id, to, channel, [text]);
  }

  /**
   * Sends the concatenation of `texts` as UTF-8, each written straight after the one before:
   * pieces of megabytes (a transfer's record lines) are not joined into one string first.
   */
  sendTexts(id: ProtocolId, to: string, channel: Channel, texts: readonly string[]): void {
    let bytes = 1;
    for (const text of texts) bytes += Buffer.byteLength(text, 'utf8');
    const framed = Buffer.allocUnsafe(bytes);
    framed[0] = id;
    let at = 1;
    for (const text of texts) at += framed.write(text, at, 'utf8');
    this.transport.send(to, channel, framed);
  }

  /** Sends the concatenation of `parts` (`bytes` long in all) after the protocol byte, copied once. */
  sendParts(id: ProtocolId, to: string, channel: Channel, parts: readonly Uint8Array[], bytes: number): void {
    const framed = Buffer.allocUnsafe(1 + bytes);
    framed[0] = id;
    let at = 1;
    for (const part of parts) {
      framed.set(part, at);
      at += part.length;
    }
    this.transport.send(to, channel, framed);
  }

  /** The wire-protocol version `to` is known to read on `channel` (Transport.protocolTo). */
  protocolTo(to: string, channel: Channel): number | undefined {
    return this.transport.protocolTo(to, channel);
  }

  send(id: ProtocolId, to: string, channel: Channel, payload: Uint8Array): void {
    this.sendParts(id, to, channel, [payload], payload.length);
  }
}
