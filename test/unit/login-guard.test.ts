/**
 * The admin sign-in's budgets and lock-outs (console/login-guard.ts), on a manual clock: what
 * a flood from one address, from many addresses, and an outsider guessing a named user can and
 * cannot do to a real user.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { isCohortError } from '../../src/core/errors.js';
import { LoginGuard, type LoginGuardOptions } from '../../src/console/login-guard.js';

function guard(overrides: Partial<LoginGuardOptions> = {}): { g: LoginGuard; clock: ManualClock } {
  const clock = new ManualClock(1_000_000);
  const g = new LoginGuard({ clock, maxFailures: 5, lockoutMs: 300_000, userMaxFailures: 20, sourceBurst: 10, sourcePerMinute: 10, maxConcurrent: 4, ...overrides });
  return { g, clock };
}

function refusal(fn: () => unknown): { code: string; retryAfterSeconds: number } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    assert.ok(isCohortError(err), String(err));
    return { code: err.code, retryAfterSeconds: err.details!.retryAfterSeconds as number };
  }
}

describe('login guard', () => {
  it('gives each address a budget of checks, refused at once beyond it and refilled with time', () => {
    const { g, clock } = guard();
    for (let i = 0; i < 10; i++) g.admit(`made-up-${i}`, '10.0.0.9').failed();
    const refused = refusal(() => g.admit('made-up-10', '10.0.0.9'));
    assert.equal(refused?.code, 'AUTH_LOGIN_THROTTLED');
    assert.ok(refused.retryAfterSeconds >= 1 && refused.retryAfterSeconds <= 6, `retry in ${refused.retryAfterSeconds} s`);
    assert.equal(g.checksInFlight, 0, 'a refusal holds no check');
    // Another address is not affected.
    g.admit('admin', '10.0.0.1').succeeded();
    clock.advance(6000); // one check refilled (10 per minute)
    g.admit('made-up-11', '10.0.0.9').failed();
    assert.equal(refusal(() => g.admit('made-up-12', '10.0.0.9'))?.code, 'AUTH_LOGIN_THROTTLED');
  });

  it('gives a successful sign-in its check back, so an address that signs in often is not refused', () => {
    const { g } = guard();
    for (let i = 0; i < 50; i++) g.admit('admin', '10.0.0.1').succeeded();
    g.admit('admin', '10.0.0.1').succeeded();
  });

  it('bounds the checks in flight for the whole console, keeping one for addresses with a good history', () => {
    const { g } = guard();
    g.admit('admin', '10.0.0.1').succeeded(); // the operator's address signed in before
    const flood = Array.from({ length: 4 }, (_, i) => g.admit(`made-up-${i}`, `10.1.0.${i}`));
    assert.equal(refusal(() => g.admit('made-up-x', '10.1.0.99'))?.code, 'AUTH_LOGIN_THROTTLED', 'a fifth new address waits');
    const operator = g.admit('admin', '10.0.0.1'); // the kept slot
    assert.equal(refusal(() => g.admit('admin', '10.0.0.1'))?.code, 'AUTH_LOGIN_THROTTLED', 'only one slot is kept');
    operator.succeeded();
    for (const ticket of flood) ticket.failed();
    assert.equal(g.checksInFlight, 0);
    g.admit('made-up-y', '10.1.0.99').failed();
  });

  it('keeps one of the checks for addresses without a recent failure: a flood\'s addresses, once they failed, cannot take it', () => {
    const { g, clock } = guard({ maxConcurrent: 2 });
    // A flood from many addresses: each fails its first check...
    for (let i = 0; i < 50; i++) g.admit(`made-up-${i}`, `10.1.0.${i}`).failed();
    // ...and from then on those addresses share one check in flight between them.
    const flood = g.admit('made-up-a', '10.1.0.1');
    assert.equal(refusal(() => g.admit('made-up-b', '10.1.0.2'))?.code, 'AUTH_LOGIN_THROTTLED', 'an address that failed recently does not get the kept check');
    // An operator from an address never seen (no failure, no success) gets it at once.
    const fresh = g.admit('admin', '192.0.2.50');
    assert.equal(refusal(() => g.admit('someone', '192.0.2.51'))?.code, 'AUTH_LOGIN_THROTTLED', 'the whole budget is in use');
    fresh.succeeded();
    flood.failed();
    // The mark lasts login_lockout: afterwards those addresses are like any other again.
    clock.advance(300_000);
    const again = [g.admit('made-up-c', '10.1.0.3'), g.admit('made-up-d', '10.1.0.4')];
    for (const t of again) t.failed();
    // With a single check in all, nothing is kept: an address that failed still gets it.
    const { g: one } = guard({ maxConcurrent: 1 });
    one.admit('made-up', '10.1.0.9').failed();
    one.admit('made-up', '10.1.0.9').failed();
  });

  it('locks a user out for the address that failed, not for the user\'s own address', () => {
    const { g, clock } = guard();
    for (let i = 0; i < 5; i++) g.admit('admin', '203.0.113.7').failed();
    const locked = refusal(() => g.admit('admin', '203.0.113.7'));
    assert.equal(locked?.code, 'AUTH_LOCKED_OUT');
    assert.equal(locked.retryAfterSeconds, 300);
    g.admit('admin', '10.0.0.1').succeeded(); // the real admin, from another address
    clock.advance(300_001);
    g.admit('admin', '203.0.113.7').failed(); // the lock-out ends
  });

  it('locks a user guessed at from many addresses, except for addresses it signed in from before', () => {
    const { g } = guard();
    g.admit('admin', '10.0.0.1').succeeded();
    for (let i = 0; i < 20; i++) g.admit('admin', `198.51.100.${i}`).failed();
    assert.equal(refusal(() => g.admit('admin', '198.51.100.200'))?.code, 'AUTH_LOCKED_OUT', 'a new address is refused');
    g.admit('admin', '10.0.0.1').succeeded(); // its own address still signs in
    g.admit('someone-else', '198.51.100.200').failed(); // other users are not locked
  });

  it('counts checks in flight against the lock-out, so parallel guesses get no more than the limit', () => {
    const { g } = guard({ maxConcurrent: 10 });
    const tickets = Array.from({ length: 5 }, () => g.admit('admin', '203.0.113.7'));
    assert.equal(refusal(() => g.admit('admin', '203.0.113.7'))?.code, 'AUTH_LOCKED_OUT');
    for (const t of tickets) t.failed();
    assert.equal(refusal(() => g.admit('admin', '203.0.113.7'))?.code, 'AUTH_LOCKED_OUT');
  });

  it('settles a ticket once, whatever the caller does', () => {
    const { g } = guard({ maxConcurrent: 1 });
    const t = g.admit('admin', '10.0.0.1');
    t.failed();
    t.failed();
    t.succeeded();
    assert.equal(g.checksInFlight, 0);
  });
});
