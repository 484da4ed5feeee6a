/**
 * The mutual-authentication handshake between a dialer (C, which opened the connection) and a
 * listener (S): message types, their encoding, and the key derivations and proofs. No sockets
 * here; `dialer-connection.ts` and `listener-connection.ts` drive the exchange.
 *
 *   C → S  HELLO      protocol range, cluster id, C's node id and address, channel, C nonce
 *   S → C  REFUSE     (wrong cluster id or no common protocol), then S closes
 *        | CHALLENGE  chosen protocol, S's node id and address, S nonce
 *   C → S  PROOF      HMAC(authKey(C's secret), "cohort-client" || transcript)
 *   S → C  REFUSE     (no secret of S's produces that MAC), then S closes
 *        | WELCOME    HMAC(authKey(matched secret), "cohort-server" || transcript)
 *
 * Each side proves it knows the secret without sending it, over a transcript that holds both
 * fresh nonces and every field either side sent, so a proof cannot be replayed into another
 * connection, another channel or another cluster. Session keys are derived from the matched
 * secret and both nonces, so every connection has its own keys.
 *
 * Handshake messages are small plaintext frames: `[u8 type][JSON]`. Nothing in them is
 * secret; the MACs reveal nothing about the secret beyond what any HMAC does.
 */
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { constantTimeEqual } from '../core/constant-time.js';
import { CHANNELS, type Channel, type RefusalCode } from './transport.js';

/**
 * Wire-protocol versions this build speaks. The listener picks the highest version in both
 * ranges.
 * - 1: initial (this handshake; AES-256-GCM frames with u64 sequence numbers).
 */
export const PROTOCOL_VERSION_MIN = 1;
export const PROTOCOL_VERSION_MAX = 1;

/**
 * Handshake message types: the first byte of each handshake frame. Append-only: a number is
 * never reused or renumbered.
 */
export const HandshakeType = {
  /** C → S: protocol range, cluster id, C's node id and advertised address, channel, C nonce. */
  HELLO: 1,
  /** S → C: chosen protocol, S's node id and advertised address, S nonce. */
  CHALLENGE: 2,
  /** C → S: C's MAC over the transcript, proving C knows the cluster secret. */
  PROOF: 3,
  /** S → C: S's MAC over the transcript, proving S knows the secret too; the channel is open. */
  WELCOME: 4,
  /** S → C: the handshake is refused (code and a human-readable message); S then closes. */
  REFUSE: 5,
} as const;
export type HandshakeType = (typeof HandshakeType)[keyof typeof HandshakeType];

export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const SESSION_KEY_BYTES = 32;

/** Upper bounds on text fields, so a hostile HELLO cannot fill logs or memory. */
const MAX_ID_CHARS = 256;
const MAX_MESSAGE_CHARS = 1024;

export interface HelloMessage {
  type: 'hello';
  protoMin: number;
  protoMax: number;
  clusterId: string;
  nodeId: string;
  /** C's advertised cluster address (`host:port`). */
  address: string;
  channel: Channel;
  nonce: Buffer;
}

export interface ChallengeMessage {
  type: 'challenge';
  proto: number;
  nodeId: string;
  address: string;
  nonce: Buffer;
}

export interface ProofMessage {
  type: 'proof';
  mac: Buffer;
}

export interface WelcomeMessage {
  type: 'welcome';
  mac: Buffer;
}

export interface RefuseMessage {
  type: 'refuse';
  code: RefusalCode;
  message: string;
}

export type HandshakeMessage = HelloMessage | ChallengeMessage | ProofMessage | WelcomeMessage | RefuseMessage;

const REFUSAL_CODES: readonly RefusalCode[] = ['cluster-id-mismatch', 'secret-mismatch', 'protocol-mismatch'];

/** Encodes a message as a frame body: `[u8 type][JSON]` (binary fields as base64). */
export function encodeHandshakeMessage(msg: HandshakeMessage): Buffer {
  let type: HandshakeType;
  let body: Record<string, unknown>;
  switch (msg.type) {
    case 'hello':
      type = HandshakeType.HELLO;
      body = {
        protoMin: msg.protoMin,
        protoMax: msg.protoMax,
        clusterId: msg.clusterId,
        nodeId: msg.nodeId,
        address: msg.address,
        channel: msg.channel,
        nonce: msg.nonce.toString('base64'),
      };
      break;
    case 'challenge':
      type = HandshakeType.CHALLENGE;
      body = { proto: msg.proto, nodeId: msg.nodeId, address: msg.address, nonce: msg.nonce.toString('base64') };
      break;
    case 'proof':
      type = HandshakeType.PROOF;
      body = { mac: msg.mac.toString('base64') };
      break;
    case 'welcome':
      type = HandshakeType.WELCOME;
      body = { mac: msg.mac.toString('base64') };
      break;
    case 'refuse':
      type = HandshakeType.REFUSE;
      body = { code: msg.code, message: msg.message };
      break;
  }
  const json = Buffer.from(JSON.stringify(body), 'utf8');
  const out = Buffer.allocUnsafe(1 + json.length);
  out[0] = type;
  json.copy(out, 1);
  return out;
}

/**
 * Decodes a handshake frame body, or returns undefined when it is not a well-formed message
 * (unknown type, bad JSON, missing or out-of-range field). Callers treat undefined as a peer
 * that does not speak this protocol.
 */
export function decodeHandshakeMessage(frame: Uint8Array): HandshakeMessage | undefined {
  if (frame.length < 2) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(frame.buffer, frame.byteOffset + 1, frame.length - 1).toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return undefined;
  const b = body as Record<string, unknown>;
  switch (frame[0]) {
    case HandshakeType.HELLO: {
      const protoMin = version(b.protoMin);
      const protoMax = version(b.protoMax);
      const clusterId = text(b.clusterId, MAX_ID_CHARS);
      const nodeId = text(b.nodeId, MAX_ID_CHARS);
      const address = text(b.address, MAX_ID_CHARS);
      const channel = CHANNELS.find((c) => c === b.channel);
      const nonce = bytes(b.nonce, NONCE_BYTES);
      if (protoMin === undefined || protoMax === undefined || protoMin > protoMax) return undefined;
      if (clusterId === undefined || nodeId === undefined || address === undefined || !channel || !nonce) return undefined;
      return { type: 'hello', protoMin, protoMax, clusterId, nodeId, address, channel, nonce };
    }
    case HandshakeType.CHALLENGE: {
      const proto = version(b.proto);
      const nodeId = text(b.nodeId, MAX_ID_CHARS);
      const address = text(b.address, MAX_ID_CHARS);
      const nonce = bytes(b.nonce, NONCE_BYTES);
      if (proto === undefined || nodeId === undefined || address === undefined || !nonce) return undefined;
      return { type: 'challenge', proto, nodeId, address, nonce };
    }
    case HandshakeType.PROOF:
    case HandshakeType.WELCOME: {
      const mac = bytes(b.mac, MAC_BYTES);
      if (!mac) return undefined;
      return { type: frame[0] === HandshakeType.PROOF ? 'proof' : 'welcome', mac };
    }
    case HandshakeType.REFUSE: {
      const message = text(b.message, MAX_MESSAGE_CHARS);
      if (typeof b.code !== 'string' || message === undefined) return undefined;
      // A newer peer may refuse for a reason this build does not know; it is still a refusal
      // the operator must read, so keep the message and report it as a protocol mismatch.
      const code = REFUSAL_CODES.find((c) => c === b.code) ?? 'protocol-mismatch';
      return { type: 'refuse', code, message };
    }
    default:
      return undefined;
  }
}

function version(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 0xffff ? v : undefined;
}

function text(v: unknown, maxChars: number): string | undefined {
  return typeof v === 'string' && v.length <= maxChars ? v : undefined;
}

function bytes(v: unknown, length: number): Buffer | undefined {
  if (typeof v !== 'string' || v.length > 4 * Math.ceil(length / 3)) return undefined;
  const decoded = Buffer.from(v, 'base64');
  return decoded.length === length ? decoded : undefined;
}

/** A fresh random nonce; one per side per connection. */
export function createNonce(): Buffer {
  return randomBytes(NONCE_BYTES);
}

/**
 * The highest protocol version in both ranges, or undefined when they do not overlap.
 */
export function negotiateProtocol(
  peerMin: number,
  peerMax: number,
  ownMin: number = PROTOCOL_VERSION_MIN,
  ownMax: number = PROTOCOL_VERSION_MAX,
): number | undefined {
  const proto = Math.min(peerMax, ownMax);
  return proto >= Math.max(peerMin, ownMin) ? proto : undefined;
}

/** What the listener decides about a HELLO before any secret is involved. */
export type HelloVerdict = { ok: true; proto: number } | { ok: false; code: RefusalCode; message: string };

export function checkHello(hello: HelloMessage, local: { clusterId: string; protoMin?: number; protoMax?: number }): HelloVerdict {
  if (hello.clusterId !== local.clusterId) {
    return {
      ok: false,
      code: 'cluster-id-mismatch',
      message: `this node belongs to cluster "${local.clusterId}", not "${hello.clusterId}"`,
    };
  }
  const ownMin = local.protoMin ?? PROTOCOL_VERSION_MIN;
  const ownMax = local.protoMax ?? PROTOCOL_VERSION_MAX;
  const proto = negotiateProtocol(hello.protoMin, hello.protoMax, ownMin, ownMax);
  if (proto === undefined) {
    return {
      ok: false,
      code: 'protocol-mismatch',
      message: `no common cluster-protocol version: this node speaks ${ownMin}-${ownMax}, the connecting node ${hello.protoMin}-${hello.protoMax}`,
    };
  }
  return { ok: true, proto };
}

/**
 * The key a node proves knowledge of the secret with. Binding the cluster id in means the
 * same secret used by two clusters still gives different keys.
 */
export function deriveAuthKey(secret: string, clusterId: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'cohort/v1/auth', clusterId, 32));
}

/** Everything both sides said in the handshake, which both proofs cover. */
export interface Transcript {
  proto: number;
  clusterId: string;
  dialerNodeId: string;
  dialerAddress: string;
  channel: Channel;
  dialerNonce: Buffer;
  listenerNodeId: string;
  listenerAddress: string;
  listenerNonce: Buffer;
}

/**
 * Canonical transcript bytes: the protocol as u32, then every other field as
 * `[u32 length][bytes]` in a fixed order. Length prefixes make the encoding injective: no two
 * different transcripts encode the same (which plain concatenation would not guarantee, e.g.
 * node "ab" + address "c" vs node "a" + address "bc").
 */
export function encodeTranscript(t: Transcript): Buffer {
  const fields: Buffer[] = [
    Buffer.from(t.clusterId, 'utf8'),
    Buffer.from(t.dialerNodeId, 'utf8'),
    Buffer.from(t.dialerAddress, 'utf8'),
    Buffer.from(t.channel, 'utf8'),
    t.dialerNonce,
    Buffer.from(t.listenerNodeId, 'utf8'),
    Buffer.from(t.listenerAddress, 'utf8'),
    t.listenerNonce,
  ];
  const out = Buffer.allocUnsafe(4 + fields.reduce((n, f) => n + 4 + f.length, 0));
  let offset = out.writeUInt32BE(t.proto, 0);
  for (const f of fields) {
    offset = out.writeUInt32BE(f.length, offset);
    offset += f.copy(out, offset);
  }
  return out;
}

/** Which side a proof comes from; the labels keep a dialer's MAC from passing as a listener's. */
export type ProofRole = 'dialer' | 'listener';

const PROOF_LABELS: Record<ProofRole, Buffer> = {
  dialer: Buffer.from('cohort-client', 'utf8'),
  listener: Buffer.from('cohort-server', 'utf8'),
};

/** HMAC-SHA256(authKey, label || transcript). */
export function computeProof(authKey: Buffer, role: ProofRole, transcript: Buffer): Buffer {
  return createHmac('sha256', authKey).update(PROOF_LABELS[role]).update(transcript).digest();
}

/**
 * Index of the first auth key whose proof equals `mac`, or -1. Every key is tried (no early
 * exit) and compared in constant time, so timing tells nothing about which key matched.
 */
export function matchProof(authKeys: readonly Buffer[], role: ProofRole, transcript: Buffer, mac: Buffer): number {
  let matched = -1;
  for (let i = 0; i < authKeys.length; i++) {
    const expected = computeProof(authKeys[i]!, role, transcript);
    if (constantTimeEqual(expected, mac) && matched === -1) matched = i;
  }
  return matched;
}

export interface SessionKeys {
  /** Encrypts frames from the dialer to the listener. */
  dialerToListener: Buffer;
  /** Encrypts frames from the listener to the dialer. */
  listenerToDialer: Buffer;
}

/**
 * Per-connection keys: HKDF over the matched secret, salted with both nonces. Fresh nonces on
 * both sides make the keys unique to this connection even if one side's randomness repeated,
 * which is what lets every connection start its sequence numbers (and so its GCM nonces) at 0.
 * One key per direction, so the two directions never share a (key, nonce) pair.
 */
export function deriveSessionKeys(secret: string, clusterId: string, dialerNonce: Buffer, listenerNonce: Buffer): SessionKeys {
  const okm = Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.from(secret, 'utf8'),
      Buffer.concat([dialerNonce, listenerNonce]),
      `cohort/v1/session/${clusterId}`,
      2 * SESSION_KEY_BYTES,
    ),
  );
  return { dialerToListener: okm.subarray(0, SESSION_KEY_BYTES), listenerToDialer: okm.subarray(SESSION_KEY_BYTES) };
}
