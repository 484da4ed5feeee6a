/**
 * Nodes of a benchmark cluster: configuration files on loopback ports from the OS (`local`
 * profile), `cohort start` processes, and their cleanup: every process a bench starts runs in
 * its own process group, which is killed, and every directory removed, when the bench process
 * exits, whatever happens.
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { Agent as HttpAgent, request as httpRequest } from 'node:http';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../src/cli/free-port.js';
import { parseAddress } from '../src/config/values.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
export const CLI = join(ROOT, 'dist/src/cli/cohort.js');
/**
 * A secret of this run's own: two benchmarks running at once (the smokes in npm test) can never
 * join each other's clusters, even when a node dials a port the other's node took meanwhile.
 */
const SECRET = randomBytes(32).toString('base64url');

const children = new Set<ChildProcess>();
const dirs = new Set<string>();
process.on('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) killGroup(c);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

/** Kills `child` and whatever it started: its whole process group (it leads one). */
export function killGroup(child: ChildProcess): void {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch {
    // already gone
  }
}

/**
 * Spawns `command` in a process group of its own (so that it and anything it starts can be
 * killed together), killed when the bench exits.
 */
export function spawnGrouped(command: string, args: string[], stdio: Array<'ignore' | 'pipe' | 'inherit'>, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(command, args, { stdio, detached: true, env });
  children.add(child);
  return child;
}

/** Removes `dir` when the bench exits. */
export function removeAtExit(dir: string): void {
  dirs.add(dir);
}

/** Runs node with `args`; resolves once its stdout matches `started`. Killed at exit. */
export function spawnProcess(args: string[], started: RegExp, env: NodeJS.ProcessEnv = process.env): Promise<ChildProcess> {
  const child = spawnGrouped(process.execPath, args, ['ignore', 'pipe', 'inherit'], env);
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const onData = (d: Buffer): void => {
      out += d.toString();
      if (started.test(out)) {
        child.stdout!.off('data', onData);
        child.stdout!.resume();
        resolvePromise(child);
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${args.join(' ')} exited with ${code}: ${out.slice(-2000)}`)));
  });
}

/** Runs node with `args`, output ignored. Killed at exit. */
export function spawnQuiet(args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  return spawnGrouped(process.execPath, args, ['ignore', 'ignore', 'inherit'], env);
}

export interface BenchNode {
  id: string;
  role: 'console' | 'engine';
  dir: string;
  file: string;
  cluster: string;
  runtime: string;
  admin: string;
  child?: ChildProcess;
}

/** Writes the configuration of node `id` under `base`; `sections` adds or replaces keys. */
export async function benchNodeConfig(base: string, id: string, role: 'console' | 'engine', peers: string, sections: Record<string, string[]> = {}): Promise<BenchNode> {
  const dir = join(base, id);
  mkdirSync(dir, { recursive: true });
  const cluster = `127.0.0.1:${await freePort()}`;
  const runtime = `127.0.0.1:${await freePort()}`;
  const admin = `127.0.0.1:${await freePort()}`;
  const file = join(base, `${id}.ini`);
  const text = [
    '[node]', `id = ${id}`, `role = ${role}`, `data_dir = ${dir}`, ...(sections.node ?? []),
    '[cluster]', 'id = bench', `bind = ${cluster}`, `peers = ${peers}`, `secret_key = ${SECRET}`, 'profile = local',
    '[http]', `manage = 127.0.0.1:${await freePort()}`, `runtime = ${runtime}`, `admin = ${admin}`, ...(sections.http ?? []),
    '[state]', ...(sections.state ?? []),
    '[console]', ...(sections.console ?? []),
    '[access]', ...(sections.access ?? []),
    '[log]', 'format = json', 'level = info',
  ];
  writeFileSync(file, `${text.join('\n')}\n`);
  return { id, role, dir, file, cluster, runtime, admin };
}

/** The glibc tunable that backs the allocator's memory with transparent huge pages (docs/operations.md). */
export const HUGE_PAGE_MALLOC_TUNABLE = 'glibc.malloc.hugetlb=1';

/**
 * The environment of a bench's Cohort processes: the bench's own, or with `hugePages` that
 * tunable added to GLIBC_TUNABLES (an operator's opt-in; the peers always run with the bench's
 * own environment).
 */
export function cohortProcessEnv(hugePages: boolean): NodeJS.ProcessEnv {
  if (!hugePages) return process.env;
  const tunables = process.env.GLIBC_TUNABLES;
  return { ...process.env, GLIBC_TUNABLES: tunables ? `${tunables}:${HUGE_PAGE_MALLOC_TUNABLE}` : HUGE_PAGE_MALLOC_TUNABLE };
}

/** Starts the node (`nodeArgs`: options for node itself, such as --cpu-prof) and resolves once it logged its start. */
export async function startBenchNode(n: BenchNode, nodeArgs: string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  n.child = await spawnProcess([...nodeArgs, CLI, 'start', '-c', n.file], new RegExp(`"msg":"${n.role} ${n.id} started"`), env);
}

/** Stops the node gracefully (SIGTERM) and resolves once it exited (a CPU profile is written then). */
export async function stopBenchNode(n: BenchNode): Promise<void> {
  const child = n.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolvePromise) => child.once('exit', resolvePromise));
  child.kill('SIGTERM');
  await exited;
}

/**
 * GETs `path` of `address` (host:port) over `agent` and resolves with the status, 0 when no
 * answer came (not listening, the connection went, `timeoutMs` passed). node:http rather than
 * fetch: fetch cost the bench process about half a millisecond of CPU a request, taken from
 * the engines it measures.
 */
export function httpStatus(agent: HttpAgent, address: string, path: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<number> {
  const { host, port } = parseAddress(address);
  return new Promise((resolvePromise) => {
    const req = httpRequest({ agent, host, port, path, headers, timeout: timeoutMs }, (res) => {
      res.resume();
      res.on('end', () => resolvePromise(res.statusCode ?? 0));
      res.on('error', () => resolvePromise(0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolvePromise(0));
    req.end();
  });
}

/**
 * Polls `GET /health/ready` of engine `n` every 20 ms over one kept-alive connection until
 * 200; resolves with the time it took (ms). Polling three loading engines with fetch took a
 * twentieth of the machine from them during a full start.
 */
export async function waitReady(n: BenchNode, timeoutMs: number): Promise<number> {
  const start = performance.now();
  const agent = new HttpAgent({ keepAlive: true, maxSockets: 1 });
  try {
    while (performance.now() - start < timeoutMs) {
      if ((await httpStatus(agent, n.runtime, '/health/ready')) === 200) return performance.now() - start;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    agent.destroy();
  }
  throw new Error(`${n.id} not ready within ${timeoutMs} ms`);
}
