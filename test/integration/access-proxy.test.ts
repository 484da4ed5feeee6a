/**
 * The inline proxy on real sockets: a client talks to the proxy, the proxy to a small upstream
 * HTTP server started by the test (port 0), with a local grid provider behind the decisions.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { systemClock } from '../../src/core/clock.js';
import { registerInlineProxy, stripPathPrefix } from '../../src/engine/access/proxy.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { captureLogger } from '../helpers/transports.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  bytes: number;
  sha256: string;
}

/** An upstream that answers with what it received; `/hang` never answers. */
async function upstream(t: { after(fn: () => Promise<void>): void }): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  const server: Server = createServer((req, res) => {
    const hash = createHash('sha256');
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      hash.update(chunk);
    });
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, bytes, sha256: hash.digest('hex') };
      seen.push(s);
      if (req.url!.endsWith('/hang')) return;
      res.writeHead(req.url!.includes('created') ? 201 : req.url!.includes('forbidden') ? 403 : 200, { 'content-type': 'application/json', 'x-upstream': 'yes', 'keep-alive': 'timeout=5' });
      res.end(JSON.stringify(s));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen };
}

async function proxyFor(t: { after(fn: () => Promise<void>): void }, upstreamUrl: string) {
  const { provider } = localGrid(systemClock);
  const { logger, lines } = captureLogger();
  const settings = runtimeSettings({
    apis: {
      apis: [
        { id: 'orders', pathPrefix: '/orders', upstream: `${upstreamUrl}/base/`, identityHeaders: { 'X-Cohort-Subject': 'subject', 'X-User': 'subject', 'X-Cohort-Decision-Id': 'decisionId' } },
        { id: 'shop', pathPrefix: '/shop/v1', upstream: upstreamUrl, stripPrefix: true, timeoutMs: 400 },
        { id: 'nowhere', pathPrefix: '/nowhere', publicPaths: ['/nowhere'] },
        { id: 'guarded', pathPrefix: '/guarded', upstream: upstreamUrl, lockout: { by: 'subject' } },
      ],
    },
    runtime: { lockout: { maxFailures: 2, windowSeconds: 60, lockSeconds: 120 } },
  });
  const app = createHttpServer({ logger, bodyLimit: 1024 * 1024, name: 'proxy' });
  registerInlineProxy(app, { provider, settings: () => settings, clock: systemClock, log: logger, decisionLog: 'all', engineId: 'engine-1' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  t.after(async () => {
    await app.close();
    await provider.close();
  });
  const session = await provider.sessions.create({ subject: 'alice', attributes: {}, idleTimeoutMs: 600_000, maxLifetimeMs: 3_600_000 });
  return { base: `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`, session: session.id, lines };
}

/** A request through node:http, so that headers such as Connection and chunked bodies go as written. */
function send(url: string, options: { method?: string; headers?: Record<string, string>; body?: Buffer; chunk?: number; deadlineMs?: number } = {}): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? 'GET', headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (options.deadlineMs !== undefined) req.setTimeout(options.deadlineMs, () => req.destroy(new Error(`no answer within ${options.deadlineMs} ms`)));
    const body = options.body;
    if (!body) return req.end();
    // Written in pieces without a Content-Length: the body arrives chunked, as a stream.
    const step = options.chunk ?? 64 * 1024;
    let i = 0;
    const write = (): void => {
      while (i < body.length) {
        const ok = req.write(body.subarray(i, i + step));
        i += step;
        if (!ok) return void req.once('drain', write);
      }
      req.end();
    };
    write();
  });
}

describe('inline proxy', () => {
  it('forwards an allowed request with the identity headers, without the client\'s X-Cohort-* or hop-by-hop headers', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const r = await send(`${base}/orders/7?q=a%20b`, {
      headers: {
        cookie: `cohort_session=${session}`,
        'x-cohort-subject': 'mallory',
        'x-cohort-anything': 'forged',
        'x-user': 'mallory',
        connection: 'keep-alive, x-drop-me',
        'x-drop-me': 'hop',
        'keep-alive': 'timeout=5',
        'x-forwarded-for': '198.51.100.1',
        'x-kept': 'yes',
        host: 'shop.test:8443',
      },
    });
    assert.equal(r.status, 200, r.body);
    const seen = JSON.parse(r.body) as Seen;
    assert.equal(seen.url, '/base/orders/7?q=a%20b');
    assert.equal(seen.headers['x-cohort-subject'], 'alice');
    assert.equal(seen.headers['x-user'], 'alice');
    assert.equal(seen.headers['x-cohort-decision-id'], r.headers['x-cohort-decision-id']);
    assert.equal(seen.headers['x-cohort-anything'], undefined);
    assert.equal(seen.headers['x-drop-me'], undefined);
    assert.equal(seen.headers['keep-alive'], undefined);
    assert.equal(seen.headers['x-kept'], 'yes');
    assert.equal(seen.headers['x-forwarded-for'], '198.51.100.1, 127.0.0.1');
    assert.equal(seen.headers['x-forwarded-proto'], 'http');
    assert.equal(seen.headers['x-forwarded-host'], 'shop.test:8443');
    assert.equal(seen.headers.host, new URL(up.url).host);
    assert.equal(r.headers['x-upstream'], 'yes');
    assert.equal(r.headers['x-cohort-reason'], 'ACCESS_ALLOWED');
    assert.match(String(r.headers['x-cohort-decision-id']), /^[A-Za-z0-9_-]{16}$/);
  });

  it('streams a 5 MB POST body to the upstream intact (over [http] body_limit) and passes its status back', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const body = randomBytes(5 * 1024 * 1024);
    const r = await send(`${base}/orders/created`, { method: 'POST', headers: { authorization: `Bearer ${session}`, 'content-type': 'application/octet-stream' }, body });
    assert.equal(r.status, 201, r.body);
    const seen = JSON.parse(r.body) as Seen;
    assert.equal(seen.method, 'POST');
    assert.equal(seen.bytes, body.length);
    assert.equal(seen.sha256, createHash('sha256').update(body).digest('hex'));
    // A JSON body too goes as sent, not parsed and re-serialised.
    const json = '{ "b": 1,   "a": [2] }';
    const again = await send(`${base}/orders/created`, { method: 'PUT', headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' }, body: Buffer.from(json) });
    assert.equal((JSON.parse(again.body) as Seen).sha256, createHash('sha256').update(json).digest('hex'));
  });

  it('strips the API\'s prefix with stripPrefix', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const r = await send(`${base}/shop/v1/items/3?x=1`, { headers: { cookie: `cohort_session=${session}` } });
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as Seen).url, '/items/3?x=1');
    const root = await send(`${base}/shop/v1`, { headers: { cookie: `cohort_session=${session}` } });
    assert.equal((JSON.parse(root.body) as Seen).url, '/');
    assert.equal(stripPathPrefix('/a/b/c%20d', '/a/b/'), '/c%20d');
    assert.equal(stripPathPrefix('/a/b', '/'), '/a/b');
  });

  it('denies without a credential with 401 and the JSON error, and the upstream sees nothing', async (t) => {
    const up = await upstream(t);
    const { base, lines } = await proxyFor(t, up.url);
    const r = await send(`${base}/orders/7`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: Buffer.from('{"x":1}') });
    assert.equal(r.status, 401);
    assert.deepEqual(JSON.parse(r.body).error.code, 'ACCESS_NO_CREDENTIAL');
    assert.equal(r.headers['www-authenticate'], 'Bearer realm="orders"');
    assert.equal(r.headers['x-cohort-reason'], 'ACCESS_NO_CREDENTIAL');
    const none = await send(`${base}/elsewhere`);
    assert.equal(none.status, 403);
    assert.equal(JSON.parse(none.body).error.code, 'ACCESS_NO_API');
    assert.equal(up.seen.length, 0);
    assert.ok(lines.some((l) => l.msg === 'access decision' && l.reason === 'ACCESS_NO_CREDENTIAL' && l.engine === 'engine-1'));
    // Allowed, but the API names no upstream.
    const nowhere = await send(`${base}/nowhere/x`);
    assert.equal(nowhere.status, 502);
    assert.equal(JSON.parse(nowhere.body).error.code, 'PROXY_NO_UPSTREAM');
  });

  it('counts the upstream\'s 403 as a lock-out failure of the subject when the API has lockout', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const cookie = { cookie: `cohort_session=${session}` };
    assert.equal((await send(`${base}/guarded/ok`, { headers: cookie })).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await send(`${base}/guarded/forbidden`, { headers: cookie })).status, 403);
    // The failures are counted after the answer is sent: wait for the lock rather than race it.
    let locked: Awaited<ReturnType<typeof send>> | undefined;
    for (const until = Date.now() + 10_000; Date.now() < until;) {
      locked = await send(`${base}/guarded/ok`, { headers: cookie });
      if (locked.status !== 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(locked!.status, 403, locked!.body);
    assert.equal(JSON.parse(locked!.body).error.code, 'ACCESS_LOCKED');
    assert.ok(Number(locked!.headers['retry-after']) > 0);
  });

  it('answers 504 PROXY_UPSTREAM_TIMEOUT when the upstream does not answer within timeoutMs', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const started = Date.now();
    // A deadline far above the API's 400 ms yet below the 30 s default: the API's own timeoutMs applies.
    const r = await send(`${base}/shop/v1/hang`, { headers: { cookie: `cohort_session=${session}` }, deadlineMs: 15_000 });
    assert.equal(r.status, 504, r.body);
    assert.equal(JSON.parse(r.body).error.code, 'PROXY_UPSTREAM_TIMEOUT');
    assert.ok(Date.now() - started >= 350, 'not before timeoutMs');
    assert.ok(r.headers['x-cohort-decision-id']);
  });

  it('answers 502 PROXY_UPSTREAM_FAILED when the upstream is down', async (t) => {
    const up = await upstream(t);
    const { base, session } = await proxyFor(t, up.url);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const downUrl = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    await new Promise<void>((r) => closed.close(() => r()));
    const down = await proxyFor(t, downUrl);
    const r = await send(`${down.base}/orders/1`, { headers: { cookie: `cohort_session=${down.session}` } });
    assert.equal(r.status, 502, r.body);
    assert.equal(JSON.parse(r.body).error.code, 'PROXY_UPSTREAM_FAILED');
    // The other proxy still reaches its upstream.
    assert.equal((await send(`${base}/orders/1`, { headers: { cookie: `cohort_session=${session}` } })).status, 200);
  });
});
