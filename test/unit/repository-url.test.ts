import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openRepository } from '../../src/repository/open-repository.js';

function rejectsWith(code: string, check: (err: Error & { details?: unknown }) => void = () => undefined) {
  return (err: Error & { code?: string; details?: unknown }): boolean => {
    assert.equal(err.code, code, String(err));
    check(err);
    return true;
  };
}

describe('openRepository URLs', () => {
  it('an unknown scheme is REPO_URL_INVALID and the URL is not echoed', async () => {
    await assert.rejects(
      openRepository('mysql://root:hunter2@db.example/cohort'),
      rejectsWith('REPO_URL_INVALID', (err) => {
        assert.ok(err.message.includes('mysql:'), err.message);
        assert.ok(!err.message.includes('hunter2'), err.message);
      }),
    );
    await assert.rejects(openRepository('./console.db'), rejectsWith('REPO_URL_INVALID'));
    await assert.rejects(openRepository(''), rejectsWith('REPO_URL_INVALID'));
  });

  it('sqlite: without a path is REPO_URL_INVALID', async () => {
    await assert.rejects(openRepository('sqlite:'), rejectsWith('REPO_URL_INVALID'));
  });

  it('a postgres schema name other than letters, digits and underscores is REPO_URL_INVALID', async () => {
    for (const schema of ['a;drop', 'x"y', '1abc', 'a'.repeat(64), '']) {
      await assert.rejects(
        openRepository(`postgres://postgres@127.0.0.1:1/db?schema=${encodeURIComponent(schema)}`),
        rejectsWith('REPO_URL_INVALID'),
        schema,
      );
    }
  });

  it('an unreachable PostgreSQL is REPO_UNAVAILABLE naming host and database, never the password', async () => {
    for (const password of ['s3cret-pw', 'p%40ss%2Fw0rd']) {
      await assert.rejects(
        openRepository(`postgres://cohort:${password}@127.0.0.1:1/cohortdb?schema=cohort`),
        rejectsWith('REPO_UNAVAILABLE', (err) => {
          assert.ok(err.message.includes('127.0.0.1:1/cohortdb'), err.message);
          const shown = err.message + JSON.stringify(err.details);
          for (const secret of [password, decodeURIComponent(password)]) assert.ok(!shown.includes(secret), shown);
        }),
      );
    }
  });
});
