/**
 * Real proxies (Debian's nginx and Caddy) for end-to-end tests: found or skipped loudly (a
 * failure under COHORT_REQUIRE_SERVICES=1), run as children in their own process group with
 * every file they write in the test's directory, and killed — the whole group — when the test
 * ends, pass or fail.
 */
import { spawn } from 'node:child_process';
import { accessSync, constants, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { waitUntil } from './cluster.js';

export const NGINX = process.env.COHORT_TEST_NGINX ?? '/usr/sbin/nginx';
export const CADDY = process.env.COHORT_TEST_CADDY ?? '/usr/bin/caddy';

/** True when `binary` can be run; else skips `t` with a loud notice, or throws under COHORT_REQUIRE_SERVICES=1. */
export function binaryOrSkip(t: Pick<TestContext, 'skip'>, name: string, binary: string): boolean {
  try {
    accessSync(binary, constants.X_OK);
    return true;
  } catch {
    if (process.env.COHORT_REQUIRE_SERVICES === '1') throw new Error(`${name} at ${binary} is required (COHORT_REQUIRE_SERVICES=1) but not there`);
    process.stderr.write(`\n*** SKIPPED: ${name} not found at ${binary}; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n`);
    t.skip(`${name} not found at ${binary}`);
    return false;
  }
}

/** A port the OS says is free now (the proxies need a number in their configuration). */
export async function freeLoopbackPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

export interface RunningProxy {
  /** `http://127.0.0.1:PORT` */
  base: string;
  /** What the proxy printed and logged so far, for failure messages. */
  output(): string;
}

function runDetached(t: Pick<TestContext, 'after'>, binary: string, args: string[], env: NodeJS.ProcessEnv, logFile: string): () => string {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env });
  let printed = '';
  child.stdout!.on('data', (d: Buffer) => (printed += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (printed += d.toString()));
  const exited = new Promise((resolve) => child.once('close', resolve));
  t.after(async () => {
    try {
      process.kill(-child.pid!, 'SIGKILL'); // master and workers: its own group
    } catch {
      // already gone
    }
    await exited;
  });
  return () => {
    let logged = '';
    try {
      logged = readFileSync(logFile, 'utf8');
    } catch {
      // nothing logged yet
    }
    return `${printed}\n${logged}`.slice(-4000);
  };
}

async function answering(base: string, probePath: string, output: () => string, name: string): Promise<void> {
  await waitUntil(() => fetch(`${base}${probePath}`).then((r) => r.status, () => 0), (s) => s !== 0, 15_000, 50).catch((err: unknown) => {
    throw new Error(`${name} did not answer: ${String(err)}\n${output()}`);
  });
}

/** nginx with `serverBlock(listen)` in its http context; pid, logs and temporary files in `prefix`. */
export async function startNginx(t: Pick<TestContext, 'after'>, prefix: string, serverBlock: (listen: string) => string, probePath = '/'): Promise<RunningProxy> {
  const port = await freeLoopbackPort();
  const conf = [
    ...(process.getuid?.() === 0 ? ['user root;'] : []),
    'worker_processes 1;',
    `pid ${join(prefix, 'nginx.pid')};`,
    `error_log ${join(prefix, 'error.log')} info;`,
    'events { worker_connections 256; }',
    'http {',
    `    access_log ${join(prefix, 'access.log')};`,
    ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${join(prefix, `${k}_temp`)};`),
    serverBlock(`127.0.0.1:${port}`),
    '}',
    '',
  ].join('\n');
  const confFile = join(prefix, 'nginx.conf');
  writeFileSync(confFile, conf);
  const output = runDetached(t, NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', confFile, '-g', 'daemon off;'], process.env, join(prefix, 'error.log'));
  const base = `http://127.0.0.1:${port}`;
  await answering(base, probePath, output, 'nginx');
  return { base, output };
}

/**
 * Caddy with `siteBlock(site)` after a global block that keeps it to itself: no admin
 * endpoint, no automatic HTTPS (so no certificate authority, no trust-store install, nothing
 * asked of the outside), storage, home and configuration home (where Caddy 2.6 autosaves the
 * configuration it runs; its Caddyfile has no option to turn that off) in `prefix`.
 */
export async function startCaddy(t: Pick<TestContext, 'after'>, prefix: string, siteBlock: (site: string) => string, probePath = '/'): Promise<RunningProxy> {
  const port = await freeLoopbackPort();
  const logFile = join(prefix, 'caddy.log');
  mkdirSync(join(prefix, 'storage'), { recursive: true });
  const caddyfile = [
    '{',
    '    admin off',
    '    auto_https off',
    '    skip_install_trust',
    '    storage file_system {',
    `        root ${join(prefix, 'storage')}`,
    '    }',
    '    log {',
    `        output file ${logFile}`,
    '    }',
    '}',
    '',
    siteBlock(`http://127.0.0.1:${port}`),
  ].join('\n');
  const file = join(prefix, 'Caddyfile');
  writeFileSync(file, caddyfile);
  // Caddy's data and configuration homes (autosave, certificates) in the test's directory, never the user's.
  const env = { ...process.env, HOME: prefix, XDG_DATA_HOME: join(prefix, 'data'), XDG_CONFIG_HOME: join(prefix, 'config') };
  const output = runDetached(t, CADDY, ['run', '--config', file, '--adapter', 'caddyfile'], env, logFile);
  const base = `http://127.0.0.1:${port}`;
  await answering(base, probePath, output, 'caddy');
  return { base, output };
}
