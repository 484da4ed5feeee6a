/** What every HTTP API shares (src/http/server.ts): error shapes for what the router and parser refuse. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/core/logger.js';
import { createHttpServer, setBadUrlCode } from '../../src/http/server.js';

function server(t: { after(fn: () => Promise<void>): void }) {
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 4096, name: 'test' });
  app.get('/items/:id', async (request) => ({ id: (request.params as { id: string }).id }));
  app.post('/items', async (request) => ({ body: request.body }));
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
    assert.equal((await app.inject({ method: 'POST', url: '/items', headers, payload: '' })).json().error.code, 'HTTP_BAD_REQUEST');
  });
});
