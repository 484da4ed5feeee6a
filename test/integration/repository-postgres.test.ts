import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { describe, it, type TestContext } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { openRepository } from '../../src/repository/open-repository.js';
import type { Repository } from '../../src/repository/repository.js';
import { repositoryContract } from '../helpers/repository-contract.js';
import { postgresUrlOrSkip, uniquePostgresSchemaUrl, withPostgres } from '../helpers/services.js';

repositoryContract('PostgreSQL repository', async (t, { clock }) => {
  const baseUrl = await postgresUrlOrSkip(t);
  if (baseUrl === undefined) return undefined;
  const { url, schema, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
  const opened: Repository[] = [];
  const reopen = async (): Promise<Repository> => {
    const repo = await openRepository(url, { clock });
    opened.push(repo);
    return repo;
  };
  return {
    repo: await reopen(),
    reopen,
    recordMigration: async (version) => {
      await withPostgres(baseUrl, (c) =>
        c.query(`INSERT INTO "${schema}".schema_migrations (version, name, applied_at) VALUES ($1, 'future', 0)`, [
          version,
        ]),
      );
    },
    cleanup: async () => {
      for (const repo of opened) await repo.close();
      await dropSchema();
    },
  };
});

describe('PostgreSQL repository across nodes', () => {
  /** Repositories with pools of their own on one fresh schema, as on separate hosts. */
  async function nodes(t: TestContext, count: number): Promise<Repository[] | undefined> {
    const baseUrl = await postgresUrlOrSkip(t);
    if (baseUrl === undefined) return undefined;
    const { url, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
    const repos: Repository[] = [];
    t.after(async () => {
      for (const repo of repos) await repo.close();
      await dropSchema();
    });
    // Opened at once: every node migrates the fresh schema concurrently.
    repos.push(...(await Promise.all(Array.from({ length: count }, () => openRepository(url)))));
    return repos;
  }

  it('nodes migrating a fresh schema at once all succeed', async (t) => {
    const repos = await nodes(t, 4);
    if (!repos) return;
    for (const repo of repos) assert.equal((await repo.getCurrentConfig()).version, 0);
  });

  it('saves from several nodes at once get distinct consecutive versions', async (t) => {
    const repos = await nodes(t, 3);
    if (!repos) return;
    const docs = await Promise.all(
      repos.flatMap((repo, n) =>
        Array.from({ length: 15 }, (_, i) =>
          repo.saveConfigDocument({
            section: `s${i % 2}`,
            content: { n, i },
            author: `node-${n}`,
            node: `node-${n}`,
            summary: `save ${i}`,
          }),
        ),
      ),
    );
    assert.deepEqual(
      docs.map((d) => d.version).sort((a, b) => a - b),
      Array.from({ length: 45 }, (_, i) => i + 1),
    );
    assert.equal((await repos[0]!.listAudit({ limit: 1000 })).length, 45);
  });

  it('a mixed-case schema name means the same schema as its lower-case form', async (t) => {
    const baseUrl = await postgresUrlOrSkip(t);
    if (baseUrl === undefined) return;
    const { url, schema, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
    t.after(dropSchema);
    const upper = await openRepository(url.replace(schema, schema.toUpperCase()));
    try {
      await upper.saveConfigDocument({ section: 's', content: 1, author: 'a', node: 'n', summary: 's' });
    } finally {
      await upper.close();
    }
    const lower = await openRepository(url);
    try {
      assert.equal((await lower.getCurrentConfig()).version, 1);
    } finally {
      await lower.close();
    }
  });
});

describe('PostgreSQL repository: a node stopped inside a transaction', () => {
  const LOOP = fileURLToPath(new URL('../helpers/postgres-transaction-loop.js', import.meta.url));

  it('holds its row locks only until the server ends its idle transaction; the others go on, and so does it once resumed', async (t) => {
    const baseUrl = await postgresUrlOrSkip(t);
    if (baseUrl === undefined) return;
    const { url, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
    const mine = await openRepository(url);
    const name = `cohort-stalled-${randomBytes(4).toString('hex')}`;
    // In a process group of its own, stopped and resumed whole.
    const child = spawn(process.execPath, [LOOP, `${url}&application_name=${name}`], { stdio: ['ignore', 'pipe', 'inherit'], detached: true });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    const group = (signal: NodeJS.Signals): void => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        // already gone
      }
    };
    // The child first: while it is stopped inside a transaction, a query of `mine` may wait on
    // its locks, and closing `mine` waits for that query.
    t.after(async () => {
      group('SIGCONT');
      group('SIGKILL');
      await mine.close();
      await dropSchema();
    });
    const until = async (what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<void> => {
      for (const deadline = Date.now() + ms; !(await ok()); await sleep(50)) assert.ok(Date.now() < deadline, `${what} within ${ms} ms; child said: ${output}`);
    };
    await until('the child is ready', () => output.includes('ready'), 30_000);
    await until('the child has written its jobs', async () => (await mine.schedulerJobs()).length === 100, 30_000);

    // Stopped at a random moment, the child is almost always inside a transaction: retried until
    // the server shows its session idle in one (waiting for a next statement that will not come).
    const session = (): Promise<string | undefined> =>
      withPostgres(baseUrl, async (c) => (await c.query<{ state: string }>('SELECT state FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL', [name])).rows[0]?.state);
    let stalled = false;
    for (let attempt = 0; attempt < 50 && !stalled; attempt++) {
      group('SIGSTOP');
      await sleep(100);
      stalled = (await session()) === 'idle in transaction';
      if (!stalled) {
        group('SIGCONT');
        await sleep(20 + Math.random() * 50);
      }
    }
    assert.ok(stalled, 'the child was stopped inside a transaction');

    // Another node's sync locks every job row: it waits for the stopped node's locks, which the
    // server releases when it ends that node's idle transaction.
    const started = Date.now();
    const synced = mine.schedulerSyncJobs([{ scheduleId: 'job-0', definitionHash: 'mine', firstFireAt: 1 }]).then(() => true);
    const deadline = new AbortController();
    const outcome = await Promise.race([synced, sleep(60_000, false, { signal: deadline.signal }).catch(() => false)]).finally(() => deadline.abort());
    assert.ok(outcome, 'the other node\'s write went through while the child was still stopped');
    console.log(`a stopped node's transaction held its locks for ${Date.now() - started} ms`);
    assert.equal(await session(), undefined, 'the stopped node\'s transaction was ended by the server');
    assert.deepEqual((await mine.schedulerJobs()).map((j) => j.scheduleId), ['job-0'], 'the other node\'s sync removed the jobs it did not list');

    // Resumed, the stopped node learns that its connection is gone (REPO_UNAVAILABLE) and goes on
    // with a new one.
    group('SIGCONT');
    await until('the resumed child reports the lost connection', () => /failed REPO_UNAVAILABLE/.test(output), 30_000);
    await until('the resumed child writes again', () => /\nround\n/.test(output), 30_000);
  });
});
