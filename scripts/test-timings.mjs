#!/usr/bin/env node
// Lists the wall time of each top-level suite or test (a test file's `describe`, or the file
// itself when it failed or timed out as a whole) from the TAP reports that
// `COHORT_TEST_TAP_DIR=<dir> npm test` writes (one per group), longest first, with each
// group's sum: the figures for keeping `npm test` within its budget.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

const dir = process.argv[2];
if (!dir) {
  console.error('usage: node scripts/test-timings.mjs <dir of TAP reports>');
  process.exit(2);
}
for (const name of readdirSync(dir).filter((n) => n.endsWith('.tap')).sort()) {
  const rows = [];
  let file;
  for (const line of readFileSync(join(dir, name), 'utf8').split('\n')) {
    // Top-level entries only (no indentation).
    const sub = /^# Subtest: (.*)$/.exec(line);
    if (sub) file = sub[1];
    const ms = /^ {2}duration_ms: ([\d.]+)$/.exec(line);
    if (ms && file) {
      rows.push([file.split('/').pop(), Number(ms[1]) / 1000]);
      file = undefined;
    }
  }
  rows.sort((a, b) => b[1] - a[1]);
  const sum = rows.reduce((s, r) => s + r[1], 0);
  console.log(`\n${name.replace(/\.tap$/, '')}: ${rows.length} top-level suites, ${sum.toFixed(0)} s in all`);
  for (const [f, s] of rows) console.log(`  ${s.toFixed(1).padStart(7)} s  ${f}`);
}
