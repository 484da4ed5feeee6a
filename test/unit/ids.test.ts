import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { correlationId, randomToken } from '../../src/core/ids.js';

describe('randomToken', () => {
  it('gives URL-safe tokens of the asked entropy, never the same twice across pool refills', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const t = randomToken(24);
      assert.match(t, /^[A-Za-z0-9_-]{32}$/);
      assert.ok(!seen.has(t), 'a token came out twice');
      seen.add(t);
    }
    assert.equal(Buffer.from(randomToken(), 'base64url').length, 32);
    assert.equal(Buffer.from(randomToken(10_000), 'base64url').length, 10_000);
    // Bytes are not all zero (a pool that was never filled would give "AAAA…").
    assert.notEqual(randomToken(16), 'A'.repeat(22));
  });
});

describe('correlationId', () => {
  it('gives 16 URL-safe characters, never the same twice, a random prefix then a counter', () => {
    const seen = new Set<string>();
    const first = correlationId();
    seen.add(first);
    for (let i = 0; i < 300_000; i++) {
      const id = correlationId();
      assert.ok(/^[A-Za-z0-9_-]{16}$/.test(id), id);
      assert.ok(!seen.has(id), `${id} came out twice`);
      seen.add(id);
    }
    // 300,001 ids past the first: its counter moved through three of the four characters.
    const next = correlationId();
    assert.equal(next.slice(0, 12), first.slice(0, 12), 'one prefix serves 16.7 million ids');
    assert.notEqual(next.slice(12), first.slice(12));
  });
});
