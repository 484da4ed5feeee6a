/**
 * What an engine keeps between access decisions (session records, rate-limit allotments,
 * verified JWTs): each saves round trips or signature checks, and none lets through a request
 * the state would refuse — a revoked or deleted session is refused at once on a cache hit, an
 * expired token in the cache is refused, every cache is bounded.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { ManualClock } from '../../src/core/clock.js';
import { decide, type AccessRequest, type AccessState } from '../../src/engine/access/decide.js';
import { decisionCaches, type DecisionCaches } from '../../src/engine/access/decision-caches.js';
import { compileApis, type ApiDefinition } from '../../src/engine/access/definitions.js';
import { jwtVerifierFor } from '../../src/engine/access/jwt.js';
import { ALLOTMENT_LEASE_MS, allotmentSize, nextAllotment, RateAllotments } from '../../src/engine/access/rate-allotments.js';
import { SessionCache, touchAfter } from '../../src/engine/access/session-cache.js';
import { JWT_CACHE_MAX_AGE_MS, keptUntil, VerifiedJwtCache } from '../../src/engine/access/verified-jwts.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import type { StateProvider } from '../../src/state/services.js';

const NOW = 1_800_000_000_000;
const MINUTE = 60_000;

const { privateKey, publicKey } = await generateKeyPair('ES256');
const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const jwtSettings = { issuer: 'https://issuer.test', audiences: ['orders'], keys: [publicJwk], algorithms: ['ES256'] };

function jwt(claims: JWTPayload, expSeconds: number): Promise<string> {
  return new SignJWT({ sub: 'alice', iss: 'https://issuer.test', aud: 'orders', ...claims })
    .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
    .setIssuedAt(NOW / 1000)
    .setExpirationTime(expSeconds)
    .sign(privateKey);
}

interface Counted {
  provider: StateProvider;
  clock: ManualClock;
  /** Calls of sessions.get, rateLimits.take. */
  calls: { sessionGets: number; touches: number; takes: number };
}

function world(t: { after(fn: () => Promise<void>): void }): Counted {
  const clock = new ManualClock(NOW);
  const { provider } = localGrid(clock);
  t.after(() => provider.close());
  const calls = { sessionGets: 0, touches: 0, takes: 0 };
  const get = provider.sessions.get.bind(provider.sessions);
  provider.sessions.get = (id, options) => {
    calls.sessionGets++;
    if (options?.touch) calls.touches++;
    return get(id, options);
  };
  const take = provider.rateLimits.take.bind(provider.rateLimits);
  provider.rateLimits.take = (...args) => {
    calls.takes++;
    return take(...args);
  };
  return { provider, clock, calls };
}

const cacheOptions = { ttlMs: 1000, touchIntervalMs: MINUTE, maxEntries: 1000 };

describe('session records for decisions', () => {
  it('a hit needs no read of the session; the record is read again after the ttl', async (t) => {
    const w = world(t);
    const s = await w.provider.sessions.create({ subject: 'alice', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    const cache = new SessionCache(w.provider, w.clock, cacheOptions);
    assert.equal((await cache.lookup(s.id))?.subject, 'alice');
    const reads = w.calls.sessionGets;
    for (let i = 0; i < 50; i++) assert.equal((await cache.lookup(s.id))?.id, s.id);
    assert.equal(w.calls.sessionGets, reads, '50 hits, no read');
    w.clock.advance(1000);
    await cache.lookup(s.id);
    assert.equal(w.calls.sessionGets, reads + 1, 'read again once the ttl is over');
    // Concurrent misses share one read.
    w.clock.advance(1000);
    await Promise.all(Array.from({ length: 20 }, () => cache.lookup(s.id)));
    assert.equal(w.calls.sessionGets, reads + 2);
  });

  it('a session deleted or revoked through any engine is refused on the next lookup, cached or not', async (t) => {
    const w = world(t);
    const cache = new SessionCache(w.provider, w.clock, { ...cacheOptions, ttlMs: 60_000 });
    const deleted = await w.provider.sessions.create({ subject: 'bob', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    const revoked = await w.provider.sessions.create({ subject: 'carol', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    assert.ok(await cache.lookup(deleted.id));
    assert.ok(await cache.lookup(revoked.id));
    assert.equal(cache.size, 2);
    // The delete revokes the id on every engine before it is acknowledged (the grid's
    // `everywhere`): the cache's own revocation check sees it without waiting for the ttl.
    await w.provider.sessions.delete(deleted.id);
    await w.provider.revocations.revoke(revoked.id);
    assert.equal(await cache.lookup(deleted.id), undefined);
    assert.equal(await cache.lookup(revoked.id), undefined);
    assert.equal(cache.size, 0, 'the records are dropped');
  });

  it('a cached session past its own expiry is refused even within the ttl', async (t) => {
    const w = world(t);
    const cache = new SessionCache(w.provider, w.clock, { ...cacheOptions, ttlMs: 60_000, touchIntervalMs: 86_400_000 });
    const s = await w.provider.sessions.create({ subject: 'dave', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 2000 });
    assert.ok(await cache.lookup(s.id));
    w.clock.advance(2000);
    assert.equal(await cache.lookup(s.id), undefined, 'its maximum lifetime is over');
  });

  it('decisions on many engines write a session at most once per touch interval between them', async (t) => {
    const w = world(t);
    // Two engines' caches over one grid (both route to the same record).
    const a = new SessionCache(w.provider, w.clock, { ...cacheOptions, touchIntervalMs: 10_000 });
    const b = new SessionCache(w.provider, w.clock, { ...cacheOptions, touchIntervalMs: 10_000 });
    const s = await w.provider.sessions.create({ subject: 'erin', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    const written = new Set<number>([s.lastAccessAt]);
    // 60 s of decisions every 100 ms, alternating engines.
    for (let i = 0; i < 600; i++) {
      w.clock.advance(100);
      await (i % 2 === 0 ? a : b).lookup(s.id);
      // Let a touch in the background finish.
      await new Promise((resolve) => setImmediate(resolve));
      written.add((await w.provider.sessions.get(s.id))!.lastAccessAt);
    }
    // One write per 10 s over 60 s: 6 (and the creation).
    assert.ok(written.size - 1 <= 6, `${written.size - 1} writes`);
    assert.ok(written.size - 1 >= 5, `the session was kept alive: ${written.size - 1} writes`);
    const last = (await w.provider.sessions.get(s.id))!;
    assert.ok(NOW + 60_000 - last.lastAccessAt <= 10_000 + 1000, 'last touched within an interval (and a ttl)');
  });

  it('a session with a short idle timeout is touched at a quarter of it, so it does not expire while in use', async (t) => {
    assert.equal(touchAfter(60_000, 30 * MINUTE), 60_000);
    assert.equal(touchAfter(60_000, 8000), 2000);
    assert.equal(touchAfter(0, 8000), 0);
    const w = world(t);
    const cache = new SessionCache(w.provider, w.clock, { ...cacheOptions, ttlMs: 500 });
    const s = await w.provider.sessions.create({ subject: 'frank', idleTimeoutMs: 8000, maxLifetimeMs: 60 * MINUTE });
    for (let i = 0; i < 300; i++) {
      w.clock.advance(100);
      assert.ok(await cache.lookup(s.id), `live after ${(i + 1) * 100} ms of use`);
      await new Promise((resolve) => setImmediate(resolve));
    }
  });

  it('keeps at most maxEntries records, the oldest read dropped first; ttl 0 keeps none', async (t) => {
    const w = world(t);
    const cache = new SessionCache(w.provider, w.clock, { ...cacheOptions, maxEntries: 5 });
    const ids = [];
    for (let i = 0; i < 8; i++) ids.push((await w.provider.sessions.create({ subject: `u${i}`, idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE })).id);
    for (const id of ids) assert.ok(await cache.lookup(id));
    assert.equal(cache.size, 5);
    const reads = w.calls.sessionGets;
    await cache.lookup(ids[7]!);
    assert.equal(w.calls.sessionGets, reads, 'the newest is held');
    await cache.lookup(ids[0]!);
    assert.equal(w.calls.sessionGets, reads + 1, 'the oldest was dropped');
    const none = new SessionCache(w.provider, w.clock, { ...cacheOptions, ttlMs: 0 });
    await none.lookup(ids[1]!);
    await none.lookup(ids[1]!);
    assert.equal(none.size, 0);
    assert.equal(w.calls.sessionGets, reads + 3);
  });
});

describe('rate-limit allotments', () => {
  it('sizes an allotment at most a tenth of the bucket and the configured maximum, at least one token', () => {
    const cases: Array<[number, number, number]> = [
      // capacity, max allotment, expected
      [1_000_000_000, 100, 100],
      [1000, 100, 100],
      [500, 100, 50],
      [10, 100, 1],
      [5, 100, 1],
      [1000, 1, 1],
    ];
    for (const [capacity, max, expected] of cases) assert.equal(allotmentSize({ capacity, refillPerSecond: 1 }, max), expected, `${capacity}/${max}`);
  });

  it('sizes the next take by the rate the last one was used at: half a lease\'s worth, between 1 and the largest', () => {
    assert.equal(nextAllotment(1, 2000, 100), 1, 'one request every 2 s: one token at a time');
    assert.equal(nextAllotment(1, 400, 100), 2);
    assert.equal(nextAllotment(10, 100, 100), 50, '100/s: 50 tokens');
    assert.equal(nextAllotment(100, 10, 100), 100, 'capped');
    assert.equal(nextAllotment(1, 0, 100), 100, 'used at once');
    assert.equal(nextAllotment(0, 1000, 100), 1);
  });

  it('a busy key is served from allotments: a few takes from the shared bucket for many decisions', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 100);
    const limits = { capacity: 1_000_000, refillPerSecond: 1000 };
    const results = await Promise.all(Array.from({ length: 50 }, () => allot.take('std', 'subject', 'alice', limits)));
    assert.deepEqual(new Set(results), new Set([true]));
    const first = w.calls.takes;
    assert.ok(first <= 2, `${first} takes for 50 concurrent decisions (the first of one token, then one of 100)`);
    for (let i = 0; i < 200; i++) assert.equal(await allot.take('std', 'subject', 'alice', limits), true);
    assert.ok(w.calls.takes - first <= 3, `${w.calls.takes - first} takes for 200 more decisions`);
  });

  it('takes a busy key\'s next allotment ahead, once half of the current one is used: its decisions do not wait while the bucket lasts', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 10);
    const limits = { capacity: 1000, refillPerSecond: 0.0001 };
    // The first take is of one token, the second of the largest allotment (10).
    assert.equal(await allot.take('std', 'subject', 'busy', limits), true);
    assert.equal(await allot.take('std', 'subject', 'busy', limits), true);
    assert.equal(w.calls.takes, 2);
    let waited = 0;
    for (let i = 0; i < 40; i++) {
      const r = allot.take('std', 'subject', 'busy', limits);
      if (r instanceof Promise) waited++;
      assert.equal(await r, true);
      // The take sent ahead has its answer before the next decision (as a local grid answers).
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(waited, 0, 'every decision answered from a held allotment');
    // Never more used than taken from the bucket, and at most an allotment and a half held unused.
    const taken = 1000 - (await w.provider.rateLimits.take('std', 'access:subject:busy', limits, 10_000)).granted!;
    assert.ok(taken >= 42 && taken <= 42 + 15, `${taken} tokens taken from the bucket for 42 decisions`);
  });

  it('a key used at a steady rate takes about twice a second: its rate is measured from when each allotment began to be used, not from when it was taken ahead', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 100);
    const limits = { capacity: 1_000_000, refillPerSecond: 1000 };
    // 40 decisions a second, each answered from a held allotment (every take is ahead).
    const second = async (): Promise<number> => {
      const before = w.calls.takes;
      for (let i = 0; i < 40; i++) {
        assert.equal(await allot.take('std', 'subject', 'steady', limits), true);
        await new Promise((resolve) => setImmediate(resolve));
        w.clock.advance(25);
      }
      return w.calls.takes - before;
    };
    for (let s = 0; s < 5; s++) await second();
    let takes = 0;
    for (let s = 0; s < 10; s++) takes += await second();
    // Half a lease's worth a take (20 tokens): two a second. Measured from the take ahead (the
    // time the allotment waited as the reserve counted as time it was used), the rate came out
    // at half, each allotment at half the size, and the takes at four a second.
    assert.ok(takes >= 15 && takes <= 25, `${takes} takes in 10 s at 40 decisions a second (2 a second expected)`);
  });

  it('a key taken one token at a time never takes ahead; a reserve not used within its lease is dropped', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 10);
    const small = { capacity: 5, refillPerSecond: 0.0001 };
    for (let i = 0; i < 5; i++) assert.equal(await allot.take('login', 'subject', 'ip', small), true);
    assert.equal(w.calls.takes, 5, 'a bucket of 5: one token per take, none ahead');
    assert.equal(await allot.take('login', 'subject', 'ip', small), false);
    // A busy key with a reserve taken ahead, then silent past both leases.
    const limits = { capacity: 1000, refillPerSecond: 0.0001 };
    for (let i = 0; i < 8; i++) {
      assert.equal(await allot.take('std', 'subject', 'k', limits), true);
      await new Promise((resolve) => setImmediate(resolve));
    }
    const before = w.calls.takes;
    w.clock.advance(ALLOTMENT_LEASE_MS);
    assert.ok(allot.take('std', 'subject', 'k', limits) instanceof Promise, 'past its lease the reserve is not used: the decision takes again');
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(w.calls.takes, before + 1);
  });

  it('a key used rarely is taken one token at a time: nothing is dropped unused', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 100);
    const limits = { capacity: 1000, refillPerSecond: 0.0001 };
    for (let i = 0; i < 10; i++) {
      assert.equal(await allot.take('std', 'subject', 'rare', limits), true);
      w.clock.advance(2000);
    }
    assert.equal(w.calls.takes, 10);
    assert.equal((await w.provider.rateLimits.take('std', 'access:subject:rare', limits, 10_000)).granted, 990, 'exactly the 10 used were taken');
  });

  it('never lets more through than the shared bucket holds, across engines', async (t) => {
    const w = world(t);
    const limits = { capacity: 40, refillPerSecond: 0.0001 };
    const engines = [new RateAllotments(w.provider, w.clock, 100), new RateAllotments(w.provider, w.clock, 100), new RateAllotments(w.provider, w.clock, 100)];
    let allowed = 0;
    for (let i = 0; i < 100; i++) if (await engines[i % 3]!.take('login', 'subject', 'ip-1', limits)) allowed++;
    assert.equal(allowed, 40, 'exactly the bucket: every allotment was used up');
  });

  it('drops tokens not used within the lease: they are not carried into a later second', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 10);
    const limits = { capacity: 100, refillPerSecond: 0.0001 };
    // A burst: one token, then allotments of 10 (the largest for this bucket).
    for (let i = 0; i < 12; i++) assert.equal(await allot.take('std', 'subject', 'k', limits), true);
    assert.equal(w.calls.takes, 3);
    w.clock.advance(ALLOTMENT_LEASE_MS);
    assert.equal(await allot.take('std', 'subject', 'k', limits), true);
    assert.equal(w.calls.takes, 4, 'a new take after the lease');
    // 1 + 10 + 10 + 1 taken from the bucket (the 9 left of the third dropped): 78 left.
    const left = await w.provider.rateLimits.take('std', 'access:subject:k', limits, 1000);
    assert.equal(left.granted, 78);
  });

  it('holds at most its number of keys, across policies and kinds; a dropped key takes anew', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 100, 3);
    const limits = { capacity: 1000, refillPerSecond: 0.0001 };
    for (const subject of ['a', 'b', 'c']) assert.equal(await allot.take('std', 'subject', subject, limits), true);
    assert.equal(allot.size, 3);
    // Alone of its kind: the oldest of another kind goes.
    assert.equal(await allot.take('std', 'ip', '192.0.2.1', limits), true);
    assert.equal(allot.size, 3);
    assert.equal(await allot.take('other', 'apiKey', 'key-1', limits), true);
    assert.equal(await allot.take('std', 'subject', 'd', limits), true);
    assert.equal(allot.size, 3);
    const before = w.calls.takes;
    assert.equal(await allot.take('std', 'subject', 'a', limits), true);
    assert.equal(w.calls.takes, before + 1, 'the dropped key took from the shared bucket again');
    assert.equal(allot.size, 3);
  });

  it('a denied take denies every decision waiting on it; a state failure rejects', async (t) => {
    const w = world(t);
    const allot = new RateAllotments(w.provider, w.clock, 100);
    const limits = { capacity: 1, refillPerSecond: 0.0001 };
    assert.deepEqual(await Promise.all([allot.take('p', 'subject', 'k', limits), allot.take('p', 'subject', 'k', limits), allot.take('p', 'subject', 'k', limits)]), [true, false, false]);
    w.provider.rateLimits.take = () => Promise.reject(new Error('no majority'));
    await assert.rejects(async () => allot.take('p', 'subject', 'other', limits), /no majority/);
  });
});

describe('verified JWTs', () => {
  it('a repeated token is verified once; an expired one in the cache is refused; a new verifier starts afresh', async () => {
    let checks = 0;
    const real = jwtVerifierFor({ ...jwtSettings, clockToleranceSeconds: 5 });
    const verifier = { clockToleranceSeconds: 5, verify: (token: string, now: number) => (checks++, real.verify(token, now)) };
    const cache = new VerifiedJwtCache(100);
    const token = await jwt({ jti: 'j1' }, NOW / 1000 + 60);
    for (let i = 0; i < 10; i++) assert.equal((await cache.verify(verifier, token, NOW + i * 1000)).ok, true);
    assert.equal(checks, 1);
    // 60 s to expiry, 5 s tolerance: fine at 64.9 s, refused at 65 s.
    assert.equal((await cache.verify(verifier, token, NOW + 64_900)).ok, true);
    const expired = await cache.verify(verifier, token, NOW + 65_000);
    assert.equal(expired.ok, false);
    assert.equal(checks, 2, 'past its expiry the token is verified again, and refused');
    const other = { clockToleranceSeconds: 5, verify: (tk: string, now: number) => (checks++, real.verify(tk, now)) };
    assert.equal((await cache.verify(other, token, NOW)).ok, true);
    assert.equal(checks, 3, 'another verifier (a new configuration) verifies for itself');
  });

  it('keeps a token until its expiry plus tolerance, at most JWT_CACHE_MAX_AGE_MS; refused tokens are not kept; bounded', async () => {
    assert.equal(keptUntil({ exp: NOW / 1000 + 60 }, NOW, 5), NOW + 65_000);
    assert.equal(keptUntil({ exp: NOW / 1000 + 86_400 }, NOW, 0), NOW + JWT_CACHE_MAX_AGE_MS);
    assert.equal(keptUntil({}, NOW, 0), NOW + JWT_CACHE_MAX_AGE_MS);
    const verifier = jwtVerifierFor({ ...jwtSettings, clockToleranceSeconds: 0 });
    const cache = new VerifiedJwtCache(3);
    assert.equal((await cache.verify(verifier, 'not.a.jwt', NOW)).ok, false);
    assert.equal(cache.size, 0);
    for (let i = 0; i < 5; i++) assert.equal((await cache.verify(verifier, await jwt({ jti: `j${i}` }, NOW / 1000 + 60), NOW)).ok, true);
    assert.equal(cache.size, 3);
  });
});

describe('decisions with the caches', () => {
  const orders: ApiDefinition = { id: 'orders', pathPrefix: '/orders', credentials: ['session', 'jwt'], jwt: jwtSettings, rateLimit: { policy: 'std', by: 'subject' } };

  function run(w: Counted, caches: DecisionCaches, defs: ApiDefinition[], request: Partial<AccessRequest>) {
    const state: AccessState = { provider: w.provider, lockoutPolicy: { maxFailures: 5, windowMs: MINUTE, lockMs: MINUTE }, rateLimit: () => ({ capacity: 1_000_000, refillPerSecond: 1000 }), caches };
    const compiled = compileApis({ apis: defs }, { allowUnmatched: false, clientKeys: new Map() });
    return decide({ method: 'GET', url: '/orders/1', host: 'shop.test', sourceIp: '192.0.2.10', headers: {}, ...request }, compiled, state, w.clock);
  }

  it('keep the reasons: a deleted session is ACCESS_REVOKED at once on a hit, a revoked jti too, a replayed single-use token is refused', async (t) => {
    const w = world(t);
    const caches = decisionCaches(w.provider, w.clock, { sessionCacheTtlMs: 60_000, sessionTouchIntervalMs: MINUTE, rateLimitAllotment: 100, jwtCacheSize: 100 });
    const s = await w.provider.sessions.create({ subject: 'alice', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    const withSession = { headers: { cookie: `cohort_session=${s.id}` } };
    assert.equal((await run(w, caches, [orders], withSession)).reason, 'ACCESS_ALLOWED');
    const reads = w.calls.sessionGets;
    // The first take is of one token; the second, for a key used this fast, an allotment.
    assert.equal((await run(w, caches, [orders], withSession)).reason, 'ACCESS_ALLOWED');
    const takes = w.calls.takes;
    assert.equal((await run(w, caches, [orders], withSession)).reason, 'ACCESS_ALLOWED');
    assert.equal(w.calls.sessionGets, reads, 'the later decisions read no session');
    assert.equal(w.calls.takes, takes, 'and took their tokens from the allotment');
    await w.provider.sessions.delete(s.id);
    const deleted = await run(w, caches, [orders], withSession);
    assert.equal(deleted.reason, 'ACCESS_REVOKED');
    assert.equal(deleted.status, 401);

    const token = await jwt({ jti: 'jti-1', sid: 'sid-1' }, NOW / 1000 + 300);
    const bearer = { headers: { authorization: `Bearer ${token}` } };
    assert.equal((await run(w, caches, [orders], bearer)).reason, 'ACCESS_ALLOWED');
    assert.equal(caches.jwts.size, 1);
    await w.provider.revocations.revokeFor('jti-1', MINUTE);
    assert.equal((await run(w, caches, [orders], bearer)).reason, 'ACCESS_REVOKED', 'revocation is checked on a cached token');

    const single = { ...orders, singleUseTokens: true };
    const once = { headers: { authorization: `Bearer ${await jwt({ jti: 'jti-2' }, NOW / 1000 + 300)}` } };
    assert.equal((await run(w, caches, [single], once)).reason, 'ACCESS_ALLOWED');
    assert.equal((await run(w, caches, [single], once)).reason, 'ACCESS_TOKEN_REPLAYED', 'replay prevention runs on a cached token');

    w.clock.advance(301_000);
    const expired = await run(w, caches, [orders], { headers: { authorization: `Bearer ${await jwt({ jti: 'jti-3' }, NOW / 1000 + 300)}` } });
    assert.equal(expired.reason, 'ACCESS_INVALID_CREDENTIAL');
  });

  it('fail closed: a session read that cannot reach the state is ACCESS_UNAVAILABLE with the caches too', async (t) => {
    const w = world(t);
    const caches = decisionCaches(w.provider, w.clock, { sessionCacheTtlMs: 1000, sessionTouchIntervalMs: MINUTE, rateLimitAllotment: 100, jwtCacheSize: 100 });
    const s = await w.provider.sessions.create({ subject: 'alice', idleTimeoutMs: 30 * MINUTE, maxLifetimeMs: 60 * MINUTE });
    w.provider.sessions.get = () => Promise.reject(new Error('no majority'));
    assert.equal((await run(w, caches, [orders], { headers: { cookie: `cohort_session=${s.id}` } })).reason, 'ACCESS_UNAVAILABLE');
  });
});
