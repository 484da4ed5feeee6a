/**
 * `npm run fuzz [-- --seconds N] [-- --target NAME]`: runs every fuzz target (test/fuzz/targets.ts)
 * for a share of N seconds (default 60 in all) and prints the cases tried per target. A failing
 * property prints fast-check's report (seed and counterexample) and exits 1.
 */
import { parseArgs } from 'node:util';
import { TARGETS } from './targets.js';

const { values } = parseArgs({ options: { seconds: { type: 'string', default: process.env.COHORT_FUZZ_SECONDS ?? '60' }, target: { type: 'string' } } });
const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) {
  console.error(`fuzz: --seconds must be a positive number, got ${values.seconds}`);
  process.exit(2);
}
const targets = TARGETS.filter((t) => values.target === undefined || t.name === values.target);
if (targets.length === 0) {
  console.error(`fuzz: no target named ${values.target}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
  process.exit(2);
}
const share = (seconds * 1000) / targets.length;
let failed = false;
console.log(`fuzz: ${targets.length} targets, ${(share / 1000).toFixed(1)} s each`);
for (const target of targets) {
  const started = Date.now();
  try {
    const tried = await target.run(Number.MAX_SAFE_INTEGER, started + share);
    const s = (Date.now() - started) / 1000;
    console.log(`${target.name.padEnd(28)} ${String(tried).padStart(9)} cases in ${s.toFixed(1)} s (${Math.round(tried / s)}/s): no failure`);
  } catch (err) {
    failed = true;
    console.log(`${target.name.padEnd(28)} FAILED\n${(err as Error).message}`);
  }
}
process.exit(failed ? 1 : 0);
