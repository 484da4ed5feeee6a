import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { forkPoint, type HistoryPage } from '../../src/console/fork-point.js';

interface Entry {
  id: number;
  tag: string;
}

/** A history as pages of `size`, newest first, counting the pages asked for. */
function pages(entries: Entry[], size: number): { page: HistoryPage<Entry>; asked: () => number } {
  const sorted = [...entries].sort((a, b) => b.id - a.id);
  let asked = 0;
  return {
    page: async (before) => {
      asked++;
      return sorted.filter((e) => before === undefined || e.id < before).slice(0, size);
    },
    asked: () => asked,
  };
}

const history = (from: number, to: number, tag: string, skip: number[] = []): Entry[] =>
  Array.from({ length: to - from + 1 }, (_, i) => ({ id: from + i, tag })).filter((e) => !skip.includes(e.id));

const fork = (ours: Entry[], theirs: Entry[], size = 3) =>
  forkPoint(pages(ours, size).page, pages(theirs, size).page, (e) => e.id, (a, b) => a.tag === b.tag);

describe('forkPoint: the newest entry two histories hold alike', () => {
  it('finds where a console that kept saving parted from the replica promoted in its place', async () => {
    const shared = history(1, 10, 'shared');
    // The old console saved 11-20; the promoted one 11-13 (other epoch: other entries).
    assert.equal(await fork([...shared, ...history(11, 20, 'old')], [...shared, ...history(11, 13, 'new')]), 10);
    assert.equal(await fork([...shared, ...history(11, 13, 'new')], [...shared, ...history(11, 20, 'old')]), 10);
  });

  it('is the newest entry of both when one history only lags the other, or both are equal', async () => {
    const shared = history(1, 10, 'shared');
    assert.equal(await fork(shared, [...shared, ...history(11, 30, 'more')]), 10);
    assert.equal(await fork([...shared, ...history(11, 30, 'more')], shared), 10);
    assert.equal(await fork(shared, shared), 10);
  });

  it('passes over ids one side lacks (gaps in audit ids)', async () => {
    const ours = [...history(1, 10, 'shared', [4, 7]), ...history(11, 15, 'old')];
    const theirs = [...history(1, 10, 'shared', [4, 7]), ...history(12, 18, 'new', [14])];
    assert.equal(await fork(ours, theirs), 10);
    assert.equal(await fork([...history(1, 6, 'shared', [4]), { id: 7, tag: 'old' }], [...history(1, 6, 'shared', [4]), { id: 8, tag: 'new' }]), 6);
  });

  it('is 0 when nothing is shared or a side is empty', async () => {
    assert.equal(await fork(history(1, 5, 'a'), history(1, 5, 'b')), 0);
    assert.equal(await fork([], history(1, 5, 'b')), 0);
    assert.equal(await fork(history(1, 5, 'a'), []), 0);
  });

  it('reads only the pages it needs: theirs from our newest id down', async () => {
    const shared = history(1, 1000, 'shared');
    const ours = pages([...shared, ...history(1001, 1002, 'old')], 100);
    const theirs = pages([...shared, ...history(1001, 5000, 'new')], 100);
    assert.equal(await forkPoint(ours.page, theirs.page, (e) => e.id, (a, b) => a.tag === b.tag), 1000);
    assert.equal(ours.asked(), 1);
    assert.equal(theirs.asked(), 1, 'their 4,000 newer entries are not walked');
  });
});
