#!/usr/bin/env node
// Runs every compiled test file with Node's built-in test runner.
//
// Files are listed explicitly (rather than passing a directory) because Node 20 and Node 22+
// interpret directory arguments to --test differently. Three groups:
// - unit: in-process tests (the simulators among them), four files at a time;
// - integration: real processes on real ports (clusters, proxies, browsers, the benches' smokes),
//   three files at a time: much of their time is spent waiting on processes, and they assert
//   behaviour with generous deadlines, never speed (the figures they print are the benches'
//   business, measured on a quiet machine);
// - serial: the few whose behaviour depends on time itself (no false suspicion of a node that is
//   merely slow, a schedule run once per period with second-scale claim timeouts, a real sign-in
//   served during a flood), one at a time, and never beside another test at the same CPU
//   priority: starved of CPU for longer than those timeouts, a node is rightly taken for dead.
// The serial group runs beside the unit group, whose tests run at a lower CPU priority (nice
// 10) and take only the CPU the serial tests leave (where `nice` exists; otherwise one after
// the other); then the integration group alone.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

function testFiles(dir) {
  const out = [];
  let entries;
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) out.push(...testFiles(path));
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

/**
 * The files that take longest, started first in their group, longest first: a long file that
 * starts last runs on alone while the other slots sit empty. (Names without the directory; the
 * others follow in name order.)
 */
const LONG_FIRST = [
  'grid-simulator-failed-write.test.js', 'grid-simulator-lifecycle-a.test.js', 'grid-simulator-lifecycle-b.test.js', 'grid-simulator-a.test.js', 'grid-simulator-b.test.js', 'grid-simulator-large-record.test.js', 'grid-transfer.test.js', 'runtime-api-bounds.test.js', 'simulator.test.js',
  // integration, longest first as measured in a full run (2026-12-04)
  'grid-e2e.test.js', 'grid-durability-e2e.test.js', 'bench-runtime-smoke.test.js', 'lb-e2e.test.js', 'up-lifecycle.test.js', 'console-e2e.test.js',
  'multi-host-netns.test.js', 'bench-membership-smoke.test.js', 'oidc-sign-in-e2e.test.js', 'bench-access-smoke.test.js', 'state-redis-failover.test.js',
  'grid-chaos-e2e.test.js', 'bench-replication-smoke.test.js', 'state-redis-cluster.test.js', 'drain.test.js',
  'scheduler-e2e.test.js',
];
function longFirst(files) {
  const rank = (f) => {
    const i = LONG_FIRST.indexOf(f.split(/[\\/]/).pop());
    return i < 0 ? LONG_FIRST.length : i;
  };
  return [...files].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
}

const only = process.argv.slice(2);
const groups = [
  // The simulator files run hundreds of seeds each: four at a time on two cores, one may take
  // two minutes or more, so the unit group's per-file limit is wider.
  { name: 'unit', files: longFirst(testFiles('dist/test/unit')), concurrency: 4, timeoutMs: 300_000 },
  // Three at a time: four took the group from about 8 to 6 minutes, but starved the engines
  // of CPU enough for calls between them to outlast the 500 ms default rpc_timeout in two
  // full runs out of two. COHORT_TEST_INTEGRATION_CONCURRENCY sets another number (1 to find
  // a file that fails only beside others).
  { name: 'integration', files: longFirst(testFiles('dist/test/integration')), concurrency: Number(process.env.COHORT_TEST_INTEGRATION_CONCURRENCY ?? 3), timeoutMs: 300_000 },
  { name: 'serial', files: testFiles('dist/test/serial'), concurrency: 1 },
].filter((g) => only.length === 0 || only.includes(g.name));

const files = groups.flatMap((g) => g.files);
if (files.length === 0) {
  console.error('run-tests: no compiled test files found; run "npm run build" first');
  process.exit(1);
}

/** The node:test command line for one group. */
function testArgs(group) {
  return [
    '--test', `--test-concurrency=${group.concurrency}`, `--test-timeout=${group.timeoutMs ?? 120_000}`,
    // A file ends when its last test has: a client library's reconnect timer left behind
    // (once, an ioredis cluster client after its servers were killed) must not hold the file
    // open until its time limit and fail a run whose every test passed. The processes the
    // tests start are stopped by the tests' own cleanups either way.
    '--test-force-exit',
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    // COHORT_TEST_TAP_DIR=<dir>: also a TAP report per group, whose top-level entries give the
    // wall time of each file's suites (scripts/test-timings.mjs lists them, longest first), to
    // keep the run within its budget.
    ...(process.env.COHORT_TEST_TAP_DIR
      ? ['--test-reporter=tap', `--test-reporter-destination=${join(process.env.COHORT_TEST_TAP_DIR, `${group.name}.tap`)}`]
      : []),
    ...group.files,
  ];
}

/** Whether `nice` can lower a command's CPU priority here. */
function niceAvailable() {
  return process.platform !== 'win32' && spawnSync('nice', ['-n', '10', 'true']).status === 0;
}

/**
 * Runs one group; resolves with whether every test passed. `output: 'live'` streams it as it
 * comes; `'held'` keeps it for `printHeld` (a group beside a live one, printed after it, so the
 * two do not interleave). `nice`: the group runs at that lower CPU priority.
 */
function runGroup(group, { output = 'live', nice = 0 } = {}) {
  const header = `\n# ${group.name} tests (${group.files.length} files)${nice ? `, at CPU priority nice ${nice}` : ''}`;
  const [command, args] = nice ? ['nice', ['-n', String(nice), process.execPath, ...testArgs(group)]] : [process.execPath, testArgs(group)];
  if (output === 'live') console.log(header);
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', output === 'live' ? 'inherit' : 'pipe', output === 'live' ? 'inherit' : 'pipe'] });
    let held = '';
    child.stdout?.on('data', (d) => (held += d));
    child.stderr?.on('data', (d) => (held += d));
    child.on('close', (code) => resolve({ passed: code === 0, printHeld: () => process.stdout.write(`${header}\n${held}`) }));
  });
}

if (process.env.COHORT_TEST_TAP_DIR) mkdirSync(process.env.COHORT_TEST_TAP_DIR, { recursive: true });

const byName = new Map(groups.filter((g) => g.files.length > 0).map((g) => [g.name, g]));
const results = [];
const unit = byName.get('unit');
const serial = byName.get('serial');
if (unit && serial && niceAvailable()) {
  // The serial tests beside the unit tests, which run at nice 10: the unit tests are
  // in-process (simulated clocks, no deadline a slow turn can miss), and the kernel gives the
  // CPU to the serial tests' processes whenever they want it (a nice-0 task gets about nine
  // times the CPU of a nice-10 one), so they still run as if the machine were theirs, and the
  // unit tests use the time they spend waiting on the clock (a minute of scheduler periods).
  console.log('\n# serial tests, beside the unit tests (their output follows the unit tests\')');
  const [unitRun, serialRun] = await Promise.all([runGroup(unit, { nice: 10 }), runGroup(serial, { output: 'held' })]);
  serialRun.printHeld();
  results.push(unitRun.passed, serialRun.passed);
  byName.delete('unit');
  byName.delete('serial');
}
for (const group of byName.values()) results.push((await runGroup(group)).passed);
process.exit(results.every(Boolean) ? 0 : 1);
