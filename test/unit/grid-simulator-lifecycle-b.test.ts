/**
 * The replicated grid in the simulator while engines join the running cluster, restart
 * gracefully one at a time (saving their state and loading it at start), and crash and
 * restart with the state they saved at their last graceful stop, among pauses and network
 * splits (second half of the seeds): every start is the production staged join
 * (state/grid/grid-engine.ts); no acknowledged session, revocation or logout is lost or
 * undone, no replay id is accepted twice, every replica set is whole within 10 s of the
 * faults ending, and every engine is ready and answers the same once quiet.
 */
import { it } from 'node:test';
import { GRID_SEEDS, runGridSeeds, SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

it(`grid simulator, joins and restarts: every invariant holds over the second half of ${GRID_SEEDS} seeds`, { timeout: SEEDS_TIMEOUT_MS }, () => runGridSeeds(1 + Math.ceil(GRID_SEEDS / 2), GRID_SEEDS + 1, 'lifecycle'));

// Seeds beyond the default range that once broke an invariant, kept whatever the range: 126
// and 512 had an engine restarted beside a newly started one, cut off from the rest, serve a
// full start of its own and accept a replay id the other side accepted too
// (replicated-executor.ts `fullStartRefusal`); 804 had an engine that joined through a member
// that knew few others count a majority of its short list (grid-engine.ts, the voters); 654
// kept an engine's old membership metadata on one member for good, so it placed partitions
// differently (cluster/member-states.ts `sharedStates`); 105 and 827, with 7 engines, had both
// sides of a split count an engine across it and accept one replay id each
// (replay-witnesses.ts); 297 lost acknowledged writes when RPC ended every call to a
// disconnected peer rather than only bulk transfers.
for (const seed of [105, 126, 297, 512, 654, 804, 827]) {
  it(`grid simulator, joins and restarts: seed ${seed}, which once broke an invariant`, { timeout: SEEDS_TIMEOUT_MS }, () => runGridSeeds(seed, seed + 1, 'lifecycle'));
}
