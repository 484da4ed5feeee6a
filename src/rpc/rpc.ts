/**
 * Request/response between nodes over the transport (protocol `ProtocolId.Rpc`), for the
 * state services: a call names a method and carries a JSON body; the answer comes back on
 * the caller's side with the same correlation id.
 *
 * - No per-call connection set-up: calls ride the transport's long-lived connection to the
 *   peer, pipelined (any number in flight). Messages to the same peer on the control channel
 *   sent during one event-loop turn (all the I/O callbacks of that turn and the promise
 *   callbacks they run) leave together at its end (`clock.soon`) as one batch: one frame,
 *   one encryption, one JSON parse on the other side (up to about 4 Mi characters a batch, so
 *   a batch never exceeds the frame limit). Nothing waits for a batch to fill, so batching
 *   adds no latency to a lone call; under load batches grow by themselves.
 * - Every call ends: with the answer, with RPC_TIMEOUT after `rpc_timeout` (or the call's
 *   own timeout), with RPC_PEER_UNREACHABLE as soon as the transport reports the connection
 *   to that peer lost, or with RPC_CLOSED when this node stops. When this node closes its
 *   connections to a peer itself (membership declared it dead), the bulk calls in flight to it
 *   (transfers, seconds long and re-asked by their callers) end at once with RPC_TIMEOUT: an
 *   answer the peer was already sending is lost with the connection, and waiting for it would
 *   cost the whole bulk timeout. RPC_TIMEOUT, as the peer, perhaps only slow, may still act on
 *   the call. Control calls wait on: the peer answers them over a new connection.
 * - A handler's CohortError travels back with its code, so a caller sees the same code the
 *   remote node would have answered locally; anything else becomes RPC_REMOTE_FAILED and is
 *   logged where it happened, never sent (it may hold internals).
 * - `fanOut` asks several nodes and settles as soon as the quorum is met (`majority` or `all`
 *   of the nodes asked, or a count), or as soon as it can no longer be met.
 *
 * Wire format (JSON, one object per message; unknown fields ignored, malformed messages
 * dropped and counted): request `{k: 0, id, m, b}`, one-way `{k: 1, m, b}`, answer
 * `{k: 2, id, b}`, failure `{k: 3, id, code, msg}`. A body that is a `RawText` (bulk
 * transfers: megabytes of record lines) is not embedded in the JSON, where every quote
 * would be escaped and parsed again: the message is byte 0x01, the JSON header without `b`,
 * a newline, then the text as it is. A batch is byte 0x02 then a JSON array of messages.
 * Messages of the methods marked compact (`compact`: the replication hot path) go to a peer
 * that reads them (wire protocol 3) as MessagePack instead: byte 0x03, then a MessagePack array
 * of the same messages (rpc/compact-codec.ts). A turn's messages to one peer still leave in the
 * order they were sent: consecutive ones of the same form share a batch.
 */
import { decodeUtf8 } from '../core/utf8.js';
import { COMPACT_HEADER_BYTES, COMPACT_MARK, COMPACT_PROTOCOL, compactBatchHeader, decodeCompactBatch, encodeCompact } from './compact-codec.js';
import type { Clock, TimerHandle } from '../core/clock.js';
import { CohortError, ERROR_CODES, type ErrorCode } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { ProtocolId, type TransportMux } from '../transport/mux.js';
import type { Channel, PeerIdentity } from '../transport/transport.js';

/**
 * A body sent as it is, after the message header (see the wire format above). A sender may
 * give it in pieces (a transfer's partitions, megabytes each): they are written one after
 * another into the message, and never joined into one string, which V8 would first have to
 * copy into a string of the whole size. A receiver gets it whole.
 */
export class RawText {
  readonly pieces: readonly string[];
  private joined: string | undefined;

  constructor(text: string | readonly string[]) {
    this.pieces = typeof text === 'string' ? [text] : text;
  }

  /** The whole text (joined the first time it is asked for, when it was given in pieces). */
  get text(): string {
    return (this.joined ??= this.pieces.length === 1 ? this.pieces[0]! : this.pieces.join(''));
  }
}

/**
 * A batch of control messages grows to about this many characters at most, then the next
 * starts: at 3 bytes of UTF-8 a character at most, a batch stays under the transport's 16 MiB
 * frame limit, which would drop it whole (a burst of large writes in one turn would otherwise
 * lose all of them). One message larger than this still goes alone.
 */
const BATCH_MAX_CHARS = 4 << 20;
/** A compact batch grows to about this many bytes at most (the same frame limit). */
const COMPACT_BATCH_MAX_BYTES = 8 << 20;

const RAW_MARK = 0x01;
const BATCH_MARK = 0x02;
const NEWLINE = 0x0a;

export type RpcHandler = (body: unknown, from: PeerIdentity) => unknown;

export interface RpcOptions {
  mux: TransportMux;
  clock: Clock;
  logger: Logger;
  /** Default time a call waits for its answer (ms): `[state] rpc_timeout`. */
  timeoutMs: number;
  /** Told when each call settles (the node's metrics: latency by method); absent, nothing is timed. */
  observer?: RpcObserver;
}

/**
 * Times calls for the metrics. It brings its own time source (a monotonic, sub-millisecond
 * one in a node), because call latencies on one host are far below the clock's millisecond.
 */
export interface RpcObserver {
  now(): number;
  /** `startedAt` is what `now()` said when the call was sent. */
  settled(method: string, startedAt: number, ok: boolean): void;
}

export interface CallOptions {
  timeoutMs?: number;
  /** `bulk` for large bodies (partition transfers), so they never delay control traffic. */
  channel?: Channel;
}

export interface FanOutOptions extends CallOptions {
  /** Called for every node that fails, even after the fan-out has settled (to retry it later). */
  onFailure?(address: string, error: CohortError): void;
}

/** How many successful answers a fan-out needs. */
export type Quorum = 'majority' | 'all' | number;

export interface FanOutResult<T> {
  ok: Array<{ address: string; value: T }>;
  failed: Array<{ address: string; error: CohortError }>;
}

export interface RpcStats {
  callsSent: number;
  callsAnswered: number;
  callsFailed: number;
  requestsServed: number;
  malformedDropped: number;
}

interface Message {
  k?: unknown;
  id?: unknown;
  m?: unknown;
  b?: unknown;
  code?: unknown;
  msg?: unknown;
}

const enum Kind {
  Request = 0,
  OneWay = 1,
  Answer = 2,
  Failure = 3,
}

interface Pending {
  to: string;
  method: string;
  channel: Channel;
  /** The observer's `now()` when the call was sent (0 without an observer). */
  startedAt: number;
  resolve(value: unknown): void;
  reject(err: CohortError): void;
  timer: TimerHandle;
}

/** How many answers out of `n` a quorum needs. */
export function quorumSize(quorum: Quorum, n: number): number {
  if (quorum === 'all') return n;
  if (quorum === 'majority') return Math.floor(n / 2) + 1;
  return Math.min(Math.max(0, quorum), n);
}

export class Rpc {
  private readonly options: RpcOptions;
  private readonly handlers = new Map<string, RpcHandler>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  private closed = false;
  /** Control-channel messages waiting for the end of this tick, by peer address: JSON text or compact bytes. */
  private readonly outbox = new Map<string, Array<string | Uint8Array>>();
  /** Methods whose requests and answers go compact to peers that read it (see `compact`). */
  private readonly compactMethods = new Set<string>();
  private flushScheduled = false;
  readonly stats: RpcStats = { callsSent: 0, callsAnswered: 0, callsFailed: 0, requestsServed: 0, malformedDropped: 0 };

  constructor(options: RpcOptions) {
    this.options = options;
    options.mux.register(ProtocolId.Rpc, {
      onMessage: (from, channel, payload) => this.receive(from, channel, payload),
      onPeerDown: (address, reason) => this.failPendingTo(address, 'RPC_PEER_UNREACHABLE', `the connection to ${address} was lost (${reason})`),
      onRefused: (address, code) => this.failPendingTo(address, 'RPC_PEER_UNREACHABLE', `${address} refused the connection (${code})`),
      // Bulk calls only, as timed out (see the header).
      onDisconnected: (address) => this.failPendingTo(address, 'RPC_TIMEOUT', `this node closed its connections to ${address}; the answer may never come`, 'bulk'),
    });
  }

  /**
   * Sends `method`'s requests and answers as MessagePack to every peer that reads it (the
   * replication hot path; protocol tables mark their methods `compact`). Only for methods whose
   * bodies and answers are plain data (rpc/compact-codec.ts).
   */
  compact(method: string): void {
    this.compactMethods.add(method);
  }

  /** Serves `method`; the handler's return value (or promise) is the answer. */
  handle(method: string, handler: RpcHandler): void {
    this.handlers.set(method, handler);
  }

  /** Asks the node at `to` and resolves with its answer; rejects with a CohortError (see header). */
  call<T = unknown>(to: string, method: string, body: unknown, options: CallOptions = {}): Promise<T> {
    if (this.closed) return Promise.reject(new CohortError('RPC_CLOSED', `not calling ${method} on ${to}: this node is stopping`));
    const id = ++this.nextId;
    const timeoutMs = options.timeoutMs ?? this.options.timeoutMs;
    return new Promise<T>((resolve, reject) => {
      // A timer can fire late, after this process was held up (a long task, a machine busy
      // with other work), and the event loop runs due timers before it reads its sockets: an
      // answer that arrived meanwhile would lose to its own timeout. The timeout therefore
      // ends the call only after this turn's I/O (`clock.soon`), once such an answer is read.
      const timer = this.options.clock.setTimeout(() => {
        this.options.clock.soon(() => {
          const p = this.settle(id);
          if (!p) return;
          this.stats.callsFailed++;
          p.reject(new CohortError('RPC_TIMEOUT', `${method} on ${to} got no answer within ${timeoutMs} ms`, { to, method, timeoutMs }));
        });
      }, timeoutMs);
      const channel = options.channel ?? 'control';
      this.pending.set(id, { to, method, channel, startedAt: this.options.observer?.now() ?? 0, resolve: resolve as (v: unknown) => void, reject, timer });
      this.stats.callsSent++;
      this.send(to, channel, { k: Kind.Request, id, m: method, b: body }, this.compactMethods.has(method));
    });
  }

  /** Sends without waiting for (or getting) an answer: for notifications that may be lost. */
  notify(to: string, method: string, body: unknown, channel: Channel = 'control'): void {
    if (!this.closed) this.send(to, channel, { k: Kind.OneWay, m: method, b: body }, this.compactMethods.has(method));
  }

  /**
   * Calls every node in `targets` and resolves once `quorum` of them have answered, with the
   * answers so far (and the failures so far); rejects with RPC_QUORUM_FAILED as soon as too
   * many have failed for the quorum to be met. Late answers are ignored.
   */
  fanOut<T = unknown>(targets: readonly string[], method: string, body: unknown, quorum: Quorum, options: FanOutOptions = {}): Promise<FanOutResult<T>> {
    const need = quorumSize(quorum, targets.length);
    const result: FanOutResult<T> = { ok: [], failed: [] };
    if (need === 0) return Promise.resolve(result);
    return new Promise((resolve, reject) => {
      let settled = false;
      for (const address of targets) {
        this.call<T>(address, method, body, options).then(
          (value) => {
            if (settled) return;
            result.ok.push({ address, value });
            if (result.ok.length >= need) {
              settled = true;
              resolve(result);
            }
          },
          (error: CohortError) => {
            options.onFailure?.(address, error);
            if (settled) return;
            result.failed.push({ address, error });
            if (targets.length - result.failed.length < need) {
              settled = true;
              reject(
                new CohortError(
                  'RPC_QUORUM_FAILED',
                  `${method}: ${result.ok.length} of ${targets.length} nodes answered, ${need} needed (${result.failed.map((f) => `${f.address}: ${f.error.code}`).join(', ')})`,
                  { method, need, answered: result.ok.length, failed: result.failed.map((f) => ({ address: f.address, code: f.error.code })) },
                ),
              );
            }
          },
        );
      }
    });
  }

  /** Fails every call in flight with RPC_CLOSED and refuses new ones. */
  close(): void {
    this.closed = true;
    for (const id of [...this.pending.keys()]) {
      this.stats.callsFailed++;
      this.settle(id)?.reject(new CohortError('RPC_CLOSED', 'this node is stopping'));
    }
  }

  /** Calls waiting for an answer. */
  get inFlight(): number {
    return this.pending.size;
  }

  private send(to: string, channel: Channel, msg: { k: Kind; b?: unknown; [field: string]: unknown }, compact = false): void {
    if (msg.b instanceof RawText) {
      const { b, ...header } = msg;
      // After anything queued for that peer, so messages leave in the order they were sent.
      if (channel === 'control') this.flushTo(to);
      this.options.mux.sendTexts(ProtocolId.Rpc, to, channel, [`\u0001${JSON.stringify(header)}\n`, ...(b as RawText).pieces]);
      return;
    }
    // Encoded now, whatever the form: the caller may change the body once this returns.
    const encoded = compact && (this.options.mux.protocolTo(to, channel) ?? 0) >= COMPACT_PROTOCOL ? encodeCompact(msg) : JSON.stringify(msg);
    if (channel !== 'control') {
      if (typeof encoded === 'string') this.options.mux.sendText(ProtocolId.Rpc, to, channel, encoded);
      else this.sendCompactBatch(to, channel, [encoded], encoded.length);
      return;
    }
    const queued = this.outbox.get(to);
    if (queued) queued.push(encoded);
    else this.outbox.set(to, [encoded]);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      this.options.clock.soon(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    for (const to of [...this.outbox.keys()]) this.flushTo(to);
  }

  private flushTo(to: string): void {
    const queued = this.outbox.get(to);
    if (!queued) return;
    this.outbox.delete(to);
    // Runs of one form, in order; each run in batches of at most the size limit.
    let start = 0;
    let size = 0;
    let text = typeof queued[0] === 'string';
    const sendBatch = (end: number): void => {
      if (text) {
        const batch = queued.slice(start, end) as string[];
        this.options.mux.sendText(ProtocolId.Rpc, to, 'control', batch.length === 1 ? batch[0]! : `\u0002[${batch.join(',')}]`);
      } else {
        this.sendCompactBatch(to, 'control', queued.slice(start, end) as Uint8Array[], size);
      }
      start = end;
      size = 0;
    };
    for (let i = 0; i < queued.length; i++) {
      const item = queued[i]!;
      const itemIsText = typeof item === 'string';
      if (i > start && (itemIsText !== text || size + item.length > (text ? BATCH_MAX_CHARS : COMPACT_BATCH_MAX_BYTES))) sendBatch(i);
      text = itemIsText;
      size += text ? item.length + 1 : item.length;
    }
    sendBatch(queued.length);
  }

  /** Sends encoded compact messages (`bytes` long in all) as one batch. */
  private sendCompactBatch(to: string, channel: Channel, messages: Uint8Array[], bytes: number): void {
    this.options.mux.sendParts(ProtocolId.Rpc, to, channel, [compactBatchHeader(messages.length), ...messages], COMPACT_HEADER_BYTES + bytes);
  }

  /** Removes and returns the pending call `id`, clearing its timer. */
  private settle(id: number, answered = false): Pending | undefined {
    const p = this.pending.get(id);
    if (!p) return undefined;
    this.pending.delete(id);
    this.options.clock.clearTimeout(p.timer);
    this.options.observer?.settled(p.method, p.startedAt, answered);
    return p;
  }

  /** Ends the calls in flight to `address` (those on `channel` only, when given) with `code`. */
  private failPendingTo(address: string, code: 'RPC_PEER_UNREACHABLE' | 'RPC_TIMEOUT', why: string, channel?: Channel): void {
    for (const [id, p] of [...this.pending]) {
      if (p.to !== address || (channel !== undefined && p.channel !== channel)) continue;
      this.settle(id)?.reject(new CohortError(code, `${p.method} on ${address}: ${why}`, { to: address, method: p.method }));
      this.stats.callsFailed++;
    }
  }

  private receive(from: PeerIdentity, channel: Channel, payload: Uint8Array): void {
    let parsed: unknown;
    let batch: unknown[] | undefined;
    try {
      const bytes = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
      if (bytes[0] === RAW_MARK) {
        const end = bytes.indexOf(NEWLINE);
        if (end < 0) throw new Error('raw message without a header');
        parsed = JSON.parse(decodeUtf8(bytes, 1, end)) as unknown;
        if (typeof parsed === 'object' && parsed !== null) (parsed as Message).b = new RawText(decodeUtf8(bytes, end + 1));
      } else if (bytes[0] === COMPACT_MARK) {
        batch = decodeCompactBatch(bytes);
      } else if (bytes[0] === BATCH_MARK) {
        parsed = JSON.parse(decodeUtf8(bytes, 1)) as unknown;
        if (!Array.isArray(parsed)) throw new Error('a batch is an array');
        batch = parsed;
      } else {
        parsed = JSON.parse(decodeUtf8(bytes)) as unknown;
      }
    } catch {
      this.stats.malformedDropped++;
      return;
    }
    if (batch === undefined) this.dispatch(from, channel, parsed as Message);
    else for (const msg of batch) this.dispatch(from, channel, msg as Message);
  }

  private dispatch(from: PeerIdentity, channel: Channel, msg: Message): void {
    if (typeof msg !== 'object' || msg === null) {
      this.stats.malformedDropped++;
      return;
    }
    switch (msg.k) {
      case Kind.Request:
      case Kind.OneWay:
        if (typeof msg.m !== 'string' || (msg.k === Kind.Request && typeof msg.id !== 'number')) break;
        this.serve(from, channel, msg.k === Kind.Request ? (msg.id as number) : undefined, msg.m, msg.b);
        return;
      case Kind.Answer: {
        if (typeof msg.id !== 'number') break;
        const p = this.pendingFrom(msg.id, from, true);
        if (p) {
          this.stats.callsAnswered++;
          p.resolve(msg.b);
        }
        return;
      }
      case Kind.Failure: {
        if (typeof msg.id !== 'number') break;
        const p = this.pendingFrom(msg.id, from);
        if (p) {
          this.stats.callsFailed++;
          p.reject(remoteError(msg.code, msg.msg, p, from));
        }
        return;
      }
    }
    this.stats.malformedDropped++;
  }

  /** The pending call `id`, settled, if it was sent to `from` (an answer from anyone else is ignored). */
  private pendingFrom(id: number, from: PeerIdentity, answered = false): Pending | undefined {
    const p = this.pending.get(id);
    if (!p || p.to !== from.address) return undefined;
    return this.settle(id, answered);
  }

  private serve(from: PeerIdentity, channel: Channel, id: number | undefined, method: string, body: unknown): void {
    const handler = this.handlers.get(method);
    const compact = this.compactMethods.has(method);
    const fail = (code: ErrorCode, message: string): void => {
      if (id !== undefined) this.send(from.address, channel, { k: Kind.Failure, id, code, msg: message }, compact);
    };
    if (!handler) {
      fail('RPC_NO_HANDLER', `this node does not serve ${method}`);
      return;
    }
    this.stats.requestsServed++;
    let result: unknown;
    try {
      result = handler(body, from);
    } catch (err) {
      this.answerFailure(err, method, from, fail);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (value: unknown) => {
          if (id !== undefined) this.send(from.address, channel, { k: Kind.Answer, id, b: value }, compact);
        },
        (err: unknown) => this.answerFailure(err, method, from, fail),
      );
    } else if (id !== undefined) {
      this.send(from.address, channel, { k: Kind.Answer, id, b: result }, compact);
    }
  }

  private answerFailure(err: unknown, method: string, from: PeerIdentity, fail: (code: ErrorCode, message: string) => void): void {
    if (err instanceof CohortError) {
      fail(err.code, err.message);
      return;
    }
    this.options.logger.error({ err, method, from: from.address }, `rpc handler for ${method} failed`);
    fail('RPC_REMOTE_FAILED', `${method} failed on the node asked; see its log`);
  }
}

function remoteError(code: unknown, message: unknown, p: Pending, from: PeerIdentity): CohortError {
  const text = typeof message === 'string' ? message : 'no message';
  if (typeof code === 'string' && code in ERROR_CODES) {
    return new CohortError(code as ErrorCode, `${from.nodeId} (${from.address}): ${text}`, { to: from.address, method: p.method, remote: true });
  }
  return new CohortError('RPC_REMOTE_FAILED', `${p.method} on ${from.address} failed: ${text}`, { to: from.address, method: p.method });
}
