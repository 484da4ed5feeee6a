/**
 * Web sign-in, logout and back-channel logout on one engine's inline proxy and runtime API
 * (in-process, a local grid), against a test OpenID provider on a loopback port that can be
 * told to misbehave: every bad input is refused with its code, and creates or revokes nothing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { TestContext } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { systemClock } from '../../src/core/clock.js';
import { registerInlineProxy } from '../../src/engine/access/proxy.js';
import { safeReturnPath } from '../../src/engine/oidc/sign-in.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid, type GridProvider } from '../../src/state/grid/grid-provider.js';
import { startTestIssuer, type TestIssuer } from '../helpers/oidc-test-issuer.js';
import { captureLogger } from '../helpers/transports.js';

const NODE_KEY = 'node-runtime-key-0123456789';
const HOST = 'shop.test';

interface Harness {
  proxy: FastifyInstance;
  runtime: FastifyInstance;
  provider: GridProvider;
  issuer: TestIssuer;
  seen: Array<{ url: string; headers: IncomingHttpHeaders }>;
}

async function harness(t: TestContext): Promise<Harness> {
  const issuer = await startTestIssuer(t);
  const seen: Harness['seen'] = [];
  const upstream = createServer((req, res) => {
    seen.push({ url: req.url!, headers: req.headers });
    res.writeHead(200, { 'content-type': 'text/plain' }).end('upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upstreamUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  const { provider } = localGrid(systemClock);
  const { logger } = captureLogger();
  const settings = runtimeSettings({
    apis: { apis: [{ id: 'app', pathPrefix: '/app', upstream: upstreamUrl, stripPrefix: true, login: { issuer: issuer.issuer, clientId: issuer.clientId, clientSecret: issuer.clientSecret, claims: ['email'] } }] },
    services: { sessions: { idleTimeoutSeconds: 600, maxLifetimeSeconds: 7200 } },
  });
  const proxy = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'proxy' });
  registerInlineProxy(proxy, { provider, settings: () => settings, clock: systemClock, log: logger, decisionLog: 'none', engineId: 'engine-1' });
  const runtime = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'runtime' });
  registerRuntimeApi(runtime, { provider, apiKeyHashes: [sha256(NODE_KEY)], notReadyReasons: () => [], settings: () => settings, clock: systemClock, decisionLog: 'none', engineId: 'engine-1' });
  t.after(async () => {
    await proxy.close();
    await runtime.close();
    await provider.close();
    upstream.closeAllConnections();
    upstream.close();
  });
  return { proxy, runtime, provider, issuer, seen };
}

const html = { accept: 'text/html,application/xhtml+xml', host: HOST };

interface Started {
  state: string;
  nonce: string;
  location: URL;
  cookie: string;
}

async function startSignIn(h: Harness, url = '/app/page?x=1'): Promise<Started> {
  const r = await h.proxy.inject({ method: 'GET', url, headers: html });
  assert.equal(r.statusCode, 302, r.body);
  const location = new URL(String(r.headers.location));
  const setCookie = String(r.headers['set-cookie']);
  assert.match(setCookie, /^cohort_login=[A-Za-z0-9_-]+; Path=\/app; HttpOnly; SameSite=Lax; Max-Age=600$/);
  return { state: location.searchParams.get('state')!, nonce: location.searchParams.get('nonce')!, location, cookie: setCookie.split(';')[0]! };
}

function callback(h: Harness, query: string, cookie: string | undefined) {
  return h.proxy.inject({ method: 'GET', url: `/app/_cohort/callback?${query}`, headers: { ...html, ...(cookie ? { cookie } : {}) } });
}

/** A full sign-in; the session cookie. */
async function signIn(h: Harness, plan: { sub?: string; sid?: string } = {}): Promise<string> {
  const s = await startSignIn(h);
  h.issuer.next = { nonce: s.nonce, ...plan, extra: { email: `${plan.sub ?? 'alice'}@example.test` } };
  const r = await callback(h, `code=good&state=${s.state}`, s.cookie);
  assert.equal(r.statusCode, 302, r.body);
  const cookies = r.headers['set-cookie'] as string[];
  return cookies[0]!.split(';')[0]!;
}

function errorCode(r: { json(): unknown }): string {
  return (r.json() as { error: { code: string } }).error.code;
}

async function sessionsOf(h: Harness, subject: string): Promise<number> {
  return (await h.provider.sessions.listBySubject(subject)).length;
}

function backchannel(h: Harness, token: string) {
  return h.runtime.inject({ method: 'POST', url: '/runtime/v1/oidc/backchannel-logout', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: `logout_token=${encodeURIComponent(token)}` });
}

async function allowed(h: Harness, cookie: string): Promise<{ status: number; reason: string }> {
  const r = await h.proxy.inject({ method: 'GET', url: '/app/data', headers: { host: HOST, cookie, accept: 'application/json' } });
  return { status: r.statusCode, reason: String(r.headers['x-cohort-reason']) };
}

describe('web sign-in on one engine', () => {
  it('sends a browser to the provider with PKCE, and back to the original URL with a safe session cookie and the configured claims', async (t) => {
    const h = await harness(t);
    const s = await startSignIn(h);
    assert.equal(s.location.origin + s.location.pathname, `${h.issuer.issuer}/authorize`);
    assert.equal(s.location.searchParams.get('client_id'), h.issuer.clientId);
    assert.equal(s.location.searchParams.get('redirect_uri'), `http://${HOST}/app/_cohort/callback`);
    assert.equal(s.location.searchParams.get('code_challenge_method'), 'S256');
    assert.equal(s.location.searchParams.get('scope'), 'openid');
    assert.match(s.location.searchParams.get('code_challenge')!, /^[A-Za-z0-9_-]{43}$/);

    h.issuer.next = { nonce: s.nonce, sid: 'sid-1', extra: { email: 'alice@example.test', secret: 'not copied' } };
    const r = await callback(h, `code=good&state=${s.state}`, s.cookie);
    assert.equal(r.statusCode, 302, r.body);
    assert.equal(r.headers.location, '/app/page?x=1');
    assert.equal(r.headers['x-cohort-reason'], 'ACCESS_ALLOWED');
    assert.match(String(r.headers['x-cohort-decision-id']), /^[A-Za-z0-9_-]{16}$/);
    const [sessionCookie, cleared] = r.headers['set-cookie'] as string[];
    assert.match(sessionCookie!, /^cohort_session=[^;]+; Path=\/; HttpOnly; SameSite=Lax$/);
    assert.match(cleared!, /^cohort_login=; Path=\/app; HttpOnly; SameSite=Lax; Max-Age=0$/);
    const exchange = h.issuer.tokenRequests[0]!;
    assert.equal(exchange.get('grant_type'), 'authorization_code');
    assert.equal(exchange.get('redirect_uri'), `http://${HOST}/app/_cohort/callback`);
    assert.match(exchange.get('code_verifier')!, /^[A-Za-z0-9_-]{43,128}$/);

    const [session] = await h.provider.sessions.listBySubject('alice');
    assert.deepEqual(session!.attributes, { email: 'alice@example.test', cohortLogin: { api: 'app', issuer: h.issuer.issuer, sid: 'sid-1' } });
    assert.equal(session!.idleTimeoutMs, 600_000);
    assert.equal(session!.maxLifetimeMs, 7_200_000);
    assert.equal(sessionCookie!.split(';')[0], `cohort_session=${session!.id}`);

    const next = await h.proxy.inject({ method: 'GET', url: '/app/page?x=1', headers: { ...html, cookie: sessionCookie!.split(';')[0]! } });
    assert.equal(next.statusCode, 200);
    assert.equal(h.seen.at(-1)!.headers['x-cohort-subject'], 'alice');
  });

  it('keeps the 401 for requests that are not a browser navigation', async (t) => {
    const h = await harness(t);
    const json = await h.proxy.inject({ method: 'GET', url: '/app/page', headers: { host: HOST, accept: 'application/json' } });
    assert.equal(json.statusCode, 401);
    assert.equal(errorCode(json), 'ACCESS_NO_CREDENTIAL');
    const post = await h.proxy.inject({ method: 'POST', url: '/app/page', headers: { ...html, 'content-type': 'text/plain' }, payload: 'x' });
    assert.equal(post.statusCode, 401);
  });

  it('refuses a wrong, missing, foreign or replayed state: LOGIN_STATE_INVALID, no session', async (t) => {
    const h = await harness(t);
    const s = await startSignIn(h);
    h.issuer.next = { nonce: s.nonce };
    for (const [query, cookie] of [
      [`code=good&state=${'x'.repeat(43)}`, `cohort_login=${'x'.repeat(43)}`], // a state nobody started
      [`code=good&state=${s.state}`, undefined], // another browser (no sign-in cookie)
      [`code=good&state=${s.state}`, `cohort_login=${'y'.repeat(43)}`], // this browser started another sign-in
      ['code=good', s.cookie], // no state
      ['code=good&state=%3Cscript%3E', s.cookie],
    ] as const) {
      const r = await callback(h, query, cookie);
      assert.equal(r.statusCode, 400, query);
      assert.equal(errorCode(r), 'LOGIN_STATE_INVALID', query);
      assert.equal(r.headers['x-cohort-reason'], 'LOGIN_STATE_INVALID');
    }
    assert.equal(h.issuer.tokenRequests.length, 0, 'no code was exchanged');
    // The state was left alone by the refusals: the real callback still works, once.
    const ok = await callback(h, `code=good&state=${s.state}`, s.cookie);
    assert.equal(ok.statusCode, 302, ok.body);
    const again = await callback(h, `code=good&state=${s.state}`, s.cookie);
    assert.equal(again.statusCode, 400);
    assert.equal(errorCode(again), 'LOGIN_STATE_INVALID');
    assert.equal(await sessionsOf(h, 'alice'), 1);
  });

  it('refuses an ID token with a mixed-up nonce, from another issuer or for another audience: LOGIN_ID_TOKEN_INVALID, no session', async (t) => {
    const h = await harness(t);
    const other = await startSignIn(h);
    for (const plan of [
      { nonce: other.nonce }, // the nonce of another sign-in
      { nonce: undefined },
      { iss: 'http://127.0.0.1:1' },
      { aud: 'another-client' },
    ]) {
      const s = await startSignIn(h);
      h.issuer.next = { nonce: s.nonce, ...plan } as typeof h.issuer.next;
      const r = await callback(h, `code=good&state=${s.state}`, s.cookie);
      assert.equal(r.statusCode, 401, JSON.stringify(plan));
      assert.equal(errorCode(r), 'LOGIN_ID_TOKEN_INVALID', JSON.stringify(plan));
      assert.equal(r.headers['set-cookie'], undefined);
    }
    assert.equal(await sessionsOf(h, 'alice'), 0);
  });

  it('refuses a code the provider will not exchange, and a sign-in the provider refused', async (t) => {
    const h = await harness(t);
    let s = await startSignIn(h);
    h.issuer.nextError = 'invalid_grant';
    const refused = await callback(h, `code=stale&state=${s.state}`, s.cookie);
    assert.equal(refused.statusCode, 400);
    assert.equal(errorCode(refused), 'LOGIN_CODE_REFUSED');
    s = await startSignIn(h);
    const denied = await callback(h, `error=access_denied&state=${s.state}`, s.cookie);
    assert.equal(denied.statusCode, 403);
    assert.equal(errorCode(denied), 'LOGIN_DENIED_BY_PROVIDER');
    assert.equal(await sessionsOf(h, 'alice'), 0);
  });

  it('returns only to a path on this origin', () => {
    assert.equal(safeReturnPath('/app/x?y=1', '/app'), '/app/x?y=1');
    for (const bad of ['//evil.example/x', '/\\evil.example', 'https://evil.example/', 'app', '/a\r\nSet-Cookie: x=1', undefined]) assert.equal(safeReturnPath(bad, '/app'), '/app', String(bad));
  });

  it('/_cohort/logout ends the session and sends the browser to the provider\'s end-session endpoint', async (t) => {
    const h = await harness(t);
    const cookie = await signIn(h);
    assert.equal((await allowed(h, cookie)).status, 200);
    const r = await h.proxy.inject({ method: 'GET', url: '/app/_cohort/logout', headers: { ...html, cookie } });
    assert.equal(r.statusCode, 302);
    const location = new URL(String(r.headers.location));
    assert.equal(location.origin + location.pathname, `${h.issuer.issuer}/session/end`);
    assert.equal(location.searchParams.get('post_logout_redirect_uri'), `http://${HOST}/app`);
    assert.ok(location.searchParams.get('id_token_hint'));
    assert.match(String(r.headers['set-cookie']), /^cohort_session=; Path=\/; HttpOnly; SameSite=Lax; Max-Age=0$/);
    assert.deepEqual(await allowed(h, cookie), { status: 401, reason: 'ACCESS_REVOKED' });
  });

  it('back-channel logout: a verified token revokes the sessions of its sid; forged, replayed or malformed tokens revoke nothing', async (t) => {
    const h = await harness(t);
    const one = await signIn(h, { sid: 'sid-1' });
    const two = await signIn(h, { sid: 'sid-2' });
    const bob = await signIn(h, { sub: 'bob', sid: 'sid-3' });

    const refusals: Array<[string, Promise<string>]> = [
      ['forged (a key the provider does not publish)', h.issuer.logoutToken({ sid: 'sid-2' }, { forged: true })],
      ['with a nonce', h.issuer.logoutToken({ sid: 'sid-2', nonce: 'n' })],
      ['for another audience', h.issuer.logoutToken({ sid: 'sid-2', aud: 'another-client' })],
      ['from another issuer', h.issuer.logoutToken({ sid: 'sid-2', iss: 'http://127.0.0.1:1' })],
      ['without the event', h.issuer.logoutToken({ sid: 'sid-2' }, { omit: ['events'] })],
      ['without sub and sid', h.issuer.logoutToken({})],
      ['without jti', h.issuer.logoutToken({ sid: 'sid-2' }, { omit: ['jti'] })],
      ['issued long ago', h.issuer.logoutToken({ sid: 'sid-2', iat: Math.floor(Date.now() / 1000) - 3600 })],
      ['not a JWT', Promise.resolve('not.a.jwt')],
    ];
    for (const [what, token] of refusals) {
      const r = await backchannel(h, await token);
      assert.equal(r.statusCode, 400, what);
      assert.equal(errorCode(r), 'LOGOUT_TOKEN_INVALID', what);
      assert.equal(r.headers['cache-control'], 'no-store');
    }
    assert.equal((await allowed(h, two)).status, 200, 'nothing was revoked by the refused tokens');

    const token = await h.issuer.logoutToken({ sid: 'sid-1' });
    const r = await backchannel(h, token);
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(r.json(), { revoked: 1 });
    assert.equal((await allowed(h, one)).reason, 'ACCESS_REVOKED');
    assert.equal((await allowed(h, two)).status, 200);

    const replayed = await backchannel(h, token);
    assert.equal(replayed.statusCode, 400);
    assert.equal(errorCode(replayed), 'LOGOUT_TOKEN_REPLAYED');

    // sub alone: every session of alice from this issuer; bob's stays.
    const bySub = await backchannel(h, await h.issuer.logoutToken({ sub: 'alice' }));
    assert.deepEqual(bySub.json(), { revoked: 1 });
    assert.equal((await allowed(h, two)).reason, 'ACCESS_REVOKED');
    assert.equal((await allowed(h, bob)).status, 200);
    const bad = await backchannel(h, '');
    assert.equal(bad.statusCode, 400);
  });

  it('front-channel logout ends the sessions of the provider session it names; a wrong issuer or no sid ends nothing', async (t) => {
    const h = await harness(t);
    const one = await signIn(h, { sid: 'sid-f' });
    const other = await signIn(h, { sid: 'sid-g' });
    const frame = (query: string) => h.proxy.inject({ method: 'GET', url: `/app/_cohort/frontchannel-logout?${query}`, headers: { host: HOST } });
    for (const query of [`iss=${encodeURIComponent('http://127.0.0.1:1')}&sid=sid-f`, `iss=${encodeURIComponent(h.issuer.issuer)}`, 'sid=sid-f']) {
      const r = await frame(query);
      assert.equal(r.statusCode, 400, query);
      assert.equal(errorCode(r), 'LOGOUT_TOKEN_INVALID');
    }
    assert.equal((await allowed(h, one)).status, 200);
    const r = await frame(`iss=${encodeURIComponent(h.issuer.issuer)}&sid=sid-f`);
    assert.equal(r.statusCode, 200);
    assert.match(String(r.headers['content-type']), /^text\/html/);
    assert.equal(r.headers['cache-control'], 'no-store');
    assert.equal((await allowed(h, one)).reason, 'ACCESS_REVOKED');
    assert.equal((await allowed(h, other)).status, 200);
  });

  it('the forward-auth door with ?redirect=true sends to the provider and serves the callback', async (t) => {
    const h = await harness(t);
    const fwd = (uri: string, extra: Record<string, string> = {}) => h.runtime.inject({
      method: 'GET',
      url: '/authz/forward?redirect=true',
      headers: { 'x-cohort-key': NODE_KEY, 'x-forwarded-method': 'GET', 'x-forwarded-uri': uri, 'x-forwarded-host': HOST, 'x-forwarded-proto': 'https', 'x-forwarded-for': '192.0.2.1', accept: 'text/html', ...extra },
    });
    const start = await fwd('/app/report');
    assert.equal(start.statusCode, 302, start.body);
    const location = new URL(String(start.headers.location));
    assert.equal(location.searchParams.get('redirect_uri'), `https://${HOST}/app/_cohort/callback`);
    const loginCookie = String(start.headers['set-cookie']);
    assert.match(loginCookie, /; Secure$/);
    h.issuer.next = { nonce: location.searchParams.get('nonce')! };
    const done = await fwd(`/app/_cohort/callback?code=good&state=${location.searchParams.get('state')}`, { cookie: loginCookie.split(';')[0]! });
    assert.equal(done.statusCode, 302, done.body);
    assert.equal(done.headers.location, '/app/report');
    const sessionCookie = (done.headers['set-cookie'] as string[])[0]!;
    assert.match(sessionCookie, /; HttpOnly; SameSite=Lax; Secure$/);
    const allowedNow = await fwd('/app/report', { cookie: sessionCookie.split(';')[0]! });
    assert.equal(allowedNow.statusCode, 200);
    assert.equal(allowedNow.headers['x-cohort-subject'], 'alice');
    // Without redirect=true the door keeps its 401.
    const plain = await h.runtime.inject({ method: 'GET', url: '/authz/forward', headers: { 'x-cohort-key': NODE_KEY, 'x-forwarded-uri': '/app/report', 'x-forwarded-host': HOST, 'x-forwarded-for': '192.0.2.1', accept: 'text/html' } });
    assert.equal(plain.statusCode, 401);
  });
});
