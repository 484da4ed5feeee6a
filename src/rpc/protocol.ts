/**
 * Protocol tables: one per subsystem, naming each RPC method it serves with its request and
 * answer types, the schema its request body must fit, and the wire-protocol version in which
 * it appeared. `ProtocolRpc` wraps the node's `Rpc` with a table, so handlers receive the
 * typed body and callers get the typed answer, with no cast at either end and no method name
 * that is not in the table (a compile error; at run time, RPC_UNKNOWN_METHOD).
 *
 * Invariants:
 * - The wire format is rpc.ts's: same method names, same bodies, in JSON or, for methods a
 *   table marks `compact`, MessagePack to peers that read it. A table adds checks on the
 *   receiving side only.
 * - Every request is checked against its method's schema before its handler runs; a body
 *   that does not fit is refused with RPC_BAD_REQUEST (the caller sees that code) and the
 *   handler never sees it. A one-way message that does not fit is dropped and logged.
 * - Tables are append-only: a method is never removed or renamed, and its request only gains
 *   optional fields, so nodes of adjacent versions keep understanding each other. `since` is
 *   the wire-protocol version (transport/handshake.ts PROTOCOL_VERSION_MIN..MAX) in which the
 *   method appeared.
 * - Answers are typed, not checked: they come from the node this one chose to ask, over the
 *   authenticated transport; callers that act on an answer's shape (fingerprint lists, record
 *   lines, signed configurations) check what they use.
 */
import { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import type { Channel, PeerIdentity } from '../transport/transport.js';
import type { BodySchema } from './body-schema.js';
import type { CallOptions, FanOutOptions, FanOutResult, Quorum, Rpc } from './rpc.js';

/** The types of a table: method → request body and answer. */
export type MethodTypes = Record<string, { request: unknown; answer: unknown }>;

export interface MethodEntry<Request> {
  /** The wire-protocol version in which the method appeared. */
  since: number;
  /** What a request body must fit before the handler sees it. */
  request: BodySchema<Request>;
  /**
   * Requests and answers go as MessagePack to peers that read it (rpc.ts `compact`): for hot
   * methods whose bodies and answers are plain data.
   */
  compact?: true;
}

export type MethodTable<P extends MethodTypes> = { readonly [M in keyof P]: MethodEntry<P[M]['request']> };

export type RequestOf<P extends MethodTypes, M extends keyof P> = P[M]['request'];
export type AnswerOf<P extends MethodTypes, M extends keyof P> = P[M]['answer'];
export type TypedHandler<P extends MethodTypes, M extends keyof P> = (body: RequestOf<P, M>, from: PeerIdentity) => AnswerOf<P, M> | Promise<AnswerOf<P, M>>;

export class Protocol<P extends MethodTypes> {
  constructor(
    /** The subsystem (in messages: `grid`, `config`). */
    readonly name: string,
    private readonly methods: MethodTable<P>,
  ) {}

  /** The method names of the table. */
  get methodNames(): ReadonlyArray<keyof P & string> {
    return Object.keys(this.methods);
  }

  /** The entry of `method`; RPC_UNKNOWN_METHOD when the table has none (a programming error). */
  entry<M extends keyof P & string>(method: M): MethodEntry<RequestOf<P, M>> {
    const entry = Object.hasOwn(this.methods, method) ? (this.methods as Record<string, MethodEntry<unknown> | undefined>)[method] : undefined;
    if (entry === undefined) throw new CohortError('RPC_UNKNOWN_METHOD', `${method} is not a method of the ${this.name} protocol`, { method, protocol: this.name });
    return entry as MethodEntry<RequestOf<P, M>>;
  }

  /** `body` as `method`'s request; RPC_BAD_REQUEST, naming the first problem, when it does not fit. */
  request<M extends keyof P & string>(method: M, body: unknown): RequestOf<P, M> {
    const problem = this.entry(method).request.problem(body, '');
    if (problem !== undefined) throw new CohortError('RPC_BAD_REQUEST', `${method}: the request body does not fit (${problem})`, { method, problem });
    return body as RequestOf<P, M>;
  }
}

/** A protocol table for a subsystem; `P` declares each method's request and answer types. */
export function defineProtocol<P extends MethodTypes>(name: string, methods: MethodTable<P>): Protocol<P> {
  return new Protocol<P>(name, methods);
}

/** The node's Rpc seen through one protocol table (see the header). */
export class ProtocolRpc<P extends MethodTypes> {
  constructor(
    readonly rpc: Rpc,
    readonly protocol: Protocol<P>,
    /** Where dropped one-way messages are logged. */
    private readonly logger?: Logger,
  ) {
    for (const method of protocol.methodNames) if (protocol.entry(method).compact) rpc.compact(method);
  }

  /** Serves `method`: the handler gets the request body once it fits the method's schema. */
  handle<M extends keyof P & string>(method: M, handler: TypedHandler<P, M>): void {
    this.protocol.entry(method);
    this.rpc.handle(method, (body, from) => {
      let request: RequestOf<P, M>;
      try {
        request = this.protocol.request(method, body);
      } catch (err) {
        // The caller hears the code (a one-way sender hears nothing); the log names the sender.
        this.logger?.warn({ err, method, from: from.address }, `refused a ${method} request that does not fit the ${this.protocol.name} protocol`);
        throw err;
      }
      return handler(request, from);
    });
  }

  call<M extends keyof P & string>(to: string, method: M, body: RequestOf<P, M>, options?: CallOptions): Promise<AnswerOf<P, M>> {
    try {
      this.protocol.entry(method);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.rpc.call<AnswerOf<P, M>>(to, method, body, options);
  }

  fanOut<M extends keyof P & string>(targets: readonly string[], method: M, body: RequestOf<P, M>, quorum: Quorum, options?: FanOutOptions): Promise<FanOutResult<AnswerOf<P, M>>> {
    try {
      this.protocol.entry(method);
    } catch (err) {
      return Promise.reject(err as Error);
    }
    return this.rpc.fanOut<AnswerOf<P, M>>(targets, method, body, quorum, options);
  }

  notify<M extends keyof P & string>(to: string, method: M, body: RequestOf<P, M>, channel?: Channel): void {
    this.protocol.entry(method);
    this.rpc.notify(to, method, body, channel);
  }
}
