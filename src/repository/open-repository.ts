import type { Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import { PostgresRepository } from './postgres-repository.js';
import type { Repository } from './repository.js';
import { SqliteRepository } from './sqlite-repository.js';

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
  const repo = createRepository(url, opts);
  try {
    await repo.migrate();
  } catch (err) {
    await repo.close();
    throw err;
  }
  return repo;
}

function createRepository(url: string, opts: OpenRepositoryOptions): Repository {
  if (url.startsWith('sqlite:')) {
    const path = url.slice('sqlite:'.length);
    if (path === '') throw new CohortError('REPO_URL_INVALID', 'Repository URL sqlite: needs a file path');
    return new SqliteRepository(path, opts);
  }
  if (url.startsWith('postgres://') || url.startsWith('postgresql://')) {
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
