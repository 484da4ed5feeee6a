import assert from 'node:assert/strict';
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { openRepository } from '../../src/repository/open-repository.js';
import { readFailure } from '../../src/repository/sqlite-repository.js';
import type { Repository } from '../../src/repository/repository.js';
import { repositoryContract } from '../helpers/repository-contract.js';
import { tmpDir } from '../helpers/tmp.js';

const WRITER = fileURLToPath(new URL('../helpers/sqlite-writer.js', import.meta.url));

type Writer = ChildProcessByStdio<Writable, Readable, null>;

/**
 * A temporary directory the caller removes itself, once it has closed the databases or ended
 * the processes using it (after-hooks run in registration order, so tmpDir's would run first).
 */
function unmanagedTempDir(): Promise<string> {
  return mkdtemp(join(tmpdir(), 'cohort-sqlite-'));
}

repositoryContract('SQLite repository', async (_t, { clock }) => {
  const dir = await unmanagedTempDir();
  const file = join(dir, 'console.db');
  const opened: Repository[] = [];
  const reopen = async (): Promise<Repository> => {
    const repo = await openRepository(`sqlite:${file}`, { clock });
    opened.push(repo);
    return repo;
  };
  return {
    repo: await reopen(),
    reopen,
    recordMigration: async (version) => {
      const db = new Database(file);
      try {
        db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(version, 'future');
      } finally {
        db.close();
      }
    },
    cleanup: async () => {
      for (const repo of opened) await repo.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

describe('SQLite repository files', () => {
  it('creates a missing parent directory, readable by its owner only', async (t) => {
    const dir = tmpDir(t);
    const repo = await openRepository(`sqlite:${join(dir, 'data', 'nested', 'console.db')}`);
    await repo.close();
    assert.equal((await stat(join(dir, 'data', 'nested'))).mode & 0o777, 0o700);
  });

  it('keeps the database, its WAL and shared-memory files readable by the owner only, and tightens a file an older version left open', async (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'repository.db');
    // What an earlier version created: world-readable, holding password hashes.
    const old = new Database(file);
    old.exec('CREATE TABLE leftover (x)');
    old.close();
    await chmod(file, 0o644);
    const repo = await openRepository(`sqlite:${file}`);
    await repo.createAdminUser({ name: 'alice', role: 'admin', passwordHash: 'scrypt$x', createdAt: 1 }, 'test', 'node');
    for (const suffix of ['', '-wal', '-shm']) {
      assert.equal((await stat(`${file}${suffix}`)).mode & 0o777, 0o600, `repository.db${suffix}`);
    }
    await repo.close();
    const fresh = join(dir, 'fresh.db');
    const second = await openRepository(`sqlite:${fresh}`);
    await second.createAdminUser({ name: 'bob', role: 'admin', passwordHash: 'scrypt$y', createdAt: 1 }, 'test', 'node');
    for (const suffix of ['', '-wal', '-shm']) assert.equal((await stat(`${fresh}${suffix}`)).mode & 0o777, 0o600, `fresh.db${suffix}`);
    await second.close();
  });

  it('a path that cannot be opened is REPO_UNAVAILABLE naming the path', async (t) => {
    const dir = tmpDir(t);
    const blocker = join(dir, 'a-file');
    await writeFile(blocker, 'not a directory');
    const path = join(blocker, 'console.db');
    await assert.rejects(openRepository(`sqlite:${path}`), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'REPO_UNAVAILABLE');
      assert.ok(err.message.includes(path), err.message);
      return true;
    });
  });

  it('sqlite::memory: opens a private in-memory repository', async () => {
    const repo = await openRepository('sqlite::memory:');
    try {
      await repo.saveConfigDocument({ section: 's', content: { n: 1 }, author: 'a', node: 'n', summary: 's' });
      assert.equal((await repo.getCurrentConfig()).version, 1);
    } finally {
      await repo.close();
    }
  });

  it('two processes saving into one new file at once get 50 distinct consecutive versions', { timeout: 60_000 }, async (t) => {
    const dir = await unmanagedTempDir();
    const file = join(dir, 'shared.db');
    const writers = ['a', 'b'].map((label) =>
      spawn(process.execPath, [WRITER, file, '25', label], { stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    t.after(async () => {
      for (const w of writers) if (w.exitCode === null && w.signalCode === null) w.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    });

    await Promise.all(writers.map((w) => waitForLine(w, 'ready')));
    for (const w of writers) w.stdin.end();
    for (const w of writers) assert.deepEqual(await exitOf(w), { code: 0, signal: null });

    const repo = await openRepository(`sqlite:${file}`);
    try {
      const versions = (await repo.listConfigVersions({ limit: 1000 })).map((v) => v.version);
      assert.deepEqual(
        versions.sort((x, y) => x - y),
        Array.from({ length: 50 }, (_, i) => i + 1),
      );
      const audit = await repo.listAudit({ limit: 1000 });
      assert.equal(audit.length, 50);
      assert.deepEqual(
        audit.map((r) => r.versionAfter).sort((x, y) => x! - y!),
        versions,
      );
      assert.equal(audit.filter((r) => r.user === 'a').length, 25);
      assert.equal((await repo.getCurrentConfig()).version, 50);
    } finally {
      await repo.close();
    }
  });
});

describe('SQLite repository: a write lock held elsewhere', () => {
  /** The longest stretch the event loop went without running a 10 ms interval while `work` ran. */
  async function longestStall<T>(work: () => Promise<T>): Promise<{ result: PromiseSettledResult<T>; stallMs: number; tookMs: number }> {
    let last = performance.now();
    let stallMs = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      stallMs = Math.max(stallMs, now - last);
      last = now;
    }, 10);
    const started = performance.now();
    const [result] = await Promise.allSettled([work()]);
    const tookMs = performance.now() - started;
    clearInterval(tick);
    return { result: result!, stallMs: Math.max(stallMs, performance.now() - last), tookMs };
  }

  it('a write waits for it in short steps, the event loop free meanwhile, and goes through once it is released', { timeout: 60_000 }, async (t) => {
    const dir = await unmanagedTempDir();
    const file = join(dir, 'shared.db');
    const repo = await openRepository(`sqlite:${file}`);
    // Another connection (as another process would) takes the write lock and keeps it. (The
    // event loop's stalls are judged against half the 5 s a wait inside SQLite would hold it,
    // so a busy machine's own pauses do not decide.)
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE');
    const release = setTimeout(() => other.exec('ROLLBACK'), 1500);
    t.after(async () => {
      clearTimeout(release);
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await repo.close();
      await rm(dir, { recursive: true, force: true });
    });
    const released = await longestStall(() => repo.schedulerCheckIn('engine-1', 1, 300));
    assert.equal(released.result.status, 'fulfilled', String((released.result as PromiseRejectedResult).reason));
    assert.ok(released.tookMs >= 1000, `the check-in waited for the lock (${released.tookMs} ms)`);
    assert.ok(released.stallMs < 2500, `the event loop was held ${released.stallMs.toFixed(0)} ms while the write waited`);
    assert.deepEqual((await repo.schedulerCheckIns()).map((c) => c.node), ['engine-1']);

    // Never released, and 60 writes waiting at once: each REPO_UNAVAILABLE about five seconds
    // after it was asked for (not one after the other), the event loop free throughout (one
    // write at a time waits inside SQLite, not all 60 back to back).
    other.exec('BEGIN IMMEDIATE');
    const saves = (): Promise<unknown[]> => Promise.all(Array.from({ length: 60 }, (_, i) => repo.saveConfigDocument({ section: `s${i}`, content: i, author: 'a', node: 'n', summary: 's' }).catch((err: unknown) => err)));
    const held = await longestStall(saves);
    assert.equal(held.result.status, 'fulfilled');
    const outcomes = (held.result as PromiseFulfilledResult<unknown[]>).value;
    assert.deepEqual([...new Set(outcomes.map((e) => (e as { code?: string }).code))], ['REPO_UNAVAILABLE']);
    assert.ok(held.tookMs >= 4000 && held.tookMs < 15_000, `gave up after ${held.tookMs} ms`);
    assert.ok(held.stallMs < 2500, `the event loop was held ${held.stallMs.toFixed(0)} ms while the writes waited`);
    other.exec('ROLLBACK');
    assert.equal((await repo.getCurrentConfig()).version, 0, 'the refused saves stored nothing');
  });

  it('a process opening the repository while another holds the lock waits for it instead of exiting', { timeout: 60_000 }, async (t) => {
    const dir = await unmanagedTempDir();
    const file = join(dir, 'shared.db');
    await (await openRepository(`sqlite:${file}`)).close();
    const other = new Database(file);
    other.exec('BEGIN IMMEDIATE');
    // Its opening migrates (a write) while nothing else keeps its event loop alive.
    const writer = spawn(process.execPath, [WRITER, file, '1', 'late'], { stdio: ['pipe', 'pipe', 'inherit'] });
    const release = setTimeout(() => other.exec('ROLLBACK'), 1000);
    t.after(async () => {
      clearTimeout(release);
      if (writer.exitCode === null && writer.signalCode === null) writer.kill('SIGKILL');
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      await rm(dir, { recursive: true, force: true });
    });
    await waitForLine(writer, 'ready');
    writer.stdin.end();
    assert.deepEqual(await exitOf(writer), { code: 0, signal: null });
  });
});

/** Resolves when the child prints `line`; rejects if it exits first (its stderr is inherited). */
function waitForLine(child: Writer, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      if (l === line) resolve();
    });
    child.once('exit', (code, signal) => reject(new Error(`writer exited (${code ?? signal}) before "${line}"`)));
  });
}

async function exitOf(child: Writer): Promise<{ code: number | null; signal: string | null }> {
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  return { code: child.exitCode, signal: child.signalCode };
}

describe('SQLite repository: what a failed read is reported as', () => {
  it('a file found locked (SQLITE_BUSY and its extended codes) is REPO_UNAVAILABLE naming the path; any other error is left as it is', () => {
    for (const code of ['SQLITE_BUSY', 'SQLITE_BUSY_RECOVERY', 'SQLITE_BUSY_SNAPSHOT']) {
      const err = Object.assign(new Error('database is locked'), { code });
      const reported = readFailure(err, '/data/console.db') as { code?: string; message: string; cause?: unknown };
      assert.equal(reported.code, 'REPO_UNAVAILABLE', code);
      assert.match(reported.message, /\/data\/console\.db/);
      assert.match(reported.message, new RegExp(code));
      assert.equal(reported.cause, err);
    }
    const other = Object.assign(new Error('no such table: x'), { code: 'SQLITE_ERROR' });
    assert.equal(readFailure(other, '/data/console.db'), other);
  });
});
