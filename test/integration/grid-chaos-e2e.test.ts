/**
 * The replicated grid between real processes under seeded faults (test/helpers/grid-chaos-real.ts):
 * a console and five engines (RF 3), eight clients on the public runtime API, kill -9 with
 * restarts and SIGSTOP/SIGCONT on at most two engines at once; then heal and check that no
 * acknowledged session or revocation is lost and no replay id is accepted twice.
 *
 * Environment:
 * - COHORT_CHAOS_SEEDS: how many seeds (fresh ones each run, printed), or a comma-separated
 *   list of seeds to replay (`42,` for one). Default 1.
 * - COHORT_CHAOS_SECONDS: how long clients and faults run per seed. Default 6 (a smoke in `npm test`;
 *   `npm run chaos:real` runs 60).
 * - COHORT_CHAOS_KEEP_LOGS=1: keep every process's log (they are kept anyway when a seed fails).
 *
 * `npm run chaos:real` runs 5 seeds of 60 s.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { realGridChaos } from '../helpers/grid-chaos-real.js';

/** The seeds to run: a count of fresh seeds, or a comma-separated list. */
function chaosSeeds(text: string | undefined): number[] {
  const value = (text ?? '1').trim();
  if (value.includes(',')) {
    return value
      .split(',')
      .filter((s) => s.trim() !== '')
      .map((s) => {
        const seed = Number(s.trim());
        if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`COHORT_CHAOS_SEEDS: ${s} is not a seed`);
        return seed;
      });
  }
  const count = Number(value);
  if (!Number.isSafeInteger(count) || count < 1) throw new Error(`COHORT_CHAOS_SEEDS: ${value} is neither a count nor a list of seeds`);
  return Array.from({ length: count }, () => randomInt(1, 2 ** 31));
}

const SEEDS = chaosSeeds(process.env.COHORT_CHAOS_SEEDS);
const SECONDS = Number(process.env.COHORT_CHAOS_SECONDS ?? 6);
if (!(SECONDS > 0)) throw new Error(`COHORT_CHAOS_SECONDS: ${process.env.COHORT_CHAOS_SECONDS} is not a number of seconds`);

for (const seed of SEEDS) {
  // Start-up, healing and checking take a few minutes at most on top of the run itself.
  it(`grid chaos between real processes, seed ${seed}, ${SECONDS} s: no acknowledged write lost`, { timeout: SECONDS * 1000 + 300_000 }, async (t) => {
    const r = await realGridChaos(t, { seed, seconds: SECONDS, log: (line) => console.log(`[seed ${seed}] ${line}`), keepLogs: process.env.COHORT_CHAOS_KEEP_LOGS === '1' });
    const a = r.acknowledged;
    console.log(
      [
        `seed ${r.seed}: ${(r.durationMs / 1000).toFixed(1)} s, ${r.operations} operations, ${a.total} acknowledged`,
        `(sessions ${a.sessions}, deletes ${a.deletes}, revocations ${a.revocations}, replay ids ${a.replayIds}), ${r.unknown} unknown`,
        `faults: ${r.faults.join(', ') || 'none'}`,
        `lost: ${r.lost.length}`,
      ].join('\n  '),
    );
    if (r.violations.length > 0) console.log(`seed ${seed}: ${r.violations.length} violations\n  ${r.violations.slice(0, 50).join('\n  ')}`);
    if (r.violations.length > 0 || process.env.COHORT_CHAOS_KEEP_LOGS === '1') console.log(`seed ${seed}: logs kept in ${r.dir}`);
    assert.ok(a.sessions > 0, `seed ${seed}: no session was acknowledged at all`);
    assert.deepEqual(r.violations, [], `seed ${seed} broke an invariant (replay it with COHORT_CHAOS_SEEDS=${seed},)`);
  });
}
