/**
 * The membership wire format. It is a contract between versions:
 *
 * - `MessageType` values are append-only; a number is never reused or renumbered.
 * - Protocol versions: MEMBERSHIP_PROTOCOL_MIN..MAX is what this build speaks.
 *     1: initial (ping, ack, ping-req, nack, alive, suspect, dead, push-pull, join, join-reply,
 *        forget, stop-cluster, user, gossip).
 * - A message is one JSON object with its type in `t`. Unknown fields are ignored (so newer
 *   nodes may add fields); an unknown type, a malformed body or a field of the wrong type is
 *   dropped and counted, never thrown out of the handler.
 * - A member's `meta` is opaque here (member-meta.ts): only its shape (a JSON object) and its
 *   size (MAX_META_BYTES) are checked; the fields in it are checked by the delegate
 *   (delegate.ts `acceptsMeta`). Oversized metadata makes a message malformed, except in a
 *   join request, which is answered with a coded refusal (CLUSTER_META_TOO_LARGE) instead.
 */
import { isMetaShaped, MAX_META_BYTES, metaBytes, type MemberMeta } from './member-meta.js';

export const MEMBERSHIP_PROTOCOL_MIN = 1;
export const MEMBERSHIP_PROTOCOL_MAX = 1;

export enum MessageType {
  Ping = 1,
  Ack = 2,
  PingReq = 3,
  Nack = 4,
  Alive = 5,
  Suspect = 6,
  Dead = 7,
  PushPull = 8,
  Join = 9,
  JoinReply = 10,
  Forget = 11,
  StopCluster = 12,
  User = 13,
  Gossip = 14,
}

/** One member as exchanged in push-pull and join replies. */
export interface MemberState {
  id: string;
  address: string;
  incarnation: number;
  /** alive | suspect | dead | left */
  state: string;
  meta: MemberMeta;
}

/** Updates that ride along on probes and gossip (alive, suspect, dead, forget, stop-cluster, user). */
export type Broadcast = AliveMsg | SuspectMsg | DeadMsg | ForgetMsg | StopClusterMsg | UserMsg;

/** `inc`: the sender's own current incarnation (on acks relayed by a helper: the target's). */
export interface PingMsg { t: MessageType.Ping; seq: number; from: string; inc: number; target: string; sentAt: number; g?: Broadcast[] }
export interface AckMsg { t: MessageType.Ack; seq: number; from: string; inc: number; at: number; g?: Broadcast[] }
export interface PingReqMsg { t: MessageType.PingReq; seq: number; from: string; target: string; targetAddress: string }
export interface NackMsg { t: MessageType.Nack; seq: number; from: string; refused: boolean }
export interface AliveMsg { t: MessageType.Alive; id: string; address: string; incarnation: number; meta: MemberMeta }
export interface SuspectMsg { t: MessageType.Suspect; id: string; incarnation: number; from: string }
export interface DeadMsg { t: MessageType.Dead; id: string; incarnation: number; from: string }
export interface PushPullMsg { t: MessageType.PushPull; from: string; reply: boolean; members: MemberState[] }
export interface JoinMsg { t: MessageType.Join; id: string; address: string; incarnation: number; meta: MemberMeta; protocol: number }
export interface JoinReplyMsg { t: MessageType.JoinReply; accepted: boolean; code?: string; message?: string; members?: MemberState[] }
export interface ForgetMsg { t: MessageType.Forget; id: string; by: string }
export interface StopClusterMsg { t: MessageType.StopCluster; by: string; at: number }
export interface UserMsg { t: MessageType.User; topic: string; body: unknown; from: string }
export interface GossipMsg { t: MessageType.Gossip; from: string; g: Broadcast[] }

export type Message = PingMsg | AckMsg | PingReqMsg | NackMsg | AliveMsg | SuspectMsg | DeadMsg | PushPullMsg | JoinMsg | JoinReplyMsg | ForgetMsg | StopClusterMsg | UserMsg | GossipMsg;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

export function encodeMessage(m: Message): Uint8Array {
  return encoder.encode(JSON.stringify(m));
}

// --- validation: every field a handler reads is checked here, so handlers can trust types ---

type Check = (v: unknown) => boolean;
const str: Check = (v) => typeof v === 'string' && v.length <= 512;
const int: Check = (v) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const num: Check = (v) => typeof v === 'number' && Number.isFinite(v);
const bool: Check = (v) => typeof v === 'boolean';
const optional = (c: Check): Check => (v) => v === undefined || c(v);
const obj = (shape: Record<string, Check>): Check => (v) => {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  for (const [k, c] of Object.entries(shape)) if (!c(o[k])) return false;
  return true;
};
const arrayOf = (c: Check, max = 100_000): Check => (v) => Array.isArray(v) && v.length <= max && v.every(c);

/** Metadata within bounds; what is in it is the delegate's to check. */
const meta: Check = (v) => isMetaShaped(v) && metaBytes(v) <= MAX_META_BYTES;
/** A join request's metadata is checked for size by the join handler, which answers a refusal. */
const joinMeta: Check = isMetaShaped;
const memberState = obj({ id: str, address: str, incarnation: int, state: str, meta });

const BROADCAST_SHAPES: Partial<Record<MessageType, Check>> = {
  [MessageType.Alive]: obj({ id: str, address: str, incarnation: int, meta }),
  [MessageType.Suspect]: obj({ id: str, incarnation: int, from: str }),
  [MessageType.Dead]: obj({ id: str, incarnation: int, from: str }),
  [MessageType.Forget]: obj({ id: str, by: str }),
  [MessageType.StopCluster]: obj({ by: str, at: num }),
  [MessageType.User]: obj({ topic: str, from: str }),
};
const broadcast: Check = (v) => {
  const t = (v as { t?: unknown } | null)?.t;
  const shape = typeof t === 'number' ? BROADCAST_SHAPES[t as MessageType] : undefined;
  return shape !== undefined && shape(v);
};
const gossip = optional(arrayOf(broadcast, 1000));

const SHAPES: Record<MessageType, Check> = {
  ...(BROADCAST_SHAPES as Record<MessageType, Check>),
  [MessageType.Ping]: obj({ seq: int, from: str, inc: int, target: str, sentAt: num, g: gossip }),
  [MessageType.Ack]: obj({ seq: int, from: str, inc: int, at: num, g: gossip }),
  [MessageType.PingReq]: obj({ seq: int, from: str, target: str, targetAddress: str }),
  [MessageType.Nack]: obj({ seq: int, from: str, refused: bool }),
  [MessageType.PushPull]: obj({ from: str, reply: bool, members: arrayOf(memberState) }),
  [MessageType.Join]: obj({ id: str, address: str, incarnation: int, meta: joinMeta, protocol: int }),
  [MessageType.JoinReply]: obj({ accepted: bool, code: optional(str), message: optional(str), members: optional(arrayOf(memberState)) }),
  [MessageType.Gossip]: obj({ from: str, g: arrayOf(broadcast, 1000) }),
};

/** Decodes and validates one message; undefined when it is malformed in any way. */
export function decodeMessage(payload: Uint8Array): Message | undefined {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(payload));
  } catch {
    return undefined;
  }
  const t = (value as { t?: unknown } | null)?.t;
  if (typeof t !== 'number') return undefined;
  const shape = SHAPES[t as MessageType];
  return shape && shape(value) ? (value as Message) : undefined;
}

/** Every member metadata a message carries (alive messages, gossiped or not, and member lists). */
export function metasIn(msg: Message): MemberMeta[] {
  switch (msg.t) {
    case MessageType.Alive:
    case MessageType.Join:
      return [msg.meta];
    case MessageType.PushPull:
      return msg.members.map((m) => m.meta);
    case MessageType.JoinReply:
      return (msg.members ?? []).map((m) => m.meta);
    case MessageType.Ping:
    case MessageType.Ack:
    case MessageType.Gossip:
      return (msg.g ?? []).flatMap((b) => (b.t === MessageType.Alive ? [b.meta] : []));
    default:
      return [];
  }
}
