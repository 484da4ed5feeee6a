import assert from 'node:assert/strict';
import { gridChaos, type GridWorkload } from '../../src/sim/grid-chaos.js';

/**
 * Seeds the joins-and-restarts (lifecycle) workload runs in `npm test` (split over two files
 * that run in parallel); `npm run chaos` runs more.
 */
export const GRID_SEEDS = Number(process.env.COHORT_GRID_SIM_SEEDS ?? 200);
/**
 * The mixed-fault and failed-write workloads in `npm test`: 100 seeds each (their hundreds run
 * in `npm run chaos`, COHORT_GRID_SIM_SEEDS), so that with the 200 of the joins-and-restarts
 * workload, which exercises every path they do and the production start paths besides, the
 * unit tests stay within the test budget.
 */
export const QUICK_GRID_SEEDS = Number(process.env.COHORT_GRID_SIM_SEEDS ?? 100);

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
