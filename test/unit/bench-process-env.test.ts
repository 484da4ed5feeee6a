/**
 * `bench:runtime --huge-pages`: the Cohort processes get glibc's huge-page tunable added to
 * whatever GLIBC_TUNABLES the bench runs with; without it they get the bench's environment.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import { cohortProcessEnv, HUGE_PAGE_MALLOC_TUNABLE } from '../../bench/nodes.js';

it('adds glibc.malloc.hugetlb=1 for --huge-pages, after any tunables already set, and nothing otherwise', () => {
  const saved = process.env.GLIBC_TUNABLES;
  try {
    delete process.env.GLIBC_TUNABLES;
    assert.equal(cohortProcessEnv(false), process.env);
    assert.equal(cohortProcessEnv(true).GLIBC_TUNABLES, 'glibc.malloc.hugetlb=1');
    assert.equal(HUGE_PAGE_MALLOC_TUNABLE, 'glibc.malloc.hugetlb=1');
    assert.equal(cohortProcessEnv(true).PATH, process.env.PATH, 'the rest of the environment is kept');
    process.env.GLIBC_TUNABLES = 'glibc.malloc.arena_max=2';
    assert.equal(cohortProcessEnv(true).GLIBC_TUNABLES, 'glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1');
    assert.equal(process.env.GLIBC_TUNABLES, 'glibc.malloc.arena_max=2', 'the bench\'s own environment is left as it was');
  } finally {
    if (saved === undefined) delete process.env.GLIBC_TUNABLES;
    else process.env.GLIBC_TUNABLES = saved;
  }
});
