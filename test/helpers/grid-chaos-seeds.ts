import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import type { GridWorkload } from '../../src/sim/grid-chaos.js';
import type { SeedRange } from './grid-chaos-worker.js';

/**
 * Seeds each grid simulator workload runs in `npm test`: 100 each of the mixed-fault and the
 * joins-and-restarts (lifecycle) workloads (each split over two files that run in parallel)
 * and 40 of the failed-write one, 240 in all, within the test budget; `npm run chaos` runs
 * 1,000 of each (COHORT_GRID_SIM_SEEDS, COHORT_GRID_FAILED_WRITE_SEEDS).
 */
export const GRID_SEEDS = Number(process.env.COHORT_GRID_SIM_SEEDS ?? 100);
export const QUICK_GRID_SEEDS = GRID_SEEDS;
export const FAILED_WRITE_SEEDS = Number(process.env.COHORT_GRID_FAILED_WRITE_SEEDS ?? 40);

/**
 * Time limit of a test that runs simulator seeds: a bound for a hang, not a check of speed. In
 * npm test these files run at idle CPU priority beside the integration tests
 * (scripts/run-tests.mjs) and may wait minutes for a core.
 */
export const SEEDS_TIMEOUT_MS = 1_800_000;

/**
 * Runs seeds [from, to) (in a worker thread: grid-chaos-worker.ts says why) and fails listing
 * every seed that broke an invariant, with how to replay it.
 */
export async function runGridSeeds(from: number, to: number, workload: GridWorkload = 'mixed'): Promise<void> {
  const range: SeedRange = { from, to, workload };
  const worker = new Worker(new URL('./grid-chaos-worker.js', import.meta.url), { workerData: range });
  const result = await new Promise<{ failures: string[]; seeds: number }>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`the simulator's worker thread exited with ${code} before it answered`)));
  });
  await worker.terminate();
  assert.equal(result.seeds, to - from, 'every seed ran');
  assert.deepEqual(result.failures, []);
}
