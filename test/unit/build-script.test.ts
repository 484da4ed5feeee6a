import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { tmpDir } from '../helpers/tmp.js';

interface BuildScript {
  STAMP_FILE: string;
  sourceDigest(root: string): string;
  upToDate(root: string): boolean;
  build(root: string): number;
}

const script = (await import(pathToFileURL(join(PACKAGE_ROOT, 'scripts/build.mjs')).href)) as BuildScript;

/** A package shaped like this one (its bin: the CLI's bundle), small enough to compile in a moment. */
function tinyPackage(root: string): void {
  mkdirSync(join(root, 'src/cli'), { recursive: true });
  writeFileSync(join(root, 'src/cli/main.ts'), "#!/usr/bin/env node\nimport { greeting } from './greeting.js';\nconsole.log(greeting);\n");
  writeFileSync(join(root, 'src/cli/greeting.ts'), "export const greeting = 'hello';\n");
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'tiny', type: 'module', bin: { tiny: 'dist/src/cli/cohort.js' } }));
  writeFileSync(
    join(root, 'tsconfig.json'),
    JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', target: 'ES2022', rootDir: '.', outDir: 'dist', types: [] }, include: ['src/**/*.ts'] }),
  );
  // The compiler comes from this package's own install.
  symlinkSync(join(PACKAGE_ROOT, 'node_modules'), join(root, 'node_modules'));
}

describe('scripts/build.mjs', () => {
  it('bundles the CLI into the one file the bin names, and makes it executable, which tsc alone does not', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    assert.equal(script.build(root), 0);
    const bundle = join(root, 'dist/src/cli/cohort.js');
    const mode = statSync(bundle).mode;
    assert.equal(mode & 0o111, 0o111, `mode ${mode.toString(8)}`);
    const text = readFileSync(bundle, 'utf8');
    assert.ok(text.startsWith('#!/usr/bin/env node\n'), 'the shebang stays first');
    assert.ok(/["']hello["']/.test(text) && !/from\s*["']\.\/greeting\.js["']/.test(text), 'the imported module is inside the bundle');
    const run = spawnSync(bundle, [], { encoding: 'utf8' });
    assert.equal(run.stdout.trim(), 'hello', run.stderr);
  });

  it('records what it built from, so --if-changed skips a build of unchanged sources and redoes one after any change', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    assert.equal(script.upToDate(root), false, 'never built');
    assert.equal(script.build(root), 0);
    assert.equal(script.upToDate(root), true);

    writeFileSync(join(root, 'src/cli/main.ts'), "#!/usr/bin/env node\nconsole.log('changed');\n");
    assert.equal(script.upToDate(root), false, 'a source changed');
    assert.equal(script.build(root), 0);
    assert.equal(script.upToDate(root), true);

    writeFileSync(join(root, 'src/cli/extra.ts'), 'export const x = 1;\n');
    assert.equal(script.upToDate(root), false, 'a source was added');
  });

  it('is not fooled by a stamp whose bin is missing', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    mkdirSync(join(root, 'dist'));
    writeFileSync(join(root, script.STAMP_FILE), `${script.sourceDigest(root)}\n`);
    assert.equal(script.upToDate(root), false);
  });
});
