/**
 * Runs grid simulator seeds in a worker thread for grid-chaos-seeds.ts, and posts back one
 * line per seed that broke an invariant. Why a thread: node:test tracks every promise of the
 * test's own thread with an async hook (to tie errors to tests), and the simulator makes
 * millions of promises; in a thread of their own the same seeds took about a quarter less time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { gridChaos, type GridWorkload } from '../../src/sim/grid-chaos.js';

export interface SeedRange {
  from: number;
  to: number;
  workload: GridWorkload;
}

const { from, to, workload } = workerData as SeedRange;
const failures: string[] = [];
for (let seed = from; seed < to; seed++) {
  const r = await gridChaos({ seed, workload });
  if (r.violations.length > 0) {
    failures.push(`seed ${seed} (reproduce: npm run sim -- --scenario ${workload === 'mixed' ? 'grid' : `grid-${workload}`} --seed ${seed}): ${r.violations.slice(0, 5).join(' / ')}\n    faults: ${r.faults.join(', ')}`);
  }
}
parentPort!.postMessage({ failures, seeds: to - from });
