/**
 * The `grid` provider: the services of services.ts built on grid operations.
 *
 * Where an operation runs is the executor's business. `LocalExecutor` applies everything to
 * this engine's own store (a one-engine grid, and the unit under the replicated grid); the
 * replicated executor routes each operation to the owner of its partition and replicates
 * the result. Routing keys: a session's partition is chosen from its subject and written into
 * its id, so get/delete by id and list by subject land on the same partition. Which scope
 * (scopes.ts: cluster-wide, this engine's subcluster, a directed set of engines) each
 * service's partitions belong to is the `ServiceRouting`'s business; a session of a
 * subcluster carries its group id (`<group>.<partition>.<random>`), so any engine routes a
 * request for it to that subcluster.
 */
import { hash } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { randomToken } from '../../core/ids.js';
import { then, type MaybePromise } from '../../core/maybe-async.js';
import {
  DEFAULT_REVOCATION_TTL_MS,
  sessionExpiry,
  type LockoutPolicy,
  type NewSession,
  type RateLimitPolicy,
  PAGE_MAX_BYTES,
  type PageOptions,
  type Session,
  type SessionGetOptions,
  type SessionPage,
  type StateProvider,
} from '../services.js';
import { GridStore } from './grid-store.js';
import { applyOperation, isRevokedIn, type Operation, type OperationResults } from './operations.js';
import { SCOPED_SERVICES, type ScopedService } from '../../config/schema.js';
import { CLUSTER_SCOPE, scopedPartition, scopeGroup } from './scopes.js';

/** Partitions of the key space; fixed for the life of a cluster (a prime spreads keys evenly). */
export const PARTITION_COUNT = 271;

/** The pseudo-partition of records every engine holds (revocations). */
export const EVERYWHERE = -1;

/**
 * Most keys `partitionOf` remembers the partition of. The same keys are asked for again and
 * again (a rate-limit bucket at every take, a lock-out key at every check, a subject at every
 * new session), and their hash costs about a microsecond: a third of a local rate-limit take.
 * Full, the memory is emptied and starts again: keys seen once (replay ids) only cycle through
 * it, and it never holds more than this many keys (under a megabyte for keys of a few dozen
 * characters, a few megabytes at most for the longest the runtime API takes).
 */
export const RECENT_PARTITIONS_MAX = 10_000;
const recentPartitions = new Map<string, number>();

/** The partition of a routing key. */
export function partitionOf(key: string): number {
  const known = recentPartitions.get(key);
  if (known !== undefined) return known;
  // The one-shot hash: a third cheaper than a Hash object.
  const partition = (hash('sha1', key, 'buffer') as unknown as Buffer).readUInt32BE(0) % PARTITION_COUNT;
  if (recentPartitions.size >= RECENT_PARTITIONS_MAX) recentPartitions.clear();
  recentPartitions.set(key, partition);
  return partition;
}

/** How many keys `partitionOf` remembers now (tests). */
export function rememberedPartitions(): number {
  return recentPartitions.size;
}

/** The parts of a session id: `[<group>.]<partition>.<random>`; undefined if malformed. */
export function parseSessionId(id: string): { group: string | null; partition: number } | undefined {
  const last = id.lastIndexOf('.');
  if (last <= 0 || last === id.length - 1) return undefined;
  const before = id.lastIndexOf('.', last - 1);
  const digits = id.slice(before + 1, last);
  if (!/^\d{1,3}$/.test(digits)) return undefined;
  const partition = Number(digits);
  if (partition >= PARTITION_COUNT) return undefined;
  if (before < 0) return { group: null, partition };
  const group = id.slice(0, before);
  return /^[A-Za-z0-9_-]{1,64}$/.test(group) ? { group, partition } : undefined;
}

/** The partition written into a session id of the cluster-wide scope, or undefined if malformed. */
export function partitionOfSessionId(id: string): number | undefined {
  const parsed = parseSessionId(id);
  return parsed?.group === null ? parsed.partition : undefined;
}

/** Where each service's keys live: the partition (scope-wide number, scopes.ts) of a key. */
export interface ServiceRouting {
  /** The partition of `key` (already prefixed by its service) for `service`. */
  partition(service: ScopedService, key: string): number;
  /** The id of a new session of `subject`, and its partition. */
  newSession(subject: string): { id: string; partition: number };
  /** The partition a session id routes to; undefined when malformed or its subcluster is unknown. */
  sessionPartition(id: string): number | undefined;
}

/**
 * Routing over scopes. `keys`: this engine's scope key per service; `sessionScopeOfGroup`:
 * the session scope key of another subcluster (told by its engines), or undefined.
 */
export function scopedRouting(keys: Readonly<Record<ScopedService, string>>, sessionScopeOfGroup: (group: string) => string | undefined): ServiceRouting {
  const own = keys.session;
  const ownGroup = scopeGroup(own);
  return {
    partition: (service, key) => scopedPartition(keys[service], partitionOf(key)),
    newSession: (subject) => {
      const p = partitionOf(`subject:${subject}`);
      const random = randomToken(24);
      return { id: ownGroup === null ? `${p}.${random}` : `${ownGroup}.${p}.${random}`, partition: scopedPartition(own, p) };
    },
    sessionPartition: (id) => {
      const parsed = parseSessionId(id);
      if (!parsed) return undefined;
      if (parsed.group === null) return scopedPartition(ownGroup === null ? own : CLUSTER_SCOPE, parsed.partition);
      const key = parsed.group === ownGroup ? own : sessionScopeOfGroup(parsed.group);
      return key === undefined ? undefined : scopedPartition(key, parsed.partition);
    },
  };
}

/** Every service cluster-wide (no subclusters, adaptive): session ids without a group. */
export const CLUSTER_ROUTING: ServiceRouting = scopedRouting(
  Object.fromEntries(SCOPED_SERVICES.map((service) => [service, CLUSTER_SCOPE])) as Record<ScopedService, string>,
  () => undefined,
);

export interface GridExecutor {
  /** Runs `op` where partition `partition` lives and resolves with its result. */
  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]>;
  /**
   * As `execute`, but a read this engine answers from its own copy comes back at once, without
   * a promise (a session lookup's hot path: no turn of the microtask queue per request).
   */
  executeNow<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): MaybePromise<OperationResults[K]>;
  /** Runs `op` on every engine (revocations); resolves once it is applied where it must be. */
  everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void>;
  /** Whether this engine's own copy of the revocation list holds `id` (every decision asks: no operation is built for it). */
  revokedHere(id: string): boolean;
  /**
   * Which of `ids` the other engines hold as revoked, asked of as many of them as any
   * acknowledged revocation must have reached (revocation checks with read_local_only = false);
   * rejects with STATE_UNAVAILABLE when that many cannot be heard.
   */
  revokedElsewhere(ids: readonly string[]): Promise<ReadonlySet<string>>;
}

/** Everything on this engine's own store. */
export class LocalExecutor implements GridExecutor {
  constructor(
    readonly store: GridStore,
    private readonly clock: Clock,
  ) {}

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    return Promise.resolve(this.executeNow(partition, op));
  }

  executeNow<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): OperationResults[K] {
    return applyOperation(this.store, op, this.clock.now(), partition) as OperationResults[K];
  }

  async everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    applyOperation(this.store, op, this.clock.now(), EVERYWHERE);
  }

  revokedHere(id: string): boolean {
    return isRevokedIn(this.store, id);
  }

  /** There is no other engine. */
  async revokedElsewhere(): Promise<ReadonlySet<string>> {
    return new Set();
  }
}

export interface GridProviderOptions {
  /** `[state] read_local_only`: revocation checks answered from this engine's copy alone (default true). */
  readLocalOnly?: boolean;
}

export class GridProvider implements StateProvider {
  readonly name = 'grid';
  private readonly readLocalOnly: boolean;

  constructor(
    private readonly exec: GridExecutor,
    private readonly clock: Clock,
    private readonly onClose: () => Promise<void> = async () => undefined,
    private readonly routing: ServiceRouting = CLUSTER_ROUTING,
    options: GridProviderOptions = {},
  ) {
    this.readLocalOnly = options.readLocalOnly ?? true;
  }

  readonly sessions = {
    create: async (input: NewSession): Promise<Session> => {
      const now = this.clock.now();
      const { id, partition } = this.routing.newSession(input.subject);
      const base = { createdAt: now, lastAccessAt: now, idleTimeoutMs: input.idleTimeoutMs, maxLifetimeMs: input.maxLifetimeMs };
      const session: Session = { id, subject: input.subject, attributes: input.attributes ?? {}, ...base, expiresAt: sessionExpiry(base) };
      return this.exec.execute(partition, { t: 'session.put', session });
    },
    get: async (id: string, options: SessionGetOptions = {}): Promise<Session | undefined> => this.readSession(id, options),
    getNow: (id: string, options: SessionGetOptions = {}): MaybePromise<Session | undefined> => this.readSession(id, options),
    listBySubject: async (subject: string): Promise<Session[]> => {
      const sessions = await this.exec.execute(this.routing.partition('session', `subject:${subject}`), { t: 'session.list', subject });
      return this.notRevoked(sessions);
    },
    pageBySubject: async (subject: string, options: PageOptions): Promise<SessionPage> => {
      const op = { t: 'session.page', subject, limit: options.limit, maxBytes: options.maxBytes ?? PAGE_MAX_BYTES, ...(options.after ? { after: options.after } : {}) } as const;
      const page = await this.exec.execute(this.routing.partition('session', `subject:${subject}`), op);
      const last = page.sessions[page.sessions.length - 1];
      const sessions = await this.notRevoked(page.sessions);
      // The cursor is the last session looked at, revoked or not, so the walk never stalls.
      return page.more && last ? { sessions, next: { createdAt: last.createdAt, id: last.id } } : { sessions };
    },
    delete: async (id: string, options: { unknownRevocationMs?: number } = {}): Promise<boolean> => {
      const partition = this.routing.sessionPartition(id);
      const maxEnd = partition === undefined ? false : await this.exec.execute(partition, { t: 'session.delete', id });
      // Revoked even when this engine did not know it: another may still hold a stale copy.
      const expiresAt = typeof maxEnd === 'number' ? maxEnd : this.clock.now() + (options.unknownRevocationMs ?? DEFAULT_REVOCATION_TTL_MS);
      await this.exec.everywhere({ t: 'revocation.put', id, expiresAt });
      return maxEnd !== false;
    },
  };

  /**
   * A session read: at once when this engine's copy answers it (revocation checked here, the
   * partition held in sync, no touch to write), else a promise (core/maybe-async.ts).
   */
  private readSession(id: string, options: SessionGetOptions): MaybePromise<Session | undefined> {
    const partition = this.routing.sessionPartition(id);
    if (partition === undefined) return undefined;
    const op = { t: 'session.get', id, touch: options.touch === true, ...(options.touch && options.touchAfterMs !== undefined ? { touchAfterMs: options.touchAfterMs } : {}) } as const;
    return then(this.revoked(id), (revoked) => (revoked ? undefined : then(this.exec.executeNow(partition, op), (s) => s ?? undefined)));
  }

  private revokedHere(id: string): boolean {
    return this.exec.revokedHere(id);
  }

  /**
   * Whether `id` is revoked: this engine's copy answers, and with read_local_only = false a
   * "not revoked" is checked with the other engines (GridExecutor.revokedElsewhere), which
   * costs a round trip but sees a revocation this engine's copy has not received yet.
   */
  private revoked(id: string): boolean | Promise<boolean> {
    if (this.revokedHere(id)) return true;
    if (this.readLocalOnly) return false;
    return this.exec.revokedElsewhere([id]).then((elsewhere) => elsewhere.has(id));
  }

  /** `sessions` without the revoked ones (those not revoked here asked of the others in one round, with read_local_only = false). */
  private async notRevoked(sessions: Session[]): Promise<Session[]> {
    const left = sessions.filter((s) => !this.revokedHere(s.id));
    if (this.readLocalOnly || left.length === 0) return left;
    const elsewhere = await this.exec.revokedElsewhere(left.map((s) => s.id));
    return elsewhere.size === 0 ? left : left.filter((s) => !elsewhere.has(s.id));
  }

  readonly revocations = {
    revoke: (id: string, expiresAt?: number): Promise<void> =>
      this.exec.everywhere({ t: 'revocation.put', id, expiresAt: expiresAt ?? this.clock.now() + DEFAULT_REVOCATION_TTL_MS }),
    revokeFor: (id: string, ttlMs: number): Promise<void> => this.exec.everywhere({ t: 'revocation.put', id, expiresAt: this.clock.now() + ttlMs }),
    isRevoked: (id: string): boolean | Promise<boolean> => this.revoked(id),
  };

  readonly lockout = {
    recordFailure: (key: string, policy: LockoutPolicy) => this.exec.execute(this.routing.partition('lockout', `lockout:${key}`), { t: 'lockout.fail', key, policy }),
    status: (key: string, policy: LockoutPolicy) => this.exec.execute(this.routing.partition('lockout', `lockout:${key}`), { t: 'lockout.get', key, policy }),
    reset: async (key: string): Promise<void> => {
      await this.exec.execute(this.routing.partition('lockout', `lockout:${key}`), { t: 'lockout.reset', key });
    },
  };

  readonly replay = {
    checkAndInsert: (id: string, ttlMs: number) => this.exec.execute(this.routing.partition('replay', `replay:${id}`), { t: 'replay.insert', id, ttlMs }),
  };

  readonly artifacts = {
    put: async (id: string, payload: string, ttlMs: number): Promise<void> => {
      await this.exec.execute(this.routing.partition('artifact', `artifact:${id}`), { t: 'artifact.put', id, payload, ttlMs });
    },
    resolve: async (id: string): Promise<string | undefined> => (await this.exec.execute(this.routing.partition('artifact', `artifact:${id}`), { t: 'artifact.take', id })) ?? undefined,
  };

  readonly requestState = this.values('state');
  readonly tokens = this.values('token');

  readonly rateLimits = {
    take: (policy: string, key: string, limits: RateLimitPolicy, count?: number) =>
      this.exec.execute(this.routing.partition('rate_limit', `bucket:${policy}:${key}`), { t: 'bucket.take', policy, key, limits, ...(count !== undefined && count !== 1 ? { count } : {}) }),
  };

  close(): Promise<void> {
    return this.onClose();
  }

  private values(space: 'state' | 'token') {
    const p = (key: string): number => this.routing.partition(space, `${space}:${key}`);
    return {
      put: async (key: string, value: unknown, ttlMs: number): Promise<void> => {
        await this.exec.execute(p(key), { t: 'value.put', space, key, value, ttlMs });
      },
      get: async (key: string): Promise<unknown> => (await this.exec.execute(p(key), { t: 'value.get', space, key })) ?? undefined,
      delete: (key: string): Promise<boolean> => this.exec.execute(p(key), { t: 'value.delete', space, key }),
    };
  }
}

/** A one-engine grid on this engine's memory (also what every engine of a grid holds). */
export function localGrid(clock: Clock): { provider: GridProvider; store: GridStore } {
  const store = new GridStore(clock);
  store.start();
  const provider = new GridProvider(new LocalExecutor(store, clock), clock, async () => store.stop());
  return { provider, store };
}
