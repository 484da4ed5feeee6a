/**
 * The runtime API is documented where users read it: its OpenAPI document (served by the
 * engine, generated from the route schemas) and docs/runtime-api.md both list every route the
 * API registers, with the error codes each can answer.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { ERROR_CODES } from '../../src/core/errors.js';
import { silentLogger } from '../../src/core/logger.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { createHttpServer } from '../../src/http/server.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { PACKAGE_ROOT } from '../helpers/paths.js';

interface Route {
  /** `ANY` for a route of several methods (the access-decision doors take the original request's). */
  method: string;
  /** The methods it answers (HEAD aside). */
  methods: string[];
  /** OpenAPI form: `{id}` for `:id`. */
  path: string;
}

interface Operation {
  security?: unknown[];
  parameters?: Array<{ in: string; name: string }>;
  requestBody?: unknown;
  responses: Record<string, { description?: string; content?: Record<string, { schema: { properties?: { error?: { properties?: { code?: { enum?: string[] } } } } } }> }>;
}
type OpenApi = { openapi: string; paths: Record<string, Record<string, Operation>>; components: { securitySchemes: Record<string, unknown> } };

async function runtimeWithRoutes(t: { after(fn: () => Promise<void>): void }): Promise<{ app: FastifyInstance; routes: Route[] }> {
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 1024 * 1024, name: 'runtime' });
  const routes: Route[] = [];
  app.addHook('onRoute', (r) => {
    // HEAD routes are the ones Fastify adds for every GET by itself.
    const methods = [r.method].flat().filter((m) => m !== 'HEAD');
    if (methods.length === 0) return;
    routes.push({ method: methods.length > 1 ? 'ANY' : methods[0]!, methods, path: r.url.replace(/:([A-Za-z]+)/g, '{$1}').replace(/\*$/, '{*}') });
  });
  registerRuntimeApi(app, { provider, apiKeyHashes: [sha256('docs-test-key-0123456789')], notReadyReasons: () => [] });
  await app.ready();
  t.after(async () => {
    await app.close();
    await provider.close();
  });
  return { app, routes };
}

/** Error codes an operation says it can answer. */
function errorCodes(op: Operation): string[] {
  return Object.entries(op.responses)
    .filter(([status]) => Number(status) >= 400)
    .flatMap(([, r]) => r.content?.['application/json']?.schema.properties?.error?.properties?.code?.enum ?? []);
}

describe('runtime API documentation', () => {
  it('serves an OpenAPI document without a key that has every registered route, with its parameters, body and error answers', async (t) => {
    const { app, routes } = await runtimeWithRoutes(t);
    assert.ok(routes.length >= 20, `${routes.length} routes`);
    const r = await app.inject({ method: 'GET', url: '/runtime/v1/openapi.json' });
    assert.equal(r.statusCode, 200);
    const doc = r.json() as OpenApi;
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.components.securitySchemes.bearer);
    for (const route of routes.flatMap((r) => r.methods.map((method) => ({ ...r, method })))) {
      const op = doc.paths[route.path]?.[route.method.toLowerCase()];
      assert.ok(op, `${route.method} ${route.path} is in the OpenAPI document`);
      const pathParams = [...route.path.matchAll(/\{([\w*]+)\}/g)].map((m) => m[1]);
      assert.deepEqual((op.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort(), pathParams.sort(), `${route.method} ${route.path} parameters`);
      assert.ok(Object.keys(op.responses).some((s) => Number(s) < 400), `${route.method} ${route.path} documents its answer`);
      // The back-channel logout route is called by OpenID providers, which hold no key: the signed logout token is the credential.
      const open = route.path.startsWith('/health/') || route.path === '/runtime/v1/openapi.json' || route.path === '/runtime/v1/oidc/backchannel-logout';
      const door = route.path.startsWith('/authz/') || route.path.startsWith('/runtime/v1/decide');
      if (open) {
        assert.deepEqual(op.security, [], `${route.path} needs no key`);
      } else if (door) {
        assert.deepEqual(op.security, [{ gatewayKey: [] }], `${route.method} ${route.path} needs the gateway key in X-Cohort-Key`);
        const codes = errorCodes(op);
        for (const code of ['AUTH_MISSING_CREDENTIAL', 'AUTH_INVALID_CREDENTIAL', 'HTTP_BAD_REQUEST', 'HTTP_INTERNAL']) assert.ok(codes.includes(code), `${route.method} ${route.path} lists ${code}`);
      } else {
        assert.equal(op.security, undefined, `${route.method} ${route.path} needs the API key`);
        const codes = errorCodes(op);
        for (const code of ['AUTH_MISSING_CREDENTIAL', 'AUTH_INVALID_CREDENTIAL', 'HTTP_BAD_REQUEST', 'STATE_UNAVAILABLE', 'HTTP_INTERNAL']) {
          assert.ok(codes.includes(code), `${route.method} ${route.path} lists ${code}: ${codes.join(', ')}`);
        }
        for (const code of codes) assert.ok(code in ERROR_CODES, `${code} is a code`);
        for (const [status, answer] of Object.entries(op.responses)) {
          for (const code of answer.content?.['application/json']?.schema.properties?.error?.properties?.code?.enum ?? []) {
            assert.equal(ERROR_CODES[code as keyof typeof ERROR_CODES].status, Number(status), `${code} is listed under its own status`);
          }
        }
      }
      if (route.method === 'POST' || route.method === 'PUT') {
        const hasBody = op.requestBody !== undefined;
        const bodyless = /\/(resolve|failures)$|\/ratelimit\/|^\/authz\//.test(route.path);
        assert.equal(hasBody, !bodyless, `${route.method} ${route.path} ${bodyless ? 'takes no body' : 'documents its body'}`);
      }
    }
    assert.ok(errorCodes(doc.paths['/runtime/v1/sessions']!.post!).includes('STATE_VALUE_TOO_LARGE'));
    assert.ok(errorCodes(doc.paths['/runtime/v1/sessions/{id}']!.get!).includes('RUNTIME_INVALID_ID'));
    assert.ok(errorCodes(doc.paths['/runtime/v1/sessions/{id}']!.get!).includes('STATE_NOT_FOUND'));
    assert.ok(errorCodes(doc.paths['/runtime/v1/replay']!.post!).includes('STATE_REPLAY_DETECTED'));
    assert.ok(errorCodes(doc.paths['/runtime/v1/ratelimit/{policy}/{key}']!.post!).includes('STATE_RATE_LIMITED'));
  });

  it('docs/runtime-api.md has a section for every registered route with its error codes and a curl example', async (t) => {
    const { app, routes } = await runtimeWithRoutes(t);
    const doc = (await app.inject({ method: 'GET', url: '/runtime/v1/openapi.json' })).json() as OpenApi;
    const text = readFileSync(join(PACKAGE_ROOT, 'docs', 'runtime-api.md'), 'utf8');
    const sections = new Map<string, string>();
    for (const part of text.split(/^### /m).slice(1)) {
      const heading = /^`([A-Z]+) ([^`]+)`/.exec(part);
      if (heading) sections.set(`${heading[1]} ${heading[2]}`, part.split(/^## /m)[0]!);
    }
    // The codes every route behind the key can answer are listed once, in their own section.
    const commonSection = /^## Errors every route behind the key can answer\n([\s\S]*?)^## /m.exec(text)?.[1];
    assert.ok(commonSection, 'docs/runtime-api.md has a section "## Errors every route behind the key can answer"');
    const common = new Set([...commonSection.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
    const authed = routes.map((r) => doc.paths[r.path]![r.methods[0]!.toLowerCase()]!).filter((op) => op.security === undefined);
    const everywhere = errorCodes(authed[0]!).filter((code) => authed.every((op) => errorCodes(op).includes(code)));
    assert.deepEqual([...common].sort(), everywhere.sort(), 'the common section lists exactly the codes every route behind the key can answer');
    for (const route of routes) {
      const section = sections.get(`${route.method} ${route.path}`);
      assert.ok(section, `docs/runtime-api.md has a section "### \`${route.method} ${route.path}\`"`);
      assert.match(section, /```sh\n[^`]*curl [^`]*\$RUNTIME/, `${route.method} ${route.path} has a curl example on $RUNTIME`);
      const op = doc.paths[route.path]![route.methods[0]!.toLowerCase()]!;
      if (op.security === undefined || op.security.length > 0) assert.match(section, /\$API_KEY/, `${route.method} ${route.path}: the example sends the key`);
      for (const code of errorCodes(op)) {
        if (!common.has(code)) assert.ok(section.includes(`\`${code}\``), `${route.method} ${route.path}: docs mention ${code}`);
      }
    }
    for (const key of sections.keys()) assert.ok(routes.some((r) => `${r.method} ${r.path}` === key), `docs/runtime-api.md documents ${key}, which the API does not have`);
    const readme = readFileSync(join(PACKAGE_ROOT, 'README.md'), 'utf8');
    assert.match(readme, /\[docs\/runtime-api\.md\]\(docs\/runtime-api\.md\)/);
    assert.match(readFileSync(join(PACKAGE_ROOT, 'docs', 'operations.md'), 'utf8'), /\(runtime-api\.md\)/);
  });
});
