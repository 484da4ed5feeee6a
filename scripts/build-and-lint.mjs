#!/usr/bin/env node
// The build (tsc, the web bundle) and the lint at once. Each is single-threaded, so on a 2-core
// machine together they take as long as the longer of the two instead of both end to end. Each
// one's output is printed when it ends, not interleaved; the exit status is non-zero if either
// failed.
//
// `--then-test` (what `npm test` runs): the tests (scripts/run-tests.mjs) start as soon as the
// build is done, and a lint still running goes on beside them at CPU priority nice 10 (the
// lint took some ten seconds longer than the build, which the tests' first groups then had to
// wait for; at nice 10 it takes only the CPU they leave, as the unit files beside the serial
// tests do). The lint's output and result come at the end, and a failed lint fails the run.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

// eslint's package exports hide its bin: found next to its package.json instead.
const eslint = join(dirname(createRequire(import.meta.url).resolve('eslint/package.json')), 'bin', 'eslint.js');
const thenTest = process.argv.includes('--then-test');

/** Runs `args` with node; resolves with whether it passed and its output (printed by `print`). */
function run(name, args, { live = false } = {}) {
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', live ? 'inherit' : 'pipe', live ? 'inherit' : 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const done = new Promise((resolve) =>
    child.on('close', (code, signal) => {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      resolve({ passed: code === 0, print: () => process.stdout.write(`\n# ${name}: ${code === 0 ? 'ok' : `failed (${signal ?? `exit ${code}`})`} in ${seconds} s\n${output}`) });
    }),
  );
  return { child, done };
}

console.log(`build-and-lint: type-checking and building dist/, and linting, side by side${thenTest ? '; the tests start once the build is done' : ''}`);
const build = run('build', ['scripts/build.mjs']);
const lint = run('lint', [eslint, '.']);
let lintEnded = false;
void lint.done.then(() => (lintEnded = true));
const built = await build.done;
built.print();
if (!thenTest || !built.passed) {
  const linted = await lint.done;
  linted.print();
  process.exit(built.passed && linted.passed ? 0 : 1);
}
if (!lintEnded) {
  try {
    setPriority(lint.child.pid, 10);
    console.log('\n# lint: still running; it goes on beside the tests at nice 10, its output at the end');
  } catch {
    // a platform that cannot lower it: it runs on as it is
  }
}
const tests = await run('tests', ['scripts/run-tests.mjs'], { live: true }).done;
const linted = await lint.done;
linted.print();
process.exit(tests.passed && linted.passed ? 0 : 1);
