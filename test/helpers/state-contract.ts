/**
 * The contract every state provider passes: the same tests run against the
 * grid and against Redis, so the runtime API can use either without knowing which.
 *
 * A harness gives the provider, the provider's notion of "now", and a way to let time pass
 * (a manual clock for the grid, real waiting for Redis, whose clock is its own).
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import type { RedisProvider } from '../../src/state/redis/redis-provider.js';
import type { SessionCursor, StateProvider } from '../../src/state/services.js';

export interface StateHarness {
  provider: StateProvider;
  now(): number;
  /** Lets `ms` pass for the provider. */
  advance(ms: number): Promise<void>;
  /** When the revocation of `id` expires, as the provider stores it (undefined: not revoked). */
  revocationExpiresAt(id: string): Promise<number | undefined>;
  close(): Promise<void>;
  /**
   * Real-time harnesses (a Redis): the expiry tests' durations are multiplied by this (default
   * 1), so that a machine busy with other tests, which delays each step by tens or hundreds of
   * milliseconds, does not make a session or a revocation outlive its margin.
   */
  scale?: number;
}

/**
 * A harness on real time for a Redis provider: `admin` reads a revocation key's own expiry
 * time instead of waiting for it; `close` removes what the test left.
 */
export function redisHarness(provider: RedisProvider, admin: { pexpiretime(key: string): Promise<number> }, close: () => Promise<void>): StateHarness {
  return {
    provider,
    now: () => Date.now(),
    // Real time on a machine busy with other tests: the expiry tests get three times their margins.
    scale: 3,
    advance: (ms) => new Promise((r) => setTimeout(r, ms)),
    revocationExpiresAt: async (id) => {
      const at = await admin.pexpiretime(provider.keys.revocation(id));
      return at > 0 ? at : undefined;
    },
    close,
  };
}

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** `open` returns undefined after skipping `t` when the provider's service is not there. */
export function stateContract(name: string, open: (t: TestContext) => Promise<StateHarness | undefined>): void {
  const once = async (h: StateHarness, fn: (h: StateHarness) => Promise<void>): Promise<void> => {
    try {
      await fn(h);
    } finally {
      await h.close();
    }
  };
  // On real time (a harness with `scale`), a machine busy enough to hold one step back for
  // longer than its margin makes an expiry test fail without a fault in the provider: such a
  // test runs once more, on a fresh harness, with four times the margins. A provider that is
  // wrong fails both runs; a simulated clock never gets the second run.
  const withHarness = (fn: (h: StateHarness) => Promise<void>) => async (t: TestContext) => {
    const h = await open(t);
    if (!h) return;
    try {
      await once(h, fn);
    } catch (err) {
      if (h.scale === undefined) throw err;
      t.diagnostic(`failed on real time with ${h.scale}x margins (${(err as Error).message.split('\n')[0]}); run again with ${h.scale * 4}x`);
      const again = await open(t);
      if (!again) throw err;
      await once({ ...again, scale: h.scale * 4 }, fn);
    }
  };

  describe(`state contract: ${name}`, () => {
    describe('sessions', () => {
      it('creates, reads and lists sessions, attributes intact', withHarness(async ({ provider }) => {
        const attributes = { roles: ['admin', 'ops'], name: 'Zoë', nested: { empty: {}, list: [] as unknown[] }, n: 1.5 };
        const a = await provider.sessions.create({ subject: 'alice', attributes, idleTimeoutMs: 10 * MINUTE, maxLifetimeMs: 60 * MINUTE });
        assert.equal(a.subject, 'alice');
        assert.deepEqual(a.attributes, attributes);
        assert.equal(a.expiresAt, a.createdAt + 10 * MINUTE);
        const b = await provider.sessions.create({ subject: 'alice', idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE });
        await provider.sessions.create({ subject: 'bob', idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE });
        assert.notEqual(a.id, b.id);
        assert.deepEqual(await provider.sessions.get(a.id), a);
        assert.deepEqual(b.attributes, {});
        assert.deepEqual((await provider.sessions.listBySubject('alice')).map((s) => s.id).sort(), [a.id, b.id].sort());
        assert.deepEqual(await provider.sessions.listBySubject('nobody'), []);
        assert.equal(await provider.sessions.get('no-such-session'), undefined);
      }));

      it('expires after the idle timeout unless touched, and never outlives its maximum lifetime', withHarness(async ({ provider, advance, scale = 1 }) => {
        const ms = (n: number): number => n * scale;
        const idle = await provider.sessions.create({ subject: 'carol', idleTimeoutMs: ms(400), maxLifetimeMs: ms(900) });
        await advance(ms(250));
        const touched = await provider.sessions.get(idle.id, { touch: true });
        assert.ok(touched, 'still live after 250 ms');
        assert.ok(touched.expiresAt > idle.expiresAt, 'touch extends the idle time');
        await advance(ms(250));
        assert.ok(await provider.sessions.get(idle.id), 'live: touched 250 ms ago, idle timeout 400 ms');
        await provider.sessions.get(idle.id, { touch: true });
        await advance(ms(300));
        await provider.sessions.get(idle.id, { touch: true });
        await advance(ms(200));
        assert.equal(await provider.sessions.get(idle.id), undefined, 'past its 900 ms maximum lifetime despite touches');
        const untouched = await provider.sessions.create({ subject: 'carol', idleTimeoutMs: ms(200), maxLifetimeMs: MINUTE });
        await advance(ms(300));
        assert.equal(await provider.sessions.get(untouched.id), undefined);
        assert.deepEqual(await provider.sessions.listBySubject('carol'), []);
      }));

      it('a throttled touch (touchAfterMs) writes only a session last touched at least that long ago', withHarness(async ({ provider, advance }) => {
        const s = await provider.sessions.create({ subject: 'erin', idleTimeoutMs: 10 * MINUTE, maxLifetimeMs: 60 * MINUTE });
        await advance(100);
        const early = await provider.sessions.get(s.id, { touch: true, touchAfterMs: 1500 });
        assert.equal(early?.lastAccessAt, s.lastAccessAt, 'touched 100 ms ago, interval 1500 ms: read, not written');
        assert.equal((await provider.sessions.get(s.id))?.expiresAt, s.expiresAt);
        await advance(1500);
        const due = await provider.sessions.get(s.id, { touch: true, touchAfterMs: 1500 });
        assert.ok(due && due.lastAccessAt >= s.lastAccessAt + 1500, 'touched 1600 ms ago: written');
        assert.ok((await provider.sessions.get(s.id))!.expiresAt > s.expiresAt, 'the write extended the idle time');
      }));

      it('delete logs out: the session is gone and its id revoked', withHarness(async ({ provider }) => {
        const s = await provider.sessions.create({ subject: 'dave', idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE });
        assert.equal(await provider.sessions.delete(s.id), true);
        assert.equal(await provider.sessions.get(s.id), undefined);
        assert.equal(await provider.revocations.isRevoked(s.id), true);
        assert.deepEqual(await provider.sessions.listBySubject('dave'), []);
        assert.equal(await provider.sessions.delete(s.id), false);
      }));

      it('logout revokes the id until the session\'s maximum lifetime ends (30 days: past the 24 h mark); an unknown id for the time given', withHarness(async ({ provider, now, revocationExpiresAt }) => {
        const s = await provider.sessions.create({ subject: 'dora', idleTimeoutMs: MINUTE, maxLifetimeMs: 30 * DAY });
        assert.equal(await provider.sessions.delete(s.id), true);
        assert.equal(await revocationExpiresAt(s.id), s.createdAt + 30 * DAY);
        const before = now();
        assert.equal(await provider.sessions.delete('no-such-session', { unknownRevocationMs: 40 * DAY }), false);
        const unknown = await revocationExpiresAt('no-such-session');
        assert.ok(unknown !== undefined && unknown >= before + 40 * DAY && unknown <= now() + 40 * DAY, `revoked until ${unknown}`);
      }));

      it('pages a subject\'s sessions oldest first, ties by id, every one once, with a cursor to the next page', withHarness(async ({ provider, advance }) => {
        const ids: string[] = [];
        for (let i = 0; i < 7; i++) {
          ids.push((await provider.sessions.create({ subject: 'paula', idleTimeoutMs: 10 * MINUTE, maxLifetimeMs: 10 * MINUTE })).id);
          if (i === 2) await advance(5);
        }
        await provider.sessions.create({ subject: 'paul', idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE });
        const seen: string[] = [];
        let after: SessionCursor | undefined;
        let pages = 0;
        do {
          const page = await provider.sessions.pageBySubject('paula', { limit: 3, ...(after ? { after } : {}) });
          seen.push(...page.sessions.map((s) => s.id));
          after = page.next;
          pages++;
        } while (after !== undefined);
        assert.equal(pages, 3);
        assert.deepEqual([...seen].sort(), [...ids].sort());
        const listed = await provider.sessions.listBySubject('paula');
        assert.deepEqual(seen, listed.map((s) => s.id), 'the same order as the whole listing');
        const order = listed.map((s) => [s.createdAt, s.id] as const);
        assert.deepEqual(order, [...order].sort((a, b) => a[0] - b[0] || (a[1] < b[1] ? -1 : 1)), 'oldest first, ties by id');

        await provider.revocations.revoke(seen[0]!);
        await provider.sessions.delete(seen[1]!);
        const first = await provider.sessions.pageBySubject('paula', { limit: 3 });
        // The page looks at seen[0] (revoked: left out), seen[2] and seen[3] (seen[1] is gone).
        assert.deepEqual(first.sessions.map((s) => s.id), [seen[2], seen[3]], 'revoked and deleted sessions are left out');
        assert.ok(first.next, 'and the walk goes on');
        assert.deepEqual(await provider.sessions.pageBySubject('nobody', { limit: 3 }), { sessions: [] });
        const all = await provider.sessions.pageBySubject('paula', { limit: 10 });
        assert.equal(all.sessions.length, 5);
        assert.equal(all.next, undefined);
      }));

      it('ends a page early once it holds about maxBytes of sessions (at least one each)', withHarness(async ({ provider }) => {
        const attributes = { blob: 'x'.repeat(1000) };
        const ids: string[] = [];
        for (let i = 0; i < 6; i++) ids.push((await provider.sessions.create({ subject: 'bulky', attributes, idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE })).id);
        const first = await provider.sessions.pageBySubject('bulky', { limit: 100, maxBytes: 2500 });
        assert.ok(first.sessions.length >= 2 && first.sessions.length <= 4, `${first.sessions.length} sessions of about 1 KB in a 2.5 KB page`);
        assert.ok(first.next);
        const one = await provider.sessions.pageBySubject('bulky', { limit: 100, maxBytes: 1 });
        assert.equal(one.sessions.length, 1, 'a page holds at least one session');
        const seen = [...first.sessions];
        let after: SessionCursor | undefined = first.next;
        while (after) {
          const page = await provider.sessions.pageBySubject('bulky', { limit: 100, maxBytes: 2500, after });
          seen.push(...page.sessions);
          after = page.next;
        }
        assert.deepEqual(seen.map((s) => s.id).sort(), [...ids].sort());
      }));

      it('a revoked session is not found, nor listed', withHarness(async ({ provider }) => {
        const s = await provider.sessions.create({ subject: 'erin', idleTimeoutMs: MINUTE, maxLifetimeMs: MINUTE });
        await provider.revocations.revoke(s.id);
        assert.equal(await provider.sessions.get(s.id), undefined);
        assert.deepEqual(await provider.sessions.listBySubject('erin'), []);
      }));
    });

    describe('revocation', () => {
      it('revokes until the given expiry, and a later expiry wins', withHarness(async ({ provider, now, advance, scale = 1 }) => {
        const ms = (n: number): number => n * scale;
        assert.equal(await provider.revocations.isRevoked('r1'), false);
        await provider.revocations.revoke('r1', now() + ms(300));
        assert.equal(await provider.revocations.isRevoked('r1'), true);
        await provider.revocations.revoke('r1', now() + ms(100)); // earlier: ignored
        await advance(ms(200));
        assert.equal(await provider.revocations.isRevoked('r1'), true);
        await advance(ms(200));
        assert.equal(await provider.revocations.isRevoked('r1'), false);
      }));

      it('revokes for a time to live from the provider\'s own clock', withHarness(async ({ provider, now, advance, revocationExpiresAt, scale = 1 }) => {
        const ms = (n: number): number => n * scale;
        const before = now();
        await provider.revocations.revokeFor('r2', ms(300));
        const at = await revocationExpiresAt('r2');
        assert.ok(at !== undefined && at >= before + ms(300) && at <= now() + ms(300), `until ${at}`);
        await provider.revocations.revokeFor('r2', ms(100)); // earlier: ignored
        await advance(ms(200));
        assert.equal(await provider.revocations.isRevoked('r2'), true);
        await advance(ms(200));
        assert.equal(await provider.revocations.isRevoked('r2'), false);
      }));
    });

    describe('account locking', () => {
      const policy = { maxFailures: 3, windowMs: 10 * MINUTE, lockMs: 5 * MINUTE };

      it('locks after maxFailures within the window, reports the wait, and a success resets it', withHarness(async ({ provider }) => {
        assert.deepEqual(await provider.lockout.recordFailure('u1', policy), { locked: false, failures: 1, retryAfterMs: 0 });
        await provider.lockout.recordFailure('u1', policy);
        const locked = await provider.lockout.recordFailure('u1', policy);
        assert.equal(locked.locked, true);
        assert.equal(locked.failures, 3);
        assert.ok(locked.retryAfterMs > 5 * MINUTE - 1000 && locked.retryAfterMs <= 5 * MINUTE, `retry after ${locked.retryAfterMs}`);
        assert.equal((await provider.lockout.status('u1', policy)).locked, true);
        await provider.lockout.reset('u1');
        assert.deepEqual(await provider.lockout.status('u1', policy), { locked: false, failures: 0, retryAfterMs: 0 });
      }));

      it('forgets failures older than the window and unlocks when the lock ends', withHarness(async ({ provider, advance }) => {
        const short = { maxFailures: 2, windowMs: 300, lockMs: 300 };
        await provider.lockout.recordFailure('u2', short);
        await advance(400);
        assert.equal((await provider.lockout.recordFailure('u2', short)).locked, false, 'the first failure fell out of the window');
        assert.equal((await provider.lockout.recordFailure('u2', short)).locked, true);
        await advance(400);
        assert.equal((await provider.lockout.status('u2', short)).locked, false);
      }));

      it('loses no failure under concurrency', withHarness(async ({ provider }) => {
        const wide = { maxFailures: 1000, windowMs: 10 * MINUTE, lockMs: MINUTE };
        await Promise.all(Array.from({ length: 50 }, () => provider.lockout.recordFailure('u3', wide)));
        assert.equal((await provider.lockout.status('u3', wide)).failures, 50);
      }));
    });

    describe('replay prevention', () => {
      it('accepts an id once, even when asked many times at the same moment, until its TTL ends', withHarness(async ({ provider, advance }) => {
        assert.equal(await provider.replay.checkAndInsert('a1', 300), true);
        assert.equal(await provider.replay.checkAndInsert('a1', 300), false);
        const verdicts = await Promise.all(Array.from({ length: 20 }, () => provider.replay.checkAndInsert('a2', MINUTE)));
        assert.equal(verdicts.filter(Boolean).length, 1);
        await advance(400);
        assert.equal(await provider.replay.checkAndInsert('a1', 300), true, 'a new id once the old entry expired');
      }));
    });

    describe('artifacts', () => {
      it('resolves a payload exactly once, even under concurrent resolves, and not after its TTL', withHarness(async ({ provider, advance }) => {
        await provider.artifacts.put('art1', 'payload-1', MINUTE);
        assert.equal(await provider.artifacts.resolve('art1'), 'payload-1');
        assert.equal(await provider.artifacts.resolve('art1'), undefined);
        await provider.artifacts.put('art2', 'payload-2', MINUTE);
        const got = await Promise.all(Array.from({ length: 10 }, () => provider.artifacts.resolve('art2')));
        assert.deepEqual(got.filter((g) => g !== undefined), ['payload-2']);
        await provider.artifacts.put('art3', 'payload-3', 200);
        await advance(300);
        assert.equal(await provider.artifacts.resolve('art3'), undefined);
      }));
    });

    for (const service of ['requestState', 'tokens'] as const) {
      describe(service === 'requestState' ? 'inter-request state' : 'token cache', () => {
        it('puts, gets and deletes JSON values with a TTL', withHarness(async ({ provider, advance }) => {
          const values = provider[service];
          await values.put('k1', { a: [1, 'two', null], b: true }, MINUTE);
          assert.deepEqual(await values.get('k1'), { a: [1, 'two', null], b: true });
          assert.equal(await values.delete('k1'), true);
          assert.equal(await values.get('k1'), undefined);
          assert.equal(await values.delete('k1'), false);
          await values.put('k2', 'short', 200);
          await advance(300);
          assert.equal(await values.get('k2'), undefined);
        }));
      });
    }

    describe('rate limits', () => {
      it('admits the bucket size, then refills at the rate; concurrent takes never over-admit', withHarness(async ({ provider, advance }) => {
        const limits = { capacity: 5, refillPerSecond: 10 };
        const first = [];
        for (let i = 0; i < 6; i++) first.push(await provider.rateLimits.take('login', 'ip-1', limits));
        assert.deepEqual(first.map((r) => r.allowed), [true, true, true, true, true, false]);
        assert.deepEqual(first.map((r) => r.remaining), [4, 3, 2, 1, 0, 0]);
        await advance(250);
        assert.equal((await provider.rateLimits.take('login', 'ip-1', limits)).allowed, true, 'refilled after 250 ms at 10/s');
        assert.equal((await provider.rateLimits.take('other-policy', 'ip-1', limits)).allowed, true, 'buckets are per policy');
        const burst = await Promise.all(Array.from({ length: 30 }, () => provider.rateLimits.take('api', 'ip-2', { capacity: 10, refillPerSecond: 0.001 })));
        assert.equal(burst.filter((r) => r.allowed).length, 10);
      }));

      it('takes up to `count` tokens at once: as many as the bucket holds, never more', withHarness(async ({ provider }) => {
        const limits = { capacity: 10, refillPerSecond: 0.001 };
        const a = await provider.rateLimits.take('batch', 'k', limits, 4);
        assert.deepEqual([a.allowed, a.granted, a.remaining], [true, 4, 6]);
        const b = await provider.rateLimits.take('batch', 'k', limits, 8);
        assert.deepEqual([b.allowed, b.granted, b.remaining], [true, 6, 0]);
        const c = await provider.rateLimits.take('batch', 'k', limits, 8);
        assert.deepEqual([c.allowed, c.granted], [false, 0]);
        const one = await provider.rateLimits.take('batch', 'other', limits);
        assert.deepEqual([one.allowed, one.granted, one.remaining], [true, 1, 9]);
      }));
    });
  });
}
