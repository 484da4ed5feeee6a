/** What every HTTP API shares (src/http/server.ts): error shapes for what the router and parser refuse. */
import { describe, it } from 'node:test';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import assert from 'node:assert/strict';
import { ManualClock } from '../../src/core/clock.js';
import { CohortError } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { captureLogger, type LogLine } from '../helpers/transports.js';
import { createHttpServer, setBadUrlCode } from '../../src/http/server.js';

function server(t: { after(fn: () => Promise<void>): void }) {
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 4096, name: 'test' });
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }));
  app.post('/items', async (request) => ({ body: request.body }));
  app.delete('/items/:id', async () => ({ deleted: true }));
  app.post('/needs', { schema: { body: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } } }, async (request) => ({ body: request.body }));
  app.post('/optional', { schema: { body: { type: 'object', properties: { force: { type: 'boolean' } } } } }, async (request) => ({ body: request.body }));
  t.after(() => app.close());
  return app;
}

describe('HTTP server conventions', () => {
  it('answers a URL whose percent-encoding is not valid UTF-8 with a coded error (HTTP_BAD_REQUEST, or the code the API sets)', async (t) => {
    const app = server(t);
    const r = await app.inject({ method: 'GET', url: '/items/%FF' });
    assert.equal(r.statusCode, 400);
    assert.deepEqual(Object.keys(r.json()), ['error']);
    assert.equal(r.json().error.code, 'HTTP_BAD_REQUEST');
    assert.deepEqual((await app.inject({ method: 'GET', url: '/items/%C3%A9' })).json(), { id: '\u00e9' }, 'valid UTF-8 decodes');

    const ids = server(t);
    setBadUrlCode(ids, 'RUNTIME_INVALID_ID');
    assert.equal((await ids.inject({ method: 'GET', url: '/items/%E2%82' })).json().error.code, 'RUNTIME_INVALID_ID');
  });

  it('refuses a JSON body that is not valid UTF-8, and still parses valid ones (prototype poisoning refused as before)', async (t) => {
    const app = server(t);
    const headers = { 'content-type': 'application/json' };
    const bad = await app.inject({ method: 'POST', url: '/items', headers, payload: Buffer.from([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d]) });
    assert.equal(bad.statusCode, 400);
    assert.equal(bad.json().error.code, 'HTTP_BAD_REQUEST');
    assert.match(bad.json().error.message, /not valid UTF-8/);
    assert.deepEqual((await app.inject({ method: 'POST', url: '/items', headers, payload: '{"a":"Zo\u00eb"}' })).json(), { body: { a: 'Zo\u00eb' } });
    assert.equal((await app.inject({ method: 'POST', url: '/items', headers, payload: '{"__proto__":{"x":1}}' })).statusCode, 400);
  });

  it('takes an empty body with a JSON content type as no body: accepted where none is needed, refused with a code where one is', async (t) => {
    const app = server(t);
    const headers = { 'content-type': 'application/json' };
    const del = await app.inject({ method: 'DELETE', url: '/items/7', headers });
    assert.equal(del.statusCode, 200, del.body);
    assert.deepEqual((await app.inject({ method: 'POST', url: '/optional', headers, payload: '' })).json(), { body: {} });
    const needed = await app.inject({ method: 'POST', url: '/needs', headers, payload: '' });
    assert.equal(needed.statusCode, 400);
    assert.equal(needed.json().error.code, 'HTTP_BAD_REQUEST');
    assert.equal((await app.inject({ method: 'POST', url: '/needs', headers, payload: '{' })).json().error.code, 'HTTP_BAD_REQUEST');
  });

  it('answers an over-long path segment with 414 HTTP_URI_TOO_LONG, without echoing the URL', async (t) => {
    const app = server(t);
    const r = await app.inject({ method: 'GET', url: `/items/${'a'.repeat(10_000)}` });
    assert.equal(r.statusCode, 414);
    assert.equal(r.json().error.code, 'HTTP_URI_TOO_LONG');
    assert.ok(r.body.length < 200, r.body.slice(0, 300));
  });

  it('answers what Node\'s parser refuses (a header block over the limit, a malformed request) in the coded shape', async (t) => {
    const app = server(t);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as AddressInfo;
    const huge = await fetch(`http://127.0.0.1:${port}/items/${'a'.repeat(100_000)}`);
    assert.equal(huge.status, 431);
    assert.equal(((await huge.json()) as { error: { code: string } }).error.code, 'HTTP_HEADERS_TOO_LARGE');
    const raw = await new Promise<string>((resolve) => {
      const socket = connect({ host: '127.0.0.1', port }, () => socket.write('NOT-HTTP garbage\r\n\r\n'));
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('close', () => resolve(text));
      socket.on('error', () => {});
    });
    assert.match(raw, /^HTTP\/1\.1 400 /);
    assert.match(raw, /\{"error":\{"code":"HTTP_BAD_REQUEST","message":"[^"]+"\}\}$/);
  });
});

describe('refused requests in the log', () => {
  it('one line per source address and code every 10 s, the rest summed in one line; every request still answered', async (t) => {
    const clock = new ManualClock(1_800_000_000_000);
    const { logger, lines } = captureLogger();
    const app = createHttpServer({ logger, bodyLimit: 4096, name: 'test', clock });
    app.get('/items/:id', async () => ({}));
    app.get('/locked', async () => {
      throw new CohortError('AUTH_INVALID_CREDENTIAL', 'invalid API key');
    });
    t.after(() => app.close());
    const refusedLines = (): LogLine[] => lines.filter((l) => l.msg === 'request refused');
    for (let i = 0; i < 50; i++) assert.equal((await app.inject({ method: 'GET', url: '/locked' })).statusCode, 401);
    assert.equal(refusedLines().length, 1, 'a flood of one code from one source: one line');
    assert.equal(refusedLines()[0]!.code, 'AUTH_INVALID_CREDENTIAL');
    assert.equal(refusedLines()[0]!.source, '127.0.0.1');
    // Another code from the same source has its own line.
    assert.equal((await app.inject({ method: 'GET', url: '/items/%FF' })).statusCode, 400);
    assert.equal(refusedLines().length, 2);
    clock.advance(10_000);
    // After the window the source's next refusal is logged again, and the next one held back reports the sum.
    for (let i = 0; i < 2; i++) assert.equal((await app.inject({ method: 'GET', url: '/locked' })).statusCode, 401);
    assert.equal(refusedLines().length, 3);
    const summary = lines.filter((l) => l.code === 'HTTP_REFUSALS_NOT_LOGGED');
    assert.equal(summary.length, 1);
    assert.equal(summary[0]!.suppressed, 50, '49 held back in the first window and one in the second');
  });
});
