/**
 * Real proxies in front of an application, asking one real `cohort up --engines 3` cluster
 * (shared by the cases, so that npm test starts it once), with the configurations
 * docs/behind-a-proxy.md prints, from the same templates:
 *
 * nginx `auth_request` to engine 2: no credential is refused with 401 at the client; a
 * session created through engine 1 passes and the application sees X-Cohort-Subject; the
 * session revoked through engine 3 is refused at nginx; an address put on the deny list on
 * the console is refused (both times printed, from the acknowledgement to the first refusal);
 * a rate-limited API answers 403 with X-Cohort-Reason: ACCESS_RATE_LIMITED; the same API in
 * monitor mode lets the same request through with X-Cohort-Would-Deny.
 *
 * Caddy `forward_auth` to engine 3: a session passes with its subject, no credential is
 * refused, a client-sent identity header never reaches the application.
 *
 * Each proxy runs as a child in its own process group, killed when the test ends. Without one
 * its case is skipped with a loud notice, or fails when COHORT_REQUIRE_SERVICES=1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { caddySiteBlock } from '../../src/engine/access/caddy-config.js';
import { nginxServerBlock } from '../../src/engine/access/nginx-config.js';
import { waitUntil } from '../helpers/cluster.js';
import { binaryOrSkip, CADDY, NGINX, startCaddy, startNginx } from '../helpers/external-proxies.js';
import { runCohort, suiteCleanups, upDir } from '../helpers/processes.js';
import { tmpDir } from '../helpers/tmp.js';

interface Shared {
  cluster: ClusterFile;
  engines: ClusterFile['nodes'];
  appPort: number;
  gatewayKey: string;
  /** Headers of every request that reached the application, in order. */
  seen: IncomingHttpHeaders[];
  /** Saves the apis document on the console; resolves once the console acknowledged it. */
  putApis(apis: object[]): Promise<void>;
  newSession(subject: string, engine: number): Promise<string>;
}

const APP = { id: 'app', pathPrefix: '/app' };
const LIMITED = { id: 'limited', pathPrefix: '/limited', publicPaths: ['/limited'], rateLimit: { policy: 'tiny', by: 'ip' } };
const OPEN = { id: 'open', pathPrefix: '/open', publicPaths: ['/open'] };

describe('real proxies in front of a three-engine cluster', () => {
  const cleanups = suiteCleanups(after);
  let shared: Shared | undefined;

  before(async () => {
    const dir = upDir(cleanups);
    const up = runCohort(cleanups, ['up', '--engines', '3', '--dir', dir, '--json']);
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
    cleanups.after(() => new Promise((resolve) => {
      app.closeAllConnections();
      app.close(resolve);
    }));

    // The console: runtime policy, the APIs, and a gateway key for the proxies.
    const login = await fetch(`${cluster.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: cluster.adminUser, password: cluster.adminPassword }) });
    const asAdmin = { authorization: `Bearer ${((await login.json()) as { token: string }).token}`, 'content-type': 'application/json' };
    const put = async (section: string, body: unknown): Promise<void> => {
      const r = await fetch(`${cluster.adminUrl}/admin/v1/config/${section}`, { method: 'PUT', headers: asAdmin, body: JSON.stringify(body) });
      assert.equal(r.status, 200, await r.text());
    };
    await put('runtime', { rateLimits: { tiny: { capacity: 2, refillPerSecond: 0.001 } } });
    await put('apis', { apis: [APP, LIMITED, OPEN] });
    const issued = await fetch(`${cluster.adminUrl}/admin/v1/api-keys`, { method: 'POST', headers: asAdmin, body: JSON.stringify({ name: 'edge', scope: 'gateway' }) });
    assert.equal(issued.status, 201);
    const gatewayKey = ((await issued.json()) as { key: string }).key;

    shared = {
      cluster,
      engines,
      appPort: (app.address() as AddressInfo).port,
      gatewayKey,
      seen,
      putApis: (apis) => put('apis', { apis }),
      async newSession(subject, engine) {
        const created = await fetch(`${engines[engine]!.runtime}/runtime/v1/sessions`, { method: 'POST', headers: { authorization: `Bearer ${cluster.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ subject }) });
        assert.equal(created.status, 201);
        return ((await created.json()) as { id: string }).id;
      },
    };
  });

  it('nginx auth_request: 401 without a credential, a session passes with its subject, refused once revoked on another engine or once the address is deny-listed, 403 when rate-limited, passed with X-Cohort-Would-Deny in monitor mode', async (t) => {
    if (!binaryOrSkip(t, 'nginx', NGINX)) return;
    const s = shared!;
    const cohort = s.engines[1]!.runtime!; // nginx asks engine 2
    const nginx = await startNginx(t, tmpDir(t), (listen) => nginxServerBlock({ listen, upstream: `http://127.0.0.1:${s.appPort}`, cohort, gatewayKey: s.gatewayKey }), '/app/x');
    const base = nginx.base;

    // Engine 1 creates the session, nginx asks engine 2, the revocation goes through engine 3.
    const session = await s.newSession('nadia', 0);
    const withSession = () => fetch(`${base}/app/orders?x=1`, { headers: { cookie: `cohort_session=${session}`, 'x-cohort-subject': 'forged' } });

    // Until the APIs and the gateway key reach the engine, nginx is refused (403): then it passes.
    const { value: allowed } = await waitUntil(withSession, (r) => r.status === 200, 30_000, 100);
    assert.equal(await allowed.text(), 'from the application');
    assert.equal(allowed.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    assert.equal(allowed.headers.get('x-cohort-would-deny'), null);
    const reached = s.seen.at(-1)!;
    assert.equal(reached['x-cohort-subject'], 'nadia', 'the application sees the subject Cohort answered, not the forged one');
    assert.equal(reached['x-cohort-api'], 'app');
    assert.equal(reached['x-cohort-decision-id'], allowed.headers.get('x-cohort-decision-id'));
    assert.equal(reached['x-cohort-key'], undefined, 'the gateway key never reaches the application');

    const seenBefore = s.seen.length;
    const anonymous = await fetch(`${base}/app/orders`);
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('x-cohort-reason'), 'ACCESS_NO_CREDENTIAL');
    assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="app"', 'nginx passes WWW-Authenticate on');

    // Revoked through engine 3 (DELETE ends and revokes the session): refused at nginx, which asks engine 2.
    // A 503 (STATE_UNAVAILABLE: a replica did not answer in time on a busy machine, and the
    // write was undone) is tried again, as a client would; the refusal is printed.
    const revoke = () => fetch(`${s.engines[2]!.runtime}/runtime/v1/sessions/${session}`, { method: 'DELETE', headers: { authorization: `Bearer ${s.cluster.apiKey}` } });
    let deleted = await revoke();
    for (let tries = 1; deleted.status === 503 && tries < 5; tries++) {
      t.diagnostic(`DELETE through engine 3 refused, tried again: ${await deleted.text()}`);
      deleted = await revoke();
    }
    assert.equal(deleted.status, 204, await deleted.text());
    const deletedAt = performance.now();
    const { value: refused } = await waitUntil(withSession, (r) => r.status !== 200, 30_000, 5);
    t.diagnostic(`session revoked through engine 3, refused at nginx (asking engine 2) ${(performance.now() - deletedAt).toFixed(1)} ms after the revocation was acknowledged`);
    assert.equal(refused.status, 401);
    assert.match(String(refused.headers.get('x-cohort-reason')), /^ACCESS_(REVOKED|SESSION_UNKNOWN)$/);
    assert.equal(s.seen.length, seenBefore, 'no refused request reached the application');

    // The client's address (nginx's view: 127.0.0.1) put on the deny list on the console.
    const other = await s.newSession('olga', 0);
    const asOlga = () => fetch(`${base}/app/orders`, { headers: { cookie: `cohort_session=${other}` } });
    await waitUntil(asOlga, (r) => r.status === 200, 10_000, 50);
    await s.putApis([{ ...APP, denyList: ['ip:127.0.0.0/8'] }, LIMITED, OPEN]);
    const savedAt = performance.now();
    const { value: listed } = await waitUntil(asOlga, (r) => r.status !== 200, 30_000, 5);
    t.diagnostic(`deny-list address saved on the console, refused at nginx ${(performance.now() - savedAt).toFixed(1)} ms after the save was acknowledged`);
    assert.equal(listed.status, 403);
    assert.equal(listed.headers.get('x-cohort-reason'), 'ACCESS_DENIED_ADDRESS');
    await s.putApis([APP, LIMITED, OPEN]);
    await waitUntil(asOlga, (r) => r.status === 200, 30_000, 20);

    // A public path with a bucket of two: the third request is rate-limited, answered 403 by default.
    const before = s.seen.length;
    const ask = () => fetch(`${base}/limited/ping`, { headers: { 'x-cohort-subject': 'forged' } });
    const statuses: Array<[number, string | null]> = [];
    for (let i = 0; i < 3; i++) {
      const r = await ask();
      statuses.push([r.status, r.headers.get('x-cohort-reason')]);
    }
    assert.deepEqual(statuses, [[200, 'ACCESS_ALLOWED'], [200, 'ACCESS_ALLOWED'], [403, 'ACCESS_RATE_LIMITED']]);
    assert.equal(s.seen.length, before + 2, 'the rate-limited request did not reach the application');
    // A public path has no subject: the client's own X-Cohort-Subject is dropped, not passed on.
    for (const h of s.seen.slice(before)) assert.equal(h['x-cohort-subject'], undefined);

    // Monitor mode: the same request, still over the limit, passes and says what it would have been denied for.
    await s.putApis([APP, { ...LIMITED, enforce: false }, OPEN]);
    const { value: monitored } = await waitUntil(ask, (r) => r.status === 200, 30_000, 20);
    assert.equal(monitored.headers.get('x-cohort-would-deny'), 'ACCESS_RATE_LIMITED');
    assert.equal(monitored.headers.get('x-cohort-reason'), 'ACCESS_ALLOWED');
    assert.equal(s.seen.at(-1)!['x-cohort-would-deny'], 'ACCESS_RATE_LIMITED', 'the application is told too');
    await s.putApis([APP, LIMITED, OPEN]);
  });

  it('Caddy forward_auth: a session passes with its subject, no credential is refused with the reason, a forged identity header never reaches the application', async (t) => {
    if (!binaryOrSkip(t, 'caddy', CADDY)) return;
    const s = shared!;
    const cohort = new URL(s.engines[2]!.runtime!).host; // Caddy asks engine 3
    const caddy = await startCaddy(t, tmpDir(t), (site) => caddySiteBlock({ site, upstream: `127.0.0.1:${s.appPort}`, cohort, gatewayKey: s.gatewayKey }), '/app/x');
    const session = await s.newSession('carla', 0);

    const { value: allowed } = await waitUntil(() => fetch(`${caddy.base}/app/orders?id=7`, { headers: { cookie: `cohort_session=${session}`, 'x-cohort-subject': 'forged' } }), (r) => r.status === 200, 30_000, 100)
      .catch((err: unknown) => {
        throw new Error(`${String(err)}\n${caddy.output()}`);
      });
    assert.equal(await allowed.text(), 'from the application');
    const reached = s.seen.at(-1)!;
    assert.equal(reached['x-cohort-subject'], 'carla');
    assert.equal(reached['x-cohort-api'], 'app');
    assert.match(String(reached['x-cohort-decision-id']), /^[A-Za-z0-9_-]{16}$/);
    assert.equal(reached['x-cohort-key'], undefined, 'the gateway key never reaches the application');

    const seenBefore = s.seen.length;
    const anonymous = await fetch(`${caddy.base}/app/orders`, { headers: { 'x-cohort-subject': 'forged' } });
    assert.equal(anonymous.status, 401);
    assert.equal(anonymous.headers.get('x-cohort-reason'), 'ACCESS_NO_CREDENTIAL');
    assert.equal(anonymous.headers.get('www-authenticate'), 'Bearer realm="app"');
    assert.equal(((await anonymous.json()) as { error: { code: string } }).error.code, 'ACCESS_NO_CREDENTIAL');
    assert.equal(s.seen.length, seenBefore, 'the refused request did not reach the application');

    // A public path (no subject in the answer): the client's own identity headers are removed, not passed on.
    const open = await fetch(`${caddy.base}/open/page`, { headers: { 'x-cohort-subject': 'forged', 'x-cohort-api': 'forged' } });
    assert.equal(open.status, 200);
    assert.equal(s.seen.at(-1)!['x-cohort-subject'], undefined);
    assert.equal(s.seen.at(-1)!['x-cohort-api'], 'open');
  });
});
