/**
 * The `grid` provider: the services of services.ts built on grid operations.
 *
 * Where an operation runs is the executor's business. `LocalExecutor` applies everything to
 * this engine's own store (a one-engine grid, and the unit under the replicated grid); the
 * replicated executor routes each operation to the owner of its partition and replicates
 * the result. Routing keys: a session's partition is chosen from its subject and written into
 * its id, so get/delete by id and list by subject land on the same partition.
 */
import { createHash } from 'node:crypto';
import type { Clock } from '../../core/clock.js';
import { randomToken } from '../../core/ids.js';
import {
  DEFAULT_REVOCATION_TTL_MS,
  sessionExpiry,
  type LockoutPolicy,
  type NewSession,
  type RateLimitPolicy,
  type Session,
  type StateProvider,
} from '../services.js';
import { GridStore } from './grid-store.js';
import { applyOperation, type Operation, type OperationResults } from './operations.js';

/** Partitions of the key space; fixed for the life of a cluster (a prime spreads keys evenly). */
export const PARTITION_COUNT = 271;

/** The pseudo-partition of records every engine holds (revocations). */
export const EVERYWHERE = -1;

/** The partition of a routing key. */
export function partitionOf(key: string): number {
  return createHash('sha1').update(key).digest().readUInt32BE(0) % PARTITION_COUNT;
}

/** The partition written into a session id (`<partition>.<random>`), or undefined if malformed. */
export function partitionOfSessionId(id: string): number | undefined {
  const dot = id.indexOf('.');
  if (dot <= 0 || dot > 3) return undefined;
  const p = Number(id.slice(0, dot));
  return Number.isInteger(p) && p >= 0 && p < PARTITION_COUNT ? p : undefined;
}

export interface GridExecutor {
  /** Runs `op` where partition `partition` lives and resolves with its result. */
  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]>;
  /** Runs `op` on every engine (revocations); resolves once it is applied where it must be. */
  everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void>;
  /** Runs a read-only `op` on this engine's own copy (revocation checks with read_local_only). */
  local<K extends Operation['t']>(op: Extract<Operation, { t: K }>): OperationResults[K];
}

/** Everything on this engine's own store. */
export class LocalExecutor implements GridExecutor {
  constructor(
    readonly store: GridStore,
    private readonly clock: Clock,
  ) {}

  execute<K extends Operation['t']>(partition: number, op: Extract<Operation, { t: K }>): Promise<OperationResults[K]> {
    return Promise.resolve(applyOperation(this.store, op, this.clock.now(), partition) as OperationResults[K]);
  }

  async everywhere<K extends Operation['t']>(op: Extract<Operation, { t: K }>): Promise<void> {
    this.local(op);
  }

  local<K extends Operation['t']>(op: Extract<Operation, { t: K }>): OperationResults[K] {
    return applyOperation(this.store, op, this.clock.now(), EVERYWHERE) as OperationResults[K];
  }
}

export class GridProvider implements StateProvider {
  readonly name = 'grid';

  constructor(
    private readonly exec: GridExecutor,
    private readonly clock: Clock,
    private readonly onClose: () => Promise<void> = async () => undefined,
  ) {}

  readonly sessions = {
    create: async (input: NewSession): Promise<Session> => {
      const now = this.clock.now();
      const partition = partitionOf(`subject:${input.subject}`);
      const base = { createdAt: now, lastAccessAt: now, idleTimeoutMs: input.idleTimeoutMs, maxLifetimeMs: input.maxLifetimeMs };
      const session: Session = { id: `${partition}.${randomToken(24)}`, subject: input.subject, attributes: input.attributes ?? {}, ...base, expiresAt: sessionExpiry(base) };
      return this.exec.execute(partition, { t: 'session.put', session });
    },
    get: async (id: string, options: { touch?: boolean } = {}): Promise<Session | undefined> => {
      const partition = partitionOfSessionId(id);
      if (partition === undefined || this.exec.local({ t: 'revocation.get', id })) return undefined;
      return (await this.exec.execute(partition, { t: 'session.get', id, touch: options.touch === true })) ?? undefined;
    },
    listBySubject: async (subject: string): Promise<Session[]> => {
      const sessions = await this.exec.execute(partitionOf(`subject:${subject}`), { t: 'session.list', subject });
      return sessions.filter((s) => !this.exec.local({ t: 'revocation.get', id: s.id }));
    },
    delete: async (id: string): Promise<boolean> => {
      const partition = partitionOfSessionId(id);
      if (partition === undefined) return false;
      const existed = await this.exec.execute(partition, { t: 'session.delete', id });
      // Revoked even when this engine did not know it: another may still hold a stale copy.
      await this.exec.everywhere({ t: 'revocation.put', id, expiresAt: this.clock.now() + DEFAULT_REVOCATION_TTL_MS });
      return existed;
    },
  };

  readonly revocations = {
    revoke: (id: string, expiresAt?: number): Promise<void> =>
      this.exec.everywhere({ t: 'revocation.put', id, expiresAt: expiresAt ?? this.clock.now() + DEFAULT_REVOCATION_TTL_MS }),
    isRevoked: async (id: string): Promise<boolean> => this.exec.local({ t: 'revocation.get', id }),
  };

  readonly lockout = {
    recordFailure: (key: string, policy: LockoutPolicy) => this.exec.execute(partitionOf(`lockout:${key}`), { t: 'lockout.fail', key, policy }),
    status: (key: string, policy: LockoutPolicy) => this.exec.execute(partitionOf(`lockout:${key}`), { t: 'lockout.get', key, policy }),
    reset: async (key: string): Promise<void> => {
      await this.exec.execute(partitionOf(`lockout:${key}`), { t: 'lockout.reset', key });
    },
  };

  readonly replay = {
    checkAndInsert: (id: string, ttlMs: number) => this.exec.execute(partitionOf(`replay:${id}`), { t: 'replay.insert', id, ttlMs }),
  };

  readonly artifacts = {
    put: async (id: string, payload: string, ttlMs: number): Promise<void> => {
      await this.exec.execute(partitionOf(`artifact:${id}`), { t: 'artifact.put', id, payload, ttlMs });
    },
    resolve: async (id: string): Promise<string | undefined> => (await this.exec.execute(partitionOf(`artifact:${id}`), { t: 'artifact.take', id })) ?? undefined,
  };

  readonly requestState = this.values('state');
  readonly tokens = this.values('token');

  readonly rateLimits = {
    take: (policy: string, key: string, limits: RateLimitPolicy) => this.exec.execute(partitionOf(`bucket:${policy}:${key}`), { t: 'bucket.take', policy, key, limits }),
  };

  close(): Promise<void> {
    return this.onClose();
  }

  private values(space: 'state' | 'token') {
    const p = (key: string): number => partitionOf(`${space}:${key}`);
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
