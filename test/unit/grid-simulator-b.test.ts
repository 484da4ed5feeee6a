/**
 * The replicated grid under random crashes, pauses and network splits in the simulator
 * (second half of the seeds): no acknowledged session or revocation lost, no replay id accepted
 * twice, every replica set whole within 10 s of the faults ending.
 */
import { it } from 'node:test';
import { QUICK_GRID_SEEDS, runGridSeeds, SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

it(`grid simulator: every invariant holds over the second half of ${QUICK_GRID_SEEDS} seeds`, { timeout: SEEDS_TIMEOUT_MS }, () => runGridSeeds(1 + Math.ceil(QUICK_GRID_SEEDS / 2), QUICK_GRID_SEEDS + 1));
