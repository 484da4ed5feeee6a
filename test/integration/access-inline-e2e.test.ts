/**
 * Inline mode on real processes: `cohort up --mode inline` gives every engine a proxy, and a
 * session created through one engine's runtime API passes another engine's proxy to the
 * upstream, which receives the identity headers.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { waitUntil } from '../helpers/cluster.js';
import { runCohort, runCohortToEnd, upDir } from '../helpers/processes.js';

describe('cohort up --mode inline', () => {
  it('every engine proxies; a session made on engine-1 passes engine-2\'s proxy', async (t) => {
    const seen: Array<{ url: string; headers: IncomingHttpHeaders }> = [];
    const upstream = createServer((req, res) => {
      seen.push({ url: req.url!, headers: req.headers });
      res.writeHead(200, { 'content-type': 'text/plain' }).end(`hello from ${req.url}`);
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    t.after(() => {
      upstream.closeAllConnections();
      upstream.close();
    });
    const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;

    const dir = upDir(t);
    const up = runCohort(t, ['up', '--mode', 'inline', '--engines', '2', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 60_000);
    const file = JSON.parse(readFileSync(`${dir}/cluster.json`, 'utf8')) as ClusterFile;
    const [consoleNode, engine1, engine2] = file.nodes;
    assert.equal(consoleNode!.proxy, undefined);
    assert.match(engine1!.proxy!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(engine2!.proxy!, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(readFileSync(engine2!.configFile, 'utf8'), /^mode = inline$/m);

    const login = await fetch(`${file.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: file.adminUser, password: file.adminPassword }) });
    const token = ((await login.json()) as { token: string }).token;
    const saved = await fetch(`${file.adminUrl}/admin/v1/config/apis`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ apis: [{ id: 'app', pathPrefix: '/app', upstream: upstreamUrl, stripPrefix: true }] }),
    });
    assert.equal(saved.status, 200, await saved.text());

    const created = await fetch(`${engine1!.runtime}/runtime/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${file.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject: 'erin' }) });
    assert.equal(created.status, 201);
    const session = ((await created.json()) as { id: string }).id;

    // Until the apis document reaches engine-2 the request matches no API (403).
    const { value: allowed } = await waitUntil(() => fetch(`${engine2!.proxy}/app/hello?x=1`, { headers: { cookie: `cohort_session=${session}`, 'x-cohort-subject': 'mallory' } }), (r) => r.status === 200, 20_000, 100);
    assert.equal(await allowed.text(), 'hello from /hello?x=1');
    assert.equal(allowed.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    const last = seen[seen.length - 1]!;
    assert.equal(last.headers['x-cohort-subject'], 'erin');
    assert.equal(last.headers['x-cohort-api'], 'app');

    const anonymous = await fetch(`${engine2!.proxy}/app/hello`);
    assert.equal(anonymous.status, 401);
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'ACCESS_NO_CREDENTIAL');

    // The mode is the cluster's: a second run asking for the other one is refused.
    const stop = await runCohortToEnd(t, ['cluster', 'stop', '-c', consoleNode!.configFile]);
    assert.equal(stop.code, 0, stop.stderr);
    await up.exited;
    const again = await runCohortToEnd(t, ['up', '--mode', 'sideband', '--dir', dir, '--json']);
    assert.equal(again.code, 2, again.stderr);
    assert.match(again.stderr, /runs in inline mode/);
  });
});
