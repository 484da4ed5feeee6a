/**
 * The admin port as the web console's server (console/web-console.ts, admin-session.ts,
 * cluster-events.ts over a real socket): pages and deep links answered with index.html and
 * no-cache, hashed assets cached for a year, security headers on every answer, unknown paths
 * a JSON 404; the session cookie with its CSRF defence beside bearer tokens; signing out; the
 * server-sent cluster events (a change arrives, a signed-out session's stream ends); one
 * version with its content; filtered audit pages; schema errors listed in the error body.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ManualClock, systemClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { AdminAuth } from '../../src/console/admin-auth.js';
import { registerAdminApi, type ConsoleClusterView } from '../../src/console/admin-api.js';
import { ConfigService } from '../../src/console/config-service.js';
import { ClusterEvents } from '../../src/console/cluster-events.js';
import { addSecurityHeaders, ASSET_CACHE_CONTROL, DEFAULT_WEB_ROOT, registerWebConsole } from '../../src/console/web-console.js';
import { createHttpServer } from '../../src/http/server.js';
import type { Repository } from '../../src/repository/repository.js';
import { sqliteRepository } from '../helpers/repositories.js';
import { tmpDir } from '../helpers/tmp.js';
import { SecretKeyring } from '../../src/core/sealed-secrets.js';
import { randomBytes } from 'node:crypto';

interface Harness {
  app: FastifyInstance;
  repo: Repository;
  password: string;
  url: string;
  view: { current: ConsoleClusterView };
}

const baseView = (): ConsoleClusterView => ({ clusterId: 'c', role: 'console', epoch: 0, configVersion: 0, mixedVersions: false, versions: ['1.0.0'], nodes: [], notes: [] });

/** A web build stand-in: index.html and one hashed asset. */
function fakeBuild(t: TestContext): string {
  const root = tmpDir(t);
  mkdirSync(join(root, 'assets'));
  writeFileSync(join(root, 'index.html'), '<!doctype html><title>console</title><script type="module" src="/assets/index-abc123.js"></script>');
  writeFileSync(join(root, 'assets', 'index-abc123.js'), 'console.log(1)');
  return root;
}

async function harness(t: TestContext, webRoot: string): Promise<Harness> {
  const clock = new ManualClock(1_800_000_000_000);
  const repo = await sqliteRepository(t, clock);
  const auth = new AdminAuth({
    repository: repo, clock, tokenTtlMs: 3_600_000, maxFailures: 3, lockoutMs: 60_000, userMaxFailures: 20,
    sourceBurst: 100, sourcePerMinute: 100, maxConcurrent: 4, log: silentLogger(), nodeId: 'console', auditsFailures: () => true,
  });
  const dataDir = tmpDir(t);
  await auth.ensureFirstUser('admin', dataDir, 'console', silentLogger());
  const password = readFileSync(join(dataDir, 'admin-password'), 'utf8').trim();
  const config = new ConfigService(repo, clock, 'console', () => true, new SecretKeyring([randomBytes(32)]));
  const view = { current: baseView() };
  // The real clock drives the event poller: the stream is read over a real socket.
  const events = new ClusterEvents({ clock: systemClock, intervalMs: 50, view: async () => view.current });
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'admin' });
  app.addHook('preClose', async () => events.close());
  addSecurityHeaders(app);
  await registerAdminApi(app, { auth, config, repository: repo, cluster: async () => view.current, events });
  await registerWebConsole(app, webRoot);
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(() => app.close());
  const address = app.server.address() as { port: number };
  return { app, repo, password, url: `http://127.0.0.1:${address.port}`, view };
}

function assertSecurityHeaders(headers: Record<string, unknown>, what: string): void {
  const csp = String(headers['content-security-policy']);
  assert.match(csp, /frame-ancestors 'none'/, what);
  assert.match(csp, /script-src 'self'(;|$)/, `${what}: scripts from the console's origin only, nothing inline`);
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/, what);
  assert.equal(headers['x-content-type-options'], 'nosniff', what);
  assert.equal(headers['referrer-policy'], 'no-referrer', what);
  assert.equal(headers['x-frame-options'], 'DENY', what);
}

/** Signs in as the web console does: the token in an HttpOnly cookie, the CSRF value in the body. */
async function cookieLogin(h: Harness): Promise<{ cookie: string; csrf: string; setCookie: string; body: Record<string, unknown> }> {
  const r = await h.app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user: 'admin', password: h.password, cookie: true } });
  assert.equal(r.statusCode, 200, r.body);
  const setCookie = String(r.headers['set-cookie']);
  const body = r.json() as Record<string, unknown>;
  return { cookie: setCookie.split(';')[0]!, csrf: body.csrfToken as string, setCookie, body };
}

/** Opens the event stream and collects its events until `until` holds or the stream ends. */
function readEvents(url: string, cookie: string, until: (events: Array<{ event: string; data: string }>) => boolean): Promise<{ res: IncomingMessage; events: Array<{ event: string; data: string }>; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const events: Array<{ event: string; data: string }> = [];
    const req = httpRequest(`${url}/admin/v1/events`, { headers: { cookie } }, (res) => {
      let buffer = '';
      let done = false;
      const finish = (ended: boolean): void => {
        if (done) return;
        done = true;
        resolve({ res, events, ended });
        req.destroy();
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let i;
        while ((i = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, i);
          buffer = buffer.slice(i + 2);
          const event = /^event: (.*)$/m.exec(block)?.[1];
          const data = /^data: (.*)$/m.exec(block)?.[1];
          if (event !== undefined) events.push({ event, data: data ?? '' });
        }
        if (until(events)) finish(false);
      });
      res.on('end', () => finish(true));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => {
      req.destroy();
      reject(new Error(`no matching events within 10 s: ${JSON.stringify(events)}`));
    });
    req.end();
  });
}

describe('web console server on the admin port', () => {
  it('serves index.html at / and at every page path with no-cache, hashed assets for a year, and security headers on every answer; other paths are JSON 404s', async (t) => {
    const h = await harness(t, fakeBuild(t));
    for (const path of ['/', '/configuration', '/api-keys', '/sign-in']) {
      const r = await h.app.inject({ method: 'GET', url: path });
      assert.equal(r.statusCode, 200, path);
      assert.match(String(r.headers['content-type']), /^text\/html/, path);
      assert.equal(r.headers['cache-control'], 'no-cache', path);
      assert.match(r.body, /<title>console<\/title>/, path);
      assertSecurityHeaders(r.headers, path);
    }
    const asset = await h.app.inject({ method: 'GET', url: '/assets/index-abc123.js' });
    assert.equal(asset.statusCode, 200);
    assert.equal(asset.headers['cache-control'], ASSET_CACHE_CONTROL);
    assert.match(String(asset.headers['content-type']), /javascript/);
    assertSecurityHeaders(asset.headers, 'asset');
    for (const path of ['/nope', '/assets/missing.js', '/admin/v1/nope', '/configuration/x']) {
      const r = await h.app.inject({ method: 'GET', url: path });
      assert.equal(r.statusCode, 404, path);
      assert.equal(r.json().error.code, 'HTTP_NOT_FOUND', path);
      assertSecurityHeaders(r.headers, path);
    }
    const json = await h.app.inject({ method: 'GET', url: '/admin/v1/openapi.json' });
    assertSecurityHeaders(json.headers, 'JSON answers');
  });

  it('serves the real build (dist/web): no inline script or style, every asset content-hashed and small, nothing from another origin', async (t) => {
    const index = readFileSync(join(DEFAULT_WEB_ROOT, 'index.html'), 'utf8');
    assert.doesNotMatch(index, /<script(?![^>]*\bsrc=)[^>]*>/, 'every script is a file');
    assert.doesNotMatch(index, /<style|\sstyle=/, 'no inline style');
    assert.doesNotMatch(index, /(src|href)="(https?:)?\/\//, 'nothing from another origin');
    const assets = readdirSync(join(DEFAULT_WEB_ROOT, 'assets'));
    assert.ok(assets.some((a) => a.endsWith('.js')) && assets.some((a) => a.endsWith('.css')));
    let bytes = 0;
    for (const a of assets) {
      assert.match(a, /-[A-Za-z0-9_-]{8}\.(js|css)$/, `${a} carries a content hash`);
      assert.ok(index.includes(`/assets/${a}`), `${a} is referenced by index.html`);
      bytes += statSync(join(DEFAULT_WEB_ROOT, 'assets', a)).size;
    }
    process.stdout.write(`# web console bundle: ${assets.length} files, ${bytes} bytes before compression\n`);
    assert.ok(bytes < 200_000, 'the bundle stays small');
    const h = await harness(t, DEFAULT_WEB_ROOT);
    const page = await h.app.inject({ method: 'GET', url: '/cluster' });
    assert.equal(page.body, index);
    for (const a of assets) assert.equal((await h.app.inject({ method: 'GET', url: `/assets/${a}` })).statusCode, 200, a);
  });

  it('answers the pages 503 CONSOLE_WEB_NOT_BUILT without a build, and the API still works', async (t) => {
    const h = await harness(t, tmpDir(t));
    const r = await h.app.inject({ method: 'GET', url: '/cluster' });
    assert.equal(r.statusCode, 503);
    assert.equal(r.json().error.code, 'CONSOLE_WEB_NOT_BUILT');
    assert.equal((await h.app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user: 'admin', password: h.password } })).statusCode, 200);
  });

  it('keeps a browser\'s token in an HttpOnly cookie: changes need the CSRF header, bearer tokens need none, signing out ends the token', async (t) => {
    const h = await harness(t, fakeBuild(t));
    const { cookie, csrf, setCookie, body } = await cookieLogin(h);
    assert.match(setCookie, /^cohort_admin=[^;]+; Path=\/admin\/v1; HttpOnly; SameSite=Strict$/);
    assert.equal(body.token, undefined, 'the token is not in the body, where scripts could read it');
    assert.equal(body.role, 'admin');

    const session = await h.app.inject({ method: 'GET', url: '/admin/v1/session', headers: { cookie } });
    assert.equal(session.statusCode, 200);
    assert.equal(session.json().csrfToken, csrf);
    assert.equal(session.json().user, 'admin');

    const doc = { defaultRateLimit: { capacity: 3, refillPerSecond: 1 } };
    const head = await h.repo.getCurrentConfig();
    for (const headers of [{ cookie }, { cookie, 'x-cohort-csrf': 'wrong' }, { cookie, 'x-cohort-csrf': `${csrf}x` }]) {
      const refused = await h.app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: doc, headers });
      assert.equal(refused.statusCode, 403);
      assert.equal(refused.json().error.code, 'AUTH_CSRF_FAILED');
    }
    assert.deepEqual(await h.repo.getCurrentConfig(), head, 'a refused change saved nothing');
    const saved = await h.app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: doc, headers: { cookie, 'x-cohort-csrf': csrf } });
    assert.equal(saved.statusCode, 200, saved.body);

    // A bearer token (CLI, scripts) needs no CSRF header.
    const bearer = (await h.app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user: 'admin', password: h.password } })).json().token as string;
    assert.equal((await h.app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: doc, headers: { authorization: `Bearer ${bearer}` } })).statusCode, 200);

    // Signing out: the cookie is cleared and the token opens nothing any more.
    const out = await h.app.inject({ method: 'POST', url: '/admin/v1/logout', headers: { cookie, 'x-cohort-csrf': csrf } });
    assert.equal(out.statusCode, 204);
    assert.match(String(out.headers['set-cookie']), /^cohort_admin=; .*Max-Age=0/);
    const after = await h.app.inject({ method: 'GET', url: '/admin/v1/session', headers: { cookie } });
    assert.equal(after.statusCode, 401);
    assert.equal((await h.app.inject({ method: 'GET', url: '/admin/v1/session', headers: { authorization: `Bearer ${bearer}` } })).statusCode, 200, 'other sessions are untouched');
  });

  it('streams cluster snapshots as server-sent events to a signed-in browser: at once, on a change, and ends the stream when the session ends', async (t) => {
    const h = await harness(t, fakeBuild(t));
    const unauthenticated = await fetch(`${h.url}/admin/v1/events`);
    assert.equal(unauthenticated.status, 401);
    await unauthenticated.body?.cancel();

    const { cookie, csrf } = await cookieLogin(h);
    setTimeout(() => {
      h.view.current = { ...baseView(), configVersion: 7 };
    }, 200);
    const first = await readEvents(h.url, cookie, (events) => events.filter((e) => e.event === 'cluster').length >= 2);
    assert.equal(first.res.statusCode, 200);
    assert.match(String(first.res.headers['content-type']), /^text\/event-stream/);
    assertSecurityHeaders(first.res.headers, 'event stream');
    const snapshots = first.events.filter((e) => e.event === 'cluster').map((e) => JSON.parse(e.data) as ConsoleClusterView);
    assert.equal(snapshots[0]!.configVersion, 0);
    assert.equal(snapshots[1]!.configVersion, 7, 'the change arrives without asking');

    // Signing out ends an open stream with a signed-out event.
    setTimeout(() => void h.app.inject({ method: 'POST', url: '/admin/v1/logout', headers: { cookie, 'x-cohort-csrf': csrf } }), 200);
    const second = await readEvents(h.url, cookie, (events) => events.some((e) => e.event === 'signed-out'));
    assert.ok(second.events.some((e) => e.event === 'signed-out'), JSON.stringify(second.events));
  });

  it('answers one version with its content, filtered audit pages, and every schema error in a refused document', async (t) => {
    const h = await harness(t, fakeBuild(t));
    const token = (await h.app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user: 'admin', password: h.password } })).json().token as string;
    const auth = { authorization: `Bearer ${token}` };
    for (let i = 1; i <= 3; i++) {
      await h.app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: { defaultRateLimit: { capacity: i, refillPerSecond: 1 } }, headers: auth });
      await h.app.inject({ method: 'PUT', url: '/admin/v1/config/services', payload: { sessions: { idleTimeoutSeconds: 60 * i } }, headers: auth });
    }
    const v3 = await h.app.inject({ method: 'GET', url: '/admin/v1/config/versions/3', headers: auth });
    assert.equal(v3.statusCode, 200);
    assert.deepEqual([v3.json().section, v3.json().version, v3.json().content], ['runtime', 3, { defaultRateLimit: { capacity: 2, refillPerSecond: 1 } }]);
    const missing = await h.app.inject({ method: 'GET', url: '/admin/v1/config/versions/99', headers: auth });
    assert.equal(missing.statusCode, 404);
    assert.equal(missing.json().error.code, 'REPO_NOT_FOUND');

    const page1 = (await h.app.inject({ method: 'GET', url: '/admin/v1/audit?section=runtime&limit=2', headers: auth })).json() as { records: Array<{ id: number; section: string; versionAfter: number }>; nextBeforeId: number | null };
    assert.deepEqual(page1.records.map((r) => [r.section, r.versionAfter]), [['runtime', 5], ['runtime', 3]]);
    assert.notEqual(page1.nextBeforeId, null);
    const page2 = (await h.app.inject({ method: 'GET', url: `/admin/v1/audit?section=runtime&limit=2&beforeId=${page1.nextBeforeId}`, headers: auth })).json() as typeof page1;
    assert.deepEqual(page2.records.map((r) => [r.section, r.versionAfter]), [['runtime', 1]]);
    assert.equal(page2.nextBeforeId, null, 'no older record');
    const byUser = (await h.app.inject({ method: 'GET', url: '/admin/v1/audit?user=nobody', headers: auth })).json() as typeof page1;
    assert.deepEqual(byUser, { records: [], nextBeforeId: null });

    const invalid = await h.app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: { defaultRateLimit: { capacity: 0, refillPerSecond: -1 }, bogus: 1 }, headers: auth });
    assert.equal(invalid.statusCode, 400);
    const error = invalid.json().error as { code: string; errors: string[] };
    assert.equal(error.code, 'CONSOLE_DOCUMENT_INVALID');
    assert.ok(error.errors.some((e) => e.startsWith('/defaultRateLimit/capacity: ')), JSON.stringify(error.errors));
    assert.ok(error.errors.length >= 2, 'every error, not the first only');
  });
});
