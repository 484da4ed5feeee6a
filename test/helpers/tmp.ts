import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

/**
 * A fresh temporary directory removed when the test (or suite) ends. `after` hooks run in the
 * order they were added, so this one usually runs before the hooks that kill the processes the
 * test started in the directory, which may still be writing there: a removal that fails is
 * tried again when the test process exits (the processes are gone by then), and never throws,
 * because a throwing hook would keep the hooks after it, those kills among them, from running.
 */
export function tmpDir(t: Pick<TestContext, 'after'>, prefix = 'cohort-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 50 });
    } catch {
      process.once('exit', () => rmSync(dir, { recursive: true, force: true, maxRetries: 3 }));
    }
  });
  return dir;
}
