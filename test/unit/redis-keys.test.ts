/** The redis provider's key layout (state/redis/redis-keys.ts): hash tags, scopes, slots. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { keySlot, RedisKeyLayout } from '../../src/state/redis/redis-keys.js';
import { scopeKeys } from '../../src/state/grid/scopes.js';
import { parseSessionId, partitionOf } from '../../src/state/grid/grid-provider.js';

describe('redis key layout', () => {
  it('computes the slots Redis computes (CRC16 of the hash tag, else of the key)', () => {
    // Values from the Redis Cluster specification and `CLUSTER KEYSLOT` on Redis 7.
    assert.equal(keySlot('123456789'), 12739);
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('{user1000}.following'), keySlot('user1000'));
    assert.equal(keySlot('foo{}{bar}'), keySlot('foo{}{bar}'), 'an empty first tag: the whole key');
    assert.equal(keySlot('foo{{bar}}zap'), keySlot('{bar'));
  });

  it('puts a session, its revocation and its subject\'s indexes in one slot, for every subcluster', () => {
    for (const groupId of [null, 'east']) {
      const keys = new RedisKeyLayout('cohort:c1:', scopeKeys({ architecture: 'directed', groupId, interGroup: [], preferredNodeIndices: { session: [1, 2] } }));
      for (const subject of ['alice', 'bob', 'ü{}', '']) {
        const id = keys.newSessionId(subject);
        const parsed = parseSessionId(id)!;
        assert.equal(parsed.group, groupId);
        assert.equal(parsed.partition, partitionOf(`subject:${subject}`));
        const index = keys.subject(subject);
        const slots = new Set([keys.session(id)!, keys.revocation(id), index.byEnd, index.byCreation].map(keySlot));
        assert.equal(slots.size, 1, `${groupId}/${subject}: ${[...slots].join(',')}`);
      }
    }
  });

  it('names a session and its revocation from the id alone, the same on every engine whatever its scopes', () => {
    const east = new RedisKeyLayout('p:', scopeKeys({ architecture: 'adaptive', groupId: 'east', interGroup: [], preferredNodeIndices: {} }));
    const plain = new RedisKeyLayout('p:');
    const id = east.newSessionId('sam');
    assert.equal(plain.session(id), east.session(id));
    assert.equal(plain.revocation(id), east.revocation(id));
    assert.equal(plain.revocation('jwt-1'), 'p:r:jwt-1', 'other revocations are untagged');
    assert.equal(plain.session('no-dots'), undefined);
    assert.equal(plain.legacySession('no-dots'), 'p:s:no-dots', 'where the earlier single-server layout kept it');
  });

  it('prefixes scoped services with their scope key and leaves the cluster-wide scope as the plain layout', () => {
    const plain = new RedisKeyLayout('p:');
    assert.equal(plain.scoped('lockout', 'k'), 'p:l:k');
    assert.equal(plain.scoped('replay', 'k'), 'p:rp:k');
    const scoped = new RedisKeyLayout('p:', scopeKeys({ architecture: 'directed', groupId: 'east', interGroup: ['replay'], preferredNodeIndices: { token: [3, 1] } }));
    assert.equal(scoped.scoped('lockout', 'k'), 'p:@east:l:k');
    assert.equal(scoped.scoped('replay', 'k'), 'p:rp:k', 'inter_group services stay cluster-wide');
    assert.equal(scoped.scoped('token', 'k'), 'p:@east|1,3:tk:k');
    assert.match(scoped.subject('s').byEnd, /^p:\{east\.\d+\}@east:sub:s$/);
  });

  it('refuses a prefix with braces (it would decide the slot)', () => {
    assert.throws(() => new RedisKeyLayout('p{x}:'), /\{ or \}/);
  });
});
