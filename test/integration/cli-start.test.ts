import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadNodeConfig } from '../../src/config/node-config.js';
import { formatAddress } from '../../src/config/values.js';
import { readManageCredential, MANAGE_CREDENTIAL_FILE } from '../../src/node/data-dir.js';
import { configText, TEST_CLUSTER_ID, validConfig, writeConfig } from '../helpers/node-config.js';
import { runCohort, runCohortToEnd } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

/** True when nothing listens on host:port (we can bind it ourselves). */
function portIsFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ host, port, exclusive: true }, () => s.close(() => resolve(true)));
  });
}

describe('cohort start refuses invalid configuration before binding or writing anything', () => {
  const cases: Array<{ name: string; change: (s: Record<string, Record<string, string>>) => string | undefined; mentions: RegExp[] }> = [
    { name: 'missing file', change: () => undefined, mentions: [/no such file/] },
    { name: 'unknown role', change: (s) => configText({ ...s, node: { ...s.node!, role: 'gateway' } }), mentions: [/\[node\] role/, /"gateway"/] },
    { name: 'empty secret', change: (s) => configText({ ...s, cluster: { ...s.cluster!, secret_key: '' } }), mentions: [/\[cluster\] secret_key/, /must not be empty/] },
    { name: 'secret over 128 characters', change: (s) => configText({ ...s, cluster: { ...s.cluster!, secret_key: 'k'.repeat(129) } }), mentions: [/\[cluster\] secret_key/, /more than 128/] },
    { name: 'bad cluster id', change: (s) => configText({ ...s, cluster: { ...s.cluster!, id: 'no spaces allowed' } }), mentions: [/\[cluster\] id/, /"no spaces allowed"/] },
    { name: 'missing node id', change: (s) => { const { id: _id, ...node } = s.node!; return configText({ ...s, node }); }, mentions: [/\[node\] id/, /required/] },
    { name: 'probe timeout not below the probe interval', change: (s) => configText({ ...s, cluster: { ...s.cluster!, probe_timeout: '300' } }), mentions: [/profile local/, /probe_timeout \(300 ms\) must be less than probe_interval \(200 ms\)/] },
    { name: 'malformed INI line', change: (s) => configText(s) + '[broken\n', mentions: [/:\d+: /, /not a \[section\]/] },
  ];

  for (const c of cases) {
    it(`exits 2 with a one-line message: ${c.name}`, async (t) => {
      const dir = tmpDir(t);
      const sections = await validConfig('console-1', 'console');
      const file = join(dir, 'node.ini');
      const text = c.change(sections);
      if (text !== undefined) writeFileSync(file, text);
      const before = readdirSync(dir).sort();
      const result = await runCohortToEnd(t, ['start', '-c', file]);
      assert.equal(result.code, 2, `exit code; stderr: ${result.stderr}`);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, `one line on stderr, got: ${result.stderr}`);
      assert.ok(lines[0]!.includes(file), 'the message names the file');
      for (const m of c.mentions) assert.match(lines[0]!, m);
      assert.equal(result.stdout, '', 'nothing logged: the node never started');
      assert.deepEqual(readdirSync(dir).sort(), before, 'nothing written');
      for (const key of ['manage', 'admin'] as const) {
        const [host, port] = sections.http![key]!.split(':');
        assert.ok(await portIsFree(host!, Number(port)), `${key} port was never bound`);
      }
      const [clusterHost, clusterPort] = sections.cluster!.bind!.split(':');
      assert.ok(await portIsFree(clusterHost!, Number(clusterPort)), 'cluster port was never bound');
    });
  }
});

describe('cohort start runs a console node', () => {
  it('serves GET /manage/v1/node with the credential from its data directory, and stops with exit 0 on SIGTERM', async (t) => {
    const dir = tmpDir(t);
    const file = writeConfig(dir, 'console.ini', await validConfig('console-1', 'console'));
    const config = loadNodeConfig(file, {});
    const node = runCohort(t, ['start', '-c', file]);
    await node.waitForOutput(/console console-1 started/);

    const credentialPath = join(config.node.dataDir, MANAGE_CREDENTIAL_FILE);
    assert.equal(statSync(credentialPath).mode & 0o777, 0o600, 'credential readable only by its owner');
    assert.equal(statSync(config.node.dataDir).mode & 0o077, 0, 'data directory closed to others');
    assert.ok(existsSync(join(config.node.dataDir, 'repository.db')), 'the console opened its SQLite repository');
    const credential = readManageCredential(config.node.dataDir);
    const url = `http://${formatAddress(config.http.manage)}/manage/v1/node`;

    const ok = await fetch(url, { headers: { authorization: `Bearer ${credential}` } });
    assert.equal(ok.status, 200);
    const body = (await ok.json()) as Record<string, unknown>;
    assert.equal(body.id, 'console-1');
    assert.equal(body.role, 'console');
    assert.equal(body.mode, 'sideband');
    assert.equal(body.clusterId, TEST_CLUSTER_ID);
    assert.match(String(body.version), /^\d+\.\d+\.\d+/);

    const none = await fetch(url);
    assert.equal(none.status, 401);
    assert.equal(((await none.json()) as { error: { code: string } }).error.code, 'AUTH_MISSING_CREDENTIAL');
    const wrong = await fetch(url, { headers: { authorization: 'Bearer not-the-credential' } });
    assert.equal(wrong.status, 401);
    assert.equal(((await wrong.json()) as { error: { code: string } }).error.code, 'AUTH_INVALID_CREDENTIAL');

    node.child.kill('SIGTERM');
    const exit = await node.exited;
    assert.equal(exit.code, 0, `exit status after SIGTERM; stderr: ${node.stderr()}`);
    assert.match(node.stdout(), /console-1 stopped/);
    assert.ok(!node.stdout().includes('a-test-secret'), 'the secret is never logged');
  });

  it('keeps its credential across restarts and stops with exit 0 on SIGINT', async (t) => {
    const dir = tmpDir(t);
    const file = writeConfig(dir, 'console.ini', await validConfig('console-2', 'console'));
    const config = loadNodeConfig(file, {});
    const first = runCohort(t, ['start', '-c', file]);
    await first.waitForOutput(/started/);
    const credential = readManageCredential(config.node.dataDir);
    first.child.kill('SIGINT');
    assert.equal((await first.exited).code, 0);

    const second = runCohort(t, ['start', '-c', file]);
    await second.waitForOutput(/started/);
    assert.equal(readManageCredential(config.node.dataDir), credential);
    second.child.kill('SIGTERM');
    assert.equal((await second.exited).code, 0);
  });

  it('exits 1 with a clear message when its management port is taken', async (t) => {
    const dir = tmpDir(t);
    const sections = await validConfig('console-3', 'console');
    const [host, port] = sections.http!.manage!.split(':');
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen({ host, port: Number(port) }, () => r()));
    t.after(() => new Promise<void>((r) => blocker.close(() => r())));
    const file = writeConfig(dir, 'console.ini', sections);
    const result = await runCohortToEnd(t, ['start', '-c', file]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /cannot bind the manage API on .*address already in use/);
  });
});
