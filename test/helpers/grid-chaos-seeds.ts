import assert from 'node:assert/strict';
import { gridChaos, type GridWorkload } from '../../src/sim/grid-chaos.js';

/**
 * Seeds each grid simulator workload runs in `npm test` (mixed and lifecycle each split over two
 * files that run in parallel); `npm run chaos` runs more.
 */
export const GRID_SEEDS = Number(process.env.COHORT_GRID_SIM_SEEDS ?? 200);

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
