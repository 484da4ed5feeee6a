/**
 * The grid state an engine saves at a graceful stop (state/grid/grid-state-file.ts): loading leaves
 * the file on disk until a newer save replaces it, so an engine killed before that save
 * finds everything again; a damaged file changes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../src/core/clock.js';
import { isCohortError } from '../../src/core/errors.js';
import { EMPTY_DIGEST, GridStore, TOMBSTONE_MS } from '../../src/state/grid/grid-store.js';
import { recordLine } from '../../src/state/grid/record-lines.js';
import {
  GRID_STATE_FILE,
  GRID_WITNESSES_FILE,
  gridStateFiles,
  loadGridState,
  READ_CHUNK_BYTES,
  markGridStateServed,
  saveGridState,
  savedGridState,
  setGridStateAside,
  staleGridStateReason,
} from '../../src/state/grid/grid-state-file.js';
import { tmpDir } from '../helpers/tmp.js';

const HOUR = 3_600_000;

/** A store holding one record of each kind a restart must keep, plus a deletion. */
function filledStore(clock: ManualClock): GridStore {
  const store = new GridStore(clock, 'engine-1');
  const until = clock.now() + HOUR;
  for (let i = 0; i < 50; i++) store.set('session', `s-${i}`, { subject: `user-${i % 7}`, n: i }, until, i % 13, `user-${i % 7}`);
  store.set('revocation', 'token-1', { at: 1 }, until, -1);
  store.set('replay', 'assertion-1', 1, until, 4);
  store.set('lockout', 'alice', { failures: 5, lockedUntil: until }, until, 5);
  store.delete('session', 's-0', 0);
  return store;
}

/** Every record (tombstones included) as lines, sorted: two stores hold the same iff equal. */
function contents(store: GridStore): string[] {
  const lines: string[] = [];
  for (const p of store.partitions()) store.eachRecord(p, (ns, key, r) => lines.push(recordLine(ns, key, r)));
  return lines.sort();
}

/**
 * Writes into `dir` a saved state of `store`'s records followed by one line that is not a
 * record, with a matching checksum and count (what only a faulty writer makes); answers how
 * many good records it holds.
 */
function saveWithBadLastLine(store: GridStore, dir: string): number {
  const good: string[] = [];
  for (const p of store.partitions()) store.eachRecord(p, (ns, key, r) => good.push(recordLine(ns, key, r)));
  const body = `cohort-grid-state\t1\n${good.join('')}not a record\n`;
  const hash = createHash('sha256').update(body).digest('hex');
  writeFileSync(join(dir, GRID_STATE_FILE), `${body}#end\t${String(good.length + 1).padStart(12, '0')}\t${hash}\n`);
  return good.length;
}

describe('saved grid state', () => {
  it('loading leaves the file on disk, and a second load after a crash (no save in between) finds everything', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    const saved = filledStore(clock);
    assert.equal(await saveGridState(saved, dir), 53);
    const path = join(dir, GRID_STATE_FILE);
    const bytes = readFileSync(path);

    const first = new GridStore(clock, 'engine-1');
    assert.deepEqual(await loadGridState(first, dir), { loaded: 53, records: 53 });
    assert.deepEqual(contents(first), contents(saved));
    assert.ok(existsSync(path), 'the loaded file is still there');
    assert.deepEqual(readFileSync(path), bytes, 'and unchanged');

    // The engine is killed before its next graceful save: the next start finds it all.
    const second = new GridStore(clock, 'engine-1');
    assert.deepEqual(await loadGridState(second, dir), { loaded: 53, records: 53 });
    assert.deepEqual(contents(second), contents(saved));
    assert.equal(second.get('session', 's-0'), undefined, 'the deletion is kept too');
    assert.deepEqual(second.get('lockout', 'alice'), { failures: 5, lockedUntil: clock.now() + HOUR });
  });

  it('a newer save replaces the file atomically and leaves no temporary file, not even one of a save cut short', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    const store = filledStore(clock);
    await saveGridState(store, dir);
    writeFileSync(join(dir, `${GRID_STATE_FILE}.99999.tmp`), 'a save cut short by a crash');
    store.set('session', 'later', { n: 'later' }, clock.now() + HOUR, 3);
    assert.equal(await saveGridState(store, dir), 54);
    assert.deepEqual(readdirSync(dir), [GRID_STATE_FILE]);
    const loaded = new GridStore(clock, 'engine-1');
    await loadGridState(loaded, dir);
    assert.deepEqual(loaded.get('session', 'later'), { n: 'later' });
  });

  it('a file whose checksum fails changes nothing and is kept as .damaged', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    await saveGridState(filledStore(clock), dir);
    const path = join(dir, GRID_STATE_FILE);
    const bytes = readFileSync(path);
    bytes[200] = bytes[200] === 0x41 ? 0x42 : 0x41;
    writeFileSync(path, bytes);
    const store = new GridStore(clock, 'engine-1');
    await assert.rejects(loadGridState(store, dir), (err) => isCohortError(err, 'GRID_STATE_DAMAGED'));
    assert.equal(store.size(), 0);
    assert.ok(existsSync(`${path}.damaged`) && !existsSync(path));
  });

  it('a file with a line that is not a record changes nothing, even when its checksum matches', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    // Good records first, then one that is not a record: a loader that merges as it reads
    // would already have changed the store when it meets the bad line.
    saveWithBadLastLine(filledStore(clock), dir);
    const target = new GridStore(clock, 'engine-1');
    await assert.rejects(loadGridState(target, dir), (err) => isCohortError(err, 'GRID_STATE_DAMAGED'));
    assert.equal(target.size(), 0, 'nothing was merged');
  });

  it('a line that is not a record leaves a store that already held records as it was (its lines are read through before any is merged)', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    saveWithBadLastLine(filledStore(clock), dir);
    const target = new GridStore(clock, 'engine-1');
    target.set('session', 'mine', { n: 1 }, clock.now() + HOUR, 2, 'u-1');
    const before = contents(target);
    await assert.rejects(loadGridState(target, dir), (err) => isCohortError(err, 'GRID_STATE_DAMAGED'));
    assert.deepEqual(contents(target), before);
    assert.deepEqual(target.keysByIndex('session', 'u-1', 2), ['mine']);
  });

  it('a store emptied after a damaged line takes the next good file whole, indexes included', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    const store = filledStore(clock);
    const good = saveWithBadLastLine(store, dir);
    const target = new GridStore(clock, 'engine-1');
    await assert.rejects(loadGridState(target, dir), (err) => isCohortError(err, 'GRID_STATE_DAMAGED'));
    assert.equal(target.size(), 0);
    for (const p of store.partitions()) assert.equal(target.digest(p), EMPTY_DIGEST, `partition ${p} fingerprint forgotten`);
    await saveGridState(store, dir);
    assert.deepEqual(await loadGridState(target, dir), { loaded: good, records: good });
    assert.deepEqual(contents(target), contents(store));
    for (const p of store.partitions()) assert.equal(target.digest(p), store.digest(p));
  });

  it('loads a line that begins exactly where a read begins and runs past its end (the bytes kept across reads are not overwritten by the next)', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    const header = 'cohort-grid-state\t1\n';
    // The first record fills the first read to its last byte; the second is longer than a read.
    const lineOf = (key: string, blob: string): string => recordLine('state', key, store.set('state', key, { blob }, clock.now() + HOUR, 3));
    const padding = READ_CHUNK_BYTES - header.length - lineOf('first', '').length;
    const first = lineOf('first', randomBytes(padding).toString('hex').slice(0, padding));
    const second = lineOf('second', randomBytes(3_000_000).toString('hex'));
    const third = lineOf('third', 'short');
    assert.equal(header.length + first.length, READ_CHUNK_BYTES);
    assert.ok(second.length > READ_CHUNK_BYTES);
    const body = `${header}${first}${second}${third}`;
    const hash = createHash('sha256').update(body).digest('hex');
    writeFileSync(join(dir, GRID_STATE_FILE), `${body}#end\t${String(3).padStart(12, '0')}\t${hash}\n`);
    const loaded = new GridStore(clock, 'engine-1');
    assert.deepEqual(await loadGridState(loaded, dir), { loaded: 3, records: 3 });
    assert.deepEqual(contents(loaded), contents(store));
  });

  it('saves and loads records far larger than a read or write chunk, and a partition far larger than a transfer message', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(1_800_000_000_000);
    const store = new GridStore(clock, 'engine-1');
    // 9 MB of UTF-8 each, two-byte characters across chunk edges, and no two pieces of a read
    // alike (a loader that kept a piece it had overwritten with the next would read garbage
    // that a repeated pattern would hide).
    const bigValue = (): string => `${'é'.repeat(2_000_000)}${randomBytes(2_500_000).toString('hex')}`;
    for (let i = 0; i < 4; i++) store.set('session', `big-${i}`, { blob: bigValue(), i }, clock.now() + HOUR, 7, 'one-subject');
    for (let i = 0; i < 1000; i++) store.set('session', `small-${i}`, { i }, clock.now() + HOUR, 7, 'one-subject');
    await saveGridState(store, dir);
    assert.ok(statSync(join(dir, GRID_STATE_FILE)).size > 36_000_000);
    const loaded = new GridStore(clock, 'engine-1');
    assert.deepEqual(await loadGridState(loaded, dir), { loaded: 1004, records: 1004 });
    assert.deepEqual(contents(loaded), contents(store));
  });
});

describe('replay ids witnessed for other engines, kept at a graceful stop', () => {
  it('come back as they were kept; none kept is an empty list; a file that is not such a list is undefined, not a guess', (t) => {
    const dir = tmpDir(t);
    const files = gridStateFiles(dir);
    assert.deepEqual(files.witnesses(), [], 'nothing kept yet');
    files.keepWitnesses([['assertion-1', 1_800_000_060_000], ['urn:x:2', 1_800_000_001_000]]);
    assert.deepEqual(files.witnesses(), [['assertion-1', 1_800_000_060_000], ['urn:x:2', 1_800_000_001_000]]);
    files.keepWitnesses([]);
    assert.deepEqual(files.witnesses(), [], 'a later stop replaces what was kept');
    const path = join(dir, GRID_WITNESSES_FILE);
    for (const bad of ['{"witnesses": [["a", 1], ["b"]]}', '{"witnesses": [["", 1]]}', '{"witnesses": [[1, 2]]}', '{"witnesses": {}}', '[]', '{"witnesses": [["a", 1]]', 'not json']) {
      writeFileSync(path, bad);
      assert.equal(files.witnesses(), undefined, bad);
    }
  });
});

describe('when a saved grid state must not be loaded', () => {
  const now = 1_800_000_000_000;

  it('a file saved at a graceful stop is loaded at a full start, however old', () => {
    assert.equal(staleGridStateReason({ savedAt: now - 72 * HOUR }, now, false), undefined);
  });

  it('a file older than the tombstones is dropped when the engine rejoins a running cluster', () => {
    assert.equal(staleGridStateReason({ savedAt: now - TOMBSTONE_MS + 1000 }, now, true), undefined);
    assert.match(staleGridStateReason({ savedAt: now - TOMBSTONE_MS - 1000 }, now, true) ?? '', /deletions/);
  });

  it('a file the engine went on serving from is dropped once the cluster has run longer than it remembers deletions, even at a full start', () => {
    const savedAt = now - 72 * HOUR;
    assert.equal(staleGridStateReason({ savedAt, servedSince: now - TOMBSTONE_MS + 1000 }, now, false), undefined);
    assert.match(staleGridStateReason({ savedAt, servedSince: now - TOMBSTONE_MS - 1000 }, now, false) ?? '', /served/);
    assert.match(staleGridStateReason({ savedAt, servedSince: now - TOMBSTONE_MS - 1000 }, now, true) ?? '', /served/);
  });

  it('the served mark counts only for the file it was written after, and a save clears it', async (t) => {
    const dir = tmpDir(t);
    const clock = new ManualClock(Date.now());
    assert.equal(savedGridState(dir), undefined);
    markGridStateServed(dir); // no saved state: nothing to mark
    assert.deepEqual(readdirSync(dir), []);
    await saveGridState(filledStore(clock), dir);
    const path = join(dir, GRID_STATE_FILE);
    const savedAt = statSync(path).mtimeMs;
    assert.deepEqual(savedGridState(dir), { savedAt });
    markGridStateServed(dir);
    const marked = savedGridState(dir);
    assert.ok(marked?.servedSince !== undefined && marked.servedSince >= savedAt, JSON.stringify(marked));
    // A mark older than the file (a crash between the rename and the removal of the mark) is ignored.
    utimesSync(path, new Date(savedAt + 60_000), new Date(savedAt + 60_000));
    assert.equal(savedGridState(dir)?.servedSince, undefined);
    markGridStateServed(dir);
    await saveGridState(filledStore(clock), dir);
    assert.deepEqual(readdirSync(dir), [GRID_STATE_FILE]);
  });

  it('a file set aside is kept on disk, renamed, and no longer found', async (t) => {
    const dir = tmpDir(t);
    await saveGridState(filledStore(new ManualClock(Date.now())), dir);
    markGridStateServed(dir);
    const kept = setGridStateAside(dir);
    assert.equal(kept, join(dir, `${GRID_STATE_FILE}.stale`));
    assert.equal(savedGridState(dir), undefined);
    assert.deepEqual(readdirSync(dir), [`${GRID_STATE_FILE}.stale`]);
  });
});
