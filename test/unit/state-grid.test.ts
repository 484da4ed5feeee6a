/** The state contract on a one-engine grid, with a manual clock (TTL tests take no real time). */
import { ManualClock } from '../../src/core/clock.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { stateContract } from '../helpers/state-contract.js';

stateContract('grid, one engine', async () => {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider, store } = localGrid(clock);
  return {
    provider,
    now: () => clock.now(),
    advance: async (ms) => clock.advance(ms),
    revocationExpiresAt: async (id) => store.record('revocation', id)?.expiresAt,
    close: () => provider.close(),
  };
});
