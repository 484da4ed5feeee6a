#!/usr/bin/env node
// The build (scripts/build.mjs: the sources compiled and type-checked, the CLI bundle, the web
// bundle) and the lint at once. Each is single-threaded, so on a 2-core machine together they
// take as long as the longer of the two instead of both end to end. Each one's output is printed
// when it ends, not interleaved; the exit status is non-zero if either failed.
//
// `--then-test` (what `npm test` runs): the build leaves out the type-check (it compiles with
// esbuild in seconds) and the tests (scripts/run-tests.mjs) start as soon as it is done; the
// type-check (tsc, some 40 s) and the lint (some 50 s) run beside the tests at CPU priority
// nice 15, below the unit files that run beside the serial tests at nice 10 (which the
// integration tests wait for: at the same priority the three shared the CPU the serial tests
// left, and those unit files took 115 s in a full run, against 57 – 73 s with the lint alone
// beside them), so they take only the CPU the tests leave. Their output and results come at
// the end, and either failing fails the run.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { setPriority } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

// eslint's package exports hide its bin: found next to its package.json instead.
const eslint = join(dirname(createRequire(import.meta.url).resolve('eslint/package.json')), 'bin', 'eslint.js');
const thenTest = process.argv.includes('--then-test');
/** The CPU priority of the type-check and the lint beside the tests (see the header). */
const BESIDE_TESTS_NICE = 15;

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

console.log(`build-and-lint: building dist/${thenTest ? ' (the tests start once it is done, the type-check and the lint go on beside them)' : ' and type-checking it'}, and linting, side by side`);
const build = run('build', ['scripts/build.mjs', ...(thenTest ? ['--no-type-check'] : [])]);
const lint = run('lint', [eslint, '.']);
if (!thenTest) {
  const [built, linted] = [await build.done, await lint.done];
  built.print();
  linted.print();
  process.exit(built.passed && linted.passed ? 0 : 1);
}
const typeCheck = run('type-check', ['--input-type=module', '-e', "import { typeCheck } from './scripts/build.mjs'; process.exit(typeCheck(process.cwd()));"]);
const built = await build.done;
built.print();
// Beside the tests: only the CPU they leave (a platform that cannot lower a priority runs them as they are).
for (const step of [lint, typeCheck]) {
  try {
    setPriority(step.child.pid, BESIDE_TESTS_NICE);
  } catch {
    // gone already, or not allowed here
  }
}
let tests = { passed: false };
if (built.passed) {
  console.log(`\n# type-check and lint: going on beside the tests at nice ${BESIDE_TESTS_NICE}, their output at the end`);
  tests = await run('tests', ['scripts/run-tests.mjs'], { live: true }).done;
}
for (const step of [typeCheck, lint]) (await step.done).print();
process.exit(tests.passed && (await typeCheck.done).passed && (await lint.done).passed ? 0 : 1);
