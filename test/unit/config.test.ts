import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadNodeConfig } from '../../src/config/node-config.js';
import { obfuscate } from '../../src/config/obfuscation.js';
import { isCohortError, type ErrorCode } from '../../src/core/errors.js';
import { configText, TEST_SECRET } from '../helpers/node-config.js';
import { tmpDir } from '../helpers/tmp.js';
import { writeFileSync } from 'node:fs';

const VALID = {
  node: { id: 'engine-1', role: 'engine' },
  cluster: { id: 'shopping', secret_key: TEST_SECRET },
};

function withChanges(changes: Record<string, Record<string, string | null>>): string {
  const sections: Record<string, Record<string, string>> = JSON.parse(JSON.stringify(VALID));
  for (const [section, keys] of Object.entries(changes)) {
    sections[section] ??= {};
    for (const [k, v] of Object.entries(keys)) {
      if (v === null) delete sections[section]![k];
      else sections[section]![k] = v;
    }
  }
  return configText(sections);
}

function expectConfigError(fn: () => unknown, code: ErrorCode, ...fragments: (string | RegExp)[]): string {
  try {
    fn();
  } catch (err) {
    assert.ok(isCohortError(err), `expected a CohortError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    assert.ok(!err.message.includes('\n'), 'the message is one line');
    for (const f of fragments) {
      if (typeof f === 'string') assert.ok(err.message.includes(f), `"${err.message}" should mention "${f}"`);
      else assert.match(err.message, f);
    }
    return err.message;
  }
  assert.fail('expected an error');
}

describe('node configuration: invalid files are refused with file, key and reason', () => {
  const cases: Array<{ name: string; text: string; code: ErrorCode; mentions: (string | RegExp)[]; env?: Record<string, string> }> = [
    { name: 'unknown role', text: withChanges({ node: { role: 'gateway' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[node] role', '"gateway"', 'console | replica | engine'] },
    { name: 'empty secret', text: withChanges({ cluster: { secret_key: '' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] secret_key', 'must not be empty', '(value hidden)'] },
    { name: 'secret over 128 characters', text: withChanges({ cluster: { secret_key: 'x'.repeat(129) } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] secret_key', '129 characters', '1 to 128'] },
    { name: 'obfuscated secret over 128 characters once decoded', text: withChanges({ cluster: { secret_key: obfuscate('y'.repeat(200)) } }), code: 'CONFIG_INVALID_VALUE', mentions: ['secret_key', '200 characters'] },
    { name: 'obfuscated secret that does not decode', text: withChanges({ cluster: { secret_key: 'OBF:AAAAbroken' } }), code: 'CONFIG_BAD_OBFUSCATION', mentions: ['[cluster] secret_key', 'cohort obfuscate'] },
    { name: 'bad cluster id', text: withChanges({ cluster: { id: 'shop ping!' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] id', '"shop ping!"', 'letters, digits'] },
    { name: 'missing node id', text: withChanges({ node: { id: null } }), code: 'CONFIG_MISSING_KEY', mentions: ['[node] id', 'required', 'COHORT_NODE_ID'] },
    { name: 'empty node id', text: withChanges({ node: { id: '' } }), code: 'CONFIG_MISSING_KEY', mentions: ['[node] id'] },
    { name: 'missing secret', text: withChanges({ cluster: { secret_key: null } }), code: 'CONFIG_MISSING_KEY', mentions: ['[cluster] secret_key'] },
    { name: 'malformed INI line', text: withChanges({}) + 'this is not ini\n', code: 'CONFIG_SYNTAX', mentions: [/:\d+: /, '"this is not ini"'] },
    { name: 'unclosed section header', text: '[node\nid = x\n', code: 'CONFIG_SYNTAX', mentions: [':1: '] },
    { name: 'key before any section', text: 'id = x\n' + withChanges({}), code: 'CONFIG_SYNTAX', mentions: [':1: ', 'before any [section]'] },
    { name: 'key set twice', text: withChanges({}).replace('role = engine', 'role = engine\nrole = console'), code: 'CONFIG_SYNTAX', mentions: ['[node] role is set twice'] },
    { name: 'unknown section', text: withChanges({ clustr: { id: 'x' } }), code: 'CONFIG_UNKNOWN_SECTION', mentions: ['[clustr]', '[cluster]'] },
    { name: 'unknown key', text: withChanges({ cluster: { secret: 'x' } }), code: 'CONFIG_UNKNOWN_KEY', mentions: ['[cluster] secret', 'secret_key'] },
    { name: 'port out of range', text: withChanges({ cluster: { bind: '127.0.0.1:70000' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] bind', '"127.0.0.1:70000"', 'port must be 1 to 65535'] },
    { name: 'bad peer', text: withChanges({ cluster: { peers: '127.0.0.1:8020, nonsense' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] peers', 'nonsense'] },
    { name: 'replication factor not a number', text: withChanges({ state: { replication_factor: 'three' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] replication_factor', 'integer 1 to 7'] },
    { name: 'bad boolean', text: withChanges({ state: { read_local_only: 'maybe' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] read_local_only', 'true | false'] },
    { name: 'timing override out of range', text: withChanges({ cluster: { probe_interval: '5' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] probe_interval', '"5"', 'integer 10 to 600000'] },
    { name: 'timing override not a number', text: withChanges({ cluster: { gossip_nodes: 'three' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] gossip_nodes', 'not a whole number'] },
    { name: 'wildcard bind without advertise', text: withChanges({ cluster: { bind: '0.0.0.0:8020' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] bind 0.0.0.0', 'set [cluster] advertise'] },
    { name: 'wildcard advertise', text: withChanges({ cluster: { bind: '0.0.0.0:8020', advertise: '0.0.0.0:8020' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[cluster] advertise', 'wildcard'] },
    { name: 'group id with a dot (it goes into session ids)', text: withChanges({ state: { group_id: 'east.1' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] group_id', 'letters, digits, _ -'] },
    { name: 'redis-sentinel URL without a master name', text: withChanges({ state: { provider: 'redis', redis_url: 'redis-sentinel://:secret-pw@s1:26379,s2:26379' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] redis_url', '(value hidden)', 'master-name'] },
    { name: 'redis-cluster URL with an empty host', text: withChanges({ state: { provider: 'redis', redis_url: 'redis-cluster://a:7000,,b:7000' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] redis_url', 'empty entry'] },
    { name: 'redis URL of another scheme', text: withChanges({ state: { provider: 'redis', redis_url: 'http://redis:6379' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] redis_url', 'redis-cluster://'] },
    { name: 'redis_wait_replicas out of range', text: withChanges({ state: { redis_wait_replicas: '17' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] redis_wait_replicas', 'integer 0 to 16'] },
    { name: 'unknown service in inter_group', text: withChanges({ state: { inter_group: 'replay, sessions' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] inter_group', 'session, lockout'] },
    { name: 'preferred node index not a number', text: withChanges({ state: { 'preferred_node_indices.session': '1, two' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[state] preferred_node_indices.session', '"1, two"'] },
    { name: 'scheduler instance timeout within one check-in period', text: withChanges({ scheduler: { check_in_interval: '5000', check_in_offset: '1000', instance_timeout: '6000' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[scheduler] instance_timeout', 'check_in_interval + check_in_offset (6000 ms)'] },
    { name: 'inline engine without [http] proxy', text: withChanges({ node: { mode: 'inline' } }), code: 'CONFIG_MISSING_KEY', mentions: ['[http] proxy', 'mode = inline'] },
    { name: 'bad [http] proxy', text: withChanges({ node: { mode: 'inline' }, http: { proxy: 'nowhere' } }), code: 'CONFIG_INVALID_VALUE', mentions: ['[http] proxy', '"nowhere"', 'host:port'] },
    { name: 'bad value from the environment', text: withChanges({}), env: { COHORT_NODE_MODE: 'proxy' }, code: 'CONFIG_INVALID_VALUE', mentions: ['COHORT_NODE_MODE', '"proxy"', 'inline | sideband'] },
  ];
  for (const c of cases) {
    it(`refuses: ${c.name}`, (t) => {
      const dir = tmpDir(t);
      const file = join(dir, 'node.ini');
      writeFileSync(file, c.text);
      const message = expectConfigError(() => loadNodeConfig(file, c.env ?? {}), c.code, file, ...c.mentions);
      assert.ok(!message.includes(TEST_SECRET), 'a secret never appears in a message');
    });
  }

  it('refuses a missing file, naming it', (t) => {
    const file = join(tmpDir(t), 'nope.ini');
    expectConfigError(() => loadNodeConfig(file, {}), 'CONFIG_FILE_UNREADABLE', file, 'no such file');
  });

  it('never shows a secret in an error, even an invalid previous key', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    const long = 's'.repeat(130);
    writeFileSync(file, withChanges({ cluster: { previous_secret_keys: `old-one, ${long}` } }));
    const message = expectConfigError(() => loadNodeConfig(file, {}), 'CONFIG_INVALID_VALUE', 'previous_secret_keys');
    assert.ok(!message.includes(long) && !message.includes('old-one'));
  });
});

describe('node configuration: valid files', () => {
  it('applies documented defaults and resolves relative paths against the file', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({}));
    const c = loadNodeConfig(file, {});
    assert.equal(c.node.mode, 'sideband');
    assert.equal(c.node.dataDir, join(dir, 'data', 'engine-1'));
    assert.deepEqual(c.cluster.bind, { host: '127.0.0.1', port: 8020 });
    assert.deepEqual(c.cluster.peers, []);
    assert.equal(c.cluster.profile, 'lan');
    assert.equal(c.state.replicationFactor, 3);
    assert.equal(c.state.rpcTimeoutMs, 500);
    assert.equal(c.state.groupId, null);
    assert.equal(c.state.retrieveMajorityOnly, true);
    assert.equal(c.repository.url, undefined, 'an engine has no repository unless given one');
    assert.deepEqual(c.warnings, []);
  });

  it('gives the console a SQLite repository in its data directory by default', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'console.ini');
    writeFileSync(file, withChanges({ node: { role: 'console', data_dir: 'state' } }));
    const c = loadNodeConfig(file, {});
    assert.equal(c.repository.url, `sqlite:${join(dir, 'state', 'repository.db')}`);
  });

  it('takes membership timings from the file or environment, leaving the rest to the profile', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ cluster: { probe_interval: '1500', indirect_checks: '', reap_timeout: '60000' } }));
    assert.deepEqual(loadNodeConfig(file, {}).cluster.timing, { probeIntervalMs: 1500, reapTimeoutMs: 60000 });
    assert.deepEqual(loadNodeConfig(file, { COHORT_CLUSTER_GOSSIP_NODES: '5' }).cluster.timing, { probeIntervalMs: 1500, reapTimeoutMs: 60000, gossipNodes: 5 });
  });

  it('advertises the bind address unless [cluster] advertise says otherwise', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ cluster: { bind: '10.1.2.3:8020' } }));
    assert.deepEqual(loadNodeConfig(file, {}).cluster.advertise, { host: '10.1.2.3', port: 8020 });
    writeFileSync(file, withChanges({ cluster: { bind: '0.0.0.0:8020', advertise: 'engine-1.internal:18020' } }));
    assert.deepEqual(loadNodeConfig(file, {}).cluster.advertise, { host: 'engine-1.internal', port: 18020 });
  });

  it('lets COHORT_<SECTION>_<KEY> override the file', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({}));
    const c = loadNodeConfig(file, { COHORT_CLUSTER_SECRET_KEY: 'from-the-environment', COHORT_STATE_REPLICATION_FACTOR: '5', COHORT_CLUSTER_PEERS: 'a.example:1,[::1]:2' });
    assert.equal(c.cluster.secretKey.reveal(), 'from-the-environment');
    assert.equal(c.state.replicationFactor, 5);
    assert.deepEqual(c.cluster.peers, [{ host: 'a.example', port: 1 }, { host: '::1', port: 2 }]);
  });

  it('reads subclusters and directed placement: group, inter-group services, node index, preferred indices per service', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ state: { architecture: 'directed', group_id: 'east', inter_group: 'replay, replay, token', 'preferred_node_indices.session': '3, 1' } }));
    const c = loadNodeConfig(file, { COHORT_STATE_PREFERRED_NODE_INDICES_LOCKOUT: '2', COHORT_STATE_NODE_INDEX: '7' });
    assert.equal(c.state.groupId, 'east');
    assert.deepEqual(c.state.interGroup, ['replay', 'token']);
    assert.deepEqual(c.state.preferredNodeIndices, { session: [3, 1], lockout: [2] });
    assert.equal(c.state.nodeIndex, 7);
    assert.deepEqual(c.warnings, []);

    writeFileSync(file, withChanges({}));
    const defaults = loadNodeConfig(file, {});
    assert.deepEqual(defaults.state.interGroup, ['lockout', 'replay', 'rate_limit']);
    assert.equal(defaults.state.nodeIndex, null);
    assert.deepEqual(defaults.state.preferredNodeIndices, {});

    // Settings that would do nothing are warned about.
    writeFileSync(file, withChanges({ state: { 'preferred_node_indices.session': '1' } }));
    assert.match(loadNodeConfig(file, {}).warnings.join(' '), /preferred_node_indices\.session is ignored with architecture = adaptive/);
    // With Redis, subclusters and directed sets are honoured (as key prefixes): no warning.
    writeFileSync(file, withChanges({ state: { provider: 'redis', redis_url: 'redis://127.0.0.1:6379', group_id: 'east', architecture: 'directed', 'preferred_node_indices.token': '1' } }));
    assert.deepEqual(loadNodeConfig(file, {}).warnings, []);
    writeFileSync(file, withChanges({ state: { redis_wait_replicas: '1' } }));
    assert.match(loadNodeConfig(file, {}).warnings.join(' '), /redis_wait_replicas applies to provider = redis only/);
  });

  it('[state] redis_url: cluster seed lists and Sentinel sets; redis_wait_replicas empty (by the URL) or a number, redis_wait_timeout', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ state: { provider: 'redis', redis_url: 'redis-cluster://:pw@10.0.0.1:7000,10.0.0.2:7000' } }));
    const c = loadNodeConfig(file, {});
    assert.equal(c.state.redisUrl?.reveal(), 'redis-cluster://:pw@10.0.0.1:7000,10.0.0.2:7000');
    assert.equal(c.state.redisWaitReplicas, null);
    assert.equal(c.state.redisWaitTimeoutMs, 1000);
    writeFileSync(file, withChanges({ state: { provider: 'redis', redis_url: 'redis-sentinel://s1:26379,s2/main', redis_wait_replicas: '2', redis_wait_timeout: '250' } }));
    const s = loadNodeConfig(file, {});
    assert.equal(s.state.redisWaitReplicas, 2);
    assert.equal(s.state.redisWaitTimeoutMs, 250);
  });

  it('[http] proxy: the inline engine\'s address; warned about where nothing listens on it', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ node: { mode: 'inline' }, http: { proxy: '127.0.0.1:9443' } }));
    const inline = loadNodeConfig(file, {});
    assert.deepEqual(inline.http.proxy, { host: '127.0.0.1', port: 9443 });
    assert.deepEqual(inline.warnings, []);
    writeFileSync(file, withChanges({}));
    assert.equal(loadNodeConfig(file, {}).http.proxy, undefined);
    assert.deepEqual(loadNodeConfig(file, { COHORT_NODE_MODE: 'inline', COHORT_HTTP_PROXY: '127.0.0.1:9444' }).http.proxy, { host: '127.0.0.1', port: 9444 });
    // A console in inline mode has no proxy to run, and needs none.
    writeFileSync(file, withChanges({ node: { role: 'console', mode: 'inline' }, repository: { url: 'sqlite:./c.db' } }));
    assert.deepEqual(loadNodeConfig(file, {}).warnings, []);
    writeFileSync(file, withChanges({ http: { proxy: '127.0.0.1:9443' } }));
    assert.match(loadNodeConfig(file, {}).warnings.join(' '), /\[http\] proxy is used only by engines with \[node\] mode = inline/);
  });

  it('reads the runtime API\'s value caps from [state], with defaults, and refuses caps out of range', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({}));
    assert.deepEqual(loadNodeConfig(file, {}).state.limits, { sessionAttributesBytes: 16_384, artifactBytes: 65_536, stateValueBytes: 65_536, tokenBytes: 16_384 });
    writeFileSync(file, withChanges({ state: { max_session_attributes_bytes: '2048', max_artifact_bytes: '100000', max_state_value_bytes: '4096' } }));
    assert.deepEqual(loadNodeConfig(file, { COHORT_STATE_MAX_TOKEN_BYTES: '1024' }).state.limits, { sessionAttributesBytes: 2048, artifactBytes: 100_000, stateValueBytes: 4096, tokenBytes: 1024 });
    writeFileSync(file, withChanges({ state: { max_token_bytes: '10' } }));
    expectConfigError(() => loadNodeConfig(file, {}), 'CONFIG_INVALID_VALUE', 'max_token_bytes');
    writeFileSync(file, withChanges({ state: { max_artifact_bytes: '999999999' } }));
    expectConfigError(() => loadNodeConfig(file, {}), 'CONFIG_INVALID_VALUE', 'max_artifact_bytes');
  });

  it('decodes OBF: secrets and previous keys, and hides them when printed', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ cluster: { secret_key: obfuscate('new;secret#1'), previous_secret_keys: `${obfuscate('old,one')}, plain-old` } }));
    const c = loadNodeConfig(file, {});
    assert.equal(c.cluster.secretKey.reveal(), 'new;secret#1');
    assert.deepEqual(c.cluster.previousSecretKeys.map((s) => s.reveal()), ['old,one', 'plain-old']);
    assert.ok(!JSON.stringify(c).includes('new;secret'));
    assert.ok(!String(c.cluster.secretKey).includes('new'));
  });

  it('warns, without refusing, when the secret is a well-known default', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, withChanges({ cluster: { secret_key: 'changeme' } }));
    const c = loadNodeConfig(file, {});
    assert.equal(c.warnings.length, 1);
    assert.match(c.warnings[0]!, /well-known default/);
  });

  it('accepts comments, blank lines, inline comments and quoted values', (t) => {
    const dir = tmpDir(t);
    const file = join(dir, 'node.ini');
    writeFileSync(file, `; a comment\n# another\n\n[node]\nid = engine-1   ; inline\nrole = engine\n\n[cluster]\nid = shop/eu-1.a_b\nsecret_key = "quoted ; value"\n`);
    const c = loadNodeConfig(file, {});
    assert.equal(c.node.id, 'engine-1');
    assert.equal(c.cluster.id, 'shop/eu-1.a_b');
    assert.equal(c.cluster.secretKey.reveal(), 'quoted ; value');
  });
});
