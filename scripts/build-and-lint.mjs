#!/usr/bin/env node
// The first half of `npm test`: the build (tsc, the web bundle) and the lint at once. Each is
// single-threaded, so on a 2-core machine together they take as long as the longer of the two
// instead of both end to end. Each one's output is printed when it ends, not interleaved;
// the exit status is non-zero if either failed.
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';

// eslint's package exports hide its bin: found next to its package.json instead.
const eslint = join(dirname(createRequire(import.meta.url).resolve('eslint/package.json')), 'bin', 'eslint.js');
const steps = [
  { name: 'build', args: ['scripts/build.mjs'] },
  { name: 'lint', args: [eslint, '.'] },
];

console.log('build-and-lint: type-checking and building dist/, and linting, side by side');
const results = await Promise.all(
  steps.map(
    (step) =>
      new Promise((resolve) => {
        const started = performance.now();
        const child = spawn(process.execPath, step.args, { stdio: ['ignore', 'pipe', 'pipe'] });
        let output = '';
        child.stdout.on('data', (d) => (output += d));
        child.stderr.on('data', (d) => (output += d));
        child.on('close', (code, signal) => {
          const seconds = ((performance.now() - started) / 1000).toFixed(1);
          process.stdout.write(`\n# ${step.name}: ${code === 0 ? 'ok' : `failed (${signal ?? `exit ${code}`})`} in ${seconds} s\n${output}`);
          resolve(code === 0);
        });
      }),
  ),
);
process.exit(results.every(Boolean) ? 0 : 1);
