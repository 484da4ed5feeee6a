/**
 * The replicated grid in the simulator with writes that fail to replicate (links failing one
 * way, so primaries time out on backups that did apply the write), over fewer seeds than the
 * mixed workload in `npm test` (as many in `npm run chaos`): besides the durability invariants, once the cluster is quiet every engine
 * answers the same for every key, so no write that failed survives on some replicas.
 */
import { it } from 'node:test';
import { FAILED_WRITE_SEEDS, runGridSeeds, SEEDS_TIMEOUT_MS } from '../helpers/grid-chaos-seeds.js';

it(`grid simulator, failed writes: every engine answers the same for every key once quiet, over ${FAILED_WRITE_SEEDS} seeds`, { timeout: SEEDS_TIMEOUT_MS }, () =>
  runGridSeeds(1, FAILED_WRITE_SEEDS + 1, 'failed-write'));
