/**
 * The runtime API's bounds: what it logs for refused requests, how long revocations last,
 * which ids it accepts, how large values may be, paging of a subject's sessions, and API-key
 * hashes that cannot be compared.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError } from '../../src/core/errors.js';
import { silentLogger, type Logger } from '../../src/core/logger.js';
import { validateSection } from '../../src/console/config-sections.js';
import { registerRuntimeApi, type RuntimeLimits } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid, type GridProvider } from '../../src/state/grid/grid-provider.js';
import { captureLogger, WARN } from '../helpers/transports.js';

const KEY = 'runtime-bounds-api-key-0123456789';
const auth = { authorization: `Bearer ${KEY}` };
const HOUR = 3600_000;
const DAY = 24 * HOUR;

interface AppOptions {
  logger?: Logger;
  sections?: Parameters<typeof runtimeSettings>[0];
  limits?: RuntimeLimits;
  bodyLimit?: number;
  keys?: string[];
  /**
   * Whether the store sweeps expired records every second (default true). The revocation tests
   * move the clock by months: a sweep per simulated second would be millions of timers, and a
   * read finds an expired record gone either way (the store checks expiry on every read).
   */
  sweep?: boolean;
}

function runtimeApp(t: { after(fn: () => Promise<void>): void }, o: AppOptions = {}): { app: FastifyInstance; clock: ManualClock; provider: GridProvider } {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider, store } = localGrid(clock);
  if (o.sweep === false) store.stop();
  const app = createHttpServer({ logger: o.logger ?? silentLogger(), bodyLimit: o.bodyLimit ?? 1024 * 1024, name: 'runtime' });
  const settings = runtimeSettings(o.sections ?? {});
  registerRuntimeApi(app, {
    provider,
    apiKeyHashes: (o.keys ?? [KEY]).map(sha256),
    notReadyReasons: () => [],
    settings: () => settings,
    ...(o.limits ? { limits: o.limits } : {}),
  });
  t.after(async () => {
    await app.close();
    await provider.close();
  });
  return { app, clock, provider };
}

function send(app: FastifyInstance, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object | Buffer): Promise<LightMyRequestResponse> {
  const headers = Buffer.isBuffer(payload) ? { ...auth, 'content-type': 'application/json' } : auth;
  return app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload }) });
}

function assertError(r: LightMyRequestResponse, status: number, code: string, what = ''): void {
  assert.equal(r.statusCode, status, `${what} ${r.body}`);
  assert.equal(r.json().error.code, code, what);
}

describe('runtime API: refused requests are logged once at warn, without a stack', () => {
  it('a 503 and a 404 are warnings with code, request id, method and URL; only a fault is an error with its stack', async (t) => {
    const { logger, lines, raw } = captureLogger();
    const { app, provider } = runtimeApp(t, { logger });
    provider.sessions.get = () => Promise.reject(new CohortError('STATE_UNAVAILABLE', 'too few replicas'));
    const r = await send(app, 'GET', '/runtime/v1/sessions/1.abc?touch=true');
    assertError(r, 503, 'STATE_UNAVAILABLE');
    const refusal = lines.filter((l) => l.url === '/runtime/v1/sessions/1.abc');
    assert.equal(refusal.length, 1, `one line: ${JSON.stringify(refusal)}`);
    assert.equal(refusal[0]!.level, WARN);
    assert.equal(refusal[0]!.code, 'STATE_UNAVAILABLE');
    assert.equal(refusal[0]!.method, 'GET');
    assert.equal(typeof refusal[0]!.reqId, 'string');
    assert.ok(!raw.some((l) => l.includes('"stack"')), 'no stack trace for a refusal');

    const notFound = await send(app, 'POST', '/runtime/v1/artifacts/none/resolve');
    assertError(notFound, 404, 'STATE_NOT_FOUND');
    const lines404 = lines.filter((l) => l.url === '/runtime/v1/artifacts/none/resolve');
    assert.deepEqual(lines404.map((l) => [l.level, l.code]), [[WARN, 'STATE_NOT_FOUND']]);

    const unauthenticated = await app.inject({ method: 'GET', url: '/runtime/v1/revocations/x' });
    assertError(unauthenticated, 401, 'AUTH_MISSING_CREDENTIAL');
    assert.deepEqual(lines.filter((l) => l.url === '/runtime/v1/revocations/x').map((l) => [l.level, l.code]), [[WARN, 'AUTH_MISSING_CREDENTIAL']]);

    provider.artifacts.resolve = () => Promise.reject(new Error('a real fault'));
    const fault = await send(app, 'POST', '/runtime/v1/artifacts/x/resolve');
    assertError(fault, 500, 'HTTP_INTERNAL');
    const faultLines = lines.filter((l) => l.url === '/runtime/v1/artifacts/x/resolve');
    assert.equal(faultLines.length, 1);
    assert.equal(faultLines[0]!.level, 50);
    assert.match(JSON.stringify(faultLines[0]!.err), /a real fault.*at /s, 'a fault keeps its stack');
    assert.ok(!raw.filter((l) => !l.includes('a real fault')).some((l) => l.includes('"stack"')), 'only the fault has a stack');
  });
});

describe('runtime API: revocations last as long as what they revoke', () => {
  it('a logged-out session with a 30-day lifetime is still revoked after 24 h, and until its maximum lifetime ends', async (t) => {
    const { app, clock } = runtimeApp(t, { sweep: false });
    const s = (await send(app, 'POST', '/runtime/v1/sessions', { subject: 'alice', idleTimeoutSeconds: 3600, maxLifetimeSeconds: 30 * 86400 })).json();
    assert.equal((await send(app, 'DELETE', `/runtime/v1/sessions/${s.id}`)).statusCode, 204);
    clock.advance(DAY + 60_000);
    assert.deepEqual((await send(app, 'GET', `/runtime/v1/revocations/${s.id}`)).json(), { revoked: true }, 'revoked past the 24 h mark');
    clock.advance(28 * DAY);
    assert.deepEqual((await send(app, 'GET', `/runtime/v1/revocations/${s.id}`)).json(), { revoked: true }, 'revoked on day 29');
    clock.advance(DAY);
    assert.deepEqual((await send(app, 'GET', `/runtime/v1/revocations/${s.id}`)).json(), { revoked: false }, 'forgotten once the session could no longer live');
  });

  it('logging out an unknown id revokes it for the longest lifetime a session may have', async (t) => {
    const { app, clock } = runtimeApp(t, { sweep: false, sections: { services: { sessions: { maxLifetimeSeconds: 90 * 86400 } } } });
    assert.equal((await send(app, 'DELETE', '/runtime/v1/sessions/7.unknown-session')).statusCode, 204);
    clock.advance(89 * DAY);
    assert.deepEqual((await send(app, 'GET', '/runtime/v1/revocations/7.unknown-session')).json(), { revoked: true });
    clock.advance(DAY + 1000);
    assert.deepEqual((await send(app, 'GET', '/runtime/v1/revocations/7.unknown-session')).json(), { revoked: false });
  });

  it('POST /revocations keeps an id for ttlSeconds, capped by the configured maximum; without ttlSeconds, for the maximum', async (t) => {
    const { app, clock } = runtimeApp(t, { sweep: false, sections: { services: { revocations: { maxTtlSeconds: 10 * 86400 } } } });
    assert.equal((await send(app, 'POST', '/runtime/v1/revocations', { id: 'jti-short', ttlSeconds: 3 * 86400 })).statusCode, 204);
    assert.equal((await send(app, 'POST', '/runtime/v1/revocations', { id: 'jti-long', ttlSeconds: 400 * 86400 })).statusCode, 204);
    assert.equal((await send(app, 'POST', '/runtime/v1/revocations', { id: 'jti-default' })).statusCode, 204);
    const revoked = async (id: string) => (await send(app, 'GET', `/runtime/v1/revocations/${id}`)).json().revoked as boolean;
    clock.advance(2 * DAY);
    assert.deepEqual([await revoked('jti-short'), await revoked('jti-long'), await revoked('jti-default')], [true, true, true]);
    clock.advance(DAY + 1000);
    assert.deepEqual([await revoked('jti-short'), await revoked('jti-long'), await revoked('jti-default')], [false, true, true]);
    clock.advance(7 * DAY);
    assert.deepEqual([await revoked('jti-long'), await revoked('jti-default')], [false, false], 'capped at 10 days');
    assertError(await send(app, 'POST', '/runtime/v1/revocations', { id: 'x', ttlSeconds: 0 }), 400, 'HTTP_BAD_REQUEST');
  });

  it('the console\'s services section takes revocations.maxTtlSeconds up to 365 days', () => {
    validateSection('services', { revocations: { maxTtlSeconds: 365 * 86400 }, sessions: { maxLifetimeSeconds: 365 * 86400 } });
    assert.throws(() => validateSection('services', { revocations: { maxTtlSeconds: 365 * 86400 + 1 } }), /CONSOLE_DOCUMENT_INVALID|not valid/);
    assert.throws(() => validateSection('services', { revocations: { maxTtlSeconds: 0 } }), /not valid/);
  });

  it('without a configured maximum a revocation may last 365 days', async (t) => {
    const { app, clock } = runtimeApp(t, { sweep: false });
    assert.equal((await send(app, 'POST', '/runtime/v1/revocations', { id: 'jti-year', ttlSeconds: 400 * 86400 })).statusCode, 204);
    clock.advance(364 * DAY);
    assert.deepEqual((await send(app, 'GET', '/runtime/v1/revocations/jti-year')).json(), { revoked: true });
    clock.advance(DAY + 1000);
    assert.deepEqual((await send(app, 'GET', '/runtime/v1/revocations/jti-year')).json(), { revoked: false });
  });
});

describe('runtime API: ids are well-formed', () => {
  const bytes = (...parts: Array<string | number[]>): Buffer => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p) : Buffer.from(p))));

  it('two ids that differ only in invalid UTF-8 bytes are refused, not merged into one key', async (t) => {
    const { app, provider } = runtimeApp(t);
    // In a body the bytes are refused before the JSON is parsed: the body is not valid UTF-8.
    for (const bad of [[0xff], [0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80]]) {
      const r = await send(app, 'POST', '/runtime/v1/revocations', bytes('{"id":"tok-', bad, '"}'));
      assertError(r, 400, 'HTTP_BAD_REQUEST', JSON.stringify(bad));
      assert.match(r.json().error.message, /UTF-8/);
      const replay = await send(app, 'POST', '/runtime/v1/replay', bytes('{"id":"a-', bad, '","ttlSeconds":60}'));
      assertError(replay, 400, 'HTTP_BAD_REQUEST');
    }
    assert.equal(await provider.revocations.isRevoked('tok-\uFFFD'), false, 'nothing stored');
    assert.equal(await provider.replay.checkAndInsert('a-\uFFFD', 60_000), true, 'nothing stored');
    for (const url of ['/runtime/v1/sessions/%FF', '/runtime/v1/state/a%E2%82', '/runtime/v1/tokens/%C0%AF', '/runtime/v1/lockout/%ED%A0%80']) {
      assertError(await send(app, 'GET', url), 400, 'RUNTIME_INVALID_ID', url);
    }
  });

  it('refuses ids with spaces, control or non-ASCII characters, or longer than 256, everywhere, before storing anything', async (t) => {
    const { app, provider } = runtimeApp(t);
    const badIds = ['a b', 'a\u0000b', 'tab\there', 'caf\u00e9', '\u20ac', 'x'.repeat(257), 'a\u007fb'];
    for (const bad of badIds) {
      const e = encodeURIComponent(bad);
      const cases: Array<[string, 'GET' | 'POST' | 'PUT' | 'DELETE', string, object?]> = [
        ['session', 'GET', `/runtime/v1/sessions/${e}`],
        ['session delete', 'DELETE', `/runtime/v1/sessions/${e}`],
        ['subject', 'GET', `/runtime/v1/subjects/${e}/sessions`],
        ['subject in body', 'POST', '/runtime/v1/sessions', { subject: bad }],
        ['revocation', 'POST', '/runtime/v1/revocations', { id: bad }],
        ['revocation check', 'GET', `/runtime/v1/revocations/${e}`],
        ['replay', 'POST', '/runtime/v1/replay', { id: bad, ttlSeconds: 60 }],
        ['artifact', 'PUT', `/runtime/v1/artifacts/${e}`, { payload: 'p' }],
        ['artifact resolve', 'POST', `/runtime/v1/artifacts/${e}/resolve`],
        ['lock-out', 'POST', `/runtime/v1/lockout/${e}/failures`],
        ['state', 'PUT', `/runtime/v1/state/${e}`, { value: 1 }],
        ['token', 'PUT', `/runtime/v1/tokens/${e}`, { value: 1 }],
        ['rate-limit key', 'POST', `/runtime/v1/ratelimit/login/${e}`],
        ['rate-limit policy', 'POST', `/runtime/v1/ratelimit/${e}/k`],
      ];
      for (const [what, method, url, body] of cases) assertError(await send(app, method, url, body), 400, 'RUNTIME_INVALID_ID', `${what} ${JSON.stringify(bad)}`);
    }
    assert.deepEqual(await provider.sessions.listBySubject('a b'), []);
    assert.equal(await provider.revocations.isRevoked('a b'), false);
    assertError(await send(app, 'POST', '/runtime/v1/ratelimit/login:x/k'), 400, 'RUNTIME_INVALID_ID', 'a policy is a name: no colon');
  });

  it('accepts realistic ids: emails, session ids with a group, URNs, IPv6 addresses, paths', async (t) => {
    const { app } = runtimeApp(t);
    const s = (await send(app, 'POST', '/runtime/v1/sessions', { subject: 'alice.o-brien+test@example.com' })).json();
    assert.equal((await send(app, 'GET', `/runtime/v1/subjects/${encodeURIComponent('alice.o-brien+test@example.com')}/sessions`)).json().sessions.length, 1);
    assert.equal((await send(app, 'GET', `/runtime/v1/sessions/${s.id}`)).statusCode, 200);
    for (const id of ['east.12.AbC_-x', 'urn:oid:1.2.3|x/y', '2001:db8::1', '_a1b2c3d4', 'x'.repeat(256), '!#$%&\'()*+,;=?[]^`{}~"\\<>']) {
      assert.equal((await send(app, 'PUT', `/runtime/v1/state/${encodeURIComponent(id)}`, { value: id })).statusCode, 204, id);
      assert.deepEqual((await send(app, 'GET', `/runtime/v1/state/${encodeURIComponent(id)}`)).json(), { value: id }, id);
      assert.equal((await send(app, 'POST', '/runtime/v1/revocations', { id, ttlSeconds: 60 })).statusCode, 204, id);
    }
  });

  it('refuses a body that is not valid UTF-8 outside the ids too, and stores nothing', async (t) => {
    const { app, provider } = runtimeApp(t);
    const r = await send(app, 'POST', '/runtime/v1/sessions', bytes('{"subject":"zed","attributes":{"name":"', [0xff], '"}}'));
    assertError(r, 400, 'HTTP_BAD_REQUEST');
    assert.deepEqual(await provider.sessions.listBySubject('zed'), []);
  });
});

describe('runtime API: value sizes are capped before anything is stored', () => {
  const limits: RuntimeLimits = { sessionAttributesBytes: 1000, artifactBytes: 2000, stateValueBytes: 1500, tokenBytes: 500 };
  /** A JSON value whose serialized size is exactly `size` bytes: a string of size - 2 characters. */
  const ofSize = (size: number): string => 'x'.repeat(size - 2);

  it('session attributes, artifacts, state values and tokens each have their cap (serialized JSON size): 413 STATE_VALUE_TOO_LARGE', async (t) => {
    const { app, provider } = runtimeApp(t, { limits });
    // {"a":"..."} is 8 bytes of envelope.
    assert.equal((await send(app, 'POST', '/runtime/v1/sessions', { subject: 'big', attributes: { a: 'x'.repeat(1000 - 8) } })).statusCode, 201, 'exactly the cap');
    assertError(await send(app, 'POST', '/runtime/v1/sessions', { subject: 'big', attributes: { a: 'x'.repeat(1000 - 7) } }), 413, 'STATE_VALUE_TOO_LARGE', 'attributes');
    assertError(await send(app, 'POST', '/runtime/v1/sessions', { subject: 'big', attributes: { a: '\u00e9'.repeat(500) } }), 413, 'STATE_VALUE_TOO_LARGE', 'bytes, not characters');
    assert.equal((await provider.sessions.listBySubject('big')).length, 1);

    assert.equal((await send(app, 'PUT', '/runtime/v1/artifacts/a1', { payload: ofSize(2000) })).statusCode, 204);
    assertError(await send(app, 'PUT', '/runtime/v1/artifacts/a2', { payload: ofSize(2001) }), 413, 'STATE_VALUE_TOO_LARGE', 'artifact');
    assert.equal(await provider.artifacts.resolve('a2'), undefined);

    assert.equal((await send(app, 'PUT', '/runtime/v1/state/s1', { value: ofSize(1500) })).statusCode, 204);
    assertError(await send(app, 'PUT', '/runtime/v1/state/s2', { value: { list: [ofSize(1500)] } }), 413, 'STATE_VALUE_TOO_LARGE', 'state');
    assert.equal(await provider.requestState.get('s2'), undefined);

    assert.equal((await send(app, 'PUT', '/runtime/v1/tokens/t1', { value: ofSize(500) })).statusCode, 204);
    assertError(await send(app, 'PUT', '/runtime/v1/tokens/t2', { value: ofSize(501) }), 413, 'STATE_VALUE_TOO_LARGE', 'token');
    assert.equal(await provider.tokens.get('t2'), undefined);
  });

  it('the body limit of each route follows its cap: a body far larger is not even read', async (t) => {
    const { app } = runtimeApp(t, { limits });
    assertError(await send(app, 'PUT', '/runtime/v1/tokens/t3', { value: 'x'.repeat(20_000) }), 413, 'HTTP_BODY_TOO_LARGE', 'token body');
    assertError(await send(app, 'POST', '/runtime/v1/revocations', { id: 'r', pad: 'x'.repeat(20_000) }), 413, 'HTTP_BODY_TOO_LARGE', 'a route with small bodies');
  });

  it('defaults: 16 KiB of attributes, 64 KiB artifacts and state values, 16 KiB tokens', async (t) => {
    const { app } = runtimeApp(t);
    assertError(await send(app, 'POST', '/runtime/v1/sessions', { subject: 'd', attributes: { a: 'x'.repeat(16_384) } }), 413, 'STATE_VALUE_TOO_LARGE');
    assert.equal((await send(app, 'POST', '/runtime/v1/sessions', { subject: 'd', attributes: { a: 'x'.repeat(16_384 - 8) } })).statusCode, 201);
    assertError(await send(app, 'PUT', '/runtime/v1/artifacts/d', { payload: ofSize(65_537) }), 413, 'STATE_VALUE_TOO_LARGE');
    assertError(await send(app, 'PUT', '/runtime/v1/state/d', { value: ofSize(65_537) }), 413, 'STATE_VALUE_TOO_LARGE');
    assertError(await send(app, 'PUT', '/runtime/v1/tokens/d', { value: ofSize(16_385) }), 413, 'STATE_VALUE_TOO_LARGE');
    assert.equal((await send(app, 'PUT', '/runtime/v1/tokens/d', { value: ofSize(16_384) })).statusCode, 204);
  });
});

describe('runtime API: a subject\'s sessions come in pages', () => {
  it('?limit= and ?cursor= walk every session once, oldest first; nextCursor is absent on the last page', async (t) => {
    const { app, clock } = runtimeApp(t);
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      ids.push((await send(app, 'POST', '/runtime/v1/sessions', { subject: 'pat' })).json().id);
      if (i % 3 === 0) clock.advance(1); // some share a creation time: ties are ordered too
    }
    const seen: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const r = await send(app, 'GET', `/runtime/v1/subjects/pat/sessions?limit=3${cursor ? `&cursor=${cursor}` : ''}`);
      assert.equal(r.statusCode, 200);
      const page = r.json() as { sessions: Array<{ id: string }>; nextCursor?: string };
      assert.ok(page.sessions.length <= 3);
      seen.push(...page.sessions.map((s) => s.id));
      cursor = page.nextCursor;
      pages++;
    } while (cursor !== undefined);
    assert.equal(pages, 3);
    assert.deepEqual([...seen].sort(), [...ids].sort());
    assert.equal(new Set(seen).size, 7);
    const all = (await send(app, 'GET', '/runtime/v1/subjects/pat/sessions')).json();
    assert.deepEqual(all.sessions.map((s: { id: string }) => s.id), seen, 'pages follow the same order as one listing');
    assert.equal(all.nextCursor, undefined);
  });

  it('answers 100 by default and at most 1000; refuses a bad limit or cursor', async (t) => {
    const { app } = runtimeApp(t);
    for (let i = 0; i < 101; i++) await send(app, 'POST', '/runtime/v1/sessions', { subject: 'many' });
    const first = (await send(app, 'GET', '/runtime/v1/subjects/many/sessions')).json();
    assert.equal(first.sessions.length, 100);
    assert.equal(typeof first.nextCursor, 'string');
    const rest = (await send(app, 'GET', `/runtime/v1/subjects/many/sessions?cursor=${first.nextCursor}`)).json();
    assert.equal(rest.sessions.length, 1);
    assert.equal(rest.nextCursor, undefined);
    assert.equal((await send(app, 'GET', '/runtime/v1/subjects/many/sessions?limit=1000')).json().sessions.length, 101);
    for (const q of ['limit=0', 'limit=1001', 'limit=abc', 'limit=-1', 'cursor=not-a-cursor', 'cursor=%FF', `cursor=${Buffer.from('[1,"a b"]').toString('base64url')}`]) {
      assertError(await send(app, 'GET', `/runtime/v1/subjects/many/sessions?${q}`), 400, 'HTTP_BAD_REQUEST', q);
    }
  });

  it('skips revoked sessions without ending the walk early', async (t) => {
    const { app, provider } = runtimeApp(t);
    const ids: string[] = [];
    for (let i = 0; i < 4; i++) ids.push((await send(app, 'POST', '/runtime/v1/sessions', { subject: 'rev' })).json().id);
    const page = await provider.sessions.pageBySubject('rev', { limit: 2 });
    for (const s of page.sessions) await provider.revocations.revoke(s.id);
    const first = (await send(app, 'GET', '/runtime/v1/subjects/rev/sessions?limit=2')).json();
    assert.deepEqual(first.sessions, []);
    assert.equal(typeof first.nextCursor, 'string', 'the walk goes on past a page of revoked sessions');
    const second = (await send(app, 'GET', `/runtime/v1/subjects/rev/sessions?limit=2&cursor=${first.nextCursor}`)).json();
    assert.equal(second.sessions.length, 2);
  });
});

describe('runtime API: API-key hashes that cannot be compared never fail a request', () => {
  it('a malformed issued-key hash answers 401 for that key; every other key still works; no 500', async (t) => {
    const issued = 'issued-key-abcdefghijklmnopqrstuvwxyz';
    const good = 'issued-key-good-0123456789abcdefghij';
    const goodHash = sha256(good).toString('hex');
    // One character of the stored hash changed into a non-hex one: Buffer.from(hex) stops there.
    const broken = `${sha256(issued).toString('hex').slice(0, 10)}g${sha256(issued).toString('hex').slice(11)}`;
    const sections = { 'api-keys': { keys: [{ hash: broken }, { hash: goodHash }, { hash: 'abc' }, { hash: '' }] } };
    const { app } = runtimeApp(t, { sections });
    const as = (key: string) => app.inject({ method: 'GET', url: '/runtime/v1/revocations/x', headers: { authorization: `Bearer ${key}` } });
    assertError(await as(issued), 401, 'AUTH_INVALID_CREDENTIAL');
    assert.equal((await as(good)).statusCode, 200);
    assert.equal((await as(KEY)).statusCode, 200);
    assertError(await as('some-other-key-0123456789'), 401, 'AUTH_INVALID_CREDENTIAL');
  });
});
