/**
 * The mutual-authentication handshake between a dialer (C, which opened the connection) and a
 * listener (S): message types, their encoding, and the key derivations and proofs. No sockets
 * here; `dialer-connection.ts` and `listener-connection.ts` drive the exchange.
 *
 *   C → S  HELLO      protocol range, channel, C nonce
 *   S → C  REFUSE     (no common protocol), then S closes
 *        | CHALLENGE  chosen protocol, S nonce
 *   C → S  PROOF      for each of C's secrets (current first, then the previous ones): HMAC(
 *                     secretKey(secret), "cohort-client" || opening transcript), and C's
 *                     identity (cluster id, node id, address) sealed under a key only a holder
 *                     of the same secret can derive
 *   S → C  REFUSE     (no secret of S's produces that MAC: nothing more is said; or the peer
 *                     proved the secret but belongs to another cluster id), then S closes
 *        | WELCOME    which of C's proofs matched, HMAC(authKey(matched secret, cluster id),
 *                     "cohort-server" || full transcript), and S's identity sealed the same way
 *
 * A node in the middle of a secret rotation offers a proof per secret it holds, so two nodes that
 * share any one secret connect at the first attempt, with nothing refused or logged.
 *
 * Nothing about the cluster or either node crosses the wire in clear, and the listener tells a
 * caller nothing about itself (not its cluster id, node id or address) until the caller has
 * proven the secret: a port scanner learns only that a Cohort node speaks these protocol
 * versions. Each side proves it knows the secret without sending it, over transcripts that hold
 * both fresh nonces and every field either side sent, so a proof cannot be replayed into another
 * connection, another channel or another cluster. Session keys are derived from the matched
 * secret, the cluster id and both nonces, so every connection has its own keys.
 *
 * Handshake messages are small frames: `[u8 type][JSON]`.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { constantTimeEqual } from '../core/constant-time.js';
import { CHANNELS, type Channel, type RefusalCode } from './transport.js';

/**
 * Wire-protocol versions this build speaks. The listener picks the highest version in both
 * ranges.
 * - 1: the first handshake (cluster id and node ids in clear in HELLO and CHALLENGE);
 *   AES-256-GCM frames with u64 sequence numbers.
 * - 2: identities sealed and told only after the secret is proven; frames as in 1. A version-1
 *   node is refused with a protocol mismatch that names both ranges, so a rolling upgrade from
 *   it must restart every node (see docs/operations.md).
 * - 3: as 2, and the node reads RPC messages in MessagePack (rpc/rpc.ts): a node sends them
 *   to a peer only over a connection that agreed on 3, so a version-2 node in a rolling
 *   upgrade keeps getting JSON.
 */
export const PROTOCOL_VERSION_MIN = 2;
export const PROTOCOL_VERSION_MAX = 3;

/**
 * Handshake message types: the first byte of each handshake frame. Append-only: a number is
 * never reused or renumbered.
 */
export const HandshakeType = {
  /** C → S: protocol range, channel, C nonce. */
  HELLO: 1,
  /** S → C: chosen protocol, S nonce. */
  CHALLENGE: 2,
  /** C → S: C's MAC over the opening transcript, proving C knows the secret; C's sealed identity. */
  PROOF: 3,
  /** S → C: S's MAC over the full transcript and its sealed identity; the channel is open. */
  WELCOME: 4,
  /** S → C: the handshake is refused (code and a human-readable message); S then closes. */
  REFUSE: 5,
} as const;
export type HandshakeType = (typeof HandshakeType)[keyof typeof HandshakeType];

export const NONCE_BYTES = 32;
export const MAC_BYTES = 32;
export const SESSION_KEY_BYTES = 32;
/** Proofs one PROOF may offer: the current secret and up to three previous ones. */
export const MAX_PROOFS = 4;
/** AES-256-GCM tag on a sealed identity. */
const SEAL_TAG_BYTES = 16;

/** Upper bounds on text fields, so a hostile peer cannot fill logs or memory. */
const MAX_ID_CHARS = 256;
const MAX_MESSAGE_CHARS = 1024;
/** A sealed identity: three bounded ids as JSON, plus the tag. */
const MAX_SEALED_BYTES = 3 * MAX_ID_CHARS * 4 + 64 + SEAL_TAG_BYTES;

export interface HelloMessage {
  type: 'hello';
  protoMin: number;
  protoMax: number;
  channel: Channel;
  nonce: Buffer;
}

export interface ChallengeMessage {
  type: 'challenge';
  proto: number;
  nonce: Buffer;
}

/** One proof of one secret: the MAC over the opening transcript and the identity sealed with it. */
export interface SecretProof {
  mac: Buffer;
  /** C's identity, from `sealIdentity`. */
  sealed: Buffer;
}

export interface ProofMessage {
  type: 'proof';
  /** One per secret the dialer holds, current first (1 to MAX_PROOFS). */
  proofs: SecretProof[];
}

export interface WelcomeMessage {
  type: 'welcome';
  /** Index of the dialer's proof that matched: the secret both sides now use. */
  choice: number;
  mac: Buffer;
  /** S's identity, from `sealIdentity`. */
  sealed: Buffer;
}

/** Who a node says it is, told only to a peer that proved the secret. */
export interface HandshakeIdentity {
  clusterId: string;
  nodeId: string;
  /** The node's advertised cluster address (`host:port`). */
  address: string;
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
      body = { protoMin: msg.protoMin, protoMax: msg.protoMax, channel: msg.channel, nonce: msg.nonce.toString('base64') };
      break;
    case 'challenge':
      type = HandshakeType.CHALLENGE;
      body = { proto: msg.proto, nonce: msg.nonce.toString('base64') };
      break;
    case 'proof':
      type = HandshakeType.PROOF;
      body = { proofs: msg.proofs.map((p) => ({ mac: p.mac.toString('base64'), sealed: p.sealed.toString('base64') })) };
      break;
    case 'welcome':
      type = HandshakeType.WELCOME;
      body = { choice: msg.choice, mac: msg.mac.toString('base64'), sealed: msg.sealed.toString('base64') };
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
      // Fields a version-1 HELLO also carries (its cluster and node ids) are ignored: its
      // range then fails to overlap, and the node is told so.
      const protoMin = version(b.protoMin);
      const protoMax = version(b.protoMax);
      const channel = CHANNELS.find((c) => c === b.channel);
      const nonce = bytes(b.nonce, NONCE_BYTES);
      if (protoMin === undefined || protoMax === undefined || protoMin > protoMax) return undefined;
      if (!channel || !nonce) return undefined;
      return { type: 'hello', protoMin, protoMax, channel, nonce };
    }
    case HandshakeType.CHALLENGE: {
      const proto = version(b.proto);
      const nonce = bytes(b.nonce, NONCE_BYTES);
      if (proto === undefined || !nonce) return undefined;
      return { type: 'challenge', proto, nonce };
    }
    case HandshakeType.PROOF: {
      if (!Array.isArray(b.proofs) || b.proofs.length === 0 || b.proofs.length > MAX_PROOFS) return undefined;
      const proofs: SecretProof[] = [];
      for (const p of b.proofs as unknown[]) {
        const proof = secretProof(p);
        if (!proof) return undefined;
        proofs.push(proof);
      }
      return { type: 'proof', proofs };
    }
    case HandshakeType.WELCOME: {
      const proof = secretProof(b);
      const choice = b.choice;
      if (!proof || typeof choice !== 'number' || !Number.isInteger(choice) || choice < 0 || choice >= MAX_PROOFS) return undefined;
      return { type: 'welcome', choice, ...proof };
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

function secretProof(v: unknown): SecretProof | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const p = v as Record<string, unknown>;
  const mac = bytes(p.mac, MAC_BYTES);
  const sealed = boundedBytes(p.sealed, SEAL_TAG_BYTES + 2, MAX_SEALED_BYTES);
  return mac && sealed ? { mac, sealed } : undefined;
}

function boundedBytes(v: unknown, min: number, max: number): Buffer | undefined {
  if (typeof v !== 'string' || v.length > 4 * Math.ceil(max / 3)) return undefined;
  const decoded = Buffer.from(v, 'base64');
  return decoded.length >= min && decoded.length <= max ? decoded : undefined;
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

/**
 * What the listener decides about a HELLO before any secret is involved: only whether the two
 * speak a common protocol version (which says nothing about the cluster).
 */
export type HelloVerdict = { ok: true; proto: number } | { ok: false; code: RefusalCode; message: string };

export function checkHello(hello: HelloMessage, local: { protoMin?: number; protoMax?: number } = {}): HelloVerdict {
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

/** A cluster-id mismatch, told only to a peer that proved the secret. */
export function clusterIdMismatch(ownClusterId: string, peerClusterId: string): string {
  return `this node belongs to cluster "${ownClusterId}", not "${peerClusterId}"`;
}

/**
 * The key the dialer's first proof is made with: the secret alone, so that a node that proves
 * the secret but has another cluster id can be told so (it is a misconfigured member, not a
 * stranger), while a stranger learns nothing.
 */
export function deriveSecretKey(secret: string): Buffer {
  return Buffer.from(hkdfSync('sha256', Buffer.from(secret, 'utf8'), 'cohort/v2/secret', '', 32));
}

/** What the dialer's proof covers: everything said before it, none of it identifying. */
export interface OpeningTranscript {
  proto: number;
  channel: Channel;
  dialerNonce: Buffer;
  listenerNonce: Buffer;
}

export function encodeOpeningTranscript(t: OpeningTranscript): Buffer {
  return encodeFields(t.proto, [Buffer.from(t.channel, 'utf8'), t.dialerNonce, t.listenerNonce]);
}

/**
 * Seals a node's identity for the peer: AES-256-GCM under a key derived from the secret, both
 * nonces and the sender's role, so the key is used for one message only (hence the fixed IV),
 * and only a holder of the secret can open it. The opening transcript is the associated data.
 */
export function sealIdentity(secret: string, role: ProofRole, opening: OpeningTranscript, identity: HandshakeIdentity): Buffer {
  const cipher = createCipheriv('aes-256-gcm', identityKey(secret, role, opening), Buffer.alloc(12));
  cipher.setAAD(encodeOpeningTranscript(opening));
  const plain = Buffer.from(JSON.stringify([identity.clusterId, identity.nodeId, identity.address]), 'utf8');
  return Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
}

/** Opens what `sealIdentity` made, or undefined when it was not sealed with this secret. */
export function openIdentity(secret: string, role: ProofRole, opening: OpeningTranscript, sealed: Buffer): HandshakeIdentity | undefined {
  if (sealed.length <= SEAL_TAG_BYTES) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', identityKey(secret, role, opening), Buffer.alloc(12));
    decipher.setAAD(encodeOpeningTranscript(opening));
    decipher.setAuthTag(sealed.subarray(sealed.length - SEAL_TAG_BYTES));
    const plain = Buffer.concat([decipher.update(sealed.subarray(0, sealed.length - SEAL_TAG_BYTES)), decipher.final()]);
    const fields: unknown = JSON.parse(plain.toString('utf8'));
    if (!Array.isArray(fields) || fields.length !== 3) return undefined;
    const [clusterId, nodeId, address] = fields.map((f) => text(f, MAX_ID_CHARS));
    if (clusterId === undefined || nodeId === undefined || address === undefined) return undefined;
    return { clusterId, nodeId, address };
  } catch {
    return undefined;
  }
}

function identityKey(secret: string, role: ProofRole, opening: OpeningTranscript): Buffer {
  return Buffer.from(
    hkdfSync('sha256', Buffer.from(secret, 'utf8'), Buffer.concat([opening.dialerNonce, opening.listenerNonce]), `cohort/v2/identity/${role}`, 32),
  );
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
  return encodeFields(t.proto, [
    Buffer.from(t.clusterId, 'utf8'),
    Buffer.from(t.dialerNodeId, 'utf8'),
    Buffer.from(t.dialerAddress, 'utf8'),
    Buffer.from(t.channel, 'utf8'),
    t.dialerNonce,
    Buffer.from(t.listenerNodeId, 'utf8'),
    Buffer.from(t.listenerAddress, 'utf8'),
    t.listenerNonce,
  ]);
}

/** The protocol as u32, then each field as `[u32 length][bytes]`. */
function encodeFields(proto: number, fields: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(4 + fields.reduce((n, f) => n + 4 + f.length, 0));
  let offset = out.writeUInt32BE(proto, 0);
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
