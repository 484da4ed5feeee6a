/**
 * scripts/tap-check.mjs: what `npm test` checks in each group's TAP report, so a test file that
 * stops part-way (its later tests never run, and the runner does not count that as a failure)
 * fails the run instead.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const { unendedTests, filesWithoutTests, failedTests } = (await import(pathToFileURL(join(PACKAGE_ROOT, 'scripts/tap-check.mjs')).href)) as {
  unendedTests(tap: string): string[];
  filesWithoutTests(tap: string): string[];
  failedTests(tap: string, options?: { errorLines?: number }): Array<{ name: string; location: string; error: string[] }>;
};

const WHOLE = `TAP version 13
# Subtest: a suite
    # Subtest: first
    ok 1 - first
      ---
      duration_ms: 1.2
      ...
    # Subtest: second
    not ok 2 - second
      ---
      duration_ms: 3.4
      ...
    1..2
not ok 1 - a suite
# Subtest: a
    # Subtest: a
    ok 1 - a
ok 2 - a
1..2
# tests 3
`;

describe('the TAP check of npm test', () => {
  it('finds nothing amiss in a whole report, failures included', () => {
    assert.deepEqual(unendedTests(WHOLE), []);
  });

  it('names every test and suite that began and never ended', () => {
    const cut = `TAP version 13
# Subtest: node configuration: valid files
    # Subtest: applies documented defaults
    ok 1 - applies documented defaults
    # Subtest: advertises the bind address
1..1
# tests 1
`;
    assert.deepEqual(unendedTests(cut), ['node configuration: valid files', 'advertises the bind address']);
    assert.deepEqual(unendedTests(WHOLE.replace('ok 2 - a\n', '')), ['a'], 'a suite named like its own test');
  });

  it('names a test file that ended before it reported a test of its own (shown as one test named by its path)', () => {
    const exited = `TAP version 13
# Subtest: /work/dist/test/unit/cut.test.js
ok 1 - /work/dist/test/unit/cut.test.js
1..1
`;
    assert.deepEqual(filesWithoutTests(exited), ['/work/dist/test/unit/cut.test.js']);
    assert.deepEqual(filesWithoutTests(WHOLE), []);
    assert.deepEqual(filesWithoutTests('# Subtest: reads the config.test.js file name from a string\n'), [], 'a test named after a file is not a path');
  });

  it('lists the failed tests with their suites, place and error (unquoted as node:test quotes it), not the suites that failed only through them nor TODO tests', () => {
    const report = `TAP version 13
# Subtest: scheduler
    # Subtest: passes
    ok 1 - passes
      ---
      duration_ms: 5.0
      ...
    # Subtest: a node paused past its claim
    not ok 2 - a node paused past its claim
      ---
      duration_ms: 1.4
      location: '/work/dist/test/serial/scheduler-e2e.test.js:241:3'
      failureType: 'testCodeFailure'
      error: |-
        postgres: the recovered run counted
        
        false !== true
        
      code: 'ERR_ASSERTION'
      stack: |-
        TestContext.<anonymous> (file:///work/x.js:5:45)
      ...
    # Subtest: it's thrown
    not ok 3 - it's thrown
      ---
      location: '/work/x.js:6:3'
      failureType: 'testCodeFailure'
      error: "it's broken"
      ...
    # Subtest: not yet
    not ok 4 - not yet # TODO
      ---
      error: 'not written yet'
      ...
    # Subtest: \\# quoted \\\\ name
    not ok 5 - \\# quoted \\\\ name
      ---
      error: \`it's "quoted" \\\\ \\u{1F600}\`
      ...
    1..5
not ok 1 - scheduler
  ---
  type: 'suite'
  failureType: 'subtestsFailed'
  error: '2 subtests failed'
  ...
# Subtest: hooks
    # Subtest: x
    not ok 1 - x
      ---
      failureType: 'cancelledByParent'
      error: 'test did not finish before its parent and was cancelled'
      ...
    1..1
not ok 2 - hooks
  ---
  type: 'suite'
  location: '/work/y.js:2:1'
  failureType: 'hookFailed'
  error: 'before broke'
  ...
1..2
`;
    assert.deepEqual(failedTests(report), [
      { name: 'scheduler > a node paused past its claim', location: '/work/dist/test/serial/scheduler-e2e.test.js:241:3', error: ['postgres: the recovered run counted', 'false !== true'] },
      { name: "scheduler > it's thrown", location: '/work/x.js:6:3', error: ["it's broken"] },
      { name: 'scheduler > # quoted \\ name', location: '', error: ['it\'s "quoted" \\ 😀'] },
      { name: 'hooks', location: '/work/y.js:2:1', error: ['before broke'] },
    ]);
    assert.deepEqual(failedTests(WHOLE).map((f) => f.name), ['a suite > second', 'a suite'], 'without details, a failed suite is listed too');
    const long = failedTests(report.replace('postgres: the recovered run counted', 'l1\n        l2\n        l3'), { errorLines: 2 });
    assert.deepEqual(long[0]!.error, ['l1', 'l2', '(2 more lines)']);
  });
});
