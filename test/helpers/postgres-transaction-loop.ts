/**
 * Child process for the stalled-transaction test of the PostgreSQL repository: a node whose
 * scheduler keeps rewriting many jobs, so that it spends nearly all its time inside a
 * transaction that holds their row locks, and can be stopped (SIGSTOP) in the middle of one.
 *
 * Usage: node postgres-transaction-loop.js URL. Opens the repository, prints "ready", then syncs
 * 100 jobs with a new definition each round (one transaction of 100 updates) for ever, printing
 * "failed CODE" for a round that failed and "round" for the first round after a failure.
 */
import { openRepository } from '../../src/repository/open-repository.js';

const [url] = process.argv.slice(2);
if (url === undefined) throw new Error('usage: postgres-transaction-loop URL');
const repo = await openRepository(url);
process.stdout.write('ready\n');
let failed = false;
for (let round = 0; ; round++) {
  try {
    await repo.schedulerSyncJobs(Array.from({ length: 100 }, (_, i) => ({ scheduleId: `job-${i}`, definitionHash: `round-${round}`, firstFireAt: round })));
    if (failed) process.stdout.write('round\n');
    failed = false;
  } catch (err) {
    process.stdout.write(`failed ${(err as { code?: string }).code ?? String(err)}\n`);
    failed = true;
  }
}
