import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

function filesUnder(path: string): string[] {
  const full = join(PACKAGE_ROOT, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((name) => filesUnder(join(path, name)));
}

describe('the repository stands alone', () => {
  it('no source, test, script, help text or document points to sections of a specification kept outside it', () => {
    const offenders: string[] = [];
    for (const file of ['README.md', 'docs', 'src', 'test', 'scripts', 'bench', '.ci', 'deploy', 'Dockerfile', '.dockerignore'].flatMap(filesUnder)) {
      const path = relative('.', file).split('\\').join('/');
      const lines = readFileSync(join(PACKAGE_ROOT, file), 'utf8').split('\n');
      for (const [i, line] of lines.entries()) if (/\bSPEC\b/.test(line)) offenders.push(`${path}:${i + 1}: ${line.trim()}`);
    }
    assert.deepEqual(offenders, []);
  });
});
