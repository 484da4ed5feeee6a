/**
 * Reverts of writes the primary undid reach copies made by bulk transfers (hand-offs, syncs)
 * while the write was in flight, whichever arrives first.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { GridStore } from '../../src/state/grid/grid-store.js';
import { parseRecordLines, partitionSlice } from '../../src/state/grid/record-lines.js';

/** Every record of a partition as record lines (as a transfer sends them). */
const partitionText = (store: GridStore, partition: number): string => partitionSlice(store, partition, Number.MAX_SAFE_INTEGER).lines;

const HOUR = 3_600_000;

function setUp(): { clock: ManualClock; primary: GridStore; copy: GridStore; session: string } {
  const clock = new ManualClock(1_800_000_000_000);
  const primary = new GridStore(clock, 'engine-1');
  const copy = new GridStore(clock, 'engine-3');
  primary.set('session', 's1', { id: 's1' }, clock.now() + HOUR, 7);
  for (const c of parseRecordLines(partitionText(primary, 7)).changes) copy.merge(c);
  clock.advance(10);
  return { clock, primary, copy, session: 's1' };
}

type Change = ReturnType<GridStore['takeJournal']>[number]['change'];

/**
 * The primary deletes s1 and undoes it; returns the record lines of the partition with the
 * delete in it, the revert, and everything the undo sends (the revert and its marker).
 */
function deleteThenUndo(primary: GridStore): { linesWithDelete: string; revert: Change; undo: Change[] } {
  primary.startJournal();
  primary.delete('session', 's1', 7);
  const journal = primary.takeJournal();
  const linesWithDelete = partitionText(primary, 7); // a hand-off exports it meanwhile
  primary.startJournal();
  primary.undo(journal);
  const undo = primary.takeJournal().map((e) => e.change);
  return { linesWithDelete, revert: undo[0]!, undo };
}

it('a revert applies to a copy of the undone write that came in record lines (the origin travels with it)', () => {
  const { primary, copy, session } = setUp();
  const { linesWithDelete, revert } = deleteThenUndo(primary);
  for (const c of parseRecordLines(linesWithDelete).changes) copy.merge(c);
  assert.equal(copy.has('session', session), false, 'the copy took the delete');
  assert.equal(copy.merge(revert), true);
  assert.equal(copy.has('session', session), true, 'and the revert undid it');
});

it('a copy of an undone write that arrives after its revert is refused', () => {
  const { primary, copy, session } = setUp();
  const { linesWithDelete, undo } = deleteThenUndo(primary);
  // The undo reaches the copy first: the revert applies to nothing yet, its marker stays.
  assert.deepEqual(undo.map((c) => copy.merge(c)), [false, true]);
  for (const c of parseRecordLines(linesWithDelete).changes) copy.merge(c);
  assert.equal(copy.has('session', session), true, 'the late copy of the undone delete was refused');
  // A later write of the key is taken as usual.
  primary.delete('session', session, 7);
  for (const c of parseRecordLines(partitionText(primary, 7)).changes) copy.merge(c);
  assert.equal(copy.has('session', session), false);
});
