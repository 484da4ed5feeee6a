/**
 * Real nginx and HAProxy, each running the configuration `cohort lb` printed as it is, in
 * front of `cohort up --engines 3`, under a steady load of runtime-API reads and writes:
 *
 * - a rolling restart of every engine (SIGTERM: the engine drains for drain_seconds, saves,
 *   leaves and exits; then `cohort start` brings it back with its saved state, and the next
 *   engine goes once it is ready) fails no client request;
 * - `kill -9` of one engine fails no request the balancer may repeat (GET, PUT); the POSTs
 *   it had in flight may fail, and are only counted.
 *
 * The numbers of requests sent and failed are printed. Without nginx or HAProxy a test is
 * skipped with a loud notice, or fails when COHORT_REQUIRE_SERVICES=1. Every process runs in
 * its own process group and is killed when the test ends, pass or fail.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { freePort } from '../../src/cli/free-port.js';
import { waitUntil } from '../helpers/cluster.js';
import { startLoad, type LoadCounts } from '../helpers/lb-load.js';
import { alive, runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

const NGINX = process.env.COHORT_TEST_NGINX ?? '/usr/sbin/nginx';
const HAPROXY = process.env.COHORT_TEST_HAPROXY ?? '/usr/sbin/haproxy';

function binaryOrSkip(t: TestContext, name: string, path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    if (process.env.COHORT_REQUIRE_SERVICES === '1') throw new Error(`${name} at ${path} is required (COHORT_REQUIRE_SERVICES=1) but not there`);
    process.stderr.write(`\n*** SKIPPED: ${name} not found at ${path}; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n`);
    t.skip(`${name} not found at ${path}`);
    return false;
  }
}

/** Runs a balancer in its own process group, killed when the test ends. */
function runBalancer(t: TestContext, command: string, args: string[], cwd: string): { output(): string } {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise((resolve) => child.once('close', resolve));
  t.after(async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // already gone
    }
    await exited;
  });
  return { output: () => output };
}

function report(t: TestContext, phase: string, c: LoadCounts): void {
  t.diagnostic(`${phase}: ${c.sent} requests sent, ${c.failed} failed (${c.idempotentSent} GET/PUT sent, ${c.idempotentFailed} failed)`);
  for (const f of c.failures.slice(0, 10)) t.diagnostic(`  failed at ${f.at} ms: ${f.method} ${f.path}: ${f.what}`);
}

async function readyStatus(runtime: string): Promise<number> {
  return fetch(`${runtime}/health/ready`, { signal: AbortSignal.timeout(2000) }).then((r) => r.status, () => 0);
}

async function scenario(t: TestContext, balancer: 'nginx' | 'haproxy'): Promise<void> {
  const dir = upDir(t);
  const up = runCohort(t, ['up', '--engines', '3', '--dir', dir, '--json']);
  await up.waitForOutput(/"clusterId"/, 60_000);
  const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
  const engines = cluster.nodes.filter((n) => n.role === 'engine');
  const consoleFile = cluster.nodes.find((n) => n.role === 'console')!.configFile;

  // The configuration exactly as `cohort lb` prints it.
  const port = await freePort();
  const printed = await runCohortToEnd(t, ['lb', balancer, '-c', consoleFile, '--listen', `127.0.0.1:${port}`]);
  assert.equal(printed.code, 0, printed.stderr);
  for (const e of engines) assert.ok(printed.stdout.includes(e.runtime!.replace('http://', '')), `${e.id} is in the configuration`);
  const prefix = tmpDir(t);
  const file = join(prefix, balancer === 'nginx' ? 'nginx.conf' : 'haproxy.cfg');
  writeFileSync(file, printed.stdout);
  if (balancer === 'nginx') {
    mkdirSync(join(prefix, 'logs'), { recursive: true });
    // As root, nginx's workers would run as nobody, who cannot enter the test's private directory.
    runBalancer(t, NGINX, ['-p', prefix, '-c', file, ...(process.getuid?.() === 0 ? ['-g', 'user root;'] : [])], prefix);
  } else {
    runBalancer(t, HAPROXY, ['-f', file], prefix);
  }
  const base = `http://127.0.0.1:${port}`;
  await waitUntil(() => readyStatus(base), (s) => s === 200, 15_000, 50);

  const load = startLoad(base, cluster.apiKey);
  try {
    await new Promise((r) => setTimeout(r, 1000));

    // Rolling restart: one engine at a time, each back and ready before the next goes.
    const rollingStarted = performance.now();
    const restarted: number[] = [];
    for (const engine of engines) {
      process.kill(engine.pid, 'SIGTERM');
      await waitUntil(async () => alive(engine.pid), (a) => !a, 30_000, 20);
      const again = runCohort(t, ['start', '-c', engine.configFile]);
      restarted.push(again.pid);
      await waitUntil(() => readyStatus(engine.runtime!), (s) => s === 200, 30_000, 50);
      // The balancer has it back in rotation (HAProxy: two good checks) before the next goes.
      await new Promise((r) => setTimeout(r, 500));
    }
    const rolling = load.counts();
    report(t, `${balancer}, rolling restart of 3 engines (${((performance.now() - rollingStarted) / 1000).toFixed(1)} s)`, rolling);

    // kill -9 of one engine, under the same load for a few seconds.
    load.reset();
    process.kill(restarted[1]!, 'SIGKILL');
    await new Promise((r) => setTimeout(r, 4000));
    const killed = await load.stop();
    report(t, `${balancer}, kill -9 of engine-2 and 4 s after`, killed);

    assert.ok(rolling.sent > 200, `the load ran (${rolling.sent} requests)`);
    assert.equal(rolling.failed, 0, `no request failed during the rolling restart: ${JSON.stringify(rolling.failures.slice(0, 5))}`);
    assert.ok(killed.idempotentSent > 50, `the load ran after the kill (${killed.idempotentSent} GET/PUT)`);
    assert.equal(killed.idempotentFailed, 0, `no GET or PUT failed after the kill: ${JSON.stringify(killed.failures.filter((f) => f.method !== 'POST').slice(0, 5))}`);
  } finally {
    await load.stop();
  }
}

describe('load balancers from cohort lb in front of a three-engine cluster', () => {
  it('nginx: a rolling restart fails no request; kill -9 of an engine fails no GET or PUT', async (t) => {
    if (!binaryOrSkip(t, 'nginx', NGINX)) return;
    await scenario(t, 'nginx');
  });

  it('HAProxy: a rolling restart fails no request; kill -9 of an engine fails no GET or PUT', async (t) => {
    if (!binaryOrSkip(t, 'HAProxy', HAPROXY)) return;
    await scenario(t, 'haproxy');
  });
});
