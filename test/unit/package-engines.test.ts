import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../helpers/paths.js';

// semver ships no types of its own; this function is all this test needs.
const semver = createRequire(import.meta.url)('semver') as { satisfies(version: string, range: string): boolean };

/**
 * Node.js versions to try ranges with: every minor of the lines from 18 to 30, at its first
 * and a late patch. (semver's own `subset` cannot tell that `>=24 <27` is inside
 * `24.x || 25.x || 26.x`, since it does not join adjacent ranges.)
 */
const NODE_VERSIONS = Array.from({ length: 13 }, (_, i) => 18 + i).flatMap((major) =>
  Array.from({ length: 60 }, (_, minor) => [`${major}.${minor}.0`, `${major}.${minor}.40`]).flat(),
);

interface LockFile {
  packages: Record<string, { version?: string; engines?: { node?: string } | string[]; dev?: boolean }>;
}

const pkg = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package-lock.json'), 'utf8')) as LockFile;

describe('the Node.js versions package.json promises', () => {
  it('package-lock.json records the same range', () => {
    const root = lock.packages[''];
    assert.ok(root && !Array.isArray(root.engines));
    assert.equal(root.engines?.node, pkg.engines.node, 'run npm install to update package-lock.json');
  });

  it('every installed package accepts every Node.js version in that range (npm install warns EBADENGINE otherwise)', () => {
    const narrower: string[] = [];
    for (const [path, entry] of Object.entries(lock.packages)) {
      if (path === '' || !entry.engines || Array.isArray(entry.engines) || !entry.engines.node) continue;
      const range = entry.engines.node;
      const refused = NODE_VERSIONS.find((v) => semver.satisfies(v, pkg.engines.node) && !semver.satisfies(v, range));
      if (refused) narrower.push(`${path}@${entry.version} wants node ${range} (not ${refused})`);
    }
    assert.deepEqual(narrower, [], `package.json promises node ${pkg.engines.node}`);
  });

  it('includes the Node.js 20, 22 and 24 lines, and the Node.js running this test', () => {
    for (const version of ['20.19.0', '22.13.0', '24.0.0', process.versions.node]) assert.ok(semver.satisfies(version, pkg.engines.node), `${version} in ${pkg.engines.node}`);
  });
});
