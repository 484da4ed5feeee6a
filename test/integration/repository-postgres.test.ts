import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
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
