/**
 * Route schemas are compiled at a route's first request (http/route-compilers.ts), with
 * Fastify's own compilers: validation and serialization are what they were, header names are
 * matched in lower case as Fastify's own compiler matches them, and a schema that cannot be
 * compiled fails its route's requests, not the server's start.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../src/core/logger.js';
import { createHttpServer } from '../../src/http/server.js';

function server(t: { after(fn: () => Promise<void>): void }) {
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'test' });
  t.after(() => app.close());
  return app;
}

describe('route schemas compiled on first use', () => {
  it('validates bodies, parameters and headers (names in any case) and serializes answers as before', async (t) => {
    const app = server(t);
    app.post('/items/:id', {
      schema: {
        params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: '^[a-z]+$' } } },
        headers: { type: 'object', required: ['X-Tenant'], properties: { 'X-Tenant': { type: 'string', minLength: 2 } } },
        body: { type: 'object', required: ['n'], additionalProperties: false, properties: { n: { type: 'integer' } } },
        response: { 200: { type: 'object', properties: { id: { type: 'string' }, n: { type: 'integer' } } } },
      },
    }, async (request) => ({ id: (request.params as { id: string }).id, n: (request.body as { n: number }).n, secret: 'not in the schema' }));
    await app.ready();
    const ok = await app.inject({ method: 'POST', url: '/items/abc', headers: { 'x-tenant': 'acme' }, payload: { n: 3 } });
    assert.equal(ok.statusCode, 200, ok.body);
    assert.deepEqual(ok.json(), { id: 'abc', n: 3 }, 'the answer schema drops what it does not declare');
    for (const [what, req] of [
      ['a body of the wrong type', { url: '/items/abc', headers: { 'x-tenant': 'acme' }, payload: { n: 'three' } }],
      ['an unknown body field', { url: '/items/abc', headers: { 'x-tenant': 'acme' }, payload: { n: 1, m: 2 } }],
      ['a parameter off its pattern', { url: '/items/ABC', headers: { 'x-tenant': 'acme' }, payload: { n: 1 } }],
      ['a missing header', { url: '/items/abc', headers: {}, payload: { n: 1 } }],
      ['a header too short', { url: '/items/abc', headers: { 'X-Tenant': 'a' }, payload: { n: 1 } }],
    ] as const) {
      const r = await app.inject({ method: 'POST', ...req });
      assert.equal(r.statusCode, 400, `${what}: ${r.body}`);
      assert.equal(r.json().error.code, 'HTTP_BAD_REQUEST', what);
    }
    // And again after the first compile, with the same answers.
    assert.equal((await app.inject({ method: 'POST', url: '/items/abc', headers: { 'x-tenant': 'acme' }, payload: { n: 'x' } })).statusCode, 400);
    assert.equal((await app.inject({ method: 'POST', url: '/items/xyz', headers: { 'x-tenant': 'acme' }, payload: { n: 4 } })).json().n, 4);
  });

  it('a schema that cannot be compiled fails its route\'s requests (500), not the start, and no other route', async (t) => {
    const app = server(t);
    app.post('/broken', { schema: { body: { type: 'object', properties: { a: { type: 'string', minLength: 'two' } } } } }, async () => ({ ok: true }));
    app.get('/fine', { schema: { response: { 200: { type: 'object', properties: { ok: { type: 'boolean' } } } } } }, async () => ({ ok: true }));
    await app.ready();
    const broken = await app.inject({ method: 'POST', url: '/broken', payload: { a: 'x' } });
    assert.equal(broken.statusCode, 500, broken.body);
    assert.equal(broken.json().error.code, 'HTTP_INTERNAL');
    const fine = await app.inject({ method: 'GET', url: '/fine' });
    assert.deepEqual([fine.statusCode, fine.json()], [200, { ok: true }]);
  });
});
