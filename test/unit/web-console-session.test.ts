/**
 * The pure parts behind the web console: the session cookie and CSRF value
 * (console/admin-session.ts), the shared cluster-snapshot poller behind GET /admin/v1/events
 * (console/cluster-events.ts, on a ManualClock), and the console lines `cohort up` prints first.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { clearedSessionCookie, cookieValue, csrfTokenFor, SESSION_COOKIE, sessionCookie } from '../../src/console/admin-session.js';
import { ClusterEvents, type ClusterEventSubscriber } from '../../src/console/cluster-events.js';
import { consoleLines } from '../../src/cli/commands/up.js';

describe('admin session cookie and CSRF value', () => {
  it('reads one cookie among several, ignoring empty values and look-alike names', () => {
    assert.equal(cookieValue('a=1; cohort_admin=tok; b=2', SESSION_COOKIE), 'tok');
    assert.equal(cookieValue('xcohort_admin=bad; cohort_admin_x=bad', SESSION_COOKIE), undefined);
    assert.equal(cookieValue('cohort_admin=', SESSION_COOKIE), undefined);
    assert.equal(cookieValue(undefined, SESSION_COOKIE), undefined);
  });

  it('derives a CSRF value per token that does not reveal it', () => {
    const a = csrfTokenFor('token-a');
    assert.equal(a, csrfTokenFor('token-a'));
    assert.notEqual(a, csrfTokenFor('token-b'));
    assert.ok(!a.includes('token-a'));
    assert.match(a, /^[A-Za-z0-9_-]{43}$/);
  });

  it('sets the cookie HttpOnly, SameSite=Strict, for the API path only; Secure on TLS', () => {
    const plain = sessionCookie('tok', false);
    assert.match(plain, /^cohort_admin=tok; /);
    for (const part of ['HttpOnly', 'SameSite=Strict', 'Path=/admin/v1']) assert.ok(plain.includes(part), part);
    assert.ok(!plain.includes('Secure'));
    assert.ok(sessionCookie('tok', true).endsWith('; Secure'));
    assert.match(clearedSessionCookie(false), /^cohort_admin=; .*Max-Age=0/);
  });
});

function recorder(valid = { ok: true }): ClusterEventSubscriber & { snapshots: string[]; heartbeats: number; endedWith?: string } {
  const r = {
    snapshots: [] as string[],
    heartbeats: 0,
    endedWith: undefined as string | undefined,
    snapshot: (json: string) => r.snapshots.push(json),
    heartbeat: () => r.heartbeats++,
    stillValid: () => valid.ok,
    ended: (reason: string) => (r.endedWith = reason),
  };
  return r;
}

/** Lets the hub's awaited view() settle. */
const settle = () => new Promise((r) => setImmediate(r));

describe('cluster events (one poller shared by every open stream)', () => {
  it('sends the view at once, then only when it changes, within one interval; heartbeats; no timer without subscribers', async () => {
    const clock = new ManualClock();
    let state = { nodes: ['a'] };
    let views = 0;
    const hub = new ClusterEvents({ clock, intervalMs: 250, heartbeatMs: 1000, view: async () => (views++, state) });
    assert.equal(clock.pendingCount, 0);
    const a = recorder();
    const stop = hub.subscribe(a);
    await settle();
    assert.deepEqual(a.snapshots, ['{"nodes":["a"]}']);
    for (let i = 0; i < 3; i++) {
      clock.advance(250);
      await settle();
    }
    assert.equal(a.snapshots.length, 1, 'an unchanged view is not sent again');
    state = { nodes: ['a', 'b'] };
    clock.advance(250);
    await settle();
    assert.deepEqual(a.snapshots.at(-1), '{"nodes":["a","b"]}');

    // A second subscriber gets the last snapshot at once and shares the poller.
    const b = recorder();
    const stopB = hub.subscribe(b);
    assert.deepEqual(b.snapshots, ['{"nodes":["a","b"]}']);
    const before = views;
    clock.advance(250);
    await settle();
    assert.equal(views, before + 1, 'one view per interval, whatever the number of subscribers');
    assert.ok(a.heartbeats >= 1, 'a heartbeat after heartbeatMs');

    stop();
    stopB();
    clock.advance(250);
    await settle();
    assert.equal(clock.pendingCount, 0, 'no timer while nobody listens');
  });

  it('ends the stream of a session that is no longer valid, and every stream when closed', async () => {
    const clock = new ManualClock();
    const hub = new ClusterEvents({ clock, intervalMs: 250, view: async () => ({}) });
    const valid = { ok: true };
    const expiring = recorder(valid);
    const other = recorder();
    hub.subscribe(expiring);
    hub.subscribe(other);
    await settle();
    valid.ok = false;
    clock.advance(250);
    await settle();
    assert.equal(expiring.endedWith, 'signed-out');
    assert.equal(other.endedWith, undefined);
    hub.close();
    assert.equal(other.endedWith, 'closing');
    assert.equal(clock.pendingCount, 0);
  });

  it('skips a view that failed and tries again at the next interval', async () => {
    const clock = new ManualClock();
    let fail = true;
    const hub = new ClusterEvents({ clock, intervalMs: 250, view: async () => {
      if (fail) throw new Error('busy');
      return { ok: 1 };
    } });
    const a = recorder();
    hub.subscribe(a);
    await settle();
    assert.deepEqual(a.snapshots, []);
    fail = false;
    clock.advance(250);
    await settle();
    assert.deepEqual(a.snapshots, ['{"ok":1}']);
    hub.close();
  });
});

describe('cohort up summary', () => {
  it('names the web console and its sign-in first', () => {
    assert.deepEqual(consoleLines({ adminUrl: 'http://127.0.0.1:9443', adminUser: 'admin', adminPassword: 'pw' }), [
      '  web console  http://127.0.0.1:9443/',
      '  sign in as   admin / pw',
    ]);
  });
});
