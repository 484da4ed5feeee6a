import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { captureLogger } from '../helpers/transports.js';

const KEY = 'runtime-test-api-key-0123456789';

const settings = runtimeSettings({ runtime: { defaultRateLimit: { capacity: 2, refillPerSecond: 1 } } });

function runtimeApp(
  t: { after(fn: () => Promise<void>): void },
  options: { keys?: string[]; notReady?: string[]; settings?: ReturnType<typeof runtimeSettings> } = {},
): { app: FastifyInstance; clock: ManualClock } {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'runtime' });
  registerRuntimeApi(app, {
    provider,
    apiKeyHashes: (options.keys ?? [KEY]).map(sha256),
    notReadyReasons: () => options.notReady ?? [],
    settings: () => options.settings ?? settings,
  });
  t.after(async () => {
    await app.close();
    await provider.close();
  });
  return { app, clock };
}

const auth = { authorization: `Bearer ${KEY}` };

describe('runtime API', () => {
  it('needs a valid API key; health routes need none', async (t) => {
    const { app } = runtimeApp(t);
    const missing = await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x' });
    assert.equal(missing.statusCode, 401);
    assert.equal(missing.json().error.code, 'AUTH_MISSING_CREDENTIAL');
    const wrong = await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.json().error.code, 'AUTH_INVALID_CREDENTIAL');
    assert.equal((await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: auth })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/health/live' })).statusCode, 200);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/health/ready' })).json(), { status: 'ready' });
    const none = runtimeApp(t, { keys: [] });
    assert.equal((await none.app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: auth })).json().error.code, 'AUTH_NO_API_KEYS');
  });

  it('enforces the scopes of issued keys: read keys read single records only; gateway and client keys open nothing here', async (t) => {
    const issued = (scope: string, key: string) => ({ id: `k-${scope}`, name: scope, hash: sha256(key).toString('hex'), createdAt: 1, createdBy: 'admin', scope });
    const scoped = runtimeSettings({
      'api-keys': { keys: [issued('runtime', 'key-runtime-0123456789'), issued('read', 'key-read-0123456789'), issued('gateway', 'key-gateway-0123456789'), issued('client', 'key-client-0123456789')] },
    });
    const { app } = runtimeApp(t, { keys: [], settings: scoped });
    const as = (key: string) => ({ authorization: `Bearer ${key}` });
    const created = await app.inject({ method: 'POST', url: '/runtime/v1/sessions', headers: as('key-runtime-0123456789'), payload: { subject: 'alice' } });
    assert.equal(created.statusCode, 201, created.body);
    const id = created.json().id as string;
    const read = as('key-read-0123456789');
    assert.equal((await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${id}`, headers: read })).statusCode, 200);
    assert.equal((await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: read })).statusCode, 200);
    for (const refused of [
      { method: 'GET', url: '/runtime/v1/subjects/alice/sessions' },
      { method: 'GET', url: `/runtime/v1/sessions/${id}?touch=true` },
      { method: 'DELETE', url: `/runtime/v1/sessions/${id}` },
      { method: 'POST', url: '/runtime/v1/revocations', payload: { id: 'x' } },
    ] as const) {
      const r = await app.inject({ ...refused, headers: read });
      assert.equal(r.statusCode, 403, `${refused.method} ${refused.url}: ${r.body}`);
      assert.equal(r.json().error.code, 'AUTH_FORBIDDEN');
    }
    assert.equal((await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${id}`, headers: read })).statusCode, 200, 'nothing was deleted');
    for (const key of ['key-gateway-0123456789', 'key-client-0123456789']) {
      assert.equal((await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${id}`, headers: as(key) })).json().error.code, 'AUTH_INVALID_CREDENTIAL', key);
    }
    const list = await app.inject({ method: 'GET', url: '/runtime/v1/subjects/alice/sessions', headers: as('key-runtime-0123456789') });
    assert.equal(list.statusCode, 200);
  });

  it('answers sessions through the compiled schema with every field and nested attributes; an unexpected failure is a 500 logged with the request, never its internals', async (t) => {
    const { app } = runtimeApp(t);
    const attributes = { role: 'admin', nested: { list: [1, 'two', { three: true }], empty: {} }, n: 1.5 };
    const created = (await app.inject({ method: 'POST', url: '/runtime/v1/sessions', headers: auth, payload: { subject: 'bob', attributes } })).json();
    const read = await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${created.id}`, headers: auth });
    assert.deepEqual(read.json(), created);
    assert.deepEqual(read.json().attributes, attributes);
    assert.deepEqual(Object.keys(read.json()).sort(), ['attributes', 'createdAt', 'expiresAt', 'id', 'idleTimeoutSeconds', 'lastAccessAt', 'maxLifetimeSeconds', 'subject']);
    assert.deepEqual((await app.inject({ method: 'GET', url: '/runtime/v1/subjects/bob/sessions', headers: auth })).json(), { sessions: [created] });

    const clock = new ManualClock(1_800_000_000_000);
    const { provider } = localGrid(clock);
    provider.sessions.get = () => Promise.reject(new Error('secret internal detail'));
    const { logger, lines } = captureLogger();
    const failing = createHttpServer({ logger, bodyLimit: 64 * 1024, name: 'runtime' });
    registerRuntimeApi(failing, { provider, apiKeyHashes: [sha256(KEY)], notReadyReasons: () => [] });
    t.after(async () => {
      await failing.close();
      await provider.close();
    });
    const r = await failing.inject({ method: 'GET', url: '/runtime/v1/sessions/1.abc?touch=true', headers: auth });
    assert.equal(r.statusCode, 500);
    assert.equal(r.json().error.code, 'HTTP_INTERNAL');
    assert.ok(!r.body.includes('secret internal detail'));
    const logged = lines.find((l) => l.msg === 'request failed');
    assert.ok(logged, 'the failure is logged');
    assert.equal(logged.method, 'GET');
    assert.equal(logged.url, '/runtime/v1/sessions/1.abc');
    assert.equal(typeof logged.reqId, 'string');
  });

  it('reports not ready with its reasons', async (t) => {
    const { app } = runtimeApp(t, { notReady: ['stopping'] });
    const r = await app.inject({ method: 'GET', url: '/health/ready' });
    assert.equal(r.statusCode, 503);
    assert.deepEqual(r.json(), { status: 'not-ready', reasons: ['stopping'] });
  });

  it('sessions: create 201, read, touch, list by subject, delete 204 then 404', async (t) => {
    const { app, clock } = runtimeApp(t);
    const created = await app.inject({ method: 'POST', url: '/runtime/v1/sessions', headers: auth, payload: { subject: 'alice', attributes: { role: 'admin' }, idleTimeoutSeconds: 60, maxLifetimeSeconds: 3600 } });
    assert.equal(created.statusCode, 201);
    const s = created.json();
    assert.equal(s.subject, 'alice');
    assert.deepEqual(s.attributes, { role: 'admin' });
    assert.equal(s.idleTimeoutSeconds, 60);
    assert.equal(Date.parse(s.expiresAt) - Date.parse(s.createdAt), 60_000);
    assert.deepEqual((await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${s.id}`, headers: auth })).json(), s);
    clock.advance(30_000);
    const touched = (await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${s.id}?touch=true`, headers: auth })).json();
    assert.equal(Date.parse(touched.expiresAt) - Date.parse(s.expiresAt), 30_000);
    const list = (await app.inject({ method: 'GET', url: '/runtime/v1/subjects/alice/sessions', headers: auth })).json();
    assert.deepEqual(list.sessions.map((x: { id: string }) => x.id), [s.id]);
    assert.equal((await app.inject({ method: 'DELETE', url: `/runtime/v1/sessions/${s.id}`, headers: auth })).statusCode, 204);
    const gone = await app.inject({ method: 'GET', url: `/runtime/v1/sessions/${s.id}`, headers: auth });
    assert.equal(gone.statusCode, 404);
    assert.equal(gone.json().error.code, 'STATE_NOT_FOUND');
    assert.deepEqual((await app.inject({ method: 'GET', url: `/runtime/v1/revocations/${encodeURIComponent(s.id)}`, headers: auth })).json(), { revoked: true });
  });

  it('refuses invalid bodies with 400 and changes nothing', async (t) => {
    const { app } = runtimeApp(t);
    const cases = [
      { method: 'POST', url: '/runtime/v1/sessions', payload: {} },
      { method: 'POST', url: '/runtime/v1/sessions', payload: { subject: 'a', idleTimeoutSeconds: -5 } },
      { method: 'POST', url: '/runtime/v1/sessions', payload: { subject: 'a', unknown: 1 } },
      { method: 'POST', url: '/runtime/v1/replay', payload: { id: 'x' } },
      { method: 'PUT', url: '/runtime/v1/artifacts/a1', payload: { payload: 42 } },
    ] as const;
    for (const c of cases) {
      const r = await app.inject({ method: c.method, url: c.url, headers: auth, payload: c.payload });
      assert.equal(r.statusCode, 400, `${c.method} ${c.url} ${JSON.stringify(c.payload)}`);
      assert.equal(r.json().error.code, 'HTTP_BAD_REQUEST');
    }
    assert.deepEqual((await app.inject({ method: 'GET', url: '/runtime/v1/subjects/a/sessions', headers: auth })).json(), { sessions: [] });
    const big = await app.inject({ method: 'PUT', url: '/runtime/v1/state/k', headers: auth, payload: { value: 'x'.repeat(70_000) } });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, 'HTTP_BODY_TOO_LARGE');
  });

  it('replay 201 then 409; artifacts resolve once; state and tokens; lock-out; rate limit 429', async (t) => {
    const { app } = runtimeApp(t);
    const send = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) => app.inject({ method, url, headers: auth, ...(payload ? { payload } : {}) });
    assert.equal((await send('POST', '/runtime/v1/replay', { id: 'assertion-1', ttlSeconds: 60 })).statusCode, 201);
    const replayed = await send('POST', '/runtime/v1/replay', { id: 'assertion-1', ttlSeconds: 60 });
    assert.equal(replayed.statusCode, 409);
    assert.equal(replayed.json().error.code, 'STATE_REPLAY_DETECTED');

    assert.equal((await send('PUT', '/runtime/v1/artifacts/art-1', { payload: '<samlp:Response/>', ttlSeconds: 30 })).statusCode, 204);
    assert.deepEqual((await send('POST', '/runtime/v1/artifacts/art-1/resolve')).json(), { payload: '<samlp:Response/>' });
    assert.equal((await send('POST', '/runtime/v1/artifacts/art-1/resolve')).statusCode, 404);

    for (const space of ['state', 'tokens']) {
      assert.equal((await send('PUT', `/runtime/v1/${space}/k1`, { value: { a: 1 }, ttlSeconds: 60 })).statusCode, 204);
      assert.deepEqual((await send('GET', `/runtime/v1/${space}/k1`)).json(), { value: { a: 1 } });
      assert.equal((await send('DELETE', `/runtime/v1/${space}/k1`)).statusCode, 204);
      assert.equal((await send('GET', `/runtime/v1/${space}/k1`)).statusCode, 404);
      assert.equal((await send('DELETE', `/runtime/v1/${space}/k1`)).statusCode, 404);
    }

    let status = { locked: false, failures: 0, retryAfterSeconds: 0 };
    for (let i = 0; i < 5; i++) status = (await send('POST', '/runtime/v1/lockout/user-1/failures')).json();
    assert.deepEqual(status, { locked: true, failures: 5, retryAfterSeconds: 900 });
    assert.equal((await send('GET', '/runtime/v1/lockout/user-1')).json().locked, true);
    assert.deepEqual((await send('DELETE', '/runtime/v1/lockout/user-1')).json(), { locked: false, failures: 0, retryAfterSeconds: 0 });

    assert.deepEqual((await send('POST', '/runtime/v1/ratelimit/login/ip-1')).json(), { allowed: true, remaining: 1 });
    assert.deepEqual((await send('POST', '/runtime/v1/ratelimit/login/ip-1')).json(), { allowed: true, remaining: 0 });
    const limited = await send('POST', '/runtime/v1/ratelimit/login/ip-1');
    assert.equal(limited.statusCode, 429);
    assert.equal(limited.json().error.code, 'STATE_RATE_LIMITED');
  });
});
