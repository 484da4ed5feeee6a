#!/usr/bin/env node
// Runs every compiled test file with Node's built-in test runner.
//
// Files are listed explicitly (rather than passing a directory) because Node 20 and Node 22+
// interpret directory arguments to --test differently. Unit tests run in parallel; integration
// tests start real processes and bind real ports, so they run two at a time to stay within a
// 2-core machine's means; test/serial holds the real-process tests with timing bars, run one
// at a time.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
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

const only = process.argv.slice(2);
const groups = [
  // The simulator files run hundreds of seeds each: four at a time on two cores, one may take
  // two minutes or more, so the unit group's per-file limit is wider.
  { name: 'unit', files: testFiles('dist/test/unit'), concurrency: 4, timeoutMs: 300_000 },
  { name: 'integration', files: testFiles('dist/test/integration'), concurrency: 2 },
  // Real-process tests with timing bars (detection within 1.5 s, a cluster within 3 s) run one
  // at a time, so that no other test's processes compete with them for the two cores.
  { name: 'serial', files: testFiles('dist/test/serial'), concurrency: 1 },
].filter((g) => only.length === 0 || only.includes(g.name));

const files = groups.flatMap((g) => g.files);
if (files.length === 0) {
  console.error('run-tests: no compiled test files found; run "npm run build" first');
  process.exit(1);
}

let failed = false;
for (const group of groups) {
  if (group.files.length === 0) continue;
  console.log(`\n# ${group.name} tests (${group.files.length} files)`);
  const result = spawnSync(
    process.execPath,
    // A test that hangs (a process that never exits) fails after two minutes (five for unit
    // files) instead of holding up the run.
    ['--test', `--test-concurrency=${group.concurrency}`, `--test-timeout=${group.timeoutMs ?? 120_000}`, '--test-reporter=spec', ...group.files],
    { stdio: 'inherit' },
  );
  if (result.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
