// What scripts/run-tests.mjs checks in each group's TAP report once the group has run.
/**
 * The tests and suites of a TAP report that began and never ended: a test file whose process
 * ended part-way (the runner does not count that as a failure, and its later tests are simply
 * missing). A test begins with "# Subtest: name" and ends with "ok N - name" or "not ok N -
 * name" at the same indentation.
 */
export function unendedTests(tap) {
  const open = [];
  for (const line of tap.split('\n')) {
    const begun = /^(\s*)# Subtest: (.*)$/.exec(line);
    if (begun) {
      open.push({ indent: begun[1].length, name: begun[2] });
      continue;
    }
    const ended = /^(\s*)(?:not )?ok \d+ - /.exec(line);
    if (!ended) continue;
    const at = open.findLastIndex((t) => t.indent === ended[1].length);
    if (at >= 0) open.splice(at, 1);
  }
  return open.map((t) => t.name);
}

/**
 * The test files a TAP report names as tests themselves: a file whose process ended before it
 * reported any test of its own (a `process.exit` in the code under test, say) is shown so, as one
 * passing test named by its path; so is a file the runner ended at its time limit, even after its
 * tests had run (a failure either way). A file whose tests ran and that exited is never named.
 */
export function filesWithoutTests(tap) {
  const names = [];
  for (const line of tap.split('\n')) {
    const top = /^# Subtest: (.*\.test\.[cm]?js)$/.exec(line);
    if (top && /^(\/|[A-Za-z]:[\\/])/.test(top[1])) names.push(top[1]);
  }
  return names;
}
