/**
 * Web sign-in end to end: a real OpenID provider (`oidc-provider`, in this process, on a
 * loopback port, with a test client), Chromium driven by playwright-core, and
 * `cohort up --mode inline --engines 3` behind a balancer that sends each request to the next
 * engine. A browser is sent to the provider, signs in and comes back to the original URL;
 * its next requests pass every engine without a new sign-in; 300 requests of that user cause
 * one call to the upstream token endpoint, and one more after the token expires; a logout at
 * the provider (back-channel logout) denies the session on every engine; so does
 * /_cohort/logout after a new sign-in.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';
import type { Page } from 'playwright-core';
import type { ClusterFile } from '../../src/cli/local-cluster/local-cluster.js';
import { chromiumOrSkip } from '../helpers/chromium.js';
import { waitUntil } from '../helpers/cluster.js';
import { runCohort, upDir } from '../helpers/processes.js';
import { startRoundRobin } from '../helpers/round-robin-balancer.js';

const CLIENT_ID = 'shop';
const CLIENT_SECRET = 'shop-secret-0123456789abcdef';
/** Lifetime of the upstream tokens the test's token endpoint issues. */
const UPSTREAM_TOKEN_SECONDS = 15;

async function listen(t: { after(fn: () => void): void }, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function body(req: IncomingMessage): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    req.on('data', (c: Buffer) => (text += c.toString('utf8')));
    req.on('end', () => resolve(text));
  });
}

describe('web sign-in through 3 inline engines behind a round-robin balancer', () => {
  it('signs in at a real provider, passes every engine, mediates one upstream token, and logs out everywhere', async (t) => {
    const context = await chromiumOrSkip(t);
    if (!context) return;

    // The upstream: says who it was called for and with which token.
    const upstreamCalls: Array<{ url: string; subject?: string; authorization?: string }> = [];
    const upstream = await listen(t, (req, res) => {
      const subject = req.headers['x-cohort-subject'] as string | undefined;
      upstreamCalls.push({ url: req.url!, ...(subject ? { subject } : {}), ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
      res.writeHead(200, { 'content-type': 'text/html' }).end(`<html><body><p id="who">hello ${subject} at ${req.url}</p></body></html>`);
    });
    // The token endpoint the upstream trusts: token exchange, counted.
    const exchanges: URLSearchParams[] = [];
    const exchangedAt: number[] = [];
    const tokenEndpoint = await listen(t, (req, res) => {
      void body(req).then((text) => {
        const form = new URLSearchParams(text);
        exchanges.push(form);
        exchangedAt.push(Date.now());
        const ok = req.headers.authorization === `Basic ${Buffer.from('gateway:gateway-secret').toString('base64')}` && form.get('grant_type') === 'urn:ietf:params:oauth:grant-type:token-exchange' && (form.get('subject_token') ?? '') !== '';
        res.writeHead(ok ? 200 : 400, { 'content-type': 'application/json' }).end(JSON.stringify(ok ? { access_token: `upstream-${exchanges.length}`, issued_token_type: 'urn:ietf:params:oauth:token-type:access_token', token_type: 'Bearer', expires_in: UPSTREAM_TOKEN_SECONDS } : { error: 'invalid_request' }));
      });
    });

    const dir = upDir(t);
    const up = runCohort(t, ['up', '--mode', 'inline', '--engines', '3', '--dir', dir, '--json', '--start-timeout', '90']);
    await up.waitForOutput(/"clusterId"/, 120_000);
    const file = JSON.parse(readFileSync(`${dir}/cluster.json`, 'utf8')) as ClusterFile;
    const engines = file.nodes.filter((n) => n.role === 'engine');
    assert.equal(engines.length, 3);
    const balancer = await startRoundRobin(t, engines.map((e) => e.proxy!));
    // The browser signs in and browses /web; /app has token mediation (the same sign-in session passes both).
    const web = `${balancer.url}/web`;
    const app = `${balancer.url}/app`;

    // The provider, with a client whose redirect and logout addresses are the balancer's.
    let handler: (req: IncomingMessage, res: ServerResponse) => void = (_req, res) => res.writeHead(503).end();
    const providerServer = await listen(t, (req, res) => handler(req, res));
    const issuer = providerServer.url;
    const oidc = new Provider(issuer, {
      clients: [{
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
        redirect_uris: [`${web}/_cohort/callback`],
        post_logout_redirect_uris: [web],
        backchannel_logout_uri: `${engines[0]!.runtime}/runtime/v1/oidc/backchannel-logout`,
        backchannel_logout_session_required: true,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      }],
      features: { backchannelLogout: { enabled: true }, devInteractions: { enabled: true } },
      claims: { openid: ['sub'], email: ['email'] },
      conformIdTokenClaims: false,
      findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id, email: `${id}@example.test` }) }),
      cookies: { keys: ['e2e-cookie-key-0123456789abcdef'] },
      // The provider refuses to call special-use addresses (SSRF protection) through its own
      // dispatcher; the engines of this test are on loopback, so its back-channel calls go
      // through the plain fetch.
      fetch: (url: string, options: RequestInit & { dispatcher?: unknown }) => {
        delete options.dispatcher;
        return fetch(url, options);
      },
    });
    const backchannel: string[] = [];
    oidc.on('backchannel.success', () => backchannel.push('ok'));
    oidc.on('backchannel.error', (_ctx, err: Error) => backchannel.push(`error: ${err.message}`));
    handler = oidc.callback();

    const login = await fetch(`${file.adminUrl}/admin/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ user: file.adminUser, password: file.adminPassword }) });
    const admin = { authorization: `Bearer ${((await login.json()) as { token: string }).token}`, 'content-type': 'application/json' };
    const services = await fetch(`${file.adminUrl}/admin/v1/config/services`, { method: 'PUT', headers: admin, body: JSON.stringify({ sessions: { idleTimeoutSeconds: 900, maxLifetimeSeconds: 3600 } }) });
    assert.equal(services.status, 200, await services.text());
    const apis = await fetch(`${file.adminUrl}/admin/v1/config/apis`, {
      method: 'PUT',
      headers: admin,
      body: JSON.stringify({ apis: [{
        id: 'web',
        pathPrefix: '/web',
        upstream: upstream.url,
        stripPrefix: true,
        login: { issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scopes: ['email'], claims: ['email'] },
      }, {
        id: 'app',
        pathPrefix: '/app',
        upstream: upstream.url,
        stripPrefix: true,
        login: { issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scopes: ['email'], claims: ['email'] },
        upstreamToken: { tokenEndpoint: `${tokenEndpoint.url}/token`, clientId: 'gateway', clientSecret: 'gateway-secret', grant: 'token-exchange', audience: 'orders' },
      }] }),
    });
    assert.equal(apis.status, 200, await apis.text());
    // Every engine has the API (an anonymous JSON request is 401, not ACCESS_NO_API's 403).
    for (const e of engines) await waitUntil(() => fetch(`${e.proxy}/web/x`, { headers: { accept: 'application/json' } }), (r) => r.status === 401, 20_000, 100);

    const page: Page = await context.newPage();
    /** The provider's development login form, then its consent form, until the browser is back at the app. */
    const signInAtProvider = async (user: string): Promise<void> => {
      await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: 20_000 });
      for (let step = 0; step < 4 && page.url().startsWith(issuer); step++) {
        if ((await page.locator('input[name=login]').count()) > 0) {
          await page.fill('input[name=login]', user);
          await page.fill('input[name=password]', 'any');
        }
        await Promise.all([page.waitForNavigation({ timeout: 20_000 }), page.click('button[type=submit]')]);
      }
    };

    // 1. A protected page: to the provider, signed in, back at the original URL.
    let started = Date.now();
    await page.goto(`${web}/orders?id=7`);
    await signInAtProvider('alice');
    await page.waitForURL(`${web}/orders?id=7`, { timeout: 20_000 });
    assert.equal(await page.textContent('#who'), 'hello alice at /orders?id=7');
    console.log(`sign-in round trip (browser, provider, callback on some engine): ${Date.now() - started} ms`);
    const cookie = (await context.cookies(balancer.url)).find((c) => c.name === 'cohort_session');
    assert.ok(cookie, 'the session cookie is set');
    assert.equal(cookie.httpOnly, true);
    assert.equal(cookie.sameSite, 'Lax');
    const sessionCookie = `cohort_session=${cookie.value}`;

    // 2. The next requests go to the other engines in turn: no new sign-in.
    const before = new Map(balancer.counts);
    for (let i = 0; i < 6; i++) {
      await page.goto(`${web}/page-${i}`);
      assert.equal(page.url(), `${web}/page-${i}`);
      assert.equal(await page.textContent('#who'), `hello alice at /page-${i}`);
    }
    for (const e of engines) assert.ok(balancer.counts.get(e.proxy!)! - before.get(e.proxy!)! >= 2, `engine ${e.id} served some of the requests`);

    // 3. Token mediation: 300 requests of this user to /app over 3 engines; one exchange while the token lives.
    assert.equal(exchanges.length, 0, 'no token for /web, which has no upstreamToken');
    started = Date.now();
    for (let batch = 0; batch < 15; batch++) {
      const answers = await Promise.all(Array.from({ length: 20 }, () => fetch(`${app}/data`, { headers: { cookie: sessionCookie, accept: 'application/json' } })));
      for (const a of answers) assert.equal(a.status, 200);
    }
    const tookMs = Date.now() - started;
    console.log(`300 requests through 3 engines in ${tookMs} ms: token endpoint calls ${exchanges.length}`);
    assert.equal(exchanges[0]!.get('audience'), 'orders');
    assert.ok((exchanges[0]!.get('subject_token') ?? '').length > 0, 'the user\'s access token is exchanged');
    // Used until 90% of its lifetime: a second call while the first token is valid would be a bug.
    const usefulMs = UPSTREAM_TOKEN_SECONDS * 900;
    if (tookMs < usefulMs) assert.equal(exchanges.length, 1);
    else console.log(`NOTE: the 300 requests outlasted one token's useful life (${usefulMs} ms) on this busy machine; checking that no call came before the previous token's refresh time instead`);
    for (let i = 1; i < exchangedAt.length; i++) assert.ok(exchangedAt[i]! - exchangedAt[i - 1]! >= usefulMs - 250, `exchange ${i + 1} came ${exchangedAt[i]! - exchangedAt[i - 1]!} ms after the previous one, before it had to be refreshed`);
    const callsBefore = exchanges.length;
    assert.equal(upstreamCalls.at(-1)!.authorization, `Bearer upstream-${callsBefore}`);
    // Once the token is within 10% of its expiry, the next requests fetch exactly one more.
    await new Promise((r) => setTimeout(r, Math.max(0, exchangedAt.at(-1)! + usefulMs - Date.now() + 300)));
    for (let i = 0; i < 30; i++) assert.equal((await fetch(`${app}/data`, { headers: { cookie: sessionCookie } })).status, 200);
    console.log(`token endpoint calls after the token expired: ${exchanges.length}`);
    assert.equal(exchanges.length, callsBefore + 1);
    assert.equal(upstreamCalls.at(-1)!.authorization, `Bearer upstream-${callsBefore + 1}`);

    // 4. Logout at the provider: its back-channel logout denies the session on every engine.
    await page.goto(`${issuer}/session/end`);
    started = Date.now();
    await page.click('button[name=logout]');
    await page.waitForLoadState();
    assert.deepEqual(backchannel, ['ok']);
    const { elapsedMs } = await waitUntil(
      () => Promise.all(engines.map((e) => fetch(`${e.proxy}/web/data`, { headers: { cookie: sessionCookie, accept: 'application/json' } }).then((r) => r.status))),
      (statuses) => statuses.every((s) => s === 401),
      10_000,
      10,
    );
    console.log(`back-channel logout: denied on all 3 engines ${Date.now() - started} ms after the logout at the provider (${Math.round(elapsedMs)} ms after the provider's page answered)`);

    // 5. Sign in again; /_cohort/logout ends that session on every engine too.
    await page.goto(`${web}/again`);
    await signInAtProvider('alice');
    await page.waitForURL(`${web}/again`, { timeout: 20_000 });
    const second = (await context.cookies(balancer.url)).find((c) => c.name === 'cohort_session')!;
    assert.notEqual(second.value, cookie.value);
    await page.goto(`${web}/_cohort/logout`);
    await page.waitForURL((u) => u.href.startsWith(issuer), { timeout: 20_000 });
    assert.equal((await context.cookies(balancer.url)).find((c) => c.name === 'cohort_session'), undefined, 'the cookie is cleared');
    const statuses = await Promise.all(engines.map((e) => fetch(`${e.proxy}/web/data`, { headers: { cookie: `cohort_session=${second.value}`, accept: 'application/json' } }).then((r) => r.status)));
    assert.deepEqual(statuses, [401, 401, 401]);
    // The provider's end-session page (RP-initiated logout) ends its session too and returns to the app.
    await page.click('button[name=logout]');
    await page.waitForURL((u) => u.href.startsWith(issuer) && !u.href.includes('/session/end'), { timeout: 20_000 });
  });
});
