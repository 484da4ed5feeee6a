import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERROR_CODES } from '../../src/core/errors.js';
import { KEYS } from '../../src/config/schema.js';
import { referenceRow } from '../../src/config/reference.js';
import { renderTimingProfiles } from '../../src/cluster/timing-reference.js';
import { EXIT } from '../../src/cli/exit-codes.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

const read = (name: string): string => readFileSync(join(PACKAGE_ROOT, 'docs', name), 'utf8');

describe('docs/errors.md and the error table agree', () => {
  const doc = read('errors.md');
  const documented = new Set([...doc.matchAll(/^\| `([A-Z][A-Z0-9_]+)` \|/gm)].map((m) => m[1]!));

  it('documents every code, with its HTTP status', () => {
    for (const [code, { status }] of Object.entries(ERROR_CODES)) {
      assert.ok(documented.has(code), `${code} is missing from docs/errors.md`);
      assert.match(doc, new RegExp(`^\\| \`${code}\` \\| ${status} \\|`, 'm'), `${code} should be documented with status ${status}`);
    }
  });

  it('documents no code that does not exist', () => {
    for (const code of documented) assert.ok(code in ERROR_CODES, `docs/errors.md lists ${code}, which the code does not have`);
  });
});

describe('docs/configuration.md and the configuration schema agree', () => {
  const doc = read('configuration.md');
  for (const def of KEYS) {
    it(`documents [${def.section}] ${def.key} with its current type, default and unit`, () => {
      assert.ok(doc.includes(`### [${def.section}]`), `section [${def.section}] is missing`);
      assert.ok(doc.includes(referenceRow(def)), `row for [${def.section}] ${def.key} is missing or out of date; run npm run docs`);
    });
  }
  it('lists every timing profile value', () => {
    assert.ok(doc.includes(renderTimingProfiles()), 'the timing profiles table is missing or out of date; run npm run docs');
  });
});

describe('docs/operations.md and the exit statuses agree', () => {
  it('lists every exit status of the cohort command, and no other', () => {
    const doc = read('operations.md');
    const table = doc.slice(doc.indexOf('### Exit statuses'), doc.indexOf('###', doc.indexOf('### Exit statuses') + 1));
    const documented = [...table.matchAll(/^\| (\d+) \|/gm)].map((m) => Number(m[1]));
    assert.deepEqual(documented, [...new Set(Object.values(EXIT))].sort((a, b) => a - b));
  });
});
