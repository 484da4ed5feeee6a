/**
 * The access-decision doors through Fastify inject, with a real (local) grid provider and the
 * settings compiled from configuration sections as an engine applies them.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair } from 'jose';
import type { DecisionLog } from '../../src/config/schema.js';
import { ManualClock } from '../../src/core/clock.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid, type GridProvider } from '../../src/state/grid/grid-provider.js';
import { captureLogger, type LogLine } from '../helpers/transports.js';

const NODE_KEY = 'node-runtime-key-0123456789';
const GATEWAY_KEY = 'gateway-key-0123456789abcdef';
const CLIENT_KEY = 'client-key-0123456789abcdef';
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');
const issued = (id: string, key: string, scope: string) => ({ id, name: id, hash: hex(key), createdAt: 1, createdBy: 'admin', scope });

const JWK = await exportJWK((await generateKeyPair('ES256')).publicKey);
const APIS = {
  apis: [
    { id: 'orders', pathPrefix: '/orders', credentials: ['session', 'apiKey'], denyList: ['ip:203.0.113.0/24'], rateLimit: { policy: 'tight', by: 'ip' } },
    { id: 'shadow', pathPrefix: '/shadow', enforce: false },
    { id: 'guarded', pathPrefix: '/guarded', lockout: { by: 'subject' } },
    { id: 'tokens', pathPrefix: '/tokens', credentials: ['jwt'], jwt: { issuer: 'https://issuer.test', keys: [JWK] } },
    { id: 'open', pathPrefix: '/open', publicPaths: ['/open'], onStateUnavailable: 'allow', rateLimit: { policy: 'tight', by: 'ip' } },
  ],
};

function doorsApp(t: { after(fn: () => Promise<void>): void }, options: { decisionLog?: DecisionLog } = {}): { app: FastifyInstance; provider: GridProvider; clock: ManualClock; lines: LogLine[] } {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const { logger, lines } = captureLogger();
  const settings = runtimeSettings({
    apis: APIS,
    runtime: { rateLimits: { tight: { capacity: 2, refillPerSecond: 0.25 } }, lockout: { maxFailures: 2, windowSeconds: 60, lockSeconds: 120 } },
    'api-keys': { keys: [issued('gw', GATEWAY_KEY, 'gateway'), issued('cl', CLIENT_KEY, 'client')] },
  });
  const app = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'runtime' });
  registerRuntimeApi(app, {
    provider,
    apiKeyHashes: [sha256(NODE_KEY)],
    notReadyReasons: () => [],
    settings: () => settings,
    clock,
    decisionLog: options.decisionLog ?? 'deny',
    engineId: 'engine-7',
  });
  t.after(async () => {
    await app.close();
    await provider.close();
  });
  return { app, provider, clock, lines };
}

const gw = { 'x-cohort-key': GATEWAY_KEY };
const fwd = (uri: string, extra: Record<string, string> = {}) => ({ ...gw, 'x-forwarded-method': 'GET', 'x-forwarded-uri': uri, 'x-forwarded-host': 'shop.test', 'x-forwarded-for': '192.0.2.10', ...extra });

function decisionHeaders(r: { headers: Record<string, unknown> }): void {
  assert.match(String(r.headers['x-cohort-decision-id']), /^[A-Za-z0-9_-]{16}$/);
  assert.match(String(r.headers['x-cohort-reason']), /^[A-Z_]+$/);
}

describe('access-decision doors', () => {
  it('need a gateway key in X-Cohort-Key: runtime or gateway scope or [http] api_keys; a client key opens nothing', async (t) => {
    const { app } = doorsApp(t);
    const missing = await app.inject({ method: 'GET', url: '/authz/forward', headers: { 'x-forwarded-uri': '/orders' } });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json().error.code, 'AUTH_MISSING_CREDENTIAL');
    assert.equal(missing.headers['x-cohort-reason'], 'AUTH_MISSING_CREDENTIAL');
    decisionHeaders(missing);
    for (const key of [CLIENT_KEY, 'nope-nope-nope-nope']) {
      const r = await app.inject({ method: 'POST', url: '/runtime/v1/decide', headers: { 'x-cohort-key': key }, payload: { method: 'GET', url: '/', sourceIp: '192.0.2.1', headers: {} } });
      assert.equal(r.json().error.code, 'AUTH_INVALID_CREDENTIAL', key);
    }
    for (const key of [GATEWAY_KEY, NODE_KEY]) {
      const r = await app.inject({ method: 'GET', url: '/authz/forward', headers: { ...fwd('/orders/1'), 'x-cohort-key': key } });
      assert.equal(r.statusCode, 401, key);
      assert.equal(r.headers['x-cohort-reason'], 'ACCESS_NO_CREDENTIAL');
    }
    // Gateway and client keys do not open the runtime API.
    for (const key of [GATEWAY_KEY, CLIENT_KEY]) {
      assert.equal((await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: { authorization: `Bearer ${key}` } })).json().error.code, 'AUTH_INVALID_CREDENTIAL');
    }
    assert.equal((await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: { authorization: `Bearer ${NODE_KEY}` } })).statusCode, 200);
  });

  it('forward: 200 with an empty body and identity headers, 401 with WWW-Authenticate, 403 for the rest, full statuses on request', async (t) => {
    const { app, provider } = doorsApp(t);
    const s = await provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const allow = await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1?x=1', { cookie: `cohort_session=${s.id}` }) });
    assert.equal(allow.statusCode, 200);
    assert.equal(allow.body, '');
    assert.equal(allow.headers['x-cohort-subject'], 'alice');
    assert.equal(allow.headers['x-cohort-api'], 'orders');
    assert.equal(allow.headers['x-cohort-reason'], 'ACCESS_ALLOWED');
    assert.equal(allow.headers['x-cohort-decision-id'], allow.headers['x-cohort-decision-id']);
    decisionHeaders(allow);
    // The client's X-Api-Key passes through the door: a client key is a credential.
    assert.equal((await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/2', { 'x-api-key': CLIENT_KEY, 'x-forwarded-for': '192.0.2.20' }) })).statusCode, 200);

    const none = await app.inject({ method: 'POST', url: '/authz/forward', headers: fwd('/orders/1', { 'x-forwarded-for': '192.0.2.30' }), payload: 'ignored body' });
    assert.equal(none.statusCode, 401);
    assert.equal(none.headers['www-authenticate'], 'Bearer realm="orders"');
    assert.equal(none.headers['x-cohort-reason'], 'ACCESS_NO_CREDENTIAL');
    const unknown = await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', { authorization: 'Bearer 1.nosuch', 'x-forwarded-for': '192.0.2.31' }) });
    assert.equal(unknown.statusCode, 401);
    assert.match(String(unknown.headers['www-authenticate']), /error="invalid_token"/);
    const denied = await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', { 'x-forwarded-for': '10.0.0.1, 203.0.113.9' }) });
    assert.equal(denied.statusCode, 403);
    assert.equal(denied.headers['x-cohort-reason'], 'ACCESS_DENIED_ADDRESS');
    // Only the last X-Forwarded-For entry counts: a client cannot claim another address.
    const spoof = await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', { 'x-forwarded-for': '203.0.113.9, 192.0.2.32', cookie: `cohort_session=${s.id}` }) });
    assert.equal(spoof.statusCode, 200);

    // Rate limit of 2 per address: the third is 403 by default, 429 with Retry-After in full.
    const ip = { 'x-forwarded-for': '192.0.2.40', cookie: `cohort_session=${s.id}` };
    for (let i = 0; i < 2; i++) assert.equal((await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', ip) })).statusCode, 200);
    const limited = await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', ip) });
    assert.equal(limited.statusCode, 403);
    assert.equal(limited.headers['x-cohort-reason'], 'ACCESS_RATE_LIMITED');
    const full = await app.inject({ method: 'GET', url: '/authz/forward?statuses=full', headers: fwd('/orders/1', ip) });
    assert.equal(full.statusCode, 429);
    assert.equal(full.headers['retry-after'], '4');
    assert.equal(full.json().error.code, 'ACCESS_RATE_LIMITED');

    // The original method: X-Forwarded-Method, else X-Original-Method; the URI likewise.
    const original = await app.inject({ method: 'GET', url: '/authz/forward', headers: { ...gw, 'x-original-method': 'GET', 'x-original-uri': '/nowhere', 'x-forwarded-for': '192.0.2.50' } });
    assert.equal(original.headers['x-cohort-reason'], 'ACCESS_NO_API');
    assert.equal(original.statusCode, 403);
  });

  it('bad input at the forward door is denied with a coded reason, never 500, never allowed', async (t) => {
    const { app, provider } = doorsApp(t);
    const s = await provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const cookie = `cohort_session=${s.id}`;
    const cases: Array<[string, Record<string, string>, string]> = [
      ['no URI', { ...gw, 'x-forwarded-for': '192.0.2.1', cookie }, 'ACCESS_BAD_REQUEST'],
      ['no address', { ...gw, 'x-forwarded-uri': '/orders/1', cookie }, 'ACCESS_BAD_REQUEST'],
      ['garbage address', fwd('/orders/1', { 'x-forwarded-for': 'evil', cookie }), 'ACCESS_BAD_REQUEST'],
      ['dot segments', fwd('/orders/../admin', { cookie }), 'ACCESS_BAD_REQUEST'],
      ['encoded slash', fwd('/orders%2f..%2fadmin', { cookie }), 'ACCESS_BAD_REQUEST'],
      ['absolute URI', fwd('http://evil/orders/1', { cookie }), 'ACCESS_BAD_REQUEST'],
      ['bad method', fwd('/orders/1', { 'x-forwarded-method': 'G ET', cookie }), 'ACCESS_BAD_REQUEST'],
      ['garbage JWT', fwd('/tokens/1', { authorization: 'Bearer a.b.c' }), 'ACCESS_INVALID_CREDENTIAL'],
      ['oversized JWT', fwd('/tokens/1', { authorization: `Bearer ${'e'.repeat(20_000)}.e.e` }), 'ACCESS_INVALID_CREDENTIAL'],
      ['alg none', fwd('/tokens/1', { authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.` }), 'ACCESS_INVALID_CREDENTIAL'],
      ['JWT where sessions are taken', fwd('/orders/1', { authorization: 'Bearer a.b.c' }), 'ACCESS_NO_CREDENTIAL'],
      ['oversized bearer', fwd('/orders/1', { authorization: `Bearer ${'x'.repeat(10_000)}` }), 'ACCESS_SESSION_UNKNOWN'],
    ];
    for (const [name, headers, reason] of cases) {
      const r = await app.inject({ method: 'GET', url: '/authz/forward', headers });
      assert.equal(r.headers['x-cohort-reason'], reason, name);
      assert.ok(r.statusCode === 401 || r.statusCode === 403, `${name}: ${r.statusCode}`);
      const f = await app.inject({ method: 'GET', url: '/authz/forward?statuses=full', headers });
      if (reason === 'ACCESS_BAD_REQUEST') assert.equal(f.statusCode, 400, name);
    }
  });

  it('envoy: exactly 200 on allow, the deny status with the JSON error body, monitor mode says what it would deny', async (t) => {
    const { app, provider } = doorsApp(t);
    const s = await provider.sessions.create({ subject: 'bob', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const base = { ...gw, host: 'shop.test', 'x-forwarded-for': '192.0.2.60' };
    const allow = await app.inject({ method: 'DELETE', url: '/authz/envoy/orders/9?a=b', headers: { ...base, authorization: `Bearer ${s.id}` } });
    assert.equal(allow.statusCode, 200);
    assert.equal(allow.body, '');
    assert.equal(allow.headers['x-cohort-subject'], 'bob');
    const deny = await app.inject({ method: 'GET', url: '/authz/envoy/orders/9', headers: base });
    assert.equal(deny.statusCode, 401);
    assert.deepEqual(Object.keys(deny.json().error).sort(), ['code', 'message']);
    assert.equal(deny.json().error.code, 'ACCESS_NO_CREDENTIAL');
    assert.equal((await app.inject({ method: 'GET', url: '/authz/envoy/elsewhere', headers: base })).statusCode, 403);
    // (inject resolves %2e%2e itself, as URL parsing does; an encoded slash stays.)
    const bad = await app.inject({ method: 'GET', url: '/authz/envoy/orders%2F..%2Fadmin', headers: { ...base, authorization: `Bearer ${s.id}` } });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'ACCESS_BAD_REQUEST');
    // Over a socket the path arrives as sent: dot segments, plain or encoded, are refused.
    await app.listen({ host: '127.0.0.1', port: 0 });
    const port = (app.server.address() as AddressInfo).port;
    for (const path of ['/authz/envoy/orders/../admin', '/authz/envoy/orders/%2e%2e/admin', '/authz/envoy/orders//x']) {
      const answer = await new Promise<{ status: number; reason: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, headers: { ...base, authorization: `Bearer ${s.id}` } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode ?? 0, reason: String(res.headers['x-cohort-reason']) }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.deepEqual(answer, { status: 400, reason: 'ACCESS_BAD_REQUEST' }, path);
    }
    const shadow = await app.inject({ method: 'GET', url: '/authz/envoy/shadow/x', headers: base });
    assert.equal(shadow.statusCode, 200);
    assert.equal(shadow.headers['x-cohort-would-deny'], 'ACCESS_NO_CREDENTIAL');
    assert.equal(shadow.headers['x-cohort-reason'], 'ACCESS_ALLOWED');
  });

  it('decide: allow and deny bodies; bad bodies are 400', async (t) => {
    const { app, provider } = doorsApp(t);
    const s = await provider.sessions.create({ subject: 'carol', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const ask = (payload: object) => app.inject({ method: 'POST', url: '/runtime/v1/decide', headers: gw, payload });
    const allow = await ask({ method: 'GET', url: '/orders/3', host: 'shop.test', sourceIp: '2001:db8::5', headers: { Cookie: `cohort_session=${s.id}` } });
    assert.equal(allow.statusCode, 200);
    const body = allow.json();
    assert.deepEqual(body, {
      decision: 'allow', reason: 'ACCESS_ALLOWED', decisionId: body.decisionId, api: 'orders', subject: 'carol', sessionId: s.id,
      upstreamHeaders: { 'X-Cohort-Subject': 'carol', 'X-Cohort-Api': 'orders', 'X-Cohort-Decision-Id': body.decisionId },
    });
    assert.equal(allow.headers['x-cohort-decision-id'], body.decisionId);
    const deny = await ask({ method: 'GET', url: '/orders/3', sourceIp: '203.0.113.4', headers: {} });
    assert.deepEqual(deny.json(), { decision: 'deny', status: 403, reason: 'ACCESS_DENIED_ADDRESS', decisionId: deny.json().decisionId });
    const dots = await ask({ method: 'GET', url: '/orders/%2e%2e/admin', sourceIp: '192.0.2.1', headers: { Cookie: `cohort_session=${s.id}` } });
    assert.deepEqual([dots.json().decision, dots.json().status, dots.json().reason], ['deny', 400, 'ACCESS_BAD_REQUEST']);
    for (const bad of [{ method: 'GET' }, { method: 'GET', url: '/', sourceIp: '1.2.3.4', headers: {}, extra: 1 }, { method: 'GET', url: '/', sourceIp: '1.2.3.4', headers: { a: 5 } }]) {
      const r = await ask(bad);
      assert.equal(r.statusCode, 400);
      assert.equal(r.json().error.code, 'HTTP_BAD_REQUEST');
      decisionHeaders(r);
    }
  });

  it('decide/response: an upstream 401 or 403 counts as a lock-out failure; a locked subject is denied', async (t) => {
    const { app, provider } = doorsApp(t);
    const s = await provider.sessions.create({ subject: 'dave', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const ask = () => app.inject({ method: 'POST', url: '/runtime/v1/decide', headers: gw, payload: { method: 'GET', url: '/guarded/x', sourceIp: '192.0.2.70', headers: { authorization: `Bearer ${s.id}` } } });
    const report = (decisionId: string, status: number) => app.inject({ method: 'POST', url: '/runtime/v1/decide/response', headers: gw, payload: { decisionId, status } });
    const first = (await ask()).json();
    assert.equal(first.decision, 'allow');
    assert.equal((await report(first.decisionId, 200)).statusCode, 204);
    assert.equal((await provider.lockout.status('access:subject:dave', { maxFailures: 2, windowMs: 60_000, lockMs: 120_000 })).failures, 0);
    for (let i = 0; i < 2; i++) {
      const d = (await ask()).json();
      assert.equal(d.decision, 'allow');
      assert.equal((await report(d.decisionId, 401)).statusCode, 204);
      // A decision is reported once.
      assert.equal((await report(d.decisionId, 401)).statusCode, 204);
    }
    const locked = (await ask()).json();
    assert.equal(locked.decision, 'deny');
    assert.equal(locked.reason, 'ACCESS_LOCKED');
    assert.equal(locked.retryAfterSeconds, 120);
    assert.equal((await report('unknown-decision', 401)).statusCode, 204);
  });

  it('fails closed (503 with full statuses) unless the API allows, and logs decisions by [access] decision_log', async (t) => {
    const { app, provider, lines } = doorsApp(t);
    provider.sessions.get = () => Promise.reject(new Error('no majority'));
    provider.rateLimits.take = () => Promise.reject(new Error('no majority'));
    const closed = await app.inject({ method: 'GET', url: '/authz/forward?statuses=full', headers: fwd('/orders/1', { cookie: 'cohort_session=1.x' }) });
    assert.equal(closed.statusCode, 503);
    assert.equal(closed.json().error.code, 'ACCESS_UNAVAILABLE');
    assert.equal((await app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1', { cookie: 'cohort_session=1.x' }) })).statusCode, 403);
    const open = await app.inject({ method: 'GET', url: '/authz/forward?statuses=full', headers: fwd('/open/page') });
    assert.equal(open.statusCode, 200);
    const logged = lines.filter((l) => l.msg === 'access decision');
    // deny (the default): the two denies, not the allow.
    assert.equal(logged.length, 2);
    const line = logged[0]! as Record<string, unknown>;
    for (const field of ['decisionId', 'time', 'engine', 'api', 'method', 'path', 'sourceIp', 'subject', 'reason', 'enforce', 'durationMs']) assert.ok(field in line, field);
    assert.equal(line.engine, 'engine-7');
    assert.equal(line.reason, 'ACCESS_UNAVAILABLE');
    assert.equal(line.decisionId, closed.headers['x-cohort-decision-id']);

    const all = doorsApp(t, { decisionLog: 'all' });
    await all.app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/open/page') });
    assert.equal(all.lines.filter((l) => l.msg === 'access decision').length, 1);
    const none = doorsApp(t, { decisionLog: 'none' });
    await none.app.inject({ method: 'GET', url: '/authz/forward', headers: fwd('/orders/1') });
    assert.equal(none.lines.filter((l) => l.msg === 'access decision').length, 0);
  });
});
