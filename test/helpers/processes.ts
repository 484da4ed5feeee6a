import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { CLI_ENTRY } from './paths.js';

export interface CohortProcess {
  child: ChildProcess;
  pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit status (or signal name) when the process ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when `pattern` appears on stdout or stderr; rejects after `timeoutMs`. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

/**
 * Runs the compiled `cohort` CLI as a child process (after `options.prefix`, a command that
 * execs it, when given). The test kills it by pid when it ends, whether it passed or not, so no
 * process outlives its test.
 */
export function runCohort(
  t: Pick<TestContext, 'after'>,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; prefix?: string[] } = {},
): CohortProcess {
  // `prefix` runs the CLI through another command that execs it (`ip netns exec NS`, which
  // enters a network namespace): the process group is the same, so the cleanup below kills it.
  const [command, ...commandArgs] = [...(options.prefix ?? []), process.execPath, CLI_ENTRY, ...args] as [string, ...string[]];
  // A process group of its own: the cleanup kills the group, so the nodes a `cohort up` started
  // go with it even when the test failed before cluster.json named them.
  const child = spawn(command, commandArgs, {
    cwd: options.cwd,
    env: { ...process.env, COHORT_LOG_FORMAT: 'json', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    for (const w of watchers) w();
  });
  child.stderr!.on('data', (d: Buffer) => {
    err += d.toString();
    for (const w of watchers) w();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' (not 'exit'): the output streams are fully read by then.
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  let done = false;
  void exited.then(() => (done = true));
  t.after(async () => {
    if (!child.pid) return;
    // A test that failed shows what its processes said: on CI that is all there is to go by.
    if ((t as { passed?: boolean }).passed === false) {
      process.stderr.write(`--- cohort ${args.join(' ')} (pid ${child.pid}${done ? '' : ', still running'}): the end of its stdout ---\n${out.slice(-4000)}\n--- its stderr ---\n${err.slice(-2000)}\n`);
    }
    try {
      process.kill(-child.pid, 'SIGKILL'); // the group: children it started too
    } catch {
      // the group is gone
    }
    if (!done) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      await exited;
    }
  });
  return {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitForOutput(pattern, timeoutMs = 15_000) {
      return new Promise((resolve, reject) => {
        const check = (): void => {
          if (pattern.test(out) || pattern.test(err)) {
            cleanup();
            resolve();
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${pattern}; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`));
        }, timeoutMs);
        const onExit = (): void => {
          setImmediate(() => {
            if (pattern.test(out) || pattern.test(err)) return;
            cleanup();
            reject(new Error(`process exited before ${pattern}; stdout: ${out.slice(-2000)} stderr: ${err.slice(-2000)}`));
          });
        };
        const cleanup = (): void => {
          clearTimeout(timer);
          watchers.delete(check);
          child.off('exit', onExit);
        };
        watchers.add(check);
        child.once('exit', onExit);
        check();
      });
    },
  };
}

/** Runs the CLI to completion and returns its exit status and output. */
export async function runCohortToEnd(
  t: Pick<TestContext, 'after'>,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = runCohort(t, args, options);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
  const { code } = await p.exited;
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

/**
 * Cleanups for a `describe` whose steps share processes: register them with `suite.after`;
 * they run, newest first, in the suite's `after` hook, so processes are killed by pid even
 * when a step fails.
 */
export function suiteCleanups(after: (fn: () => Promise<void>) => void): Pick<TestContext, 'after'> {
  const cleanups: Array<() => unknown> = [];
  after(async () => {
    for (const fn of cleanups.reverse()) await fn();
  });
  return { after: (fn: () => unknown) => void cleanups.push(fn) } as Pick<TestContext, 'after'>;
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * A directory for `cohort up`. When the test ends, pass or fail, every node listed in its
 * cluster.json (if `cohort up` got that far) is killed by pid, then the directory is removed.
 */
export function upDir(t: Pick<TestContext, 'after'>): string {
  const dir = mkdtempSync(join(tmpdir(), 'cohort-up-'));
  t.after(() => {
    try {
      const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
      for (const n of file.nodes) if (alive(n.pid)) process.kill(n.pid, 'SIGKILL');
    } catch {
      // no cluster.json: no node was started
    }
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}
