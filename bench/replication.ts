/**
 * `npm run bench:replication`: from a configuration save on the console to its application on
 * every engine, on real processes (console + engines on loopback, `polling_delay` 2000 ms as
 * shipped). Each save is a PUT of the `runtime` section through the admin API; its delay is
 * the latest `configAppliedAt` of the engines (each engine reports when it applied the
 * version) minus the save's `createdAt` (same machine, same clock).
 *
 * Rows: --saves saves with 3 engines, then with --engines (10; push on every save, the
 * default); then the peer, in the same run: as many engines with `push_changes = false`, so they learn
 * of a save only by polling every 2 s, as polling-only systems do (--peer-saves saves).
 *
 * Usage: node dist/bench/replication.js [--saves 50] [--engines 10] [--peer-saves 10] [--json]
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { percentile } from '../src/core/stats.js';
import type { ConsoleClusterView } from '../src/console/admin-api.js';
import { benchNodeConfig, removeAtExit, startBenchNode, waitReady, type BenchNode } from './nodes.js';

const { values: args } = parseArgs({
  options: {
    saves: { type: 'string', default: '50' },
    engines: { type: 'string', default: '10' },
    'peer-saves': { type: 'string', default: '10' },
    json: { type: 'boolean', default: false },
  },
});

function log(text: string): void {
  process.stderr.write(`bench:replication: ${text}\n`);
}

interface Row {
  engines: number;
  push: boolean;
  saves: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function cluster(engineCount: number, push: boolean): Promise<{ console: BenchNode; engines: BenchNode[]; token: string }> {
  const base = mkdtempSync(join(tmpdir(), 'cohort-bench-replication-'));
  removeAtExit(base);
  const consoleSections = { console: [`push_changes = ${push}`] };
  const consoleNode = await benchNodeConfig(base, 'console', 'console', '', consoleSections);
  await startBenchNode(consoleNode);
  const engines: BenchNode[] = [];
  for (let i = 1; i <= engineCount; i++) engines.push(await benchNodeConfig(base, `engine-${i}`, 'engine', consoleNode.cluster));
  await Promise.all(engines.map((n) => startBenchNode(n)));
  await Promise.all(engines.map((e) => waitReady(e, 60_000)));
  const password = readFileSync(join(consoleNode.dir, 'admin-password'), 'utf8').trim();
  const login = await fetch(`http://${consoleNode.admin}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: 'admin', password }) });
  const { token } = (await login.json()) as { token: string };
  return { console: consoleNode, engines, token };
}

async function measure(engineCount: number, push: boolean, saves: number): Promise<Row> {
  log(`${engineCount} engines, ${push ? 'push on save' : 'polling only (peer)'}: ${saves} saves`);
  const c = await cluster(engineCount, push);
  const headers = { authorization: `Bearer ${c.token}`, 'content-type': 'application/json' };
  const delays: number[] = [];
  for (let i = 0; i < saves; i++) {
    const put = await fetch(`http://${c.console.admin}/admin/v1/config/runtime`, { method: 'PUT', headers, body: JSON.stringify({ defaultRateLimit: { capacity: 10 + i, refillPerSecond: 1 } }) });
    const saved = (await put.json()) as { version: number; createdAt: number };
    for (;;) {
      const view = (await (await fetch(`http://${c.console.admin}/admin/v1/cluster`, { headers })).json()) as ConsoleClusterView;
      const engines = view.nodes.filter((n) => n.role === 'engine');
      if (engines.length === engineCount && engines.every((n) => n.configVersion === saved.version && n.configAppliedAt)) {
        delays.push(Math.max(...engines.map((n) => Date.parse(n.configAppliedAt!) - saved.createdAt)));
        break;
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    // Saves spread over the polling cycle, so the peer's figure is not tied to one phase of it.
    await new Promise((r) => setTimeout(r, 50 + ((i * 397) % 400)));
  }
  for (const n of [c.console, ...c.engines]) n.child?.kill('SIGKILL');
  return { engines: engineCount, push, saves, p50Ms: percentile(delays, 50), p99Ms: percentile(delays, 99), maxMs: Math.max(...delays) };
}

async function main(): Promise<void> {
  const saves = Number(args.saves);
  const many = Number(args.engines);
  const rows = [await measure(3, true, saves), await measure(many, true, saves), await measure(many, false, Number(args['peer-saves']))];
  if (args.json) {
    process.stdout.write(`${JSON.stringify(rows)}\n`);
    return;
  }
  process.stdout.write(
    [
      '| engines | how engines learn of a save | saves | p50 | p99 | max | target |',
      '| ---: | --- | ---: | ---: | ---: | ---: | --- |',
      ...rows.map((r) => `| ${r.engines} | ${r.push ? 'push on save (Cohort)' : 'polling every 2 s only (peer, same run)'} | ${r.saves} | ${r.p50Ms} ms | ${r.p99Ms} ms | ${r.maxMs} ms | ${r.push ? (r.engines === 3 ? 'p99 < 500 ms' : 'p50 < 200 ms, p99 < 500 ms') : ''} |`),
      '',
    ].join('\n'),
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench:replication failed: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
