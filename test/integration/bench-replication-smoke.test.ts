/**
 * `npm run bench:replication` in short: saves timed to every engine, pushed and (the peer) polled.
 * The full run is minutes long and stays out of npm test; this one checks that the script works
 * end to end on real processes and that its figures are sane (speed is not asserted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

describe('bench:replication smoke', () => {
  it('bench:replication times saves to every engine, pushed and (the peer) polled only', () => {
    const run = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/bench/replication.js'), '--saves', '3', '--engines', '4', '--peer-saves', '1', '--json'], {
      encoding: 'utf8',
      timeout: 120_000,
      killSignal: 'SIGTERM',
    });
    assert.equal(run.status, 0, run.stderr);
    const rows = JSON.parse(run.stdout) as Array<{ engines: number; push: boolean; saves: number; p50Ms: number; p99Ms: number }>;
    assert.deepEqual(rows.map((r) => [r.engines, r.push, r.saves]), [[3, true, 3], [4, true, 3], [4, false, 1]]);
    for (const r of rows) assert.ok(r.p50Ms >= 0 && r.p99Ms >= r.p50Ms, JSON.stringify(r));
    // Pushed saves arrive without waiting for a poll: well within the peer's poll interval (2 s),
    // however busy the machine; the target itself is the full run's business.
    assert.ok(rows[1]!.p99Ms < 2000, JSON.stringify(rows[1]));
  });
});
