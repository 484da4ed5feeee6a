/** decodeUtf8: the same text as Buffer#toString('utf8') for any bytes, ASCII or not, whole or in part. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeUtf8 } from '../../src/core/utf8.js';

describe('decodeUtf8', () => {
  it('decodes ASCII, UTF-8 and invalid bytes exactly as toString("utf8") does', () => {
    for (const text of ['', 'plain ascii\tline\n', 'caf\u00e9 \u{1f600} \u4e2d\u6587', '\u00ff\u0080']) {
      const bytes = Buffer.from(text, 'utf8');
      assert.equal(decodeUtf8(bytes), text);
    }
    const invalid = Buffer.from([0x61, 0xff, 0xc3, 0x62, 0xe2, 0x82]);
    assert.equal(decodeUtf8(invalid), invalid.toString('utf8'));
  });

  it('agrees with toString("utf8") on arbitrary bytes and ranges', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), fc.nat(), fc.nat(), (array, a, b) => {
        const bytes = Buffer.from(array);
        const start = bytes.length === 0 ? 0 : a % (bytes.length + 1);
        const end = start + (bytes.length - start === 0 ? 0 : b % (bytes.length - start + 1));
        assert.equal(decodeUtf8(bytes, start, end), bytes.toString('utf8', start, end));
        assert.equal(decodeUtf8(bytes), bytes.toString('utf8'));
      }),
      { numRuns: 2000 },
    );
  });
});
