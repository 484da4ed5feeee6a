import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createHash, createSecretKey } from 'node:crypto';
import { ManualClock } from '../../src/core/clock.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { decide, type AccessRequest, type AccessState } from '../../src/engine/access/decide.js';
import { decisionCaches } from '../../src/engine/access/decision-caches.js';
import { compileApis, type ApiDefinition } from '../../src/engine/access/definitions.js';
import { ACCESS_REASONS, type AccessReason } from '../../src/engine/access/reasons.js';
import { checkedPath } from '../../src/engine/access/request-path.js';
import { addressBlockList, isBlocked, parseAddress } from '../../src/engine/access/address.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sectionErrors } from '../../src/policy/config-sections.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import type { StateProvider } from '../../src/state/services.js';

const NOW = 1_800_000_000_000;
const CLIENT_KEY = 'client-key-0123456789abcdef';
const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

const { privateKey, publicKey } = await generateKeyPair('ES256');
const publicJwk: JWK = { ...(await exportJWK(publicKey)), kid: 'k1', alg: 'ES256' };
const rsa = await generateKeyPair('RS256', { extractable: true });
const rsaJwk: JWK = { ...(await exportJWK(rsa.publicKey)), kid: 'r1', alg: 'RS256' };

async function jwt(claims: JWTPayload, options: { kid?: string; exp?: number; key?: Parameters<SignJWT['sign']>[0]; alg?: string } = {}): Promise<string> {
  return new SignJWT({ sub: 'alice', iss: 'https://issuer.test', aud: 'orders', ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: options.kid ?? 'k1' })
    .setIssuedAt(NOW / 1000)
    .setExpirationTime(options.exp ?? NOW / 1000 + 300)
    .sign(options.key ?? privateKey);
}

const jwtConfig = { issuer: 'https://issuer.test', audiences: ['orders'], keys: [publicJwk, rsaJwk], algorithms: ['ES256', 'RS256'] };

interface World {
  provider: StateProvider;
  clock: ManualClock;
  state: AccessState;
  run(defs: ApiDefinition[], request: Partial<AccessRequest>, options?: { allowUnmatched?: boolean }): ReturnType<typeof decide>;
}

function world(t: { after(fn: () => Promise<void>): void }): World {
  const clock = new ManualClock(NOW);
  const { provider } = localGrid(clock);
  t.after(() => provider.close());
  const state: AccessState = {
    provider,
    lockoutPolicy: { maxFailures: 2, windowMs: 60_000, lockMs: 60_000 },
    rateLimit: () => ({ capacity: 2, refillPerSecond: 0.5 }),
  };
  return {
    provider,
    clock,
    state,
    run(defs, request, options = {}) {
      const compiled = compileApis({ apis: defs }, { allowUnmatched: options.allowUnmatched ?? false, clientKeys: new Map([[sha(CLIENT_KEY), { id: 'key-1' }]]) });
      return decide({ method: 'GET', url: '/orders/1', host: 'shop.test', sourceIp: '192.0.2.10', headers: {}, ...request }, compiled, state, clock);
    },
  };
}

const orders: ApiDefinition = { id: 'orders', pathPrefix: '/orders', credentials: ['session', 'apiKey', 'jwt'], jwt: jwtConfig };

describe('access decisions', () => {
  it('the extended apis section validates the documented fields and refuses unknown ones', () => {
    const full = {
      apis: [{
        id: 'orders', pathPrefix: '/orders', hosts: ['shop.test'], methods: ['GET'], publicPaths: ['/orders/health'],
        credentials: ['session', 'apiKey', 'jwt'], sessionCookie: 'sid',
        jwt: { issuer: 'https://i', audiences: ['a'], jwksUrl: 'https://i/jwks', algorithms: ['ES256'], clockToleranceSeconds: 30 },
        checkRevocation: true, singleUseTokens: false, rateLimit: { policy: 'std', by: 'ip' }, lockout: { by: 'subject' },
        denyList: ['ip:10.0.0.0/8', 'subject:mallory'], enforce: false, identityHeaders: { 'X-User': 'subject', 'X-Email': 'claim:email' },
        upstream: 'http://127.0.0.1:8080', stripPrefix: true, timeoutMs: 5000, onStateUnavailable: 'allow',
      }],
    };
    assert.deepEqual(sectionErrors('apis', full), []);
    assert.notDeepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', requireSession: true }] }), []);
    assert.notDeepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', jwt: { algorithms: ['none'] } }] }), []);
    assert.notDeepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', jwt: { algorithms: ['HS256'] } }] }), []);
    assert.notDeepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', denyList: ['user:x'] }] }), []);
    // Rules a schema cannot say: unique ids, keys for a jwt credential, addresses that are addresses.
    assert.deepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/' }, { id: 'a', pathPrefix: '/b' }] }), ['/apis/1/id: "a" is used by another API']);
    assert.deepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', credentials: ['jwt'] }] }), ['/apis/0/jwt: the jwt credential needs jwt.jwksUrl or jwt.keys']);
    assert.deepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', jwt: { jwksUrl: 'https://i/k', keys: [{ kty: 'EC' }] } }] }), ['/apis/0/jwt: give jwt.jwksUrl or jwt.keys, not both']);
    assert.deepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', identityHeaders: { 'Content-Length': 'subject', 'Remote-User': 'subject' } }] }), ['/apis/0/identityHeaders: Content-Length is reserved (it frames the answer or carries the decision)']);
    assert.deepEqual(sectionErrors('apis', { apis: [{ id: 'a', pathPrefix: '/', denyList: ['ip:10.0.0.0/8', 'ip:2001:db8::/129', 'ip:300.1.1.1', 'ip:::1', 'subject:x'] }] }), [
      '/apis/0/denyList/1: "ip:2001:db8::/129" is not an IPv4 or IPv6 address or CIDR range',
      '/apis/0/denyList/2: "ip:300.1.1.1" is not an IPv4 or IPv6 address or CIDR range',
    ]);
    assert.deepEqual(sectionErrors('runtime', { unmatchedRequests: 'allow' }), []);
    assert.notDeepEqual(sectionErrors('runtime', { unmatchedRequests: 'maybe' }), []);
    assert.deepEqual(sectionErrors('api-keys', { keys: [{ id: 'k', name: 'n', hash: 'a'.repeat(64), createdAt: 1, createdBy: 'x', scope: 'client' }] }), []);
    assert.notDeepEqual(sectionErrors('api-keys', { keys: [{ id: 'k', name: 'n', hash: 'a'.repeat(64), createdAt: 1, createdBy: 'x', scope: 'root' }] }), []);
  });

  it('issued keys count by scope: runtime (or none) for the runtime API, gateway too for the doors, client for decisions', () => {
    const key = (id: string, scope?: string) => ({ id, name: id, hash: sha(id), createdAt: 1, createdBy: 'a', ...(scope ? { scope } : {}) });
    const s = runtimeSettings({ 'api-keys': { keys: [key('old'), key('rt', 'runtime'), key('gw', 'gateway'), key('cl', 'client')] }, runtime: { unmatchedRequests: 'allow' } });
    const hex = (list: Buffer[]) => list.map((b) => b.toString('hex')).sort();
    assert.deepEqual(hex(s.apiKeyHashes), [sha('old'), sha('rt')].sort());
    assert.deepEqual(hex(s.gatewayKeyHashes), [sha('old'), sha('rt'), sha('gw')].sort());
    assert.deepEqual([...s.clientKeys], [[sha('cl'), { id: 'cl' }]]);
    assert.equal(s.allowUnmatched, true);
    assert.equal(runtimeSettings().allowUnmatched, false);
  });

  it('every reason code is in the error table with the status a deny answers', () => {
    for (const r of ACCESS_REASONS) assert.ok(ERROR_CODES[r], r);
    assert.equal(ERROR_CODES.ACCESS_NO_CREDENTIAL.status, 401);
    assert.equal(ERROR_CODES.ACCESS_RATE_LIMITED.status, 429);
    assert.equal(ERROR_CODES.ACCESS_UNAVAILABLE.status, 503);
  });

  it('gives each reason code at its step (table)', async (t) => {
    const w = world(t);
    const session = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const revokedSession = await w.provider.sessions.create({ subject: 'bob', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    await w.provider.sessions.delete(revokedSession.id);
    const mallory = await w.provider.sessions.create({ subject: 'mallory', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const revokedJti = await jwt({ jti: 'jti-revoked' });
    await w.provider.revocations.revokeFor('jti-revoked', 3_600_000);
    const revokedSid = await jwt({ sid: 'sid-revoked' });
    await w.provider.revocations.revokeFor('sid-revoked', 3_600_000);
    const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
    const cases: Array<{ name: string; defs?: ApiDefinition[]; request: Partial<AccessRequest>; reason: AccessReason; status: number; allowUnmatched?: boolean }> = [
      { name: 'session cookie', request: { headers: { cookie: `other=1; cohort_session=${session.id}` } }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'session bearer', request: { headers: bearer(session.id) }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'client api key', request: { headers: { 'x-api-key': CLIENT_KEY } }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'jwt', request: { headers: bearer(await jwt({})) }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'no api', request: { url: '/other' }, reason: 'ACCESS_NO_API', status: 403 },
      { name: 'unmatched allowed', request: { url: '/other' }, reason: 'ACCESS_ALLOWED', status: 200, allowUnmatched: true },
      { name: 'prefix is a segment', request: { url: '/ordersx' }, reason: 'ACCESS_NO_API', status: 403 },
      { name: 'host not listed', defs: [{ ...orders, hosts: ['api.test'] }], request: { headers: bearer(session.id) }, reason: 'ACCESS_NO_API', status: 403 },
      { name: 'host listed with port', defs: [{ ...orders, hosts: ['shop.test'] }], request: { host: 'SHOP.test:8443', headers: bearer(session.id) }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'method', defs: [{ ...orders, methods: ['POST'] }], request: {}, reason: 'ACCESS_METHOD_NOT_ALLOWED', status: 405 },
      { name: 'dot segment', request: { url: '/orders/../admin' }, reason: 'ACCESS_BAD_REQUEST', status: 400 },
      { name: 'encoded slash', request: { url: '/orders%2F..%2Fadmin' }, reason: 'ACCESS_BAD_REQUEST', status: 400 },
      { name: 'encoded dot segment', request: { url: '/orders/%2e%2e/admin' }, reason: 'ACCESS_BAD_REQUEST', status: 400 },
      { name: 'bad source address', request: { sourceIp: 'not-an-ip' }, reason: 'ACCESS_BAD_REQUEST', status: 400 },
      { name: 'bad method', request: { method: 'GE T' }, reason: 'ACCESS_BAD_REQUEST', status: 400 },
      { name: 'address denied', defs: [{ ...orders, denyList: ['ip:192.0.2.0/24'] }], request: { headers: bearer(session.id) }, reason: 'ACCESS_DENIED_ADDRESS', status: 403 },
      { name: 'no credential', request: {}, reason: 'ACCESS_NO_CREDENTIAL', status: 401 },
      { name: 'public path needs none', defs: [{ ...orders, publicPaths: ['/orders/public'] }], request: { url: '/orders/public/x' }, reason: 'ACCESS_ALLOWED', status: 200 },
      { name: 'runtime scope key is no client key', request: { headers: { 'x-api-key': 'some-other-key-000000000' } }, reason: 'ACCESS_INVALID_CREDENTIAL', status: 401 },
      { name: 'kind not accepted is no credential', defs: [{ ...orders, credentials: ['session'] }], request: { headers: { 'x-api-key': CLIENT_KEY } }, reason: 'ACCESS_NO_CREDENTIAL', status: 401 },
      { name: 'unknown session', request: { headers: bearer('1.nosuchsession') }, reason: 'ACCESS_SESSION_UNKNOWN', status: 401 },
      { name: 'revoked session', request: { headers: { cookie: `cohort_session=${revokedSession.id}` } }, reason: 'ACCESS_REVOKED', status: 401 },
      { name: 'revoked session, no check', defs: [{ ...orders, checkRevocation: false }], request: { headers: { cookie: `cohort_session=${revokedSession.id}` } }, reason: 'ACCESS_SESSION_UNKNOWN', status: 401 },
      { name: 'revoked jti', request: { headers: bearer(revokedJti) }, reason: 'ACCESS_REVOKED', status: 401 },
      { name: 'revoked sid', request: { headers: bearer(revokedSid) }, reason: 'ACCESS_REVOKED', status: 401 },
      { name: 'subject denied', defs: [{ ...orders, denyList: ['subject:mallory'] }], request: { headers: bearer(mallory.id) }, reason: 'ACCESS_DENIED_SUBJECT', status: 403 },
      { name: 'session denied', defs: [{ ...orders, denyList: [`session:${session.id}`] }], request: { headers: bearer(session.id) }, reason: 'ACCESS_DENIED_SUBJECT', status: 403 },
      { name: 'api key denied', defs: [{ ...orders, denyList: ['apiKey:key-1'] }], request: { headers: { 'x-api-key': CLIENT_KEY } }, reason: 'ACCESS_DENIED_SUBJECT', status: 403 },
      { name: 'single use needs jti', defs: [{ ...orders, singleUseTokens: true }], request: { headers: bearer(await jwt({})) }, reason: 'ACCESS_TOKEN_REPLAYED', status: 401 },
      { name: 'deny list by address comes before the credential', defs: [{ ...orders, denyList: ['ip:192.0.2.10'] }], request: {}, reason: 'ACCESS_DENIED_ADDRESS', status: 403 },
      { name: 'revocation comes before the subject deny list', defs: [{ ...orders, denyList: ['subject:bob'] }], request: { headers: bearer(revokedSession.id) }, reason: 'ACCESS_REVOKED', status: 401 },
    ];
    for (const c of cases) {
      const d = await w.run(c.defs ?? [orders], c.request, { allowUnmatched: c.allowUnmatched ?? false });
      assert.equal(d.reason, c.reason, c.name);
      assert.equal(d.status, c.status, c.name);
      assert.equal(d.allow, c.reason === 'ACCESS_ALLOWED', c.name);
      assert.match(d.decisionId, /^[A-Za-z0-9_-]{16}$/, c.name);
    }
  });

  it('the longest prefix wins and sets the identity headers on allow', async (t) => {
    const w = world(t);
    const s = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const defs: ApiDefinition[] = [{ id: 'root', pathPrefix: '/', credentials: ['apiKey'] }, { ...orders, id: 'orders-admin', pathPrefix: '/orders/admin' }, orders];
    w.clock.advance(5000);
    const d = await w.run(defs, { url: '/orders/admin/x?y=1', headers: { authorization: `Bearer ${s.id}` } });
    assert.equal(d.api, 'orders-admin');
    assert.equal((await w.provider.sessions.get(s.id))?.lastAccessAt, NOW + 5000, 'a session used through an API is touched');
    assert.deepEqual(d.upstreamHeaders, { 'X-Cohort-Subject': 'alice', 'X-Cohort-Api': 'orders-admin', 'X-Cohort-Decision-Id': d.decisionId });
    const claims = await w.run([{ ...orders, identityHeaders: { 'X-Email': 'claim:email', 'X-Sid': 'sessionId', 'X-Key': 'apiKeyId', 'X-Roles': 'claim:roles' } }], {
      headers: { authorization: `Bearer ${await jwt({ email: 'a@b.test\r\nX-Evil: 1', sid: 's-1', roles: ['r'] })}` },
    });
    assert.deepEqual(claims.upstreamHeaders, { 'X-Email': 'a@b.testX-Evil: 1', 'X-Sid': 's-1', 'X-Roles': '["r"]' });
    assert.equal(claims.identity?.subject, 'alice');
  });

  it('JWT edge cases: expired, tolerance, wrong issuer and audience, unknown kid, alg none, HS/RS confusion, garbage, oversized', async (t) => {
    const w = world(t);
    const api: ApiDefinition = { id: 'orders', pathPrefix: '/orders', credentials: ['jwt'], jwt: jwtConfig };
    const check = async (token: string, defs: ApiDefinition[] = [api]) => (await w.run(defs, { headers: { authorization: `Bearer ${token}` } })).reason;
    assert.equal(await check(await jwt({})), 'ACCESS_ALLOWED');
    assert.equal(await check(await jwt({}, { kid: 'r1', alg: 'RS256', key: rsa.privateKey })), 'ACCESS_ALLOWED');
    const expired = await jwt({}, { exp: NOW / 1000 - 10 });
    assert.equal(await check(expired), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check(expired, [{ ...api, jwt: { ...jwtConfig, clockToleranceSeconds: 30 } }]), 'ACCESS_ALLOWED');
    assert.equal(await check(await jwt({ aud: 'billing' })), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check(await jwt({ iss: 'https://evil.test' })), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check(await jwt({}, { kid: 'unknown' })), 'ACCESS_INVALID_CREDENTIAL');
    // Algorithm not on the API's list.
    assert.equal(await check(await jwt({}, { kid: 'r1', alg: 'RS256', key: rsa.privateKey }), [{ ...api, jwt: { ...jwtConfig, algorithms: ['ES256'] } }]), 'ACCESS_INVALID_CREDENTIAL');
    // alg none: an unsigned token.
    const enc = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const none = `${enc({ alg: 'none', kid: 'k1' })}.${enc({ sub: 'alice', iss: 'https://issuer.test', aud: 'orders', exp: NOW / 1000 + 300 })}.`;
    assert.equal(await check(none), 'ACCESS_INVALID_CREDENTIAL');
    // HS/RS confusion: HMAC keyed with the RSA public key's text.
    const spki = Buffer.from(JSON.stringify(rsaJwk));
    const confused = await new SignJWT({ sub: 'alice', iss: 'https://issuer.test', aud: 'orders' }).setProtectedHeader({ alg: 'HS256', kid: 'r1' }).setExpirationTime(NOW / 1000 + 300).sign(createSecretKey(spki));
    assert.equal(await check(confused), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check('aaa.bbb.ccc'), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check(`${'a'.repeat(20_000)}.b.c`), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check('not-a-jwt'), 'ACCESS_NO_CREDENTIAL');
  });

  it('a single-use JWT passes once', async (t) => {
    const w = world(t);
    const token = await jwt({ jti: 'once-1' });
    const defs = [{ ...orders, singleUseTokens: true }];
    assert.equal((await w.run(defs, { headers: { authorization: `Bearer ${token}` } })).reason, 'ACCESS_ALLOWED');
    assert.equal((await w.run(defs, { headers: { authorization: `Bearer ${token}` } })).reason, 'ACCESS_TOKEN_REPLAYED');
  });

  it('lock-out by address counts failed credentials and locks; by subject checks once the credential names it', async (t) => {
    const w = world(t);
    const defs: ApiDefinition[] = [{ ...orders, lockout: { by: 'ip' } }];
    assert.equal((await w.run(defs, { headers: { authorization: 'Bearer 1.wrong' } })).reason, 'ACCESS_SESSION_UNKNOWN');
    assert.equal((await w.run(defs, { headers: { authorization: 'Bearer 1.wrong' } })).reason, 'ACCESS_SESSION_UNKNOWN');
    const s = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const locked = await w.run(defs, { headers: { authorization: `Bearer ${s.id}` } });
    assert.equal(locked.reason, 'ACCESS_LOCKED');
    assert.equal(locked.retryAfterSeconds, 60);
    assert.equal((await w.run(defs, { sourceIp: '192.0.2.11', headers: { authorization: `Bearer ${s.id}` } })).reason, 'ACCESS_ALLOWED');
    await w.state.provider.lockout.recordFailure('access:subject:alice', w.state.lockoutPolicy);
    await w.state.provider.lockout.recordFailure('access:subject:alice', w.state.lockoutPolicy);
    const bySubject = await w.run([{ ...orders, lockout: { by: 'subject' } }], { sourceIp: '192.0.2.11', headers: { authorization: `Bearer ${s.id}` } });
    assert.equal(bySubject.reason, 'ACCESS_LOCKED');
    assert.equal(bySubject.lockoutKey, 'access:subject:alice');
  });

  it('rate limits by address, subject or key, with Retry-After seconds', async (t) => {
    const w = world(t);
    const s = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const defs: ApiDefinition[] = [{ ...orders, rateLimit: { policy: 'std', by: 'subject' } }];
    const req = { headers: { authorization: `Bearer ${s.id}` } };
    assert.equal((await w.run(defs, req)).reason, 'ACCESS_ALLOWED');
    assert.equal((await w.run(defs, { ...req, sourceIp: '2001:db8::1' })).reason, 'ACCESS_ALLOWED');
    const limited = await w.run(defs, { ...req, sourceIp: '198.51.100.1' });
    assert.equal(limited.reason, 'ACCESS_RATE_LIMITED');
    assert.equal(limited.retryAfterSeconds, 2);
    const byKey: ApiDefinition[] = [{ ...orders, rateLimit: { policy: 'std', by: 'apiKey' } }];
    for (let i = 0; i < 2; i++) assert.equal((await w.run(byKey, { headers: { 'x-api-key': CLIENT_KEY } })).reason, 'ACCESS_ALLOWED');
    assert.equal((await w.run(byKey, { headers: { 'x-api-key': CLIENT_KEY } })).reason, 'ACCESS_RATE_LIMITED');
    w.clock.advance(2000);
    assert.equal((await w.run(byKey, { headers: { 'x-api-key': CLIENT_KEY } })).reason, 'ACCESS_ALLOWED');
  });

  it('takes from the shared bucket named access:<kind>:<value>, with or without the engine\'s allotments (engines of two versions share it)', async (t) => {
    const limits = { capacity: 1000, refillPerSecond: 0.0001 };
    const cases: Array<[ApiDefinition, 'session' | 'key' | 'none', string]> = [
      [{ ...orders, rateLimit: { policy: 'std', by: 'subject' } }, 'session', 'access:subject:alice'],
      [{ ...orders, rateLimit: { policy: 'std', by: 'apiKey' } }, 'key', 'access:apiKey:key-1'],
      [{ ...orders, rateLimit: { policy: 'std', by: 'ip' } }, 'key', 'access:ip:192.0.2.10'],
      // A public path has no subject: the address stands in.
      [{ ...orders, publicPaths: ['/orders'], rateLimit: { policy: 'std', by: 'subject' } }, 'none', 'access:ip:192.0.2.10'],
    ];
    for (const [def, credential, bucket] of cases) {
      for (const allotments of [false, true]) {
        const w = world(t);
        const s = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
        const headers = credential === 'session' ? { authorization: `Bearer ${s.id}` } : credential === 'key' ? { 'x-api-key': CLIENT_KEY } : {};
        const caches = decisionCaches(w.provider, w.clock, { sessionCacheTtlMs: 1000, sessionTouchIntervalMs: 60_000, rateLimitAllotment: 1, jwtCacheSize: 10 });
        const state: AccessState = { ...w.state, rateLimit: () => limits, ...(allotments ? { caches } : {}) };
        const compiled = compileApis({ apis: [def] }, { allowUnmatched: false, clientKeys: new Map([[sha(CLIENT_KEY), { id: 'key-1' }]]) });
        for (let i = 0; i < 3; i++) {
          const d = await decide({ method: 'GET', url: '/orders/1', host: 'shop.test', sourceIp: '192.0.2.10', headers }, compiled, state, w.clock);
          assert.equal(d.reason, 'ACCESS_ALLOWED', bucket);
        }
        const left = (await w.provider.rateLimits.take('std', bucket, limits, 10_000)).granted;
        assert.equal(left, 997, `${bucket} ${allotments ? 'with' : 'without'} allotments: three tokens taken from it`);
      }
    }
  });

  it('monitor mode allows and says what would have been denied', async (t) => {
    const w = world(t);
    const d = await w.run([{ ...orders, enforce: false }], {});
    assert.equal(d.allow, true);
    assert.equal(d.status, 200);
    assert.equal(d.reason, 'ACCESS_ALLOWED');
    assert.equal(d.wouldDeny, 'ACCESS_NO_CREDENTIAL');
    assert.equal(d.enforce, false);
    const enforced = await w.run([orders], {});
    assert.equal(enforced.wouldDeny, undefined);
  });

  it('fails closed when the state cannot be reached, unless onStateUnavailable is allow', async (t) => {
    const w = world(t);
    const s = await w.provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
    const req = { headers: { authorization: `Bearer ${s.id}` } };
    // Writes refused, reads answered: the session is read without a touch, and passes.
    const get = w.provider.sessions.get.bind(w.provider.sessions);
    w.provider.sessions.get = (id, options) => (options?.touch ? Promise.reject(new Error('writes refused')) : get(id));
    assert.equal((await w.run([orders], req)).reason, 'ACCESS_ALLOWED');
    w.provider.sessions.get = () => Promise.reject(new Error('no majority'));
    const closed = await w.run([orders], req);
    assert.equal(closed.reason, 'ACCESS_UNAVAILABLE');
    assert.equal(closed.status, 503);
    assert.equal(closed.allow, false);
    const open = await w.run([{ ...orders, onStateUnavailable: 'allow' }], req);
    assert.equal(open.allow, true);
    assert.equal(open.reason, 'ACCESS_ALLOWED');
    w.provider.rateLimits.take = () => Promise.reject(new Error('no majority'));
    assert.equal((await w.run([{ ...orders, publicPaths: ['/orders'], rateLimit: { policy: 'std', by: 'ip' } }], {})).reason, 'ACCESS_UNAVAILABLE');
  });

  it('an API that cannot be compiled denies what it matches instead of letting it fall through', async (t) => {
    const w = world(t);
    const d = await w.run([{ id: 'root', pathPrefix: '/', publicPaths: ['/'] }, { ...orders, denyList: ['ip:300.1.1.1'] }], {});
    assert.equal(d.api, 'orders');
    assert.equal(d.reason, 'ACCESS_UNAVAILABLE');
  });

  it('matches addresses and CIDR ranges of both families', () => {
    const list = addressBlockList(['192.0.2.0/24', '2001:db8::/32', '198.51.100.7', '::1']);
    const blocked = (a: string) => isBlocked(list, parseAddress(a));
    assert.equal(blocked('192.0.2.200'), true);
    assert.equal(blocked('192.0.3.1'), false);
    assert.equal(blocked('::ffff:192.0.2.5'), true);
    assert.equal(blocked('2001:DB8:1::5'), true);
    assert.equal(blocked('2001:db9::1'), false);
    assert.equal(blocked('198.51.100.7'), true);
    assert.equal(blocked('198.51.100.8'), false);
    assert.equal(blocked('[::1]'), true);
    assert.throws(() => addressBlockList(['10.0.0.0/33']));
    assert.throws(() => addressBlockList(['example.com']));
    assert.equal(parseAddress('1.2.3'), undefined);
  });

  it('refuses paths proxies could read differently', () => {
    assert.equal(checkedPath('/a/b?x=../y'), '/a/b');
    assert.equal(checkedPath('/a/b/'), '/a/b/');
    assert.equal(checkedPath('/a%20b'), '/a b');
    for (const bad of ['/a/../b', '/a/./b', '/a//b', '/a%2fb', '/a%5Cb', '/a\\b', '/a%00', '/a%ZZ', 'a/b', '', '/a%0d%0a', '/%2e%2e/x']) assert.equal(checkedPath(bad), undefined, bad);
  });

  it('fetches a remote key set, caches it, and refetches for an unknown kid at most every 30 s', async (t) => {
    const w = world(t);
    let fetches = 0;
    let keys: JWK[] = [publicJwk];
    const server: Server = createServer((_req, res) => {
      fetches++;
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ keys }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks`;
    const { keys: _inline, ...remote } = jwtConfig;
    const api: ApiDefinition = { id: 'orders', pathPrefix: '/orders', credentials: ['jwt'], jwt: { ...remote, jwksUrl: url } };
    const check = async (token: string) => (await w.run([api], { headers: { authorization: `Bearer ${token}` } })).reason;
    assert.equal(await check(await jwt({})), 'ACCESS_ALLOWED');
    assert.equal(await check(await jwt({})), 'ACCESS_ALLOWED');
    assert.equal(fetches, 1, 'the key set is cached');
    // A key the set lacks: no refetch within 30 s of the last fetch, one after.
    keys = [publicJwk, rsaJwk];
    const rs = await jwt({}, { kid: 'r1', alg: 'RS256', key: rsa.privateKey });
    assert.equal(await check(rs), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(fetches, 1, 'no refetch within the cooldown');
    t.mock.timers.enable({ apis: ['Date'], now: Date.now() + 30_001 });
    assert.equal(await check(rs), 'ACCESS_ALLOWED');
    assert.equal(fetches, 2);
    assert.equal(await check(await jwt({}, { kid: 'other' })), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(await check(await jwt({}, { kid: 'other2' })), 'ACCESS_INVALID_CREDENTIAL');
    assert.equal(fetches, 2, 'no refetch within 30 s of the last');
  });

  it('a remote key set that cannot be fetched fails closed; garbage tokens are still invalid', async (t) => {
    const w = world(t);
    let status = 500;
    const server: Server = createServer((_req, res) => {
      res.statusCode = status;
      res.end(status === 200 ? 'not json' : 'down');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    const { keys: _inline, ...remote } = jwtConfig;
    const api = (url: string): ApiDefinition => ({ id: 'orders', pathPrefix: '/orders', credentials: ['jwt'], jwt: { ...remote, jwksUrl: url } });
    const check = async (url: string, token: string) => (await w.run([api(url)], { headers: { authorization: `Bearer ${token}` } })).reason;
    const token = await jwt({});
    assert.equal(await check(`http://127.0.0.1:${port}/a`, token), 'ACCESS_UNAVAILABLE');
    status = 200;
    assert.equal(await check(`http://127.0.0.1:${port}/b`, token), 'ACCESS_UNAVAILABLE');
    assert.equal(await check(`http://127.0.0.1:${port}/c`, 'aaa.bbb.ccc'), 'ACCESS_INVALID_CREDENTIAL');
    await new Promise<void>((resolve) => server.close(() => resolve()));
    assert.equal(await check(`http://127.0.0.1:${port}/d`, token), 'ACCESS_UNAVAILABLE');
    const open = await w.run([{ ...api(`http://127.0.0.1:${port}/e`), onStateUnavailable: 'allow' }], { headers: { authorization: `Bearer ${token}` } });
    assert.equal(open.allow, true);
  });
});
