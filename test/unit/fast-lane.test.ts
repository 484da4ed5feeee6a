/**
 * The fast lanes (http/fast-lane.ts) answer what their Fastify routes answer: the same
 * requests over real HTTP to a runtime server with lanes and to one without, answer by answer
 * (status, every header but the transport's and the decision id, body), and the lanes claim
 * exactly the plain requests they are for (the others reach the Fastify route, which the lane
 * observer never hears of).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { get } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ManualClock } from '../../src/core/clock.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { MatchedKeys, sha256 } from '../../src/http/bearer-auth.js';
import { observeLaneAnswers } from '../../src/http/fast-lane.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { captureLogger } from '../helpers/transports.js';

const GATEWAY_KEY = 'gateway-key-lanes-0123456789';
const READ_KEY = 'read-key-lanes-0123456789';
const NODE_KEY = 'node-key-lanes-0123456789';
const hex = (s: string): string => createHash('sha256').update(s).digest('hex');

const CONFIG = {
  apis: {
    apis: [
      { id: 'orders', pathPrefix: '/orders', methods: ['GET', 'POST'], denyList: ['ip:203.0.113.0/24', 'subject:mallory'], rateLimit: { policy: 'pair', by: 'ip' } },
      { id: 'shadow', pathPrefix: '/shadow', enforce: false, denyList: ['ip:198.51.100.0/24'] },
      { id: 'mail', pathPrefix: '/mail', identityHeaders: { 'X-User': 'subject', 'X-Session': 'sessionId' } },
    ],
  },
  runtime: { rateLimits: { pair: { capacity: 2, refillPerSecond: 0.001 } } },
  'api-keys': {
    keys: [
      { id: 'gw', name: 'gw', hash: hex(GATEWAY_KEY), createdAt: 1, createdBy: 'admin', scope: 'gateway' },
      { id: 'rd', name: 'rd', hash: hex(READ_KEY), createdAt: 1, createdBy: 'admin', scope: 'read' },
    ],
  },
};

/** Two runtime servers on one state, one with lanes and one without, listening on loopback. */
async function servers(t: { after(fn: () => Promise<void>): void }) {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const settings = runtimeSettings(CONFIG);
  const laneAnswers: string[] = [];
  const make = async (fastLanes: boolean): Promise<string> => {
    const { logger } = captureLogger();
    const server = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'runtime', fastLanes });
    registerRuntimeApi(server, { provider, apiKeyHashes: [sha256(NODE_KEY)], notReadyReasons: () => [], settings: () => settings, clock, decisionLog: 'none', engineId: 'engine-1' });
    observeLaneAnswers(server, (method, status, route) => laneAnswers.push(`${fastLanes ? 'lanes' : 'route'} ${method} ${status} ${route}`));
    await server.listen({ host: '127.0.0.1', port: 0 });
    t.after(() => server.close());
    return `http://127.0.0.1:${(server.server.address() as AddressInfo).port}`;
  };
  const lanes = await make(true);
  const route = await make(false);
  t.after(() => provider.close());
  return { provider, lanes, route, laneAnswers };
}

/** What is compared: the transport's own headers and the per-request decision id are not. */
const NOT_COMPARED = new Set(['date', 'connection', 'keep-alive', 'x-cohort-decision-id']);

async function answer(base: string, path: string, init: RequestInit): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const r = await fetch(base + path, init);
  const body = await r.text();
  const headers: Record<string, string> = {};
  r.headers.forEach((value, name) => {
    if (!NOT_COMPARED.has(name)) headers[name] = value;
  });
  return { status: r.status, headers, body };
}

describe('fast lanes answer as their routes do', () => {
  it('forward auth: allow, deny by every kind of reason, statuses=full, monitor mode; what the lane leaves to the route', async (t) => {
    const s = await servers(t);
    const session = await s.provider.sessions.create({ subject: 'olga', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const revoked = await s.provider.sessions.create({ subject: 'rita', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    await s.provider.revocations.revoke(revoked.id, 600_000);
    const mallory = await s.provider.sessions.create({ subject: 'mallory', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    // A subject from a sign-in may hold any character; a header value cannot.
    const wide = await s.provider.sessions.create({ subject: 'zoë-中文', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const door = (uri: string, more: Record<string, string> = {}): Record<string, string> => ({ 'x-cohort-key': GATEWAY_KEY, 'x-forwarded-method': 'GET', 'x-forwarded-uri': uri, 'x-forwarded-host': 'shop.test', ...more });
    // [name, door path, request, claimed by the lane]
    const cases: Array<[string, string, RequestInit, boolean]> = [
      ['allow with identity headers', '/authz/forward', { headers: door('/mail/inbox', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['allow, bearer session', '/authz/forward', { headers: door('/mail/inbox', { authorization: `Bearer ${session.id}`, 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['no credential: 401 and WWW-Authenticate', '/authz/forward', { headers: door('/mail/inbox', { 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['unknown session: 401', '/authz/forward', { headers: door('/mail/inbox', { cookie: 'cohort_session=no-such-session', 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['revoked: 401 or 403 as the reason says', '/authz/forward', { headers: door('/mail/inbox', { cookie: `cohort_session=${revoked.id}`, 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['deny-listed address', '/authz/forward', { headers: door('/orders/1', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '203.0.113.9' }) }, true],
      ['deny-listed subject', '/authz/forward', { headers: door('/orders/1', { cookie: `cohort_session=${mallory.id}`, 'x-forwarded-for': '192.0.2.2' }) }, true],
      ['method not allowed, statuses=full', '/authz/forward?statuses=full', { headers: door('/orders/1', { 'x-forwarded-method': 'DELETE', cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.2' }) }, true],
      ['no API', '/authz/forward', { headers: door('/nowhere', { 'x-forwarded-for': '192.0.2.2' }) }, true],
      ['a path that cannot be judged', '/authz/forward?statuses=full', { headers: door('/orders/%2e%2e/admin', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.2' }) }, true],
      ['monitor mode: would deny', '/authz/forward', { headers: door('/shadow/x', { 'x-forwarded-for': '198.51.100.7' }) }, true],
      ['an identity header from a subject beyond Latin-1', '/authz/forward', { headers: door('/mail/inbox', { cookie: `cohort_session=${wide.id}`, 'x-forwarded-for': '192.0.2.1' }) }, true],
      ['POST door without a body', '/authz/forward', { method: 'POST', headers: door('/mail/inbox', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.1' }) }, true],
      // Left to the route:
      ['missing key', '/authz/forward', { headers: { 'x-forwarded-uri': '/mail/inbox' } }, false],
      ['wrong key', '/authz/forward', { headers: { ...door('/mail/inbox'), 'x-cohort-key': 'wrong-key-0123456789abcdef' } }, false],
      ['a query the lane does not take', '/authz/forward?statuses=partial', { headers: door('/mail/inbox', { cookie: `cohort_session=${session.id}` }) }, false],
      ['a door request with a body', '/authz/forward', { method: 'POST', body: 'payload', headers: door('/mail/inbox', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.1' }) }, false],
      ['HEAD', '/authz/forward', { method: 'HEAD', headers: door('/mail/inbox', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': '192.0.2.1' }) }, false],
    ];
    for (const [name, path, init, claimed] of cases) {
      s.laneAnswers.length = 0;
      const viaLanes = await answer(s.lanes, path, init);
      const viaRoute = await answer(s.route, path, init);
      assert.deepEqual(viaLanes, viaRoute, name);
      assert.deepEqual(s.laneAnswers, claimed ? [`lanes ${init.method ?? 'GET'} ${viaLanes.status} /authz/forward`] : [], `${name}: ${claimed ? 'claimed by the lane' : 'left to the route'}`);
    }
    // The wide subject is allowed, its header carrying the subject's UTF-8 bytes.
    const wideAnswer = await fetch(`${s.lanes}/authz/forward`, { headers: door('/mail/inbox', { cookie: `cohort_session=${wide.id}`, 'x-forwarded-for': '192.0.2.1' }) });
    assert.equal(wideAnswer.status, 200);
    assert.equal(Buffer.from(wideAnswer.headers.get('x-user')!, 'latin1').toString('utf8'), 'zoë-中文');
    // Rate limited: each server from its own address (the bucket holds two), the third is 429 with Retry-After.
    for (const [base, address] of [[s.lanes, '192.0.2.50'], [s.route, '192.0.2.51']] as const) {
      for (let i = 0; i < 2; i++) assert.equal((await answer(base, '/authz/forward', { headers: door('/orders/1', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': address }) })).status, 200);
    }
    const limited = await Promise.all([[s.lanes, '192.0.2.50'], [s.route, '192.0.2.51']].map(([base, address]) => answer(base!, '/authz/forward?statuses=full', { headers: door('/orders/1', { cookie: `cohort_session=${session.id}`, 'x-forwarded-for': address! }) })));
    assert.equal(limited[0]!.status, 429);
    assert.equal(limited[0]!.headers['x-cohort-reason'], 'ACCESS_RATE_LIMITED');
    assert.ok(limited[0]!.headers['retry-after']);
    assert.deepEqual(limited[0], limited[1]);
  });

  it('forward auth: each header of an answer once, the decision id (also an identity header by default) included', async (t) => {
    const s = await servers(t);
    const session = await s.provider.sessions.create({ subject: 'olga', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const headers = { 'x-cohort-key': GATEWAY_KEY, 'x-forwarded-method': 'GET', 'x-forwarded-uri': '/orders/1', 'x-forwarded-for': '192.0.2.60', cookie: `cohort_session=${session.id}` };
    for (const base of [s.lanes, s.route]) {
      // node:http keeps the header lines as sent (fetch would join repeated ones).
      const raw = await new Promise<string[]>((resolve, reject) => {
        get(`${base}/authz/forward`, { headers }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.rawHeaders));
        }).on('error', reject);
      });
      const names = raw.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());
      assert.deepEqual(names.filter((n, i) => names.indexOf(n) !== i), [], `${base === s.lanes ? 'lanes' : 'route'}: a header sent twice: ${JSON.stringify(raw)}`);
      const id = raw[raw.findIndex((v, i) => i % 2 === 0 && v.toLowerCase() === 'x-cohort-decision-id') + 1];
      assert.match(String(id), /^[A-Za-z0-9_-]{16}$/);
      assert.ok(names.includes('x-cohort-subject') && names.includes('x-cohort-api'), JSON.stringify(raw));
    }
  });

  it('session lookups: found, touched, not found, read scope; what the lane leaves to the route', async (t) => {
    const s = await servers(t);
    const session = await s.provider.sessions.create({ subject: 'olga', attributes: { plan: 'gold', n: [1, 2, { deep: 'é"\\' }] }, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const bearer = (key: string): RequestInit => ({ headers: { authorization: `Bearer ${key}` } });
    const cases: Array<[string, string, RequestInit, boolean]> = [
      ['found', `/runtime/v1/sessions/${session.id}`, bearer(NODE_KEY), true],
      ['found, touch=false', `/runtime/v1/sessions/${session.id}?touch=false`, bearer(NODE_KEY), true],
      ['touched', `/runtime/v1/sessions/${session.id}?touch=true`, bearer(NODE_KEY), true],
      ['found with a key of scope read', `/runtime/v1/sessions/${session.id}`, bearer(READ_KEY), true],
      ['not found', '/runtime/v1/sessions/no-such-session', bearer(NODE_KEY), true],
      // Left to the route:
      ['touch with a key of scope read: refused', `/runtime/v1/sessions/${session.id}?touch=true`, bearer(READ_KEY), false],
      ['no key', `/runtime/v1/sessions/${session.id}`, {}, false],
      ['wrong key', `/runtime/v1/sessions/${session.id}`, bearer('wrong-key-0123456789abcdef'), false],
      ['a percent-encoded id', `/runtime/v1/sessions/${session.id.slice(0, 4)}%41`, bearer(NODE_KEY), false],
      ['an invalid id', `/runtime/v1/sessions/${'x'.repeat(257)}`, bearer(NODE_KEY), false],
      ['an unknown query', `/runtime/v1/sessions/${session.id}?touch=yes`, bearer(NODE_KEY), false],
      ['a longer path', `/runtime/v1/sessions/${session.id}/more`, bearer(NODE_KEY), false],
    ];
    for (const [name, path, init, claimed] of cases) {
      s.laneAnswers.length = 0;
      const viaLanes = await answer(s.lanes, path, init);
      const viaRoute = await answer(s.route, path, init);
      assert.deepEqual(viaLanes, viaRoute, name);
      assert.deepEqual(s.laneAnswers, claimed ? [`lanes GET ${viaLanes.status} /runtime/v1/sessions/:id`] : [], `${name}: ${claimed ? 'claimed by the lane' : 'left to the route'}`);
    }
  });
});

describe('MatchedKeys', () => {
  it('matches as hashMatchesAny does, and forgets a key once the expected hashes change', () => {
    const keys = new MatchedKeys();
    const a = [sha256('key-a')];
    assert.equal(keys.matches('key-a', a), true);
    assert.equal(keys.matches('key-a', a), true);
    assert.equal(keys.matches('key-b', a), false);
    // Key a revoked: a new list without it.
    assert.equal(keys.matches('key-a', [sha256('key-b')]), false);
    assert.equal(keys.matches('key-b', [sha256('key-b')]), true);
    assert.equal(keys.matches('key-b', [], [sha256('key-b')]), true);
  });
});
