/**
 * `cohort up --tls`: a local cluster whose every HTTP listener (runtime, admin, manage, and the
 * inline proxy) speaks HTTPS with certificates from a throwaway CA that cluster.json names;
 * a client trusting that CA works, plain HTTP and clients that do not trust it are refused,
 * and the CLI (cluster info, cluster stop) works over HTTPS.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { clientTlsFromCaFile, nodeRequest } from '../../src/cli/node-http.js';
import { alive, runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';
import { refused } from '../helpers/refused.js';

describe('cohort up --tls', () => {
  it('runs every API of an inline-mode local cluster over HTTPS with a throwaway CA that cluster.json names; plain HTTP refused; the CLI trusts the CA', async (t) => {
    const dir = upDir(t);
    const startedAt = performance.now();
    const up = runCohort(t, ['up', '--tls', '--mode', 'inline', '--engines', '1', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 60_000);
    console.log(`cohort up --tls: cluster ready after ${Math.round(performance.now() - startedAt)} ms`);
    const file = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    assert.equal(file.caFile, join(dir, 'tls', 'ca.pem'));
    assert.equal(statSync(join(dir, 'tls', 'node-key.pem')).mode & 0o077, 0, 'the node key is readable by its owner only');
    assert.match(readFileSync(file.caFile!, 'utf8'), /^-----BEGIN CERTIFICATE-----/);
    assert.ok(!readFileSync(file.caFile!, 'utf8').includes('PRIVATE KEY'), 'the CA key is not kept');
    const console_ = file.nodes.find((n) => n.role === 'console')!;
    const engine = file.nodes.find((n) => n.role === 'engine')!;
    const urls = [file.adminUrl, console_.manage, engine.manage, engine.runtime!, engine.proxy!];
    for (const url of urls) assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const tls = clientTlsFromCaFile(file.caFile);

    // Runtime: the API key of cluster.json over HTTPS.
    assert.equal((await nodeRequest(`${engine.runtime}/health/ready`, { tls })).status, 200);
    const created = await nodeRequest(`${engine.runtime}/runtime/v1/sessions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' },
      body: JSON.stringify({ subject: 'tester' }),
      tls,
    });
    assert.equal(created.status, 201, created.text);
    // Admin: sign in with the generated password.
    const login = await nodeRequest(`${file.adminUrl}/admin/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ user: file.adminUser, password: file.adminPassword }),
      tls,
    });
    assert.equal(login.status, 200, login.text);
    // Inline proxy: a request for no API is decided and answered, over HTTPS, in the coded shape.
    const proxied = await nodeRequest(`${engine.proxy}/nothing-here`, { tls });
    assert.equal((JSON.parse(proxied.text) as { error: { code: string } }).error.code, 'ACCESS_NO_API', proxied.text);
    // Manage: through the CLI, which reads [tls] ca_file from the node's file.
    const info = await runCohortToEnd(t, ['cluster', 'info', '-c', engine.configFile, '--json']);
    assert.equal(info.code, 0, info.stderr);
    assert.equal((JSON.parse(info.stdout) as { nodes: unknown[] }).nodes.length, 2);

    for (const url of urls) {
      const plain = await refused(nodeRequest(`${url.replace('https:', 'http:')}/health/live`, { timeoutMs: 5000 }));
      assert.ok(plain, `plain HTTP to ${url} refused (${plain})`);
      // A client that trusts only the system's CAs refuses the certificate.
      assert.match(await refused(nodeRequest(`${url}/health/live`, { timeoutMs: 5000 })), /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/);
    }

    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', console_.configFile]);
    assert.equal(stop.code, 0, stop.stderr + stop.stdout);
    const exit = await up.exited;
    assert.equal(exit.code, 0, up.stderr());
    for (const n of file.nodes) assert.equal(alive(n.pid), false, `${n.id} stopped`);
  });
});
