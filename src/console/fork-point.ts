/**
 * Where two histories part: the newest entry (configuration version, or audit record) both
 * hold alike. Histories agree up to a point and then each has entries of its own: a console
 * that kept saving after its replica's last pull, and the replica promoted in its place,
 * saving versions of the same numbers with its higher epoch. Entries of one version number
 * and one epoch were written by one console and so are the same entry; a differing epoch or
 * hash means the histories forked before it.
 *
 * Both histories are walked newest first, a page at a time, merging by id, so ids one side
 * lacks (the other's newer entries, or gaps in audit ids) are simply passed over.
 */

/** One page of a history, newest first, of the entries with an id below `before` (all when undefined). */
export type HistoryPage<T> = (before: number | undefined) => Promise<T[]>;

/** The id of the newest entry both histories hold alike; 0 when they share none. */
export async function forkPoint<T>(ours: HistoryPage<T>, theirs: HistoryPage<T>, idOf: (entry: T) => number, same: (a: T, b: T) => boolean): Promise<number> {
  const a = walk(ours, idOf);
  let x = await a();
  if (x === undefined) return 0;
  // Theirs starts at our newest id: their entries above it cannot be a common point.
  const b = walk(theirs, idOf, idOf(x) + 1);
  let y = await b();
  while (x !== undefined && y !== undefined) {
    const ix = idOf(x);
    const iy = idOf(y);
    if (ix === iy) {
      if (same(x, y)) return ix;
      x = await a();
      y = await b();
    } else if (ix > iy) {
      x = await a();
    } else {
      y = await b();
    }
  }
  return 0;
}

/** The entries of a history one by one, newest first, fetching a page when the last is used up. */
function walk<T>(page: HistoryPage<T>, idOf: (entry: T) => number, start?: number): () => Promise<T | undefined> {
  let buffer: T[] = [];
  let before = start;
  let done = false;
  return async () => {
    if (buffer.length === 0 && !done) {
      buffer = await page(before);
      if (buffer.length === 0) done = true;
      else before = idOf(buffer.at(-1)!);
    }
    return buffer.shift();
  };
}
