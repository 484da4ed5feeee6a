/**
 * A fresh repository per test, on SQLite (a file in a test-owned folder) or PostgreSQL (a
 * schema of its own, dropped afterwards; undefined when PostgreSQL is down and the test may
 * skip), closed when the test ends.
 */
import type { TestContext } from 'node:test';
import { join } from 'node:path';
import type { Clock } from '../../src/core/clock.js';
import { openRepository } from '../../src/repository/open-repository.js';
import type { Repository } from '../../src/repository/repository.js';
import { postgresUrlOrSkip, uniquePostgresSchemaUrl } from './services.js';
import { tmpDir } from './tmp.js';

export async function sqliteRepository(t: TestContext, clock: Clock): Promise<Repository> {
  const repo = await openRepository(`sqlite:${join(tmpDir(t), 'repo.db')}`, { clock });
  t.after(() => repo.close());
  return repo;
}

export async function postgresRepository(t: TestContext, clock: Clock): Promise<Repository | undefined> {
  const baseUrl = await postgresUrlOrSkip(t);
  if (baseUrl === undefined) return undefined;
  const { url, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
  const repo = await openRepository(url, { clock });
  t.after(async () => {
    await repo.close();
    await dropSchema();
  });
  return repo;
}
