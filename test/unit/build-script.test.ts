import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../helpers/paths.js';
import { tmpDir } from '../helpers/tmp.js';

interface BuildScript {
  STAMP_FILE: string;
  ESBUILD_NAME_HELPER: string;
  CHEAP_NAME_HELPER: string;
  cheapNameHelper(text: string): string;
  bundleCli(root: string): number;
  sourceDigest(root: string): string;
  upToDate(root: string): boolean;
  build(root: string, options?: { typeCheck?: boolean }): number;
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

  it('splits what the CLI imports dynamically into chunk files beside the bundle, each with the cheap name helper, and drops an earlier bundle\'s chunks', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    writeFileSync(join(root, 'src/cli/late.ts'), "export class LateGreeter { hello(): string { return 'late-text'; } }\nexport const lateName = (): string => LateGreeter.name;\n");
    writeFileSync(join(root, 'src/cli/main.ts'), "#!/usr/bin/env node\ndeclare const process: { argv: string[] };\nif (process.argv[2] === 'late') { const { LateGreeter, lateName } = await import('./late.js'); console.log(new LateGreeter().hello(), lateName()); } else console.log('early');\n");
    assert.equal(script.build(root), 0);
    const dir = join(root, 'dist/src/cli');
    const chunks = readdirSync(dir).filter((f) => /^cohort-chunk-[A-Z0-9]+\.js$/.test(f));
    assert.ok(chunks.length >= 1, `chunks: ${readdirSync(dir).join(', ')}`);
    const texts = chunks.map((f) => readFileSync(join(dir, f), 'utf8'));
    assert.ok(texts.some((text) => text.includes('late-text')), 'the dynamically imported module is in a chunk');
    assert.ok(!readFileSync(join(dir, 'cohort.js'), 'utf8').includes('late-text'), 'and not in the bundle a process loads first');
    for (const text of [...texts, readFileSync(join(dir, 'cohort.js'), 'utf8')]) assert.ok(!text.includes(script.ESBUILD_NAME_HELPER), "esbuild's helper is in no file");
    assert.equal(spawnSync(join(dir, 'cohort.js'), [], { encoding: 'utf8' }).stdout.trim(), 'early');
    const late = spawnSync(join(dir, 'cohort.js'), ['late'], { encoding: 'utf8' });
    assert.equal(late.stdout.trim(), 'late-text LateGreeter', late.stderr);

    writeFileSync(join(dir, 'cohort-chunk-OLDBUILD.js'), 'export {};\n');
    assert.equal(script.bundleCli(root), 0);
    assert.ok(!readdirSync(dir).includes('cohort-chunk-OLDBUILD.js'), 'a chunk of an earlier bundle is removed');
  });

  it('keeps the names of classes and functions the bundler renamed, with a helper that leaves the others (and arrows) untouched', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    // Two modules with a class Greeter each, and a function greet each: the bundle renames one of
    // each (Greeter2, greet2), keepNames gives them their names back. An arrow made per call is
    // left nameless (the price of not defining a name on every closure made).
    writeFileSync(join(root, 'src/cli/other.ts'), "export class Greeter { hello(): string { return 'other'; } }\nexport const greet = function (): string { return 'hi'; };\n");
    writeFileSync(
      join(root, 'src/cli/main.ts'),
      [
        '#!/usr/bin/env node',
        "import { Greeter as Other, greet as otherGreet } from './other.js';",
        "class Greeter { hello(): string { return 'main'; } }",
        "const greet = function (): string { return 'hello'; };",
        'const make = () => ({ onResponse: () => 1 });',
        "console.log([Greeter.name, Other.name, greet.name, otherGreet.name, `[${make().onResponse.name}]`, new Greeter().hello(), new Other().hello()].join(' '));",
        '',
      ].join('\n'),
    );
    assert.equal(script.build(root), 0);
    const bundle = join(root, 'dist/src/cli/cohort.js');
    const text = readFileSync(bundle, 'utf8');
    assert.ok(text.includes(script.CHEAP_NAME_HELPER), 'the cheap helper is in the bundle');
    assert.ok(!text.includes(script.ESBUILD_NAME_HELPER), "esbuild's helper is gone");
    assert.ok(/Greeter2/.test(text) && /greet2/.test(text), 'the bundler renamed one class and one function (else this test proves nothing)');
    const run = spawnSync(bundle, [], { encoding: 'utf8' });
    assert.equal(run.stdout.trim(), 'Greeter Greeter greet greet [] main other', run.stderr);
  });

  it('refuses a bundle whose name helper reads otherwise, and leaves one without a helper alone', () => {
    const replaced = script.cheapNameHelper(`var __defProp = Object.defineProperty;\n${script.ESBUILD_NAME_HELPER}\nf();\n`);
    assert.ok(replaced.includes(script.CHEAP_NAME_HELPER) && replaced.endsWith('\nf();\n'));
    assert.equal(script.cheapNameHelper(replaced), replaced, 'a second pass changes nothing');
    assert.equal(script.cheapNameHelper('console.log(1);\n'), 'console.log(1);\n');
    // The bundler renames the helper's parameters when a bundled module uses the names at its top level.
    const renamedParams = script.cheapNameHelper('var __name = (target2, value2) => __defProp(target2, "name", { value: value2, configurable: true });\n');
    assert.equal(renamedParams, `${script.CHEAP_NAME_HELPER.replace(/\btarget\b/g, 'target2').replace(/\bvalue\b(?!:)/g, 'value2').replace('{ value2, ', '{ value: value2, ')}\n`);
    assert.equal(script.cheapNameHelper(renamedParams), renamedParams, 'a second pass changes nothing');
    assert.throws(() => script.cheapNameHelper('var __name = (t, v) => Object.defineProperty(t, "name", { value: v });\n'), /not the one scripts\/build\.mjs replaces/);
    // What the helper does: a name that differs is defined, a name that is already right is left.
    const helper = new Function(`var __defProp = Object.defineProperty; ${script.CHEAP_NAME_HELPER} return __name;`)() as (f: object, n: string) => { name: string };
    const renamed = helper(function Greeter2() {}, 'Greeter');
    assert.equal(renamed.name, 'Greeter');
    const same = function onResponse(): void {};
    assert.equal(helper(same, 'onResponse'), same);
    assert.deepEqual(Object.getOwnPropertyDescriptor(same, 'name'), { value: 'onResponse', writable: false, enumerable: false, configurable: true });
    const anonymous = [function (): void {}][0]!;
    assert.equal(helper(anonymous, 'handler').name, 'handler', 'a nameless `function` is named');
    const arrow = [(): void => {}][0]!;
    assert.equal(helper(arrow, 'handler').name, '', 'a nameless arrow is left as it is');
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

  it('compiles file by file and type-checks: a type error fails the build (no stamp), unless the check is left out', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    writeFileSync(join(root, 'src/cli/greeting.ts'), "export const greeting: number = 'hello';\n");
    assert.notEqual(script.build(root), 0, 'a type error fails the build');
    assert.equal(script.upToDate(root), false, 'and it leaves no stamp');
    assert.equal(script.build(root, { typeCheck: false }), 0, 'without the check it builds');
    assert.ok(readFileSync(join(root, 'dist/src/cli/greeting.js'), 'utf8').includes('hello'), 'each source compiled into dist/');
    assert.ok(readFileSync(join(root, 'dist/src/cli/greeting.js.map'), 'utf8').includes('greeting.ts'), 'with its source map');
    assert.equal(spawnSync(join(root, 'dist/src/cli/cohort.js'), [], { encoding: 'utf8' }).stdout.trim(), 'hello');
  });

  it('is not fooled by a stamp whose bin is missing', (t) => {
    const root = tmpDir(t);
    tinyPackage(root);
    mkdirSync(join(root, 'dist'));
    writeFileSync(join(root, script.STAMP_FILE), `${script.sourceDigest(root)}\n`);
    assert.equal(script.upToDate(root), false);
  });
});
