/**
 * `cohort up` prints a `curl` through the front door of the cluster it started, and the answer
 * that request got. The test runs the printed command itself, in a shell, with Debian's curl:
 * it must answer as printed (sideband: the forward-auth door of the first engine), and once an
 * API protects the path, the same command is let through — so the example is a real front
 * door, not text. (The inline example, through the first engine's proxy port, is checked by
 * access-inline-e2e.test.ts, which starts an inline cluster anyway.)
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { waitUntil } from '../helpers/cluster.js';
import { binaryOrSkip } from '../helpers/external-proxies.js';
import { CURL, pasteCurl as paste, printedExample } from '../helpers/front-door.js';
import { runCohort, upDir } from '../helpers/processes.js';

async function startUp(t: Parameters<typeof upDir>[0]): Promise<{ stdout: string; cluster: ClusterFile }> {
  const dir = upDir(t);
  const up = runCohort(t, ['up', '--engines', '1', '--dir', dir]);
  await up.waitForOutput(/front door[\s\S]*\n {14}\S.*\n/, 60_000);
  return { stdout: up.stdout(), cluster: JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile };
}

async function saveApis(cluster: ClusterFile, apis: object[]): Promise<void> {
  const login = await fetch(`${cluster.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: cluster.adminUser, password: cluster.adminPassword }) });
  const token = ((await login.json()) as { token: string }).token;
  const r = await fetch(`${cluster.adminUrl}/admin/v1/config/apis`, { method: 'PUT', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ apis }) });
  assert.equal(r.status, 200, await r.text());
}

describe('cohort up prints a request through the front door', () => {
  it('sideband: a forward-auth curl to the first engine that answers as printed, and passes once an API allows the path', async (t) => {
    if (!binaryOrSkip(t, 'curl', CURL)) return;
    const { stdout, cluster } = await startUp(t);
    const printed = printedExample(stdout);
    const engine = cluster.nodes.find((n) => n.role === 'engine')!;
    assert.ok(printed.command.includes(`${engine.runtime}/authz/forward`), printed.command);
    assert.ok(printed.command.includes(`X-Cohort-Key: ${cluster.apiKey}`), 'the key of cluster.json opens the door');
    // A new cluster has no API yet: the door refuses and says why.
    assert.deepEqual([printed.status, printed.reason], [403, 'ACCESS_NO_API']);
    assert.match(stdout, /save one on the console/);
    assert.deepEqual(await paste(printed.command), { status: printed.status, reason: printed.reason });

    await saveApis(cluster, [{ id: 'app', pathPrefix: '/app', publicPaths: ['/app'] }]);
    const { value } = await waitUntil(() => paste(printed.command), (a) => a.status === 200, 20_000, 100);
    assert.equal(value.reason, 'ACCESS_ALLOWED');
  });
});
