/**
 * The replicated grid in the simulator with writes that fail to replicate (links failing one
 * way, so primaries time out on backups that did apply the write), over as many seeds as the
 * mixed workload: besides the durability invariants, once the cluster is quiet every engine
 * answers the same for every key, so no write that failed survives on some replicas.
 */
import { it } from 'node:test';
import { QUICK_GRID_SEEDS, runGridSeeds } from '../helpers/grid-chaos-seeds.js';

it(`grid simulator, failed writes: every engine answers the same for every key once quiet, over ${QUICK_GRID_SEEDS} seeds`, { timeout: 600_000 }, () =>
  runGridSeeds(1, QUICK_GRID_SEEDS + 1, 'failed-write'));
