import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deobfuscate } from '../../src/config/obfuscation.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { runCohortToEnd } from '../helpers/processes.js';

describe('cohort CLI basics', () => {
  it('--help lists the commands', async (t) => {
    const r = await runCohortToEnd(t, ['--help']);
    assert.equal(r.code, 0);
    for (const cmd of ['start', 'up', 'obfuscate']) assert.match(r.stdout, new RegExp(`^\\s+${cmd}\\b`, 'm'), `${cmd} listed`);
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
