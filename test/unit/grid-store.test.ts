/** GridStore details the service contract does not reach: the revocation cap, sweeping, dropping a partition. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { randomToken } from '../../src/core/ids.js';
import { ManualClock } from '../../src/core/clock.js';
import { EVERYWHERE } from '../../src/state/grid/grid-provider.js';
import { EMPTY_DIGEST, GridStore } from '../../src/state/grid/grid-store.js';
import { applyOperation } from '../../src/state/grid/operations.js';
import { parseRecordLine, recordLine } from '../../src/state/grid/record-lines.js';
import type { Session } from '../../src/state/services.js';

const HOUR = 3_600_000;

describe('grid store: revocation cap', () => {
  it('evicts the oldest revocations past the cap, counts them, and refuses evicted copies from other engines', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1', 1000);
    for (let i = 0; i < 1500; i++) {
      store.set('revocation', `r-${i}`, true, clock.now() + HOUR, EVERYWHERE);
      clock.advance(1);
    }
    assert.equal(store.size('revocation'), 1000);
    assert.equal(store.revocationsEvicted, 500);
    assert.equal(store.has('revocation', 'r-499'), false, 'the oldest went first');
    assert.equal(store.has('revocation', 'r-500'), true);
    assert.equal(store.has('revocation', 'r-1499'), true);

    // Another engine that still holds r-10 offers it in a sync: refused, it was evicted here.
    const other = new GridStore(clock, 'engine-2');
    other.set('revocation', 'r-10', true, clock.now() + HOUR, EVERYWHERE);
    const old = { ns: 'revocation' as const, key: 'r-10', record: { ...other.record('revocation', 'r-10')!, version: 1 } };
    assert.equal(store.merge(old), false);
    assert.equal(store.has('revocation', 'r-10'), false);
    // A newer one is taken, and the oldest held makes room for it.
    assert.equal(store.merge({ ns: 'revocation', key: 'r-new', record: other.record('revocation', 'r-10')! }), true);
    assert.equal(store.size('revocation'), 1000);
    assert.equal(store.has('revocation', 'r-500'), false);
    assert.equal(store.revocationsEvicted, 501);
    // Other namespaces have no cap.
    for (let i = 0; i < 1500; i++) store.set('state', `k-${i}`, i, clock.now() + HOUR, 1);
    assert.equal(store.size('state'), 1500);
  });
});

describe('grid store: sweeping everything at once', () => {
  it('removes every expired record in one call, even behind a slice of live ones', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    for (let i = 0; i < 12_000; i++) store.set('state', `live-${i}`, i, clock.now() + HOUR, 1);
    for (let i = 0; i < 3_000; i++) store.set('state', `short-${i}`, i, clock.now() + 1000, 1);
    clock.advance(2000);
    assert.equal(store.sweepAll(), 3_000);
    assert.equal(store.size('state'), 12_000);
  });
});

describe('grid store: partition digests', () => {
  it('follow every change, also when asked between two (the text is kept until the next change)', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    assert.equal(store.digest(3), EMPTY_DIGEST);
    store.set('state', 'a', 1, clock.now() + HOUR, 3);
    const one = store.digest(3);
    assert.equal(store.digest(3), one, 'asked twice, nothing changed');
    store.set('state', 'b', 2, clock.now() + HOUR, 3);
    const two = store.digest(3);
    assert.notEqual(two, one);
    store.set('state', 'b', 3, clock.now() + HOUR, 3);
    assert.notEqual(store.digest(3), two, 'a new version of a record');
    store.delete('state', 'a', 3);
    assert.match(store.digest(3), /^2:/, 'a tombstone counts');
    const other = new GridStore(clock, 'engine-2');
    for (const [ns, key, record] of store.records(3)) other.merge({ ns, key, record: { ...record } });
    assert.equal(other.digest(3), store.digest(3), 'the same records, the same digest');
  });
});

describe('grid store: dropping a partition', () => {
  it('removes every record of the partition (tombstones and the subject index included) and nothing of the others', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    store.set('session', 's-1', { subject: 'alice' }, clock.now() + HOUR, 7, 'alice');
    store.set('state', 'k-1', 'v', clock.now() + HOUR, 7);
    store.delete('state', 'k-2', 7);
    store.set('session', 's-2', { subject: 'bob' }, clock.now() + HOUR, 8, 'bob');
    const eightBefore = store.digest(8);

    assert.equal(store.dropPartition(7), 3);
    assert.equal(store.recordCount(7), 0);
    assert.equal(store.digest(7), EMPTY_DIGEST);
    assert.equal(store.has('session', 's-1'), false);
    assert.deepEqual(store.keysByIndex('session', 'alice'), []);
    assert.ok(!store.partitions().includes(7));
    assert.equal(store.digest(8), eightBefore, 'partition 8 untouched');
    assert.deepEqual(store.keysByIndex('session', 'bob'), ['s-2']);
    // No tombstone was left: a copy arriving later is taken again (the engine may become a replica again).
    assert.equal(store.merge({ ns: 'state', key: 'k-1', record: { json: '"v"', expiresAt: clock.now() + HOUR, version: 1, partition: 7 } }), true);
    assert.equal(store.dropPartition(99), 0);
  });
});

describe('grid store: the subject index', () => {
  it('files a record under its secondary key in its own partition: asked with a partition, only that partition\'s keys come back; without one, every partition\'s', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    store.set('session', 's-7a', { n: 1 }, clock.now() + HOUR, 7, 'alice');
    store.set('session', 's-7b', { n: 2 }, clock.now() + HOUR, 7, 'alice');
    store.set('session', 's-8', { n: 3 }, clock.now() + HOUR, 8, 'alice');
    store.set('session', 's-7c', { n: 4 }, clock.now() + HOUR, 7, 'bob');
    assert.deepEqual(store.keysByIndex('session', 'alice', 7).sort(), ['s-7a', 's-7b']);
    assert.deepEqual(store.keysByIndex('session', 'alice', 8), ['s-8']);
    assert.deepEqual(store.keysByIndex('session', 'alice', 9), []);
    assert.deepEqual(store.keysByIndex('session', 'alice').sort(), ['s-7a', 's-7b', 's-8']);
    // A record moved to another partition (written again there) is filed there only.
    store.set('session', 's-7b', { n: 2 }, clock.now() + HOUR, 8, 'alice');
    assert.deepEqual(store.keysByIndex('session', 'alice', 7), ['s-7a']);
    assert.deepEqual(store.keysByIndex('session', 'alice', 8).sort(), ['s-7b', 's-8']);
    // Deleted (a tombstone) or dropped with its partition: filed nowhere.
    store.delete('session', 's-7a', 7);
    assert.deepEqual(store.keysByIndex('session', 'alice', 7), []);
    store.dropPartition(8);
    assert.deepEqual(store.keysByIndex('session', 'alice'), []);
    assert.deepEqual(store.keysByIndex('session', 'bob', 7), ['s-7c']);
  });

  it('lists a subject\'s sessions from the partition the operation was routed to', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    const session = (id: string): Session => ({ id, subject: 'carol', attributes: {}, createdAt: clock.now(), lastAccessAt: clock.now(), idleTimeoutMs: HOUR, maxLifetimeMs: HOUR, expiresAt: clock.now() + HOUR });
    applyOperation(store, { t: 'session.put', session: session('3.aaa') }, clock.now(), 3);
    applyOperation(store, { t: 'session.put', session: session('4.bbb') }, clock.now(), 4);
    const listed = applyOperation(store, { t: 'session.list', subject: 'carol' }, clock.now(), 3) as Session[];
    assert.deepEqual(listed.map((s) => s.id), ['3.aaa']);
    const page = applyOperation(store, { t: 'session.page', subject: 'carol', limit: 10, maxBytes: 1 << 20 }, clock.now(), 4) as { sessions: Session[] };
    assert.deepEqual(page.sessions.map((s) => s.id), ['4.bbb']);
  });
});

describe('grid store: sessions', () => {
  const session = (clock: ManualClock, id: string, subject: string): Session => ({
    id, subject, attributes: { role: 'admin', n: 1 }, createdAt: clock.now(), lastAccessAt: clock.now(), idleTimeoutMs: HOUR, maxLifetimeMs: 2 * HOUR, expiresAt: clock.now() + HOUR,
  });

  it('stores a session without its id, subject and expiry (the record holds them) and gives it back whole, touched or not, here and on an engine it was copied to', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    const s = session(clock, '7.abc', 'alice');
    applyOperation(store, { t: 'session.put', session: s }, clock.now(), 7);
    const record = store.record('session', s.id)!;
    assert.deepEqual(JSON.parse(record.json), [s.attributes, s.createdAt, s.lastAccessAt, s.idleTimeoutMs, s.maxLifetimeMs]);
    assert.deepEqual(applyOperation(store, { t: 'session.get', id: s.id, touch: false }, clock.now(), 7), s);

    clock.advance(60_000);
    const touched = applyOperation(store, { t: 'session.get', id: s.id, touch: true }, clock.now(), 7) as Session;
    assert.deepEqual(touched, { ...s, lastAccessAt: clock.now(), expiresAt: clock.now() + HOUR });
    assert.deepEqual(applyOperation(store, { t: 'session.get', id: s.id, touch: false }, clock.now(), 7), touched);

    // A transfer or a saved state carries the record as a line; another engine reads the same session.
    const copy = new GridStore(clock, 'engine-2');
    assert.equal(copy.merge(parseRecordLine(recordLine('session', s.id, store.record('session', s.id)!))!), true);
    assert.deepEqual(applyOperation(copy, { t: 'session.get', id: s.id, touch: false }, clock.now(), 7), touched);
    assert.deepEqual(applyOperation(copy, { t: 'session.list', subject: 'alice' }, clock.now(), 7), [touched]);
    assert.deepEqual(applyOperation(copy, { t: 'session.page', subject: 'alice', limit: 10, maxBytes: 1000 }, clock.now(), 7), { sessions: [touched], more: false });
  });

  it('reads a session stored whole, as earlier versions stored them, the same', () => {
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    const s = session(clock, '7.old', 'bob');
    store.set('session', s.id, s, s.expiresAt, 7, s.subject);
    assert.deepEqual(applyOperation(store, { t: 'session.get', id: s.id, touch: false }, clock.now(), 7), s);
    assert.deepEqual(applyOperation(store, { t: 'session.list', subject: 'bob' }, clock.now(), 7), [s]);
    assert.equal(applyOperation(store, { t: 'session.delete', id: s.id }, clock.now(), 7), s.createdAt + s.maxLifetimeMs);
  });
});

describe('grid store: memory', () => {
  it('holds a session with 256 bytes of attributes in under 700 bytes of heap (stored by position without its id, subject and expiry; JSON text flattened; records made whole)', () => {
    // The heap is measured after full collections: gc is exposed to this test alone.
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const clock = new ManualClock(1_800_000_000_000);
    const attributes = { blob: 'x'.repeat(244) };
    const count = 20_000;
    gc();
    const before = process.memoryUsage().heapUsed;
    const store = new GridStore(clock, 'engine-1');
    for (let i = 0; i < count; i++) {
      const partition = i % 271;
      const session = { id: `${partition}.${randomToken(24)}`, subject: `user-${i}`, attributes, createdAt: clock.now(), lastAccessAt: clock.now(), idleTimeoutMs: HOUR, maxLifetimeMs: HOUR, expiresAt: clock.now() + HOUR };
      applyOperation(store, { t: 'session.put', session }, clock.now(), partition);
    }
    gc();
    const perSession = (process.memoryUsage().heapUsed - before) / count;
    assert.equal(store.size('session'), count);
    // 968 bytes with the JSON text in pieces and records grown field by field, about 800 with
    // the whole session's JSON, about 630 now.
    assert.ok(perSession < 700, `${perSession.toFixed(0)} bytes per session`);
  });
});
