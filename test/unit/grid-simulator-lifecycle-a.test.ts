/**
 * The replicated grid in the simulator while engines join the running cluster, restart
 * gracefully one at a time (saving their state and loading it at start), and crash and
 * restart with the state they saved at their last graceful stop, among pauses and network
 * splits (first half of the seeds): every start is the production staged join
 * (state/grid/grid-engine.ts); no acknowledged session, revocation or logout is lost or
 * undone, no replay id is accepted twice, every replica set is whole within 10 s of the
 * faults ending, and every engine is ready and answers the same once quiet.
 */
import { it } from 'node:test';
import { GRID_SEEDS, runGridSeeds, SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

it(`grid simulator, joins and restarts: every invariant holds over the first half of ${GRID_SEEDS} seeds`, { timeout: SEEDS_TIMEOUT_MS }, () => runGridSeeds(1, 1 + Math.ceil(GRID_SEEDS / 2), 'lifecycle'));
