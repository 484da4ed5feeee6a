/**
 * `npm run bench:access` in short: every row driven from wrk and from autocannon, and the enforcement table.
 * The full run is minutes long and stays out of npm test; this one checks that the script works
 * end to end on real processes and that its figures are sane (speed is not asserted).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

describe('bench:access smoke', () => {
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
      assert.equal(lines.length, changes > 0 ? 21 : 15, run.stdout);
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
      assert.match(rows[5]![7]!, /^≥ 70%: (met|not met)(; by CPU per request \d+%)?; p99 -?\d+\.\d\d ms over the peer's$/);
      // Both proxies again at one fixed rate: the latency the decision adds.
      assert.equal(lines[9], '');
      const paced = /^\| (\d+) req\/s each \(50% of the slower's full speed\), 10 connections, 1 x 1 s \| req\/s \| p50 \| p99 \| errors \| added p99 \| target \|$/.exec(lines[10]!);
      assert.ok(paced, lines[10]);
      const rate = Number(paced[1]);
      const pacedRows = lines.slice(12, 14).map(cells);
      assert.deepEqual(pacedRows.map((r) => r[0]), ['@fastify/reply-from proxy, no decision', 'inline proxy, session cookie']);
      for (const r of pacedRows) {
        // Requests leave on schedule whatever the answers do: every one was sent and answered.
        assert.ok(Math.abs(Number(r[1]) - rate) <= Math.max(2, rate * 0.2), `paced req/s ${r[1]} against ${rate}`);
        assert.match(r[2]!, /^\d+\.\d\d ms$/);
        assert.match(r[3]!, /^\d+\.\d\d ms$/);
        assert.equal(r[4], '0', `errors: ${r.join(' | ')}`);
      }
      assert.match(pacedRows[1]![5]!, /^-?\d+\.\d\d ms$/);
      assert.match(pacedRows[1]![6]!, /^< 2 ms: (met|not met)$/);
      if (changes > 0) {
        assert.equal(lines[14], '');
        assert.match(lines[15]!, /^\| change → denied by every engine \(3 engines\) \| changes \| p50 \| p99 \| max \| one poll \(p50\) \| target \|$/);
        const enforcement = lines.slice(17, 20).map(cells);
        assert.deepEqual(enforcement.map((r) => r[0]), ['revocation (POST /runtime/v1/revocations)', 'session deleted (DELETE /runtime/v1/sessions/{id})', 'deny-list save on the console (PUT /admin/v1/config/apis)']);
        for (const r of enforcement) {
          assert.equal(r[1], '3');
          for (const c of r.slice(2, 6)) assert.match(c!, /^\d+\.\d\d ms$/);
          assert.match(r[6]!, /^< 200 ms: (met|not met)$/);
        }
      }
      const summary = lines[lines.length - 1]!;
      assert.match(summary, /^bench:access: forward-session \d+\/s \(\d+\.\d\d of fastify\) forward-jwt \d+\/s \(\d+\.\d\d\) fastify \d+\/s inline \d+\/s \(\d+\.\d\d of reply-from, p99 \+-?\d+\.\d\d ms at \d+\/s\) reply-from \d+\/s nginx (\d+\/s|skipped)/);
      if (changes > 0) assert.match(summary, / revocation p99 \d+\.\d ms deletion p99 \d+\.\d ms deny-list p99 \d+\.\d ms$/);
    });
  }
});
