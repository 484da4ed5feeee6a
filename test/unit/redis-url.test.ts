/** `[state] redis_url` forms: one server, a cluster seed list, a Sentinel set (config/redis-url.ts). */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseRedisUrl, redactRedisUrl, type RedisTarget } from '../../src/config/redis-url.js';
import { InvalidValue } from '../../src/config/values.js';

describe('redis_url parsing', () => {
  const good: Array<[string, RedisTarget]> = [
    ['redis://127.0.0.1:6379', { kind: 'server', url: 'redis://127.0.0.1:6379', tls: false }],
    ['rediss://:pw@cache.example:6380/2', { kind: 'server', url: 'rediss://:pw@cache.example:6380/2', tls: true }],
    ['redis-cluster://10.0.0.1:7000,10.0.0.2:7001', { kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7001 }], tls: false }],
    ['rediss-cluster://cohort:p%40ss%2Cw%3Ad@a,b:7001,[::1]:7002', { kind: 'cluster', nodes: [{ host: 'a', port: 6379 }, { host: 'b', port: 7001 }, { host: '::1', port: 7002 }], tls: true, username: 'cohort', password: 'p@ss,w:d' }],
    ['redis-cluster://:only-pw@a:1,a:1', { kind: 'cluster', nodes: [{ host: 'a', port: 1 }], tls: false, password: 'only-pw' }],
    ['redis-sentinel://s1,s2:26380,s3/main', { kind: 'sentinel', sentinels: [{ host: 's1', port: 26379 }, { host: 's2', port: 26380 }, { host: 's3', port: 26379 }], masterName: 'main', db: 0, tls: false }],
    ['rediss-sentinel://u:p@s1:1/my-master.1/3', { kind: 'sentinel', sentinels: [{ host: 's1', port: 1 }], masterName: 'my-master.1', db: 3, tls: true, username: 'u', password: 'p' }],
  ];
  for (const [raw, expected] of good) {
    it(`reads ${raw}`, () => assert.deepEqual(parseRedisUrl(raw), expected));
  }

  const bad: Array<[string, RegExp]> = [
    ['http://redis:6379', /not one of redis:\/\//],
    ['redis-cluster://', /empty/],
    ['redis-cluster://a:1,,b:2', /empty entry/],
    ['redis-cluster://a:1/0', /no path/],
    ['redis-cluster://a:70000', /out of range/],
    ['redis-cluster://a b:1', /not host:port/],
    ['redis-sentinel://:secret@s1:26379', /master-name/],
    ['redis-sentinel://s1/main/x', /database/],
    ['redis-sentinel://s1/main/1/2', /master-name/],
    ['redis-sentinel://%zz:secret@s1/main', /percent-encoded/],
    ['redis://', /redis:\/\//],
    ['redis://host/abc', /database number/],
  ];
  for (const [raw, message] of bad) {
    it(`refuses ${raw}`, () => {
      assert.throws(() => parseRedisUrl(raw), (err: unknown) => err instanceof InvalidValue && message.test(err.message) && !err.message.includes('secret'));
    });
  }

  it('hides the password (and only it) for logs and cluster.json', () => {
    assert.equal(redactRedisUrl('redis-cluster://cohort:s3cret@a:1,b:2'), 'redis-cluster://cohort:***@a:1,b:2');
    assert.equal(redactRedisUrl('rediss-sentinel://:s3cret@s1/main'), 'rediss-sentinel://:***@s1/main');
    assert.equal(redactRedisUrl('redis://user@h:6379/1'), 'redis://user@h:6379/1');
    assert.equal(redactRedisUrl('redis://h:6379'), 'redis://h:6379');
  });
});
