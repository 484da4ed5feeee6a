import assert from 'node:assert/strict';
import { gridChaos, type GridWorkload } from '../../src/sim/grid-chaos.js';

/**
 * Seeds each grid simulator workload runs in `npm test`: 100 each of the mixed-fault and the
 * joins-and-restarts (lifecycle) workloads (each split over two files that run in parallel)
 * and 40 of the failed-write one, 240 in all, within the test budget; `npm run chaos` runs
 * 1,000 of each (COHORT_GRID_SIM_SEEDS, COHORT_GRID_FAILED_WRITE_SEEDS).
 */
export const GRID_SEEDS = Number(process.env.COHORT_GRID_SIM_SEEDS ?? 100);
export const QUICK_GRID_SEEDS = GRID_SEEDS;
export const FAILED_WRITE_SEEDS = Number(process.env.COHORT_GRID_FAILED_WRITE_SEEDS ?? 40);

/** Runs seeds [from, to) and fails listing every seed that broke an invariant, with how to replay it. */
export async function runGridSeeds(from: number, to: number, workload: GridWorkload = 'mixed'): Promise<void> {
  const failures: string[] = [];
  for (let seed = from; seed < to; seed++) {
    const r = await gridChaos({ seed, workload });
    if (r.violations.length > 0) {
      failures.push(`seed ${seed} (reproduce: npm run sim -- --scenario ${workload === 'mixed' ? 'grid' : `grid-${workload}`} --seed ${seed}): ${r.violations.slice(0, 5).join(' / ')}\n    faults: ${r.faults.join(', ')}`);
    }
  }
  assert.deepEqual(failures, []);
}
