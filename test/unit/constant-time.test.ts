import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { constantTimeEqual } from '../../src/core/constant-time.js';

const hash = (s: string): Buffer => createHash('sha256').update(s).digest();

describe('constantTimeEqual', () => {
  it('is true only for equal buffers, and false (never a throw) for unequal lengths or empty buffers', () => {
    assert.equal(constantTimeEqual(hash('a'), hash('a')), true);
    assert.equal(constantTimeEqual(hash('a'), hash('b')), false);
    assert.equal(constantTimeEqual(hash('a'), hash('a').subarray(0, 31)), false);
    assert.equal(constantTimeEqual(hash('a').subarray(0, 5), hash('a')), false);
    assert.equal(constantTimeEqual(hash('a'), Buffer.from(`${hash('a').toString('hex').slice(0, 10)}zz`, 'hex')), false, 'a malformed hex hash');
    assert.equal(constantTimeEqual(Buffer.alloc(0), Buffer.alloc(0)), false, 'nothing to compare is never a match');
  });
});
