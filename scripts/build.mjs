#!/usr/bin/env node
// Builds dist/ from the TypeScript sources: `npm run build` (and `npm test`) always rebuild;
// `npm install` (the `prepare` script) runs `--if-changed --no-type-check`. The sources are
// compiled file by file by esbuild and type-checked by tsc (`--no-type-check` leaves that out:
// `npm test` runs it beside the tests, scripts/build-and-lint.mjs).
//
// Two things tsc alone gets wrong for a command-line package:
// - It writes files without the execute bit, so the package's bin (`cohort`) could not be run
//   by `npx --no-install cohort` or any shell that executes it directly after a rebuild
//   ("Permission denied"). Every bin named in package.json is made executable here.
// - `npx cohort` in a clone links the project into npm's npx cache and runs its `prepare`
//   script first, silently: a full build there took about 25 s, and it empties dist/ while a
//   local cluster may be running from it. With `--if-changed`, a build whose sources have not
//   changed since the last one (recorded as a digest in dist/.build-stamp) is skipped.
//
// The web console (web/, Preact) is type-checked with its own tsconfig (DOM types, JSX) and
// bundled by Vite into dist/web, which the console serves; a package without web/ skips it.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Folders and files whose content decides what the build writes. */
const INPUTS = ['src', 'test', 'bench', 'web', 'tsconfig.json', 'package.json', 'package-lock.json'];
export const STAMP_FILE = join('dist', '.build-stamp');

function filesUnder(root, path) {
  const full = join(root, path);
  if (!existsSync(full)) return [];
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full)
    .sort()
    .flatMap((name) => filesUnder(root, join(path, name)));
}

/** A SHA-256 over the path and content of every input file, in a fixed order. */
export function sourceDigest(root) {
  const hash = createHash('sha256');
  for (const file of INPUTS.flatMap((p) => filesUnder(root, p))) {
    hash.update(`${file.split('\\').join('/')}\0`);
    hash.update(readFileSync(join(root, file)));
    hash.update('\0');
  }
  return hash.digest('hex');
}

/** The bin files package.json names, relative to `root`. */
export function binFiles(root) {
  const { bin } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
  if (!bin) return [];
  return typeof bin === 'string' ? [bin] : Object.values(bin);
}

/** True when dist/ was built from exactly the current sources and holds every bin (and the web console, when there is one). */
export function upToDate(root) {
  let stamp;
  try {
    stamp = readFileSync(join(root, STAMP_FILE), 'utf8').trim();
  } catch {
    return false;
  }
  const webBuilt = !existsSync(join(root, 'web', 'vite.config.mjs')) || existsSync(join(root, 'dist', 'web', 'index.html'));
  return stamp === sourceDigest(root) && webBuilt && binFiles(root).every((f) => existsSync(join(root, f)));
}

/**
 * The folders tsconfig.json includes (the first segment of each `include` pattern): what is
 * compiled into dist/.
 */
function sourceFolders(root) {
  const { include = [] } = JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8'));
  return [...new Set(include.map((pattern) => pattern.split('/')[0]))];
}

/**
 * Compiles every TypeScript file of the included folders into dist/, file by file, with
 * esbuild (source maps beside them). Type-checking is tsc's (`typeCheck`): compiling with tsc
 * took some 40 s of a full build and held up everything after it, esbuild under 3 s. The
 * sources are valid file by file (`isolatedModules` in tsconfig.json, which tsc checks), so
 * what esbuild writes is what tsc would.
 */
export function emit(root) {
  const esbuild = createRequire(join(root, 'package.json'))('esbuild');
  const entryPoints = sourceFolders(root).flatMap((folder) => filesUnder(root, folder)).filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'));
  try {
    esbuild.buildSync({ absWorkingDir: root, entryPoints, outdir: join(root, 'dist'), outbase: root, format: 'esm', platform: 'node', target: 'es2022', sourcemap: true, logLevel: 'warning' });
  } catch (err) {
    console.error(`build: compiling the sources failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  return 0;
}

/** Type-checks the sources (tsc, no output), and web/ with its own tsconfig when there is one; 0 when both pass. */
export function typeCheck(root) {
  const tsc = createRequire(join(root, 'package.json')).resolve('typescript/bin/tsc');
  const projects = [join(root, 'tsconfig.json'), ...(existsSync(join(root, 'web', 'tsconfig.json')) ? [join(root, 'web', 'tsconfig.json')] : [])];
  for (const project of projects) {
    const result = spawnSync(process.execPath, [tsc, '-p', project, '--noEmit'], { cwd: root, stdio: 'inherit' });
    if (result.status !== 0) return result.status ?? 1;
  }
  return 0;
}

/**
 * Builds dist/: the sources compiled, the CLI bundled, the web console built; and, unless
 * `options.typeCheck` is false, type-checked (a failed check fails the build, and no stamp is
 * written). `npm test` builds without the check and runs it beside the tests
 * (scripts/build-and-lint.mjs); `npm install` (`--if-changed --no-type-check`) builds what
 * running the CLI needs.
 */
export function build(root, options = {}) {
  // The digest is taken before compiling, so an edit made during the build makes the next
  // `--if-changed` build again rather than trust output that may predate it.
  const digest = sourceDigest(root);
  rmSync(join(root, 'dist'), { recursive: true, force: true });
  const emitted = emit(root);
  if (emitted !== 0) return emitted;
  const bundled = bundleCli(root);
  if (bundled !== 0) return bundled;
  for (const file of binFiles(root)) chmodSync(join(root, file), 0o755);
  const web = buildWeb(root);
  if (web !== 0) return web;
  if (options.typeCheck !== false) {
    const checked = typeCheck(root);
    if (checked !== 0) return checked;
  }
  writeFileSync(join(root, STAMP_FILE), `${digest}\n`);
  return 0;
}

/** The command-line entry compiled into dist/, and the bundle of it that the package's bin names. */
export const CLI_MODULE = 'dist/src/cli/main.js';
export const CLI_BUNDLE = 'dist/src/cli/cohort.js';

/**
 * The bundle's other files, beside it: code that only some commands or nodes run, loaded when
 * first imported (`cohort-chunk-<hash>.js`).
 */
export const CLI_CHUNK_NAME = /^cohort-chunk-[A-Z0-9]+\.js$/;

/**
 * Bundles the compiled CLI and every package it loads (but the native addons) beside the
 * file-by-file output, when package.json's bin names that bundle. Why: a node's start was spent
 * mostly resolving and loading some 900 module files (a console took 1.5 s of CPU to start, 0.9 s
 * from the bundle); `cohort up` starts four at once on two cores. The bundle is split where the
 * code imports a module dynamically (the console's modules, the scheduler, the inline proxy and
 * its HTTP client, the Redis and PostgreSQL clients, the local CA's certificate code): V8 parses
 * every file a process loads, and a sideband engine needs less than half of the 6.8 MB of one
 * file (starting one took 0.98 s of CPU with one file, 0.89 s split). Its files sit in the same
 * folder as main.js, so paths its modules take from import.meta.url (package.json, the web
 * console's files, the CLI itself) lead to the same places. Tests and benches that import
 * modules in-process use the file-by-file output, the same code.
 */
export function bundleCli(root) {
  if (!binFiles(root).includes(CLI_BUNDLE)) return 0;
  const esbuild = createRequire(join(root, 'package.json'))('esbuild');
  const outdir = join(root, dirname(CLI_BUNDLE));
  // Chunks of an earlier bundle would otherwise stay beside this one.
  if (existsSync(outdir)) for (const name of readdirSync(outdir)) if (CLI_CHUNK_NAME.test(name)) rmSync(join(outdir, name));
  let outputs;
  try {
    const result = esbuild.buildSync({
      absWorkingDir: root,
      entryPoints: { [basename(CLI_BUNDLE, '.js')]: CLI_MODULE },
      outdir,
      splitting: true,
      chunkNames: 'cohort-chunk-[hash]',
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      // Native addons load their compiled .node file from beside their own package (msgpackr's
      // optional extractor too: bundled, it looked for that file beside the bundle, never found
      // it, and the CLI decoded without it while the tests, loading msgpackr from node_modules,
      // decoded with it); pg-native is pg's optional binding, not installed.
      external: ['better-sqlite3', 'pg-native', 'msgpackr-extract'],
      // Class and function names stay as written (error names, log lines).
      keepNames: true,
      // The CommonJS packages bundled here call require() for Node's own modules (in every file).
      banner: { js: "import { createRequire as cohortBundleRequire } from 'node:module';\nconst require = cohortBundleRequire(import.meta.url);" },
      metafile: true,
      logLevel: 'warning',
    });
    outputs = Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js'));
  } catch (err) {
    console.error(`build: bundling ${CLI_MODULE} failed: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  try {
    for (const file of outputs) {
      const path = join(root, file);
      const text = readFileSync(path, 'utf8');
      const cheap = cheapNameHelper(text);
      if (cheap !== text) writeFileSync(path, cheap);
    }
  } catch (err) {
    console.error(`build: ${err instanceof Error ? err.message : String(err)}`);
    return 1;
  }
  return 0;
}

/** esbuild's keepNames helper: it redefines `name` on every function it wraps, each time one is made. */
export const ESBUILD_NAME_HELPER = 'var __name = (target, value) => __defProp(target, "name", { value, configurable: true });';
/**
 * esbuild's helper, but a function whose name already is the one to keep is left untouched,
 * and so is an arrow function (no prototype) the bundle left nameless.
 */
export const CHEAP_NAME_HELPER = cheapHelper('target', 'value');

/** CHEAP_NAME_HELPER with the parameter names the bundle gave esbuild's helper (`value` keeps its shorthand). */
function cheapHelper(target, value) {
  const property = value === 'value' ? 'value' : `value: ${value}`;
  return `var __name = (${target}, ${value}) => ${target}.name === ${value} || (${target}.name === "" && ${target}.prototype === void 0 && typeof ${target} === "function") ? ${target} : __defProp(${target}, "name", { ${property}, configurable: true });`;
}

/**
 * keepNames wraps every function and class expression in `__name(fn, "name")`, so each closure
 * made per request (a handler's callbacks, undici's and Fastify's own, the decision's) paid an
 * Object.defineProperty each time it was made, which also gives the function a map of its own
 * and makes the calls on it megamorphic. Measured beside a bare Fastify route and a bare
 * reply-from proxy (docs/benchmarks.md): a forward-auth decision took 50 µs of CPU, now 44–47;
 * the inline proxy 143–146 µs, now 112–122.
 *
 * What is kept: the names of classes and of `function` functions wherever the bundler renamed
 * them (a `Request2` for a second `Request`; libraries name their errors after their class),
 * and every name that is already right. What is given up: an arrow function the bundle wraps
 * has no name (`.name` is "" where the source would have inferred one), so a stack trace shows
 * such a frame by its position in the bundle alone. A bundle without the helper (no function
 * to name) is left as it is; one whose helper reads differently stops the build rather than
 * bundle slowly.
 */
export function cheapNameHelper(text) {
  // The bundler renames the helper's parameters when a bundled module has a top-level variable
  // of the same name (msgpackr has a `target`): match the helper whatever they are called.
  if (CHEAP_HELPER_PATTERN.test(text)) return text;
  const found = ESBUILD_HELPER_PATTERN.exec(text);
  if (found === null) {
    if (/\bvar __name = /.test(text)) throw new Error(`esbuild's __name helper is not the one scripts/build.mjs replaces (${ESBUILD_NAME_HELPER}): update it`);
    return text;
  }
  const [helper, target, value] = found;
  return `${text.slice(0, found.index)}${cheapHelper(target, value)}${text.slice(found.index + helper.length)}`;
}

/** ESBUILD_NAME_HELPER with any parameter names (`value` is written shorthand when it keeps its name). */
const ESBUILD_HELPER_PATTERN = /var __name = \(([\w$]+), ([\w$]+)\) => __defProp\(\1, "name", \{ (?:value: \2|value), configurable: true \}\);/;
/** CHEAP_NAME_HELPER with any parameter names. */
const CHEAP_HELPER_PATTERN = /var __name = \(([\w$]+), ([\w$]+)\) => \1\.name === \2 \|\| /;

/** Bundles web/ into dist/web with Vite (its type-check is `typeCheck`'s); 0 when there is no web/. */
export function buildWeb(root) {
  const config = join(root, 'web', 'vite.config.mjs');
  if (!existsSync(config)) return 0;
  const require = createRequire(join(root, 'package.json'));
  const vite = join(dirname(require.resolve('vite/package.json')), 'bin', 'vite.js');
  const bundled = spawnSync(process.execPath, [vite, 'build', '--config', config, '--logLevel', 'warn'], { cwd: join(root, 'web'), stdio: 'inherit' });
  return bundled.status ?? 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const root = resolve(fileURLToPath(new URL('..', import.meta.url)));
  if (process.argv.includes('--if-changed') && upToDate(root)) {
    console.log('build: dist/ is up to date with the sources; not rebuilt');
    process.exit(0);
  }
  process.exit(build(root, { typeCheck: !process.argv.includes('--no-type-check') }));
}
