/**
 * Short runs of the benches (`npm run bench:membership`, `bench:runtime`, `bench:replication`,
 * `bench:access`; the full runs are minutes long and stay out of npm test): each script works
 * end to end on real processes and its figures are sane.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

describe('bench:membership smoke', () => {
  it('measures crash and pause detection and counts false positives on the local profile, for Cohort and the peer library', () => {
    const run = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/bench/membership.js'), '--profiles', 'local', '--nodes', '4', '--trials', '2', '--fp-seconds', '3', '--json'], {
      encoding: 'utf8',
      timeout: 90_000,
      // SIGTERM lets the bench kill the nodes it started before it exits.
      killSignal: 'SIGTERM',
    });
    assert.equal(run.status, 0, run.stderr);
    const [figures, peer] = JSON.parse(run.stdout) as Array<Record<string, number | string>>;
    assert.equal(figures!.system, 'cohort');
    assert.equal(figures!.profile, 'local');
    assert.equal(figures!.trials, 2);
    assert.equal(figures!.falsePositives, 0);
    // The detection targets: a crashed process under 1.5 s, a silent one under 2 s on local.
    assert.ok((figures!.crashP99Ms as number) < 1500, `crash p99 ${figures!.crashP99Ms} ms`);
    assert.ok((figures!.pauseP99Ms as number) < 2000, `pause p99 ${figures!.pauseP99Ms} ms`);
    assert.ok((figures!.pauseP50Ms as number) > 0);
    // The peer library is measured in the same run, the same way.
    assert.equal(peer!.system, 'happn-swim');
    assert.equal(peer!.trials, 2);
    assert.ok((peer!.crashP50Ms as number) > 0 && (peer!.pauseP50Ms as number) > 0);
  });

  it('bench:runtime measures lookups beside a bare Fastify route, replicated writes (HTTP and inside the grid, beside Redis), memory and a join', () => {
    const run = spawnSync(process.execPath, ['--expose-gc', join(PACKAGE_ROOT, 'dist/bench/runtime.js'), '--seconds', '1', '--connections', '10', '--join-sessions', '3000', '--join-revocations', '200', '--metrics-rounds', '1', '--json'], {
      encoding: 'utf8',
      timeout: 150_000,
      killSignal: 'SIGTERM',
    });
    assert.equal(run.status, 0, run.stderr);
    const r = JSON.parse(run.stdout) as { lookup: Record<string, number>; metrics: Record<string, number>; replicatedWrite: Record<string, number>; gridWrite: Record<string, number>; memoryBytesPerSessionPerReplica: number; join: Record<string, number> };
    assert.ok(r.lookup.gridRps! > 0 && r.lookup.fastifyRps! > 0, JSON.stringify(r.lookup));
    assert.equal(r.lookup.gridErrors, 0);
    assert.ok(r.metrics.onRps! > 0 && r.metrics.offRps! > 0 && r.metrics.errors === 0, `lookups with metrics on and off: ${JSON.stringify(r.metrics)}`);
    assert.ok(r.replicatedWrite.rps! > 0);
    assert.equal(r.replicatedWrite.errors, 0);
    // Inside the grid (3 worker processes): every write acknowledged, latency sane, peer measured.
    assert.equal(r.gridWrite.errors, 0, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.writesPerSecond! > 0 && r.gridWrite.p50Ms! > 0 && r.gridWrite.p50Ms! < 100, JSON.stringify(r.gridWrite));
    assert.ok(r.gridWrite.redisWritesPerSecond! > 0, 'the Redis peer was measured');
    assert.ok(r.memoryBytesPerSessionPerReplica > 256 && r.memoryBytesPerSessionPerReplica < 10_000, `${r.memoryBytesPerSessionPerReplica} B`);
    assert.equal(r.join.sessions, 3000);
    assert.equal(r.join.clientFailures, 0, 'no client request failed while an engine joined');
  });

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
    // Pushed saves arrive in milliseconds; the polling-only peer needs a poll (up to 2 s).
    assert.ok(rows[1]!.p99Ms < 1000, JSON.stringify(rows[1]));
  });

  // Access decisions beside their peers (forward auth beside bare Fastify, the inline proxy
  // beside the same Node proxy without a decision and nginx) and, with wrk, the time from a
  // revocation, a deletion and a deny-list save to the deny of every engine: the tables, their
  // figures and the summary line; speed is not asserted.
  for (const tool of ['wrk', 'autocannon']) {
    const changes = tool === 'wrk' ? 3 : 0;
    it(`bench:access drives every row from ${tool}${changes > 0 ? ', times enforcement on 3 engines' : ''} and prints the tables and the summary line`, { skip: tool === 'wrk' && !existsSync('/usr/bin/wrk') ? 'wrk is not installed' : false }, () => {
      const run = spawnSync(process.execPath, [join(PACKAGE_ROOT, 'dist/bench/access.js'), '--seconds', '1', '--rounds', '1', '--warmup', '0', '--connections', '10', '--credentials', '20', '--changes', String(changes), '--load', tool], {
        encoding: 'utf8',
        timeout: 150_000,
        killSignal: 'SIGTERM',
      });
      assert.equal(run.status, 0, run.stderr);
      const lines = run.stdout.trim().split('\n');
      assert.equal(lines.length, changes > 0 ? 16 : 10, run.stdout);
      assert.match(lines[0]!, new RegExp(`^\\| 10 connections, 1 x 1 s, ${tool} \\| req/s \\| p50 \\| p99 \\| errors \\| of peer \\| CPU per request \\| target \\|$`));
      const cells = (l: string) => l.split('|').map((c) => c.trim()).slice(1, -1);
      const rows = lines.slice(2, 9).map(cells);
      assert.deepEqual(rows.map((r) => r[0]), [
        'bare Fastify, 200 with an empty body', '/authz/forward, session cookie', '/authz/forward, ES256 JWT', '/authz/forward, session cookie from web sign-in (touch on)',
        '@fastify/reply-from proxy, no decision', 'inline proxy, session cookie', 'nginx proxy_pass, no decision',
      ]);
      for (const r of rows) {
        // nginx may be missing outside CI: its row says so.
        if (r[0]!.startsWith('nginx') && r[1]!.startsWith('skipped')) continue;
        assert.ok(Number(r[1]) > 0, `req/s: ${r.join(' | ')}`);
        assert.match(r[2]!, /^\d+\.\d\d ms$/);
        assert.match(r[3]!, /^\d+\.\d\d ms$/);
        // Every decision allowed, every proxied request answered: no error.
        assert.equal(r[4], '0', `errors: ${r.join(' | ')}`);
        assert.match(r[5]!, /^\d+%$/);
        assert.match(r[6]!, /^(\d+ µs|n\/a)$/);
      }
      assert.match(rows[1]![7]!, /^≥ 70% and p99 < 5 ms: (met|not met)(; by CPU per request \d+%)?$/);
      assert.match(rows[2]![7]!, /^≥ 50%: (met|not met)(; by CPU per request \d+%)?$/);
      assert.match(rows[3]![7]!, /^beside the session row: \d+% of it$/);
      assert.match(rows[5]![7]!, /^≥ 70% and added p99 < 2 ms \(-?\d+\.\d\d ms\): (met|not met)(; by CPU per request \d+%)?$/);
      if (changes > 0) {
        assert.equal(lines[9], '');
        assert.match(lines[10]!, /^\| change → denied by every engine \(3 engines\) \| changes \| p50 \| p99 \| max \| one poll \(p50\) \| target \|$/);
        const enforcement = lines.slice(12, 15).map(cells);
        assert.deepEqual(enforcement.map((r) => r[0]), ['revocation (POST /runtime/v1/revocations)', 'session deleted (DELETE /runtime/v1/sessions/{id})', 'deny-list save on the console (PUT /admin/v1/config/apis)']);
        for (const r of enforcement) {
          assert.equal(r[1], '3');
          for (const c of r.slice(2, 6)) assert.match(c!, /^\d+\.\d\d ms$/);
          assert.match(r[6]!, /^< 200 ms: (met|not met)$/);
        }
      }
      const summary = lines[lines.length - 1]!;
      assert.match(summary, /^bench:access: forward-session \d+\/s \(\d+\.\d\d of fastify\) forward-jwt \d+\/s \(\d+\.\d\d\) fastify \d+\/s inline \d+\/s \(\d+\.\d\d of reply-from, p99 \+-?\d+\.\d\d ms\) reply-from \d+\/s nginx (\d+\/s|skipped)/);
      if (changes > 0) assert.match(summary, / revocation p99 \d+\.\d ms deletion p99 \d+\.\d ms deny-list p99 \d+\.\d ms$/);
    });
  }
});
