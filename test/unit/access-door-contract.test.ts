/**
 * The contract of the Envoy door and the JSON door, answer by answer: exact statuses, the exact
 * set of headers a gateway relies on, and the exact shapes of the JSON answers. A gateway is
 * configured against these (Envoy's allowed_upstream_headers / allowed_client_headers, a
 * sideband enforcer's parser), so any drift here breaks someone's proxy.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid, type GridProvider } from '../../src/state/grid/grid-provider.js';
import { captureLogger } from '../helpers/transports.js';

const GATEWAY_KEY = 'gateway-key-contract-0123456789';
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');

const APIS = {
  apis: [
    { id: 'orders', pathPrefix: '/orders', methods: ['GET', 'POST'], denyList: ['ip:203.0.113.0/24', 'subject:mallory'], rateLimit: { policy: 'pair', by: 'ip' } },
    { id: 'shadow', pathPrefix: '/shadow', enforce: false },
    { id: 'mail', pathPrefix: '/mail', identityHeaders: { 'X-User': 'subject', 'X-Session': 'sessionId' } },
  ],
};

function app(t: { after(fn: () => Promise<void>): void }): { app: FastifyInstance; provider: GridProvider } {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const { logger } = captureLogger();
  const settings = runtimeSettings({
    apis: APIS,
    runtime: { rateLimits: { pair: { capacity: 2, refillPerSecond: 0.5 } } },
    'api-keys': { keys: [{ id: 'gw', name: 'gw', hash: hex(GATEWAY_KEY), createdAt: 1, createdBy: 'admin', scope: 'gateway' }] },
  });
  const server = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'runtime' });
  registerRuntimeApi(server, { provider, apiKeyHashes: [sha256('node-key-contract-0123456789')], notReadyReasons: () => [], settings: () => settings, clock, decisionLog: 'none', engineId: 'engine-1' });
  t.after(async () => {
    await server.close();
    await provider.close();
  });
  return { app: server, provider };
}

const newSession = (provider: GridProvider, subject: string) => provider.sessions.create({ subject, attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
const ID = /^[A-Za-z0-9_-]{16}$/;

/** The transport's own headers, and the security headers every answer of the HTTP server has: not the door's contract. */
const TRANSPORT = new Set(['date', 'connection', 'keep-alive', 'content-length', 'transfer-encoding']);

/** Every response header but the transport's: what a gateway sees of the answer. */
function cohortHeaders(headers: Record<string, unknown>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (!TRANSPORT.has(name)) out[name] = String(value);
  }
  return out;
}

describe('Envoy door contract (/authz/envoy/<path>)', () => {
  const envoy = { 'x-cohort-key': GATEWAY_KEY, host: 'shop.test', 'x-forwarded-for': '192.0.2.10' };

  it('allow: exactly 200, empty body, the identity headers (default and configured), decision id and reason', async (t) => {
    const { app: door, provider } = app(t);
    const s = await newSession(provider, 'alice');
    const r = await door.inject({ method: 'POST', url: '/authz/envoy/orders/7?x=1', headers: { ...envoy, cookie: `cohort_session=${s.id}` }, payload: 'a body Envoy may send along' });
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
    const id = String(r.headers['x-cohort-decision-id']);
    assert.match(id, ID);
    assert.deepEqual(cohortHeaders(r.headers), { 'x-cohort-decision-id': id, 'x-cohort-reason': 'ACCESS_ALLOWED', 'x-cohort-subject': 'alice', 'x-cohort-api': 'orders' });

    const mail = await door.inject({ method: 'GET', url: '/authz/envoy/mail/inbox', headers: { ...envoy, authorization: `Bearer ${s.id}` } });
    assert.equal(mail.statusCode, 200);
    assert.deepEqual(cohortHeaders(mail.headers), { 'x-cohort-decision-id': String(mail.headers['x-cohort-decision-id']), 'x-cohort-reason': 'ACCESS_ALLOWED', 'x-user': 'alice', 'x-session': s.id });
  });

  it('deny: 401 with WWW-Authenticate, 403, 429 with Retry-After, 503 — each with {error: {code, message}} and no identity header', async (t) => {
    const { app: door, provider } = app(t);
    const s = await newSession(provider, 'alice');
    const m = await newSession(provider, 'mallory');
    const ask = (url: string, headers: Record<string, string> = {}, method = 'GET') => door.inject({ method: method as 'GET', url, headers: { ...envoy, ...headers } });
    const expectDeny = (r: Awaited<ReturnType<typeof ask>>, status: number, reason: string, extra: Record<string, string> = {}, name = reason): void => {
      assert.equal(r.statusCode, status, name);
      const body = r.json() as { error: { code: string; message: string } };
      assert.deepEqual(Object.keys(body), ['error'], name);
      assert.deepEqual(Object.keys(body.error).sort(), ['code', 'message'], name);
      assert.equal(body.error.code, reason, name);
      assert.ok(body.error.message.length > 0, name);
      const id = String(r.headers['x-cohort-decision-id']);
      assert.match(id, ID, name);
      assert.deepEqual(cohortHeaders(r.headers), { 'content-type': 'application/json; charset=utf-8', 'x-cohort-decision-id': id, 'x-cohort-reason': reason, ...extra }, name);
    };

    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '192.0.2.11' }), 401, 'ACCESS_NO_CREDENTIAL', { 'www-authenticate': 'Bearer realm="orders"' });
    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '192.0.2.12', cookie: 'cohort_session=1.nosuch' }), 401, 'ACCESS_SESSION_UNKNOWN', { 'www-authenticate': 'Bearer realm="orders", error="invalid_token"' });
    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '203.0.113.7', cookie: `cohort_session=${s.id}` }), 403, 'ACCESS_DENIED_ADDRESS');
    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '192.0.2.13', cookie: `cohort_session=${m.id}` }), 403, 'ACCESS_DENIED_SUBJECT');
    expectDeny(await ask('/authz/envoy/nowhere', { cookie: `cohort_session=${s.id}` }), 403, 'ACCESS_NO_API');
    // A method the API does not list: 403, not 405 (Envoy would pass 405 on as it is, and it says nothing about the resource).
    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '192.0.2.14', cookie: `cohort_session=${s.id}` }, 'DELETE'), 403, 'ACCESS_METHOD_NOT_ALLOWED');

    const limited = { 'x-forwarded-for': '192.0.2.15', cookie: `cohort_session=${s.id}` };
    for (let i = 0; i < 2; i++) assert.equal((await ask('/authz/envoy/orders/1', limited)).statusCode, 200);
    expectDeny(await ask('/authz/envoy/orders/1', limited), 429, 'ACCESS_RATE_LIMITED', { 'retry-after': '2' });

    provider.sessions.get = () => Promise.reject(new Error('no majority'));
    expectDeny(await ask('/authz/envoy/orders/1', { 'x-forwarded-for': '192.0.2.16', cookie: `cohort_session=${s.id}` }), 503, 'ACCESS_UNAVAILABLE');
  });

  it('monitor mode: 200 with X-Cohort-Would-Deny naming the reason', async (t) => {
    const { app: door } = app(t);
    const r = await door.inject({ method: 'GET', url: '/authz/envoy/shadow/x', headers: envoy });
    assert.equal(r.statusCode, 200);
    assert.equal(r.body, '');
    assert.deepEqual(cohortHeaders(r.headers), { 'x-cohort-decision-id': String(r.headers['x-cohort-decision-id']), 'x-cohort-reason': 'ACCESS_ALLOWED', 'x-cohort-would-deny': 'ACCESS_NO_CREDENTIAL', 'x-cohort-api': 'shadow' });
  });
});

describe('JSON door contract (POST /runtime/v1/decide, /decide/response)', () => {
  const gw = { 'x-cohort-key': GATEWAY_KEY };

  it('decide: the exact allow, monitor and deny answers (always 200; the deny status is in the body)', async (t) => {
    const { app: door, provider } = app(t);
    const s = await newSession(provider, 'carol');
    const ask = (payload: object) => door.inject({ method: 'POST', url: '/runtime/v1/decide', headers: gw, payload });

    const allow = await ask({ method: 'GET', url: '/mail/inbox', sourceIp: '192.0.2.20', headers: { Authorization: `Bearer ${s.id}` } });
    assert.equal(allow.statusCode, 200);
    const a = allow.json() as { decisionId: string };
    assert.match(a.decisionId, ID);
    assert.deepEqual(a, { decision: 'allow', reason: 'ACCESS_ALLOWED', decisionId: a.decisionId, api: 'mail', subject: 'carol', sessionId: s.id, upstreamHeaders: { 'X-User': 'carol', 'X-Session': s.id } });
    // The identity headers come as response headers too, as at the other doors, for gateways that copy headers rather than parse.
    assert.deepEqual(cohortHeaders(allow.headers), { 'content-type': 'application/json; charset=utf-8', 'x-cohort-decision-id': a.decisionId, 'x-cohort-reason': 'ACCESS_ALLOWED', 'x-user': 'carol', 'x-session': s.id });

    const monitored = await ask({ method: 'GET', url: '/shadow/x', sourceIp: '192.0.2.21', headers: {} });
    const mo = monitored.json() as { decisionId: string };
    assert.deepEqual(mo, { decision: 'allow', reason: 'ACCESS_ALLOWED', decisionId: mo.decisionId, api: 'shadow', wouldDeny: 'ACCESS_NO_CREDENTIAL', upstreamHeaders: { 'X-Cohort-Api': 'shadow', 'X-Cohort-Decision-Id': mo.decisionId } });
    assert.equal(monitored.headers['x-cohort-would-deny'], 'ACCESS_NO_CREDENTIAL');

    const none = await ask({ method: 'GET', url: '/orders/1', sourceIp: '192.0.2.22', headers: {} });
    assert.equal(none.statusCode, 200);
    const n = none.json() as { decisionId: string };
    assert.deepEqual(n, { decision: 'deny', status: 401, reason: 'ACCESS_NO_CREDENTIAL', decisionId: n.decisionId });
    assert.deepEqual(cohortHeaders(none.headers), { 'content-type': 'application/json; charset=utf-8', 'x-cohort-decision-id': n.decisionId, 'x-cohort-reason': 'ACCESS_NO_CREDENTIAL' });

    const limited = { method: 'GET', url: '/orders/1', sourceIp: '192.0.2.23', headers: { cookie: `cohort_session=${s.id}` } };
    for (let i = 0; i < 2; i++) assert.equal((await ask(limited)).json().decision, 'allow');
    const l = (await ask(limited)).json() as { decisionId: string };
    assert.deepEqual(l, { decision: 'deny', status: 429, reason: 'ACCESS_RATE_LIMITED', decisionId: l.decisionId, retryAfterSeconds: 2 });

    const method = (await ask({ ...limited, method: 'PATCH', sourceIp: '192.0.2.24' })).json() as { decisionId: string };
    assert.deepEqual(method, { decision: 'deny', status: 405, reason: 'ACCESS_METHOD_NOT_ALLOWED', decisionId: method.decisionId });
  });

  it('decide/response: 204 with no body and the decision\'s id echoed; a malformed report is 400 with a code', async (t) => {
    const { app: door } = app(t);
    const d = (await door.inject({ method: 'POST', url: '/runtime/v1/decide', headers: gw, payload: { method: 'GET', url: '/shadow/x', sourceIp: '192.0.2.30', headers: {} } })).json() as { decisionId: string };
    const r = await door.inject({ method: 'POST', url: '/runtime/v1/decide/response', headers: gw, payload: { decisionId: d.decisionId, status: 200 } });
    assert.equal(r.statusCode, 204);
    assert.equal(r.body, '');
    assert.deepEqual(cohortHeaders(r.headers), { 'x-cohort-decision-id': d.decisionId, 'x-cohort-reason': 'ACCESS_ALLOWED' });
    for (const bad of [{ decisionId: d.decisionId }, { decisionId: 'x y', status: 200 }, { decisionId: d.decisionId, status: 99 }, { decisionId: d.decisionId, status: 200, more: 1 }]) {
      const b = await door.inject({ method: 'POST', url: '/runtime/v1/decide/response', headers: gw, payload: bad });
      assert.equal(b.statusCode, 400, JSON.stringify(bad));
      assert.equal(b.json().error.code, 'HTTP_BAD_REQUEST');
      assert.equal(b.headers['x-cohort-reason'], 'HTTP_BAD_REQUEST');
    }
    const unauthenticated = await door.inject({ method: 'POST', url: '/runtime/v1/decide/response', payload: { decisionId: d.decisionId, status: 401 } });
    assert.equal(unauthenticated.statusCode, 401);
    assert.equal(unauthenticated.json().error.code, 'AUTH_MISSING_CREDENTIAL');
  });
});
