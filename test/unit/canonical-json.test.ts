import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { canonicalJson, contentHash } from '../../src/repository/canonical-json.js';

describe('canonicalJson', () => {
  const table: [string, unknown, string][] = [
    ['sorts keys at every depth', { b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }, '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}'],
    ['keeps array order', [3, 1, 2], '[3,1,2]'],
    ['drops undefined properties like JSON.stringify', { a: undefined, b: 1 }, '{"b":1}'],
    ['serialises dates through toJSON', { at: new Date(0) }, '{"at":"1970-01-01T00:00:00.000Z"}'],
    ['keeps a __proto__ key as data', JSON.parse('{"__proto__":{"x":1},"a":2}'), '{"__proto__":{"x":1},"a":2}'],
    ['handles scalars', 'é', '"é"'],
  ];
  for (const [name, value, expected] of table) {
    it(name, () => assert.equal(canonicalJson(value), expected));
  }

  it('refuses values with no JSON form', () => {
    assert.throws(() => canonicalJson(undefined), TypeError);
    assert.throws(() => canonicalJson(() => 1), TypeError);
  });

  it('contentHash is the sha256 hex of the canonical JSON', () => {
    const expected = createHash('sha256').update('{"a":1,"b":2}').digest('hex');
    assert.equal(contentHash({ b: 2, a: 1 }), expected);
  });
});
