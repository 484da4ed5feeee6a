import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { deobfuscate, obfuscate } from '../../src/config/obfuscation.js';

describe('OBF: secrets', () => {
  it('round-trip any secret, including unicode and separators', () => {
    for (const s of ['x', 'a,b;c#d=e', 'ünïcødé 秘密', 'z'.repeat(128)]) {
      const o = obfuscate(s);
      assert.ok(o.startsWith('OBF:'));
      if (s.length > 8) assert.ok(!o.includes(s), 'the secret is not visible in its obfuscated form');
      assert.equal(deobfuscate(o), s);
    }
  });

  it('differ each time for the same secret', () => {
    assert.notEqual(obfuscate('same'), obfuscate('same'));
  });

  it('refuse a tampered, truncated or foreign value instead of decoding garbage', () => {
    const o = obfuscate('secret-value');
    const flipped = o.slice(0, 10) + (o[10] === 'A' ? 'B' : 'A') + o.slice(11);
    assert.equal(deobfuscate(flipped), undefined);
    assert.equal(deobfuscate(o.slice(0, -3)), undefined);
    assert.equal(deobfuscate('OBF:'), undefined);
    assert.equal(deobfuscate('OBF:!!!'), undefined);
    assert.equal(deobfuscate('plain'), undefined);
  });
});
