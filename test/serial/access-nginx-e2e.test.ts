/**
 * nginx in front of an application, asking a real `cohort up --engines 3` cluster with
 * `auth_request` to engine 2 (the configuration docs/behind-a-proxy.md prints, from the same
 * template): no credential is refused with 401 at the client; a session created through
 * engine 1 passes and the application sees X-Cohort-Subject; the session deleted through
 * engine 3 is refused at nginx (how long that took is printed); a rate-limited API answers 403 (default statuses).
 *
 * nginx runs as a child in its own process group, killed when the test ends. Without nginx
 * the test is skipped with a loud notice, or fails when COHORT_REQUIRE_SERVICES=1.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { accessSync, constants, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { nginxServerBlock } from '../../src/engine/access/nginx-config.js';
import { waitUntil } from '../helpers/cluster.js';
import { runCohort, upDir } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

const NGINX = process.env.COHORT_TEST_NGINX ?? '/usr/sbin/nginx';

function nginxOrSkip(t: TestContext): boolean {
  try {
    accessSync(NGINX, constants.X_OK);
    return true;
  } catch {
    if (process.env.COHORT_REQUIRE_SERVICES === '1') throw new Error(`nginx at ${NGINX} is required (COHORT_REQUIRE_SERVICES=1) but not there`);
    process.stderr.write(`\n*** SKIPPED: nginx not found at ${NGINX}; set COHORT_REQUIRE_SERVICES=1 to make this a failure ***\n\n`);
    t.skip(`nginx not found at ${NGINX}`);
    return false;
  }
}

/** A port the OS says is free now (nginx needs a number in its configuration). */
async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address() as AddressInfo;
  await new Promise((resolve) => s.close(resolve));
  return port;
}

describe('nginx auth_request in front of a three-engine cluster', () => {
  it('refuses without a credential, passes a session with its subject, refuses it once deleted on another engine, and rate-limits with 403', async (t) => {
    if (!nginxOrSkip(t)) return;
    const dir = upDir(t);
    const up = runCohort(t, ['up', '--engines', '3', '--dir', dir, '--json']);
    await up.waitForOutput(/"clusterId"/, 60_000);
    const cluster = JSON.parse(readFileSync(join(dir, 'cluster.json'), 'utf8')) as ClusterFile;
    const engines = cluster.nodes.filter((n) => n.role === 'engine');
    assert.equal(engines.length, 3);

    // The application: records what reached it.
    const seen: IncomingHttpHeaders[] = [];
    const app: Server = createServer((req, res) => {
      seen.push(req.headers);
      res.end('from the application');
    });
    await new Promise<void>((resolve) => app.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise((resolve) => app.close(resolve)));
    const appPort = (app.address() as AddressInfo).port;

    // The console: runtime policy, the APIs, and a gateway key for nginx.
    const login = await fetch(`${cluster.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: cluster.adminUser, password: cluster.adminPassword }) });
    const asAdmin = { authorization: `Bearer ${((await login.json()) as { token: string }).token}`, 'content-type': 'application/json' };
    const put = (section: string, body: unknown) => fetch(`${cluster.adminUrl}/admin/v1/config/${section}`, { method: 'PUT', headers: asAdmin, body: JSON.stringify(body) });
    assert.equal((await put('runtime', { rateLimits: { tiny: { capacity: 2, refillPerSecond: 0.001 } } })).status, 200);
    assert.equal((await put('apis', { apis: [{ id: 'app', pathPrefix: '/app' }, { id: 'limited', pathPrefix: '/limited', publicPaths: ['/limited'], rateLimit: { policy: 'tiny', by: 'ip' } }] })).status, 200);
    const issued = await fetch(`${cluster.adminUrl}/admin/v1/api-keys`, { method: 'POST', headers: asAdmin, body: JSON.stringify({ name: 'nginx', scope: 'gateway' }) });
    assert.equal(issued.status, 201);
    const gatewayKey = ((await issued.json()) as { key: string }).key;

    // nginx, with every path it writes in the test's directory.
    const prefix = tmpDir(t);
    const port = await freePort();
    const conf = [
      ...(process.getuid?.() === 0 ? ['user root;'] : []),
      'worker_processes 1;',
      `pid ${join(prefix, 'nginx.pid')};`,
      `error_log ${join(prefix, 'error.log')} info;`,
      'events { worker_connections 256; }',
      'http {',
      `    access_log ${join(prefix, 'access.log')};`,
      ...['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'].map((k) => `    ${k}_temp_path ${join(prefix, `${k}_temp`)};`),
      nginxServerBlock({ listen: `127.0.0.1:${port}`, upstream: `http://127.0.0.1:${appPort}`, cohort: engines[1]!.runtime!, gatewayKey }),
      '}',
      '',
    ].join('\n');
    const confFile = join(prefix, 'nginx.conf');
    writeFileSync(confFile, conf);
    const nginx = spawn(NGINX, ['-p', prefix, '-e', join(prefix, 'error.log'), '-c', confFile, '-g', 'daemon off;'], { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let nginxOutput = '';
    nginx.stdout!.on('data', (d: Buffer) => (nginxOutput += d.toString()));
    nginx.stderr!.on('data', (d: Buffer) => (nginxOutput += d.toString()));
    const nginxExited = new Promise((resolve) => nginx.once('close', resolve));
    t.after(async () => {
      try {
        process.kill(-nginx.pid!, 'SIGKILL'); // master and workers: its own group
      } catch {
        // already gone
      }
      await nginxExited;
    });
    const base = `http://127.0.0.1:${port}`;
    await waitUntil(() => fetch(`${base}/app/x`).then((r) => r.status, () => 0), (s) => s !== 0, 15_000, 50)
      .catch((err: unknown) => {
        throw new Error(`nginx did not answer: ${String(err)}\n${nginxOutput}\n${readFileSync(join(prefix, 'error.log'), 'utf8')}`);
      });

    // Engine 1 creates the session, nginx asks engine 2, the deletion goes through engine 3.
    const runtimeHeaders = { authorization: `Bearer ${cluster.apiKey}`, 'content-type': 'application/json' };
    const created = await fetch(`${engines[0]!.runtime}/runtime/v1/sessions`, { method: 'POST', headers: runtimeHeaders, body: JSON.stringify({ subject: 'nadia' }) });
    assert.equal(created.status, 201);
    const session = ((await created.json()) as { id: string }).id;
    const withSession = () => fetch(`${base}/app/orders?x=1`, { headers: { cookie: `cohort_session=${session}`, 'x-cohort-subject': 'forged' } });

    // Until the APIs and the gateway key reach the engine, nginx is refused (403): then it passes.
    const { value: allowed } = await waitUntil(withSession, (r) => r.status === 200, 30_000, 100);
    assert.equal(await allowed.text(), 'from the application');
    const reached = seen.at(-1)!;
    assert.equal(reached['x-cohort-subject'], 'nadia', 'the application sees the subject Cohort answered, not the forged one');
    assert.equal(reached['x-cohort-api'], 'app');
    assert.match(String(reached['x-cohort-decision-id']), /^\S+$/);

    const seenBefore = seen.length;
    const anonymous = await fetch(`${base}/app/orders`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('x-cohort-reason'), 'ACCESS_NO_CREDENTIAL');
    assert.ok(anonymous.headers.get('www-authenticate'), 'nginx passes WWW-Authenticate on');

    const deleted = await fetch(`${engines[2]!.runtime}/runtime/v1/sessions/${session}`, { method: 'DELETE', headers: { authorization: `Bearer ${cluster.apiKey}` } });
    assert.ok(deleted.status === 204 || deleted.status === 200, `DELETE answered ${deleted.status}`);
    const deletedAt = performance.now();
    const { value: refused } = await waitUntil(withSession, (r) => r.status !== 200, 30_000, 10);
    const tookMs = performance.now() - deletedAt;
    t.diagnostic(`session deleted through engine 3, refused at nginx (asking engine 2) after ${tookMs.toFixed(1)} ms`);
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers.get('x-cohort-reason')), /^ACCESS_(REVOKED|SESSION_UNKNOWN)$/);

    // A public path with a bucket of two: the third request is rate-limited, answered 403 by default.
    const statuses: Array<[number, string | null]> = [];
    for (let i = 0; i < 3; i++) {
      const r = await fetch(`${base}/limited/ping`, { headers: { 'x-cohort-subject': 'forged' } });
      statuses.push([r.status, r.headers.get('x-cohort-reason')]);
    }
    assert.deepEqual(statuses, [[200, 'ACCESS_ALLOWED'], [200, 'ACCESS_ALLOWED'], [403, 'ACCESS_RATE_LIMITED']]);
    assert.equal(seen.length, seenBefore + 2, 'no refused request reached the application');
    // A public path has no subject: the client's own X-Cohort-Subject is dropped, not passed on.
    for (const h of seen.slice(seenBefore)) assert.equal(h['x-cohort-subject'], undefined);
  });
});
