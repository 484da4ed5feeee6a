/**
 * `npm run bench:membership` in short: crash and pause detection and false positives on the local profile, for Cohort and the peer library.
 * The full run is minutes long and stays out of npm test; this one checks that the script works
 * end to end on real processes and that its figures are sane (speed is not asserted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

describe('bench:membership smoke', () => {
  it('measures crash and pause detection and counts false positives on the local profile, for Cohort and the peer library', (t) => {
    const run = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/bench/membership.js'), '--profiles', 'local', '--nodes', '4', '--trials', '1', '--fp-seconds', '3', '--json'], {
      encoding: 'utf8',
      timeout: 90_000,
      // SIGTERM lets the bench kill the nodes it started before it exits.
      killSignal: 'SIGTERM',
    });
    assert.equal(run.status, 0, run.stderr);
    const [figures, peer] = JSON.parse(run.stdout) as Array<Record<string, number | string>>;
    assert.equal(figures!.system, 'cohort');
    assert.equal(figures!.profile, 'local');
    assert.equal(figures!.trials, 1);
    assert.equal(figures!.falsePositives, 0);
    // Sane figures (a detection, not a timeout); their targets are the full run's business,
    // on a quiet machine: this smoke may share the cores with other tests.
    for (const key of ['crashP50Ms', 'crashP99Ms', 'pauseP50Ms', 'pauseP99Ms']) {
      const ms = figures![key] as number;
      assert.ok(ms > 0 && ms < 15_000, `${key} ${ms} ms`);
    }
    // The peer library is measured in the same run, the same way.
    t.diagnostic(`crash p99 ${figures!.crashP99Ms} ms, pause p99 ${figures!.pauseP99Ms} ms (local profile, 1 trial)`);
    assert.equal(peer!.system, 'happn-swim');
    assert.equal(peer!.trials, 1);
    assert.ok((peer!.crashP50Ms as number) > 0 && (peer!.pauseP50Ms as number) > 0);
  });
});
