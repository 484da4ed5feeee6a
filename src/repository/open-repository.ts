import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import type { Repository } from './repository.js';

export interface OpenRepositoryOptions {
  clock?: Clock;
}

/**
 * Opens the repository named by `url` and brings its schema up to date.
 *
 * `sqlite:PATH` (relative to the working directory, or `sqlite::memory:`), or
 * `postgres://` / `postgresql://` with an optional `?schema=NAME`.
 */
export async function openRepository(url: string, opts: OpenRepositoryOptions = {}): Promise<Repository> {
  const repo = await createRepository(url, opts);
  try {
    await repo.migrate();
  } catch (err) {
    await repo.close();
    throw err;
  }
  return repo;
}

// Drivers are loaded when used: an engine without a repository, or a node on SQLite, does
// not pay for loading the other driver at every start.
async function createRepository(url: string, opts: OpenRepositoryOptions): Promise<Repository> {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new CohortError('REPO_URL_INVALID', 'Repository URL sqlite: needs a file path');
    const { SqliteRepository } = await import('./sqlite-repository.js');
    return new SqliteRepository(path, opts);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
    const { PostgresRepository } = await import('./postgres-repository.js');
    return new PostgresRepository(url, opts);
  }
  // Only the scheme is echoed: the rest may hold a password.
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:/.exec(url)?.[0] ?? '(none)';
  throw new CohortError(
    'REPO_URL_INVALID',
    `Repository URL must start with sqlite: or postgres://, got scheme ${scheme}`,
    { scheme },
  );
}
