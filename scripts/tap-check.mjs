// What scripts/run-tests.mjs checks in each group's TAP report once the group has run.
/**
 * Walks a TAP report's tests. A test begins with "# Subtest: name" and ends with "ok N - name"
 * or "not ok N - name" at the same indentation; at each end `onResult` is called with the
 * names of the test and of the suites around it, the result line's parts and its index.
 * Returns the tests that began and never ended.
 */
function walkTests(lines, onResult = () => {}) {
  const open = [];
  for (let i = 0; i < lines.length; i++) {
    const begun = /^(\s*)# Subtest: (.*)$/.exec(lines[i]);
    if (begun) {
      open.push({ indent: begun[1].length, name: begun[2] });
      continue;
    }
    const ended = /^(\s*)(not )?ok \d+ - (.*)$/.exec(lines[i]);
    if (!ended) continue;
    const at = open.findLastIndex((t) => t.indent === ended[1].length);
    const path = open.slice(0, at >= 0 ? at + 1 : open.length).map((t) => t.name);
    if (at >= 0) open.splice(at, 1);
    onResult({ path, failed: ended[2] !== undefined, rest: ended[3], indent: ended[1].length, index: i });
  }
  return open.map((t) => t.name);
}

/**
 * The tests and suites of a TAP report that began and never ended: a test file whose process
 * ended part-way (the runner does not count that as a failure, and its later tests are simply
 * missing).
 */
export function unendedTests(tap) {
  return walkTests(tap.split('\n'));
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

/**
 * The tests of a TAP report that failed, each with the names of the suites around it, where it
 * is and the first lines of its error: what a run prints last, so that the end of its output
 * (often all a CI log shows) says why. A suite that failed only because a test in it did is
 * left out (its failing test is named); so are tests cancelled with their parent.
 */
export function failedTests(tap, { errorLines = 8 } = {}) {
  const failed = [];
  const lines = tap.split('\n');
  walkTests(lines, ({ path, failed: notOk, rest, indent, index }) => {
    // A test marked TODO may fail without failing the run.
    if (!notOk || / # TODO(\s|$)/.test(rest)) return;
    const details = yamlBlock(lines, index + 1, indent + 2);
    if (details.failureType === 'subtestsFailed' || details.failureType === 'cancelledByParent') return;
    const error = (details.error ?? '').split('\n').filter((l) => l.trim() !== '');
    failed.push({
      name: path.map(unescapeName).join(' > '),
      location: details.location ?? '',
      error: error.length > errorLines ? [...error.slice(0, errorLines), `(${error.length - errorLines} more lines)`] : error,
    });
  });
  return failed;
}

/** The scalar fields of the YAML block after a TAP result line (`---` to `...`), multi-line ones joined. */
function yamlBlock(lines, from, indent) {
  const fields = {};
  if (lines[from]?.trim() !== '---') return fields;
  const pad = ' '.repeat(indent);
  for (let i = from + 1; i < lines.length && lines[i].trim() !== '...'; i++) {
    const field = new RegExp(`^${pad}([A-Za-z_]+): ?(.*)$`).exec(lines[i]);
    if (!field) continue;
    const [, key, value] = field;
    if (value === '|-' || value === '|' || value === '>-') {
      const body = [];
      while (i + 1 < lines.length && (lines[i + 1].startsWith(`${pad}  `) || lines[i + 1].trim() === '') && lines[i + 1].trim() !== '...') body.push(lines[++i].slice(indent + 2));
      fields[key] = body.join('\n');
    } else {
      fields[key] = unquote(value);
    }
  }
  return fields;
}

/**
 * A one-line YAML value as node:test writes it (util.inspect of a string: in single quotes, or
 * in double quotes or backticks when it holds single quotes), without its quotes and escapes.
 */
function unquote(value) {
  const quoted = /^(['"`])(.*)\1$/.exec(value);
  if (!quoted) return value;
  return quoted[2].replace(/\\(u\{[0-9a-fA-F]+\}|x[0-9a-fA-F]{2}|.)/g, (_, e) => {
    if (e.startsWith('u{')) return String.fromCodePoint(parseInt(e.slice(2, -1), 16));
    if (e.startsWith('x') && e.length === 3) return String.fromCharCode(parseInt(e.slice(1), 16));
    return { n: '\n', t: '\t', r: '\r', b: '\b', f: '\f', v: '\v', 0: '\0' }[e] ?? e;
  });
}

/** A test's name as TAP escapes it (`\#`, `\\`). */
function unescapeName(name) {
  return name.replace(/\\([#\\])/g, '$1');
}
