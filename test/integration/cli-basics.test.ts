import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { deobfuscate } from '../../src/config/obfuscation.js';
import { CLI_ENTRY, PACKAGE_ROOT } from '../helpers/paths.js';
import { runCohortToEnd } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

describe('cohort CLI basics', () => {
  it('--help lists the commands', async (t) => {
    const r = await runCohortToEnd(t, ['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['start', 'up', 'obfuscate', 'health', 'drain']) assert.match(r.stdout, new RegExp(`^\\s+${cmd}\\b`, 'm'), `${cmd} listed`);
  });

  it('npx --no-install cohort --help runs the built bin in the package root', async (t) => {
    // npx runs a bin that npm linked earlier as is; a build that dropped the execute bit
    // made that fail with "Permission denied" until npm linked it again.
    const mode = statSync(CLI_ENTRY).mode;
    assert.equal(mode & 0o111, 0o111, `${CLI_ENTRY} has mode ${mode.toString(8)}: not executable`);
    // A cache of its own, offline, without lifecycle scripts: npx links the package into its
    // cache and would run its prepare script (a build, if the sources changed since the last
    // one) under the other tests' feet.
    const cache = tmpDir(t, 'cohort-npm-cache-');
    const child = spawn('npx', ['--no-install', 'cohort', '--help'], {
      cwd: PACKAGE_ROOT,
      env: { ...process.env, npm_config_cache: cache, npm_config_offline: 'true', npm_config_ignore_scripts: 'true', npm_config_update_notifier: 'false' },
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    t.after(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    assert.equal(code, 0, `stdout: ${out}\nstderr: ${err}`);
    assert.match(out, /^Usage: cohort \[options\] \[command\]/m);
    for (const cmd of ['start', 'up', 'cluster']) assert.match(out, new RegExp(`^\\s+${cmd}\\b`, 'm'), `${cmd} listed`);
  });

  it('--version prints the package version', async (t) => {
    const r = await runCohortToEnd(t, ['--version']);
    const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string };
    assert.equal(r.code, 0);
    assert.equal(r.stdout.trim(), pkg.version);
  });

  it('obfuscate prints an OBF: value that decodes to the secret', async (t) => {
    const r = await runCohortToEnd(t, ['obfuscate', 's3cret;with#chars']);
    assert.equal(r.code, 0);
    assert.equal(deobfuscate(r.stdout.trim()), 's3cret;with#chars');
  });

  it('obfuscate refuses a secret over 128 characters with exit 2', async (t) => {
    const r = await runCohortToEnd(t, ['obfuscate', 'x'.repeat(129)]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /1 to 128 characters/);
  });

  it('an unknown command exits 2', async (t) => {
    const r = await runCohortToEnd(t, ['frobnicate']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown command/);
  });
});
