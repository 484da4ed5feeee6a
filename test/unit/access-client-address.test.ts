/**
 * Which address a request comes from behind proxies (`[http] trusted_proxies`): the rightmost
 * X-Forwarded-For entry that is not a trusted proxy, believed at the inline proxy only when the
 * connection comes from a trusted proxy; the same rule at the sideband doors, whose gateway is
 * trusted by its key. Table-driven, on the pure functions, and through the config file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { doorClientAddress, forwardedForEntries, inlineClientAddress, plainAddress, rightmostUntrusted, trustedProxies } from '../../src/engine/access/client-address.js';
import { loadNodeConfig } from '../../src/config/node-config.js';
import { validConfig, writeConfig } from '../helpers/node-config.js';
import { tmpDir } from '../helpers/tmp.js';

const LB = trustedProxies(['127.0.0.1/32', '::1', '10.0.0.0/8', '2001:db8:ff::/48']);

describe('client address behind proxies', () => {
  it('inline proxy: the connection\'s address unless it is a trusted proxy, then the rightmost untrusted X-Forwarded-For entry', () => {
    const cases: Array<[string, string, string | string[] | undefined, typeof LB, string]> = [
      // [case, peer, X-Forwarded-For, trusted, client]
      ['no trusted proxies: the peer, whatever it sent', '192.0.2.7', '203.0.113.1', undefined, '192.0.2.7'],
      ['untrusted peer: its X-Forwarded-For is ignored', '192.0.2.7', '203.0.113.1', LB, '192.0.2.7'],
      ['trusted balancer: the entry it appended', '127.0.0.1', '203.0.113.1', LB, '203.0.113.1'],
      ['trusted balancer: a client-forged entry to the left is not believed', '127.0.0.1', '198.51.100.66, 203.0.113.1', LB, '203.0.113.1'],
      ['two trusted hops: skipped right to left', '10.1.2.3', '203.0.113.1, 10.9.9.9', LB, '203.0.113.1'],
      ['trusted hops in IPv6', '::1', '2001:db8::5, 2001:db8:ff::1', LB, '2001:db8::5'],
      ['several header lines count as one list', '127.0.0.1', ['198.51.100.66', '203.0.113.1, 10.0.0.2'], LB, '203.0.113.1'],
      ['every entry trusted: the leftmost', '127.0.0.1', '10.0.0.1, 10.0.0.2', LB, '10.0.0.1'],
      ['trusted balancer that sent none: the balancer', '127.0.0.1', undefined, LB, '127.0.0.1'],
      ['a malformed entry where the client should be stops the walk (the decision denies it)', '127.0.0.1', '203.0.113.1, garbage', LB, 'garbage'],
    ];
    for (const [name, peer, xff, trusted, client] of cases) assert.equal(inlineClientAddress(peer, xff, trusted), client, name);
  });

  it('sideband doors: the rightmost untrusted entry (the last one without trusted proxies), else X-Real-IP', () => {
    assert.equal(doorClientAddress('198.51.100.66, 203.0.113.1', undefined, undefined), '203.0.113.1');
    assert.equal(doorClientAddress('198.51.100.66, 203.0.113.1, 10.0.0.2', undefined, undefined), '10.0.0.2', 'without trusted proxies a balancer\'s entry is the client');
    assert.equal(doorClientAddress('198.51.100.66, 203.0.113.1, 10.0.0.2', undefined, LB), '203.0.113.1', 'with the balancer trusted, the client behind it');
    assert.equal(doorClientAddress(['198.51.100.66', '203.0.113.1'], undefined, undefined), '203.0.113.1');
    assert.equal(doorClientAddress(undefined, '203.0.113.9', LB), '203.0.113.9');
    assert.equal(doorClientAddress(' , ', '203.0.113.9', undefined), '203.0.113.9', 'an empty list falls back to X-Real-IP');
    assert.equal(doorClientAddress(undefined, undefined, LB), undefined);
  });

  it('helpers: list entries, IPv4-mapped addresses, the walk', () => {
    assert.deepEqual(forwardedForEntries(['a, b', ' c ,, ']), ['a', 'b', 'c']);
    assert.deepEqual(forwardedForEntries(undefined), []);
    // One address on one line (the common case, taken apart without splitting).
    assert.deepEqual(forwardedForEntries(' 192.0.2.7 '), ['192.0.2.7']);
    assert.deepEqual(forwardedForEntries('   '), []);
    assert.deepEqual(forwardedForEntries('192.0.2.7, 10.0.0.1'), ['192.0.2.7', '10.0.0.1']);
    assert.equal(plainAddress('::ffff:127.0.0.1'), '127.0.0.1');
    assert.equal(plainAddress('::1'), '::1');
    assert.equal(plainAddress(undefined), '');
    assert.equal(rightmostUntrusted([], LB), undefined);
    assert.equal(inlineClientAddress('127.0.0.1', '::ffff:203.0.113.1', LB), '::ffff:203.0.113.1', 'as written: the decision parses mapped addresses');
  });

  it('trusted proxy lists: addresses and CIDR ranges of both families; anything else is refused naming the entry', () => {
    const list = trustedProxies(['192.168.0.0/16', '::1', '[2001:db8::1]'])!;
    assert.ok(list.check('192.168.44.1', 'ipv4'));
    assert.ok(!list.check('192.169.0.1', 'ipv4'));
    assert.ok(list.check('::1', 'ipv6'));
    assert.ok(list.check('2001:db8::1', 'ipv6'));
    assert.equal(trustedProxies([]), undefined);
    for (const bad of ['proxy.local', '10.0.0.0/33', '::/129', '10.0.0.0/x', '1.2.3']) assert.throws(() => trustedProxies([bad]), new RegExp(bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')), bad);
  });

  it('[http] trusted_proxies in the config file: parsed into the list, bad entries refused with the key named', async (t) => {
    const dir = tmpDir(t);
    const config = await validConfig('engine-1', 'engine', { http: { trusted_proxies: '127.0.0.1/32, ::1' } });
    assert.deepEqual(loadNodeConfig(writeConfig(dir, 'ok.ini', config)).http.trustedProxies, ['127.0.0.1/32', '::1']);
    const plain = await validConfig('engine-2', 'engine');
    assert.deepEqual(loadNodeConfig(writeConfig(dir, 'default.ini', plain)).http.trustedProxies, []);
    const bad = await validConfig('engine-3', 'engine', { http: { trusted_proxies: '127.0.0.1/32, balancer' } });
    assert.throws(() => loadNodeConfig(writeConfig(dir, 'bad.ini', bad)), (err: Error) => /trusted_proxies/.test(err.message) && /balancer/.test(err.message));
  });
});
