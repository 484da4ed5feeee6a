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
// How they share the two cores: the unit files that wait on the real clock (a deadline, a real
// socket or timer: `waitsOnRealTime`) run beside the serial group at CPU priority nice 10, which
// gives the serial tests' processes the cores whenever they want them (a nice-0 task gets about
// nine times the CPU of a nice-10 one); the other unit files (in-process, on simulated clocks:
// no deadline a slow turn can miss; the simulators are most of them) run from the start in the
// background at idle priority (the scheduler's idle class, `chrt --idle`, else `nice -n 19`),
// taking only the CPU nothing else wants; the integration group starts once the serial group
// and the clock-bound unit files are done, and the background unit files go on beside it (its
// gaps, and the tail where its last files run alone). Where neither launcher exists (Windows)
// the groups run one after the other. The background files' output is printed last.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { failedTests, filesWithoutTests, unendedTests } from './tap-check.mjs';

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
/**
 * A background unit test's time limit: at idle priority it may wait minutes for a core while
 * the integration tests keep both busy (its own work is what the foreground limit allows).
 */
const BACKGROUND_TIMEOUT_MS = 900_000;
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
    // No --test-force-exit: on Node 20 it sometimes ended a file of many short tests part-way
    // with no failure (test/unit/config.test.js ran 39 to 47 of its 48 tests in 4 runs of 8),
    // and it cut the end of the TAP report below. A file that something holds open fails by
    // its time limit instead, which says where.
    '--test-reporter=spec', '--test-reporter-destination=stdout',
    // A TAP report per group, checked when the group ends (`unendedTests`). Written to
    // COHORT_TEST_TAP_DIR=<dir> when set: its top-level entries give the wall time of each
    // file's suites (scripts/test-timings.mjs lists them, longest first), to keep the run within
    // its budget.
    '--test-reporter=tap', `--test-reporter-destination=${tapFile(group)}`,
    ...group.files,
  ];
}

/** Whether `nice` can lower a command's CPU priority here. */
function niceAvailable() {
  return process.platform !== 'win32' && spawnSync('nice', ['-n', '10', 'true']).status === 0;
}

/**
 * The command prefix that runs a process at idle CPU priority, or undefined where there is
 * none: the idle scheduling class (a process that runs only when a core would otherwise idle),
 * else the lowest nice level.
 */
function idlePriority() {
  if (process.platform === 'win32') return undefined;
  if (spawnSync('chrt', ['--idle', '0', 'true']).status === 0) return ['chrt', '--idle', '0'];
  if (spawnSync('nice', ['-n', '19', 'true']).status === 0) return ['nice', '-n', '19'];
  return undefined;
}

/**
 * Runs one group; resolves with whether every test passed and how long it took. `output:
 * 'live'` streams it as it comes; `'held'` keeps it for `printHeld` (a group beside a live one,
 * printed after it, so the two do not interleave; absent for a live group). `prefix`: a
 * command to run it under (a lower CPU priority).
 */
function runGroup(group, { output = 'live', prefix = [] } = {}) {
  const header = `\n# ${group.name} tests (${group.files.length} files)${prefix.length > 0 ? `, under ${prefix.join(' ')}` : ''}`;
  const [command, ...args] = [...prefix, process.execPath, ...testArgs(group)];
  if (output === 'live') console.log(header);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: ['ignore', output === 'live' ? 'inherit' : 'pipe', output === 'live' ? 'inherit' : 'pipe'] });
    let held = '';
    child.stdout?.on('data', (d) => (held += d));
    child.stderr?.on('data', (d) => (held += d));
    child.on('close', (code) =>
      resolve({ passed: code === 0, seconds: Math.round((Date.now() - started) / 1000), printHeld: output === 'live' ? undefined : () => process.stdout.write(`${header}\n${held}`) }),
    );
  });
}

/**
 * Test modules that hold no real clock, socket or process: a unit file importing any other test
 * module (a helper, the fuzz targets) counts as clock-bound. Its imports of src/ are the code under
 * test, which takes its clock from the test.
 */
const SIMULATED_HELPERS = new Set(['../helpers/sim-grid.js', '../helpers/grid-chaos-seeds.js', '../helpers/tmp.js', '../helpers/paths.js', '../helpers/node-config.js', '../helpers/yaml-subset.js', '../helpers/prometheus.js']);

/**
 * Whether a compiled test file may wait on the real clock: a deadline (`waitUntil`), a timer, a
 * real socket, server or process, itself or through a helper not known to be free of them. Such a
 * file must not run at idle priority beside the integration tests, which can keep both cores
 * busy for longer than its deadlines. A file named here for nothing only runs earlier, at nice 10.
 */
function waitsOnRealTime(file) {
  const text = readFileSync(file, 'utf8');
  if (/\b(waitUntil|setTimeout|setInterval|systemClock|createServer|fetch|spawn|spawnSync|execFile)\b|\.listen\(/.test(text)) return true;
  return [...text.matchAll(/(?:from|import)\s*\(?\s*['"](\.\.?\/[^'"]+)['"]/g)].some((m) => !m[1].startsWith('../../src/') && !SIMULATED_HELPERS.has(m[1]));
}

const TAP_DIR = process.env.COHORT_TEST_TAP_DIR ?? mkdtempSync(join(tmpdir(), 'cohort-test-tap-'));
mkdirSync(TAP_DIR, { recursive: true });
if (!process.env.COHORT_TEST_TAP_DIR) process.on('exit', () => rmSync(TAP_DIR, { recursive: true, force: true }));

function tapFile(group) {
  return join(TAP_DIR, `${group.name}.tap`);
}

/** A group's result, failed when its report holds a test that never ended or a file that reported none (tap-check.mjs). */
function checked(group, passed) {
  let tap = '';
  try {
    tap = readFileSync(tapFile(group), 'utf8');
  } catch {
    console.log(`\nrun-tests: the ${group.name} tests wrote no report`);
    return false;
  }
  const unended = unendedTests(tap);
  const silent = filesWithoutTests(tap);
  failures.push(...failedTests(tap).map((f) => ({ ...f, group: group.name })));
  if (unended.length > 0) console.log(`\nrun-tests: ${unended.length} of the ${group.name} tests began and never ended (a test file stopped part-way; its later tests did not run): ${unended.slice(0, 10).join(' / ')}`);
  if (silent.length > 0) console.log(`\nrun-tests: ${silent.length} ${group.name} test files reported no test of their own (a file that ended early, or one the runner ended at its time limit, which shows the file alone even after its tests ran): ${silent.join(', ')}`);
  return passed && unended.length === 0 && silent.length === 0;
}

/** The failed tests of every group, printed once all have run (`printFailures`). */
const failures = [];

/** The failed tests again, last, with where they are and their errors' first lines. */
function printFailures() {
  if (failures.length === 0) return;
  const shown = failures.slice(0, 20);
  console.log(`\n# ${failures.length} failed test${failures.length === 1 ? '' : 's'}${failures.length > shown.length ? ` (the first ${shown.length})` : ''}`);
  for (const f of shown) {
    console.log(`\n✖ [${f.group}] ${f.name}${f.location ? `\n  at ${f.location}` : ''}`);
    for (const line of f.error) console.log(`  | ${line}`);
  }
}

const byName = new Map(groups.filter((g) => g.files.length > 0).map((g) => [g.name, g]));
const results = [];
const unit = byName.get('unit');
const serial = byName.get('serial');
const integration = byName.get('integration');
const idle = unit && (serial || integration) ? idlePriority() : undefined;
if (unit && idle && niceAvailable()) {
  const clockBound = unit.files.filter(waitsOnRealTime);
  const background = { ...unit, files: unit.files.filter((f) => !clockBound.includes(f)), timeoutMs: BACKGROUND_TIMEOUT_MS };
  // The serial group's output as it comes; the clock-bound unit files' once both are done.
  const foreground = [
    ...(clockBound.length > 0 ? [{ group: { ...unit, name: 'unit-clock', files: clockBound }, options: { output: 'held', prefix: ['nice', '-n', '10'] } }] : []),
    ...(serial ? [{ group: serial, options: {} }] : []),
  ];
  console.log(`\n# unit tests on simulated clocks (${background.files.length} files), in the background at idle CPU priority (${idle.join(' ')}); their output comes last`);
  const backgroundRun = runGroup(background, { output: 'held', prefix: idle });
  void backgroundRun.then((r) => console.log(`\n# unit tests on simulated clocks: ${r.passed ? 'passed' : 'FAILED'} in ${r.seconds} s`));
  if (foreground.length > 0) {
    console.log(`\n# ${foreground.map((f) => `${f.group.name} (${f.group.files.length} files${f.options.prefix ? `, ${f.options.prefix.join(' ')}, output once done` : ''})`).join(' beside ')}`);
    const runs = await Promise.all(foreground.map((f) => runGroup(f.group, f.options)));
    runs.forEach((r, i) => {
      r.printHeld?.();
      results.push(checked(foreground[i].group, r.passed));
    });
  }
  if (integration) results.push(checked(integration, (await runGroup(integration)).passed));
  const done = await backgroundRun;
  done.printHeld?.();
  results.push(checked(background, done.passed));
} else {
  for (const group of byName.values()) results.push(checked(group, (await runGroup(group)).passed));
}
printFailures();
process.exit(results.every(Boolean) ? 0 : 1);
