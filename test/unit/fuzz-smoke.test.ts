// A short run of every fuzz target (test/fuzz/targets.ts); `npm run fuzz` runs them for longer.
import { describe, it } from 'node:test';
import { TARGETS } from '../fuzz/targets.js';

const RUNS = Number(process.env.COHORT_FUZZ_SMOKE_RUNS ?? 150);

describe('fuzzing, short run: a clear coded error, the process alive, nothing changed', () => {
  for (const target of TARGETS) {
    it(target.name, async () => {
      await target.run(RUNS);
    });
  }
});
