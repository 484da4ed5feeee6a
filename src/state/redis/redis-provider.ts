/**
 * The `redis` provider: the services of services.ts on an existing Redis (or Valkey), for
 * sites that already run one. Every read-modify-write is one Lua script or one native
 * command (SET NX, GETDEL), so concurrent engines never lose an update. Times inside scripts
 * come from the Redis server's clock (TIME), the one clock every engine shares.
 *
 * Keys: `<prefix><kind>:<id>`; the prefix (default `cohort:<cluster id>:`) keeps several
 * clusters, and tests, apart in one database. Needs Redis 7.0 or later (GETDEL, PXAT, PEXPIRETIME).
 *
 * A subject's sessions are indexed twice: `sub:<subject>` scored by expiry (expired ids are
 * pruned by score) and `subc:<subject>` scored by creation time (pages walk it, so a touch,
 * which moves the expiry, never moves a session from one page to another).
 */
import { Redis } from 'ioredis';
import { CohortError } from '../../core/errors.js';
import { randomToken } from '../../core/ids.js';
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
  type SessionPage,
  type StateProvider,
} from '../services.js';

/** Server time in ms, from inside a script. */
const NOW = `local t = redis.call('TIME'); local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;

/**
 * Lua: removes the expired ids from a subject's expiry index (KEYS[2] of createSession,
 * KEYS[1] of pageSessions) and from its creation index, in chunks (unpack has a limit).
 */
const PRUNE = (expiry: string, creation: string): string => `
    local expired = redis.call('ZRANGEBYSCORE', ${expiry}, '-inf', now)
    if #expired > 0 then
      redis.call('ZREMRANGEBYSCORE', ${expiry}, '-inf', now)
      for i = 1, #expired, 1000 do redis.call('ZREM', ${creation}, unpack(expired, i, math.min(i + 999, #expired))) end
    end`;

/** A session hash: its fields, read back by `sessionFromHash`. */
const SESSION_FIELDS = ['body', 'created', 'last', 'idle', 'max'] as const;

const SCRIPTS = {
  /**
   * KEYS: session, subject expiry index, subject creation index. ARGV: body JSON ({id,
   * subject, attributes}), subject, id, idle, max. The body never passes through Lua's JSON
   * codec, so attributes come back exactly as stored. Returns [body, created, last, idle, max].
   */
  createSession: `${NOW}
    local expires = math.min(now + tonumber(ARGV[4]), now + tonumber(ARGV[5]))
    redis.call('HSET', KEYS[1], 'body', ARGV[1], 'subject', ARGV[2], 'created', now, 'last', now, 'idle', ARGV[4], 'max', ARGV[5])
    redis.call('PEXPIREAT', KEYS[1], expires)
    ${PRUNE('KEYS[2]', 'KEYS[3]')}
    redis.call('ZADD', KEYS[2], expires, ARGV[3])
    redis.call('ZADD', KEYS[3], now, ARGV[3])
    local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', KEYS[2], tonumber(last[2]))
    redis.call('PEXPIREAT', KEYS[3], tonumber(last[2]))
    return { ARGV[1], tostring(now), tostring(now), ARGV[4], ARGV[5] }`,
  /**
   * KEYS: session, subject expiry index prefix, subject creation index prefix. ARGV: id, and
   * optionally the least time since the last touch for a write (ms). Returns the touched
   * fields (or, when touched more recently than that, the fields as they are), or nil.
   */
  touchSession: `${NOW}
    local f = redis.call('HMGET', KEYS[1], 'body', 'created', 'idle', 'max', 'subject', 'last')
    if not f[1] then return nil end
    if ARGV[2] and now - tonumber(f[6]) < tonumber(ARGV[2]) then return { f[1], f[2], f[6], f[3], f[4] } end
    local expires = math.min(now + tonumber(f[3]), tonumber(f[2]) + tonumber(f[4]))
    redis.call('HSET', KEYS[1], 'last', now)
    redis.call('PEXPIREAT', KEYS[1], expires)
    local index = KEYS[2] .. f[5]
    redis.call('ZADD', index, expires, ARGV[1])
    local last = redis.call('ZRANGE', index, -1, -1, 'WITHSCORES')
    redis.call('PEXPIREAT', index, tonumber(last[2]))
    redis.call('PEXPIREAT', KEYS[3] .. f[5], tonumber(last[2]))
    return { f[1], f[2], tostring(now), f[3], f[4] }`,
  /**
   * KEYS: session, subject expiry index prefix, subject creation index prefix. ARGV: id.
   * Returns when the session's maximum lifetime ends (its revocation lasts until then), or 0
   * when there was no session.
   */
  deleteSession: `
    local f = redis.call('HMGET', KEYS[1], 'subject', 'created', 'max')
    if not f[1] then return 0 end
    redis.call('DEL', KEYS[1])
    redis.call('ZREM', KEYS[2] .. f[1], ARGV[1])
    redis.call('ZREM', KEYS[3] .. f[1], ARGV[1])
    return tonumber(f[2]) + tonumber(f[3])`,
  /**
   * KEYS: subject expiry index, subject creation index. ARGV: session key prefix, revocation
   * key prefix, cursor creation time ('' for the first page), cursor id, limit, byte budget.
   * At most `limit` sessions after the cursor in (creation time, id) order, ending early once
   * their bodies reach the budget: [sessions as arrays of fields, leaving out revoked ones;
   * 1 when more follow; the last one looked at, as [created, id]].
   */
  pageSessions: `${NOW}
    ${PRUNE('KEYS[1]', 'KEYS[2]')}
    -- Sessions created before the creation index existed: rebuild it from the expiry index.
    if redis.call('ZCARD', KEYS[2]) ~= redis.call('ZCARD', KEYS[1]) then
      redis.call('DEL', KEYS[2])
      for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
        local created = redis.call('HGET', ARGV[1] .. id, 'created')
        if created then redis.call('ZADD', KEYS[2], created, id) else redis.call('ZREM', KEYS[1], id) end
      end
      local at = redis.call('PEXPIRETIME', KEYS[1])
      if at > 0 then redis.call('PEXPIREAT', KEYS[2], at) end
    end
    local limit, budget = tonumber(ARGV[5]), tonumber(ARGV[6])
    local min, afterCreated, afterId = '-inf', nil, ARGV[4]
    if ARGV[3] ~= '' then min = ARGV[3]; afterCreated = tonumber(ARGV[3]) end
    local out, seen, more, last, bytes = {}, 0, 0, {}, 0
    local offset = 0
    while more == 0 do
      local batch = redis.call('ZRANGEBYSCORE', KEYS[2], min, '+inf', 'WITHSCORES', 'LIMIT', offset, limit + 1)
      if #batch == 0 then break end
      for i = 1, #batch, 2 do
        local id, created = batch[i], batch[i + 1]
        -- Members of one score come in byte order of id: those up to the cursor's are skipped.
        if afterCreated == nil or tonumber(created) > afterCreated or id > afterId then
          if seen == limit or (seen > 0 and bytes >= budget) then more = 1; break end
          seen = seen + 1
          last = { created, id }
          local f = redis.call('HMGET', ARGV[1] .. id, 'body', 'created', 'last', 'idle', 'max')
          if f[1] then bytes = bytes + #f[1] end
          if f[1] and redis.call('EXISTS', ARGV[2] .. id) == 0 then table.insert(out, f) end
        end
      end
      if #batch < 2 * (limit + 1) then break end
      offset = offset + limit + 1
    end
    return { out, more, last }`,
  /**
   * KEYS: subject expiry index, subject creation index. ARGV: session key prefix, revocation
   * key prefix. Live, unrevoked sessions of the subject as arrays of fields.
   */
  listSessions: `${NOW}
    ${PRUNE('KEYS[1]', 'KEYS[2]')}
    local out = {}
    for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
      local f = redis.call('HMGET', ARGV[1] .. id, 'body', 'created', 'last', 'idle', 'max')
      if f[1] and redis.call('EXISTS', ARGV[2] .. id) == 0 then table.insert(out, f) end
    end
    return out`,
  /** KEYS: revocation. ARGV: expiresAt or '', default ttl. Keeps the later expiry. */
  revoke: `${NOW}
    local at = tonumber(ARGV[1]) or (now + tonumber(ARGV[2]))
    local current = redis.call('PEXPIRETIME', KEYS[1])
    if current > at then return 0 end
    redis.call('SET', KEYS[1], '1', 'PXAT', at)
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

export interface RedisProviderOptions {
  url: string;
  /** Prefix of every key; default `cohort:`. */
  prefix?: string;
  /** How long a command may take before the call fails with STATE_UNAVAILABLE (ms). */
  commandTimeoutMs?: number;
}

export class RedisProvider implements StateProvider {
  readonly name = 'redis';
  private readonly redis: Redis;
  private readonly prefix: string;

  constructor(options: RedisProviderOptions) {
    this.prefix = options.prefix ?? 'cohort:';
    this.redis = new Redis(options.url, {
      lazyConnect: true,
      commandTimeout: options.commandTimeoutMs ?? 2000,
      // Fail calls while disconnected instead of queueing them: callers answer 503 at once.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
    });
    // Connection errors surface through the calls that fail; ioredis reconnects by itself.
    this.redis.on('error', () => undefined);
    for (const [name, lua] of Object.entries(SCRIPTS)) this.redis.defineCommand(name, { lua });
  }

  /** Connects (and checks the server answers); throws STATE_UNAVAILABLE when it does not. */
  async connect(): Promise<void> {
    try {
      await this.redis.connect();
      await this.redis.ping();
    } catch (err) {
      throw unavailable(err);
    }
  }

  /** True while the connection to Redis is up (readiness). */
  get connected(): boolean {
    return this.redis.status === 'ready';
  }

  readonly sessions = {
    create: async (input: NewSession): Promise<Session> => {
      const id = randomToken(24);
      const body = JSON.stringify({ id, subject: input.subject, attributes: input.attributes ?? {} });
      const keys = [this.key('s', id), this.key('sub', input.subject), this.key('subc', input.subject)];
      const fields = (await this.script('createSession', keys, [body, input.subject, id, input.idleTimeoutMs, input.maxLifetimeMs])) as string[];
      return sessionFromFields(fields);
    },
    get: async (id: string, options: SessionGetOptions = {}): Promise<Session | undefined> => {
      if (await this.revocations.isRevoked(id)) return undefined;
      const fields = options.touch
        ? ((await this.script('touchSession', [this.key('s', id), this.key('sub', ''), this.key('subc', '')], options.touchAfterMs === undefined ? [id] : [id, options.touchAfterMs])) as string[] | null)
        : await this.call(() => this.redis.hmget(this.key('s', id), ...SESSION_FIELDS));
      return fields && fields[0] ? sessionFromFields(fields as string[]) : undefined;
    },
    listBySubject: async (subject: string): Promise<Session[]> => {
      const rows = (await this.script('listSessions', [this.key('sub', subject), this.key('subc', subject)], [this.key('s', ''), this.key('r', '')])) as string[][];
      return rows.map(sessionFromFields).sort(compareSessions);
    },
    pageBySubject: async (subject: string, options: PageOptions): Promise<SessionPage> => {
      const { after, limit } = options;
      const [rows, more, last] = (await this.script('pageSessions', [this.key('sub', subject), this.key('subc', subject)], [
        this.key('s', ''),
        this.key('r', ''),
        after ? after.createdAt : '',
        after ? after.id : '',
        limit,
        options.maxBytes ?? PAGE_MAX_BYTES,
      ])) as [string[][], number, [string, string] | []];
      const sessions = rows.map(sessionFromFields);
      // The cursor is the last session looked at, revoked or not, so the walk never stalls.
      return more === 1 && last.length === 2 ? { sessions, next: { createdAt: Number(last[0]), id: last[1] } } : { sessions };
    },
    delete: async (id: string, options: { unknownRevocationMs?: number } = {}): Promise<boolean> => {
      const maxEnd = (await this.script('deleteSession', [this.key('s', id), this.key('sub', ''), this.key('subc', '')], [id])) as number;
      // Revoked even when the session was not found: a copy of its cookie may still be used.
      await this.script('revoke', [this.key('r', id)], [maxEnd > 0 ? maxEnd : '', options.unknownRevocationMs ?? DEFAULT_REVOCATION_TTL_MS]);
      return maxEnd > 0;
    },
  };

  readonly revocations = {
    revoke: async (id: string, expiresAt?: number): Promise<void> => {
      await this.script('revoke', [this.key('r', id)], [expiresAt ?? '', DEFAULT_REVOCATION_TTL_MS]);
    },
    revokeFor: async (id: string, ttlMs: number): Promise<void> => {
      await this.script('revoke', [this.key('r', id)], ['', ttlMs]);
    },
    isRevoked: async (id: string): Promise<boolean> => (await this.call(() => this.redis.exists(this.key('r', id)))) === 1,
  };

  readonly lockout = {
    recordFailure: (key: string, policy: LockoutPolicy) => this.lockoutScript(key, policy, true),
    status: (key: string, policy: LockoutPolicy) => this.lockoutScript(key, policy, false),
    reset: async (key: string): Promise<void> => {
      await this.call(() => this.redis.del(this.key('l', key)));
    },
  };

  readonly replay = {
    checkAndInsert: async (id: string, ttlMs: number): Promise<boolean> => (await this.call(() => this.redis.set(this.key('rp', id), '1', 'PX', ttlMs, 'NX'))) === 'OK',
  };

  readonly artifacts = {
    put: async (id: string, payload: string, ttlMs: number): Promise<void> => {
      await this.call(() => this.redis.set(this.key('a', id), payload, 'PX', ttlMs));
    },
    resolve: async (id: string): Promise<string | undefined> => (await this.call(() => this.redis.getdel(this.key('a', id)))) ?? undefined,
  };

  readonly requestState = this.values('st');
  readonly tokens = this.values('tk');

  readonly rateLimits = {
    take: async (policy: string, key: string, limits: RateLimitPolicy, count = 1): Promise<RateLimitTake> => {
      const [granted, remaining] = (await this.script('takeToken', [this.key('b', `${policy}:${key}`)], [limits.capacity, limits.refillPerSecond, Math.max(1, Math.floor(count))])) as [number, number];
      return { allowed: granted > 0, remaining, granted };
    },
  };

  async close(): Promise<void> {
    await this.redis.quit().catch(() => this.redis.disconnect());
  }

  private values(kind: string) {
    return {
      put: async (key: string, value: unknown, ttlMs: number): Promise<void> => {
        await this.call(() => this.redis.set(this.key(kind, key), JSON.stringify(value), 'PX', ttlMs));
      },
      get: async (key: string): Promise<unknown> => {
        const json = await this.call(() => this.redis.get(this.key(kind, key)));
        return json === null ? undefined : (JSON.parse(json) as unknown);
      },
      delete: async (key: string): Promise<boolean> => (await this.call(() => this.redis.del(this.key(kind, key)))) === 1,
    };
  }

  private async lockoutScript(key: string, policy: LockoutPolicy, record: boolean): Promise<LockoutStatus> {
    const [failures, retryAfterMs] = (await this.script('lockout', [this.key('l', key)], [policy.maxFailures, policy.windowMs, policy.lockMs, record ? 1 : 0])) as [number, number];
    return { locked: retryAfterMs > 0, failures, retryAfterMs };
  }

  private key(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  private script(name: ScriptName, keys: string[], args: Array<string | number>): Promise<unknown> {
    const command = (this.redis as unknown as Record<ScriptName, (n: number, ...a: Array<string | number>) => Promise<unknown>>)[name];
    return this.call(() => command.call(this.redis, keys.length, ...keys, ...args));
  }

  private async call<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw unavailable(err);
    }
  }
}

function unavailable(err: unknown): CohortError {
  return new CohortError('STATE_UNAVAILABLE', `the Redis state provider failed: ${(err as Error).message}`, undefined, { cause: err });
}

/** A session from its hash fields [body, created, last, idle, max]. */
function sessionFromFields(f: string[]): Session {
  const body = JSON.parse(f[0]!) as Pick<Session, 'id' | 'subject' | 'attributes'>;
  const times = { createdAt: Number(f[1]), lastAccessAt: Number(f[2]), idleTimeoutMs: Number(f[3]), maxLifetimeMs: Number(f[4]) };
  return { ...body, ...times, expiresAt: sessionExpiry(times) };
}
