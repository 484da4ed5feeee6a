/**
 * Child process for the multi-process SQLite test.
 *
 * Usage: node sqlite-writer.js FILE COUNT LABEL. Opens (and migrates) the repository, prints
 * "ready", waits until stdin ends (the parent's starting signal, so every writer starts at
 * once), saves COUNT documents concurrently, closes and exits 0.
 *
 * better-sqlite3 is synchronous, so saves started together would run back to back and one
 * writer would simply finish before the other got the lock; spreading them over a few
 * milliseconds makes the two processes' transactions interleave.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { openRepository } from '../../src/repository/open-repository.js';

const [file, countText, label] = process.argv.slice(2);
if (file === undefined || countText === undefined || label === undefined) {
  throw new Error('usage: sqlite-writer FILE COUNT LABEL');
}
const repo = await openRepository(`sqlite:${file}`);
process.stdout.write('ready\n');
for await (const _ of process.stdin); // drain until the parent ends stdin
await Promise.all(
  Array.from({ length: Number(countText) }, async (_, i) => {
    await sleep(Math.random() * 50);
    return repo.saveConfigDocument({
      section: `${label}-${i % 3}`,
      content: { label, i },
      author: label,
      node: label,
      summary: `${label} save ${i}`,
    });
  }),
);
await repo.close();
