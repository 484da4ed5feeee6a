/**
 * The `redis` provider: the services of services.ts on an existing Redis (or Valkey), for
 * sites that already run one: a single server, a Redis Cluster, or a master with replicas
 * watched by Sentinels (redis-url.ts). Every read-modify-write is one Lua script or one
 * native command (SET NX, GETDEL), so concurrent engines never lose an update. Times inside
 * scripts come from the Redis server's clock (TIME), the one clock every engine shares.
 *
 * Keys: redis-keys.ts. Every script declares all the keys it touches in KEYS, and those keys
 * share a hash tag, so every script runs on a Redis Cluster as on one server. Needs Redis 7.0
 * or later (GETDEL, PXAT, PEXPIRETIME).
 *
 * A subject's sessions are indexed twice: `sub` scored by the end of each session's maximum
 * lifetime (ids past it are pruned by score, and the index expires with its last session)
 * and `subc` scored by creation time (pages walk it). Neither score moves when a session is
 * touched, so a touch writes the session alone (one key) and never moves a session from one
 * page to another. An id whose session ended early (idle, or deleted) stays in the indexes
 * until a listing finds its session gone and removes it.
 *
 * Durable writes: revocations (also the one a session delete makes) and replay ids are
 * followed by `WAIT <redis_wait_replicas> <redis_wait_timeout>` on the connection that wrote
 * them, and acknowledged only when that many replicas hold them, so a master that fails
 * right after cannot take an acknowledged one with it (its replica, promoted, has it); fewer
 * acknowledgements fail the call with STATE_NOT_REPLICATED. They go over a client of their
 * own, so lookups never queue behind a WAIT.
 */
import { Cluster, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { ScopedService } from '../../config/schema.js';
import { CohortError } from '../../core/errors.js';
import {
  DEFAULT_REVOCATION_TTL_MS,
  compareSessions,
  sessionExpiry,
  type LockoutPolicy,
  type LockoutStatus,
  type NewSession,
  type RateLimitPolicy,
  type RateLimitTake,
  PAGE_MAX_BYTES,
  type PageOptions,
  type Session,
  type SessionGetOptions,
  type SessionCursor,
  type SessionPage,
  type StateProvider,
} from '../services.js';
import { RedisKeyLayout, type SingleKeyService } from './redis-keys.js';
import { parseRedisUrl, type RedisTarget } from '../../config/redis-url.js';

/** Server time in ms, from inside a script. */
const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Lua: removes the ids whose maximum lifetime has ended from a subject's index by end
 * (`byEnd`) and from its index by creation, in chunks (unpack has a limit).
 */
const PRUNE = (byEnd: string, byCreation: string): string => `
    local ended = redis.call('ZRANGEBYSCORE', ${byEnd}, '-inf', now)
    if #ended > 0 then
      redis.call('ZREMRANGEBYSCORE', ${byEnd}, '-inf', now)
      for i = 1, #ended, 1000 do redis.call('ZREM', ${byCreation}, unpack(ended, i, math.min(i + 999, #ended))) end
    end`;

/** Lua: keeps the later of the revocation `key`'s expiry and `at`. */
const REVOKE = (key: string, at: string): string => `
    if redis.call('PEXPIRETIME', ${key}) < ${at} then redis.call('SET', ${key}, '1', 'PXAT', ${at}) end`;

/** How many sessions one readSessions script reads: pages stop reading soon after their byte budget. */
const READ_CHUNK = 64;

const SCRIPTS = {
  /**
   * KEYS: session, subject index by end, subject index by creation. ARGV: body JSON ({id,
   * subject, attributes}), id, idle, max. The body never passes through Lua's JSON codec, so
   * attributes come back exactly as stored. Returns [body, created, last, idle, max].
   */
  createSession: `${NOW}
    local idle, max = tonumber(ARGV[3]), tonumber(ARGV[4])
    redis.call('HSET', KEYS[1], 'body', ARGV[1], 'created', now, 'last', now, 'idle', idle, 'max', max)
    redis.call('PEXPIREAT', KEYS[1], math.min(now + idle, now + max))
    ${PRUNE('KEYS[2]', 'KEYS[3]')}
    redis.call('ZADD', KEYS[2], now + max, ARGV[2])
    redis.call('ZADD', KEYS[3], now, ARGV[2])
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[2], tonumber(last[2]))
    redis.call('PEXPIREAT', KEYS[3], tonumber(last[2]))
    return { ARGV[1], tostring(now), tostring(now), ARGV[3], ARGV[4] }`,
  /**
   * KEYS: session, its revocation. ARGV: touch (1) or not (0), and with a touch the least
   * time since the last touch for a write (ms, '' for always). Returns the fields [body,
   * created, last, idle, max] (touched, unless touched more recently than that), or nil when
   * the session is unknown, ended or revoked.
   */
  getSession: `
    if redis.call('EXISTS', KEYS[2]) == 1 then return nil end
    local f = redis.call('HMGET', KEYS[1], 'body', 'created', 'idle', 'max', 'last')
    if not f[1] then return nil end
    if ARGV[1] ~= '1' then return { f[1], f[2], f[5], f[3], f[4] } end
    ${NOW}
    if ARGV[2] ~= '' and now - tonumber(f[5]) < tonumber(ARGV[2]) then return { f[1], f[2], f[5], f[3], f[4] } end
    redis.call('HSET', KEYS[1], 'last', now)
    redis.call('PEXPIREAT', KEYS[1], math.min(now + tonumber(f[3]), tonumber(f[2]) + tonumber(f[4])))
    return { f[1], f[2], tostring(now), f[3], f[4] }`,
  /**
   * KEYS: session, its revocation. ARGV: how long to revoke an id with no session (ms).
   * Deletes the session and revokes its id until its maximum lifetime would have ended (or
   * for that long). Returns 1 when there was a session, else 0.
   */
  deleteSession: `${NOW}
    local f = redis.call('HMGET', KEYS[1], 'created', 'max')
    local at = now + tonumber(ARGV[1])
    if f[1] then
      redis.call('DEL', KEYS[1])
      at = tonumber(f[1]) + tonumber(f[2])
    end
    ${REVOKE('KEYS[2]', 'at')}
    if f[1] then return 1 end
    return 0`,
  /**
   * KEYS: subject index by end, subject index by creation. ARGV: cursor creation time (''
   * for the first), cursor id, how many. Up to that many [created, id] after the cursor in
   * (creation time, id) order, flattened; '' as the count: all of them, as [id, created].
   */
  sessionIds: `${NOW}
    ${PRUNE('KEYS[1]', 'KEYS[2]')}
    if ARGV[3] == '' then return redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES') end
    local count = tonumber(ARGV[3])
    local min, afterCreated, afterId = '-inf', nil, ARGV[2]
    if ARGV[1] ~= '' then min = ARGV[1]; afterCreated = tonumber(ARGV[1]) end
    local out, offset = {}, 0
    while #out < 2 * count do
      local batch = redis.call('ZRANGEBYSCORE', KEYS[2], min, '+inf', 'WITHSCORES', 'LIMIT', offset, count)
      for i = 1, #batch, 2 do
        local id, created = batch[i], batch[i + 1]
        -- Members of one score come in byte order of id: those up to the cursor's are skipped.
        if afterCreated == nil or tonumber(created) > afterCreated or id > afterId then
          table.insert(out, created)
          table.insert(out, id)
          if #out == 2 * count then break end
        end
      end
      if #batch < 2 * count then break end
      offset = offset + count
    end
    return out`,
  /**
   * KEYS: subject index by end, subject index by creation, then n sessions, then their n
   * revocations. ARGV: the n ids. Per id: 0 when its session is gone (the id then leaves
   * both indexes), else [body, created, last, idle, max, revoked 0/1].
   */
  readSessions: `
    local n = #ARGV
    local out, gone = {}, {}
    for i = 1, n do
      local f = redis.call('HMGET', KEYS[2 + i], 'body', 'created', 'last', 'idle', 'max')
      if f[1] then
        table.insert(f, redis.call('EXISTS', KEYS[2 + n + i]))
        out[i] = f
      else
        out[i] = 0
        table.insert(gone, ARGV[i])
      end
    end
    if #gone > 0 then
      redis.call('ZREM', KEYS[1], unpack(gone))
      redis.call('ZREM', KEYS[2], unpack(gone))
    end
    return out`,
  /** KEYS: revocation. ARGV: expiresAt or '', default ttl. Keeps the later expiry. */
  revoke: `${NOW}
    local at = tonumber(ARGV[1]) or (now + tonumber(ARGV[2]))
    ${REVOKE('KEYS[1]', 'at')}
    return 1`,
  /** KEYS: lockout. ARGV: maxFailures, windowMs, lockMs, record (1) or read (0). Returns [failures, retryAfterMs]. */
  lockout: `${NOW}
    local max, window, lock = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
    local json = redis.call('GET', KEYS[1])
    local r = json and cjson.decode(json) or { failures = {}, lockedUntil = 0 }
    local recent = {}
    for _, t in ipairs(r.failures) do if t > now - window then table.insert(recent, t) end end
    if ARGV[4] == '1' then
      table.insert(recent, now)
      if r.lockedUntil <= now and #recent >= max then r.lockedUntil = now + lock end
      while #recent > max do table.remove(recent, 1) end
      r.failures = recent
      if #recent == 0 then r.failures = cjson.decode('[]') end
      redis.call('SET', KEYS[1], cjson.encode(r), 'PXAT', math.max(r.lockedUntil, now + window))
    end
    local retry = 0
    if r.lockedUntil > now then retry = r.lockedUntil - now end
    return { #recent, retry }`,
  /** KEYS: bucket. ARGV: capacity, refillPerSecond. Returns [allowed 0/1, remaining]. */
  takeToken: `${NOW}
    local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
    local json = redis.call('GET', KEYS[1])
    local b = json and cjson.decode(json) or { tokens = capacity, updatedAt = now }
    local tokens = math.min(capacity, b.tokens + math.max(0, now - b.updatedAt) / 1000 * rate)
    local granted = math.max(0, math.min(tonumber(ARGV[3] or '1'), math.floor(tokens)))
    tokens = tokens - granted
    local refill = math.ceil((capacity - tokens) / rate * 1000) + 1
    redis.call('SET', KEYS[1], cjson.encode({ tokens = tokens, updatedAt = now }), 'PX', refill)
    return { granted, math.floor(tokens) }`,
} as const;

type ScriptName = keyof typeof SCRIPTS;
type Client = Redis | Cluster;
type ScriptCall = (n: number, ...a: Array<string | number>) => Promise<unknown>;

export interface RedisProviderOptions {
  /** `[state] redis_url`: redis://, redis-cluster:// or redis-sentinel:// (redis-url.ts). */
  url: string;
  /** Prefix of every key; default `cohort:`. */
  prefix?: string;
  /** Each service's scope key (state/grid/scopes.ts `scopeKeys`); absent: cluster-wide. */
  scopes?: Partial<Record<ScopedService, string>>;
  /** How long a command may take before the call fails with STATE_UNAVAILABLE (ms). */
  commandTimeoutMs?: number;
  /**
   * `[state] redis_wait_replicas`: replicas that must hold a revocation or replay id before it
   * is acknowledged. Default: 1 on a cluster or through Sentinel, 0 on a single server.
   */
  waitReplicas?: number;
  /** `[state] redis_wait_timeout`: how long a durable write waits for them (ms); default 1000. */
  waitTimeoutMs?: number;
}

/** `redis_wait_replicas` left empty: a replica where the deployment has them by design. */
export function defaultWaitReplicas(target: RedisTarget): number {
  return target.kind === 'server' ? 0 : 1;
}

export const DEFAULT_WAIT_TIMEOUT_MS = 1000;

export class RedisProvider implements StateProvider {
  readonly name = 'redis';
  readonly keys: RedisKeyLayout;
  readonly target: RedisTarget;
  readonly waitReplicas: number;
  private readonly waitTimeoutMs: number;
  private readonly redis: Client;
  /** The client of durable writes (revocations, replay ids) when they WAIT; else `redis`. */
  private readonly durable: Client;
  /**
   * Outside a Redis Cluster, sessions of the earlier layout (ids without a bucket) are still found
   * by id until they end (redis-keys.ts `legacySession`). Never on a cluster, where no such
   * session can exist and the untagged keys of one would not share a slot.
   */
  private readonly legacySessions: boolean;

  constructor(options: RedisProviderOptions) {
    this.keys = new RedisKeyLayout(options.prefix ?? 'cohort:', options.scopes);
    this.target = parseRedisUrl(options.url);
    this.waitReplicas = options.waitReplicas ?? defaultWaitReplicas(this.target);
    this.waitTimeoutMs = options.waitTimeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
    this.legacySessions = this.target.kind !== 'cluster';
    const commandTimeout = options.commandTimeoutMs ?? 2000;
    this.redis = openClient(this.target, commandTimeout);
    // A WAIT may take its whole timeout; the command must not time out before it.
    this.durable = this.waitReplicas > 0 ? openClient(this.target, commandTimeout + this.waitTimeoutMs) : this.redis;
    for (const client of new Set([this.redis, this.durable])) {
      // Connection errors surface through the calls that fail; ioredis reconnects by itself.
      client.on('error', () => undefined);
      for (const [name, lua] of Object.entries(SCRIPTS)) client.defineCommand(name, { lua });
    }
  }

  /** Connects (and checks the server answers); throws STATE_UNAVAILABLE when it does not. */
  async connect(): Promise<void> {
    try {
      for (const client of new Set([this.redis, this.durable])) {
        await client.connect();
        await client.ping();
      }
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** True while the connections to Redis are up (readiness). */
  get connected(): boolean {
    return this.redis.status === 'ready' && this.durable.status === 'ready';
  }

  readonly sessions = {
    create: async (input: NewSession): Promise<Session> => {
      const id = this.keys.newSessionId(input.subject);
      const body = JSON.stringify({ id, subject: input.subject, attributes: input.attributes ?? {} });
      const index = this.keys.subject(input.subject);
      const fields = (await this.script('createSession', [this.keys.session(id)!, index.byEnd, index.byCreation], [body, id, input.idleTimeoutMs, input.maxLifetimeMs])) as string[];
      return sessionFromFields(fields);
    },
    get: async (id: string, options: SessionGetOptions = {}): Promise<Session | undefined> => {
      const key = this.sessionKey(id);
      if (key === undefined) return undefined;
      const args = options.touch ? [1, options.touchAfterMs ?? ''] : [0];
      const fields = (await this.script('getSession', [key, this.keys.revocation(id)], args)) as string[] | null;
      return fields ? sessionFromFields(fields) : undefined;
    },
    listBySubject: async (subject: string): Promise<Session[]> => {
      const index = this.keys.subject(subject);
      const flat = (await this.script('sessionIds', [index.byEnd, index.byCreation], ['', '', ''])) as string[];
      const sessions: Session[] = [];
      for (let i = 0; i < flat.length; i += 2 * READ_CHUNK) {
        const ids = everyOther(flat.slice(i, i + 2 * READ_CHUNK));
        for (const row of await this.readSessions(subject, ids)) if (row && !row.revoked) sessions.push(row.session);
      }
      return sessions.sort(compareSessions);
    },
    pageBySubject: async (subject: string, options: PageOptions): Promise<SessionPage> => {
      const { after, limit } = options;
      const budget = options.maxBytes ?? PAGE_MAX_BYTES;
      const index = this.keys.subject(subject);
      const sessions: Session[] = [];
      let seen = 0;
      let bytes = 0;
      let last: SessionCursor | undefined;
      // Where the scan of the index is: ids whose session is gone are passed over (and leave
      // the index), so more are asked for until the page is full or the index ends.
      let scan = after;
      for (;;) {
        // One more than the page still takes: whether more follow.
        const want = limit - seen + 1;
        const flat = (await this.script('sessionIds', [index.byEnd, index.byCreation], [scan ? scan.createdAt : '', scan ? scan.id : '', want])) as string[];
        const candidates = Array.from({ length: flat.length / 2 }, (_, i) => ({ createdAt: Number(flat[2 * i]), id: flat[2 * i + 1]! }));
        for (let i = 0; i < candidates.length; i += READ_CHUNK) {
          const chunk = candidates.slice(i, i + READ_CHUNK);
          const rows = await this.readSessions(subject, chunk.map((c) => c.id));
          for (const [j, row] of rows.entries()) {
            scan = chunk[j];
            if (!row) continue;
            // The cursor is the last session looked at, revoked or not, so the walk never stalls.
            if (seen === limit || (seen > 0 && bytes >= budget)) return { sessions, next: last! };
            seen++;
            last = chunk[j];
            bytes += row.bodyBytes;
            if (!row.revoked) sessions.push(row.session);
          }
        }
        if (candidates.length < want) return { sessions };
      }
    },
    delete: async (id: string, options: { unknownRevocationMs?: number } = {}): Promise<boolean> => {
      const unknownMs = options.unknownRevocationMs ?? DEFAULT_REVOCATION_TTL_MS;
      const key = this.sessionKey(id);
      // Revoked even when the session was not found: a copy of its cookie may still be used.
      if (key === undefined) {
        await this.durableScript('revoke', [this.keys.revocation(id)], ['', unknownMs]);
        return false;
      }
      return (await this.durableScript('deleteSession', [key, this.keys.revocation(id)], [unknownMs])) === 1;
    },
  };

  readonly revocations = {
    revoke: async (id: string, expiresAt?: number): Promise<void> => {
      await this.durableScript('revoke', [this.keys.revocation(id)], [expiresAt ?? '', DEFAULT_REVOCATION_TTL_MS]);
    },
    revokeFor: async (id: string, ttlMs: number): Promise<void> => {
      await this.durableScript('revoke', [this.keys.revocation(id)], ['', ttlMs]);
    },
    isRevoked: async (id: string): Promise<boolean> => (await this.call(() => this.redis.exists(this.keys.revocation(id)))) === 1,
  };

  readonly lockout = {
    recordFailure: (key: string, policy: LockoutPolicy) => this.lockoutScript(key, policy, true),
    status: (key: string, policy: LockoutPolicy) => this.lockoutScript(key, policy, false),
    reset: async (key: string): Promise<void> => {
      await this.call(() => this.redis.del(this.keys.scoped('lockout', key)));
    },
  };

  readonly replay = {
    checkAndInsert: async (id: string, ttlMs: number): Promise<boolean> => {
      const key = this.keys.scoped('replay', id);
      if (this.waitReplicas === 0) return (await this.call(() => this.redis.set(key, '1', 'PX', ttlMs, 'NX'))) === 'OK';
      return (await this.durableWrite((p) => p.set(key, '1', 'PX', ttlMs, 'NX'), key)) === 'OK';
    },
  };

  readonly artifacts = {
    put: async (id: string, payload: string, ttlMs: number): Promise<void> => {
      await this.call(() => this.redis.set(this.keys.scoped('artifact', id), payload, 'PX', ttlMs));
    },
    resolve: async (id: string): Promise<string | undefined> => (await this.call(() => this.redis.getdel(this.keys.scoped('artifact', id)))) ?? undefined,
  };

  readonly requestState = this.values('state');
  readonly tokens = this.values('token');

  readonly rateLimits = {
    take: async (policy: string, key: string, limits: RateLimitPolicy, count = 1): Promise<RateLimitTake> => {
      const [granted, remaining] = (await this.script('takeToken', [this.keys.scoped('rate_limit', `${policy}:${key}`)], [limits.capacity, limits.refillPerSecond, Math.max(1, Math.floor(count))])) as [number, number];
      return { allowed: granted > 0, remaining, granted };
    },
  };

  async close(): Promise<void> {
    for (const client of new Set([this.redis, this.durable])) {
      await client.quit().catch(() => undefined);
      // QUIT leaves the Sentinel client's subscriptions to the Sentinels (its failover
      // detector) open; disconnect closes those too.
      client.disconnect();
    }
  }

  private values(service: SingleKeyService) {
    return {
      put: async (key: string, value: unknown, ttlMs: number): Promise<void> => {
        await this.call(() => this.redis.set(this.keys.scoped(service, key), JSON.stringify(value), 'PX', ttlMs));
      },
      get: async (key: string): Promise<unknown> => {
        const json = await this.call(() => this.redis.get(this.keys.scoped(service, key)));
        return json === null ? undefined : (JSON.parse(json) as unknown);
      },
      delete: async (key: string): Promise<boolean> => (await this.call(() => this.redis.del(this.keys.scoped(service, key)))) === 1,
    };
  }

  /** The key of session `id` in this layout, or in the earlier one where it may be; undefined: no such session can exist. */
  private sessionKey(id: string): string | undefined {
    return this.keys.session(id) ?? (this.legacySessions ? this.keys.legacySession(id) : undefined);
  }

  /** The sessions of `ids` (all of `subject`'s indexes, so in one slot): undefined for those gone. */
  private async readSessions(subject: string, ids: string[]): Promise<Array<{ session: Session; revoked: boolean; bodyBytes: number } | undefined>> {
    if (ids.length === 0) return [];
    const index = this.keys.subject(subject);
    const keys = [index.byEnd, index.byCreation, ...ids.map((id) => this.keys.session(id)!), ...ids.map((id) => this.keys.revocation(id))];
    const rows = (await this.script('readSessions', keys, ids)) as Array<0 | [string, string, string, string, string, number]>;
    return rows.map((row) => (row === 0 ? undefined : { session: sessionFromFields(row), revoked: row[5] === 1, bodyBytes: Buffer.byteLength(row[0]) }));
  }

  private async lockoutScript(key: string, policy: LockoutPolicy, record: boolean): Promise<LockoutStatus> {
    const [failures, retryAfterMs] = (await this.script('lockout', [this.keys.scoped('lockout', key)], [policy.maxFailures, policy.windowMs, policy.lockMs, record ? 1 : 0])) as [number, number];
    return { locked: retryAfterMs > 0, failures, retryAfterMs };
  }

  private script(name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
    const command = (this.redis as unknown as Record<ScriptName, ScriptCall>)[name];
    return this.call(() => command.call(this.redis, keys.length, ...keys, ...args));
  }

  /** A script that writes a revocation: acknowledged once `waitReplicas` replicas hold it. */
  private durableScript(name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
    if (this.waitReplicas === 0) return this.script(name, keys, args);
    return this.durableWrite((p) => (p as unknown as Record<ScriptName, (...a: unknown[]) => unknown>)[name]!(keys.length, ...keys, ...args), keys[0]!);
  }

  /**
   * `write` then WAIT in one pipeline: on a cluster, a pipeline goes to the node serving its
   * keys' slot, and WAIT counts the replicas that hold every write this connection made
   * before it there, so it covers `write`. Resolves with the write's reply.
   */
  private async durableWrite(write: (p: ReturnType<Client['pipeline']>) => unknown, key: string): Promise<unknown> {
    const results = await this.call(() => {
      const pipeline = this.durable.pipeline();
      write(pipeline);
      pipeline.wait(this.waitReplicas, this.waitTimeoutMs);
      return pipeline.exec();
    });
    const [[writeErr, reply] = [], [waitErr, acked] = []] = results ?? [];
    if (writeErr) throw unavailable(writeErr);
    if (waitErr) throw unavailable(waitErr);
    if (typeof acked !== 'number' || acked < this.waitReplicas) {
      throw new CohortError(
        'STATE_NOT_REPLICATED',
        `the write reached the Redis master but ${String(acked)} of the ${this.waitReplicas} replicas required ([state] redis_wait_replicas) acknowledged it within ${this.waitTimeoutMs} ms; it was not acknowledged and may be retried`,
        { key, replicas: acked, required: this.waitReplicas },
      );
    }
    return reply;
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw unavailable(err);
    }
  }
}

/** A client of `target`, not connected yet. */
function openClient(target: RedisTarget, commandTimeout: number): Client {
  // Fail calls while disconnected instead of queueing them: callers answer 503 at once.
  const common: RedisOptions = { lazyConnect: true, commandTimeout, maxRetriesPerRequest: 1 };
  if (target.kind === 'server') return new Redis(target.url, { ...common, enableOfflineQueue: false });
  const credentials = { ...(target.username !== undefined ? { username: target.username } : {}), ...(target.password !== undefined ? { password: target.password } : {}) };
  if (target.kind === 'sentinel') {
    return new Redis({
      ...common,
      ...credentials,
      enableOfflineQueue: false,
      sentinels: target.sentinels,
      name: target.masterName,
      db: target.db,
      // Sentinel's +switch-master news reconnects at once to the promoted master.
      failoverDetector: true,
      ...(target.tls ? { tls: {}, enableTLSForSentinelMode: true, sentinelTLS: {} } : {}),
    });
  }
  const options: ClusterOptions = {
    lazyConnect: true,
    enableOfflineQueue: false,
    redisOptions: { ...common, ...credentials, ...(target.tls ? { tls: {} } : {}) },
    // After a master fails, its slots answer CLUSTERDOWN or MOVED until a replica is promoted
    // and the slot map refreshed: retried briefly, then the call fails (503) and the next one
    // finds the new master.
    retryDelayOnFailover: 100,
    retryDelayOnClusterDown: 100,
    slotsRefreshInterval: 2000,
    slotsRefreshTimeout: Math.max(1000, commandTimeout),
  };
  return new Cluster(target.nodes, options);
}

function unavailable(err: unknown): CohortError {
  if (err instanceof CohortError) return err;
  return new CohortError('STATE_UNAVAILABLE', `the Redis state provider failed: ${(err as Error).message}`, undefined, { cause: err });
}

/** The members of a flattened [member, score, ...] reply. */
function everyOther(flat: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) out.push(flat[i]!);
  return out;
}

/** A session from its hash fields [body, created, last, idle, max]. */
function sessionFromFields(f: readonly (string | number)[]): Session {
  const body = JSON.parse(String(f[0])) as Pick<Session, 'id' | 'subject' | 'attributes'>;
  const times = { createdAt: Number(f[1]), lastAccessAt: Number(f[2]), idleTimeoutMs: Number(f[3]), maxLifetimeMs: Number(f[4]) };
  return { ...body, ...times, expiresAt: sessionExpiry(times) };
}
