/**
 * The replicated grid in the simulator with sessions of 1 MB for one subject, whose partition
 * outgrows a frame and moves in slices through crashes, pauses and splits: every invariant of
 * the mixed workload, and every engine answering the same once quiet. `npm test` runs one
 * seed (it moves hundreds of megabytes); `npm run chaos` runs hundreds.
 */
import { it } from 'node:test';
import { runGridSeeds, SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

const SEEDS = Number(process.env.COHORT_GRID_LARGE_SEEDS ?? 1);

it(`grid simulator, large records: every invariant holds over ${SEEDS} seeds`, { timeout: SEEDS_TIMEOUT_MS }, () => runGridSeeds(1, SEEDS + 1, 'large-record'));
