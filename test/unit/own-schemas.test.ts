/**
 * The schemas written in this code base are checked against the JSON Schema meta-schema here,
 * not when a node starts (core/own-schemas.ts: compiling the meta-schema cost each Ajv
 * instance about 100 ms of CPU). Every route schema of every server a node runs (runtime API
 * with its access doors, inline proxy, management API, admin API and web console), every
 * configuration section and the schedule schema.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Ajv } from 'ajv';
import type { FastifyInstance } from 'fastify';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { SecretKeyring } from '../../src/core/sealed-secrets.js';
import { parseConfigText } from '../../src/config/ini-file.js';
import { buildNodeConfig } from '../../src/config/node-config.js';
import { AdminAuth } from '../../src/console/admin-auth.js';
import { registerAdminApi } from '../../src/console/admin-api.js';
import { ConfigService } from '../../src/console/config-service.js';
import { registerWebConsole } from '../../src/console/web-console.js';
import { registerInlineProxy } from '../../src/engine/access/proxy.js';
import { registerRuntimeApi } from '../../src/engine/runtime-api.js';
import { runtimeSettings } from '../../src/engine/runtime-settings.js';
import { sha256 } from '../../src/http/bearer-auth.js';
import { eagerSerializers, eagerValidators } from '../../src/http/route-compilers.js';
import { createHttpServer, ROUTE_AJV_OPTIONS } from '../../src/http/server.js';
import { registerManageApi } from '../../src/node/manage-api.js';
import { SECTION_SCHEMAS } from '../../src/policy/config-sections.js';
import { SCHEDULE_SCHEMA } from '../../src/scheduler/schedule-definition.js';
import { localGrid } from '../../src/state/grid/grid-provider.js';
import { configText, validConfig } from '../helpers/node-config.js';
import { sqliteRepository } from '../helpers/repositories.js';
import { tmpDir } from '../helpers/tmp.js';

/** Ajv as it was before: it checks a schema against the draft-07 meta-schema. */
const metaChecker = new Ajv({ strict: false });

function metaErrors(schema: unknown): string[] {
  if (metaChecker.validateSchema(schema as object)) return [];
  return (metaChecker.errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`);
}

interface RouteSchema {
  route: string;
  part: string;
  schema: unknown;
}

/** A server made as the node makes it, recording the schema parts of every route registered on it. */
function recordingServer(t: TestContext, name: string, found: RouteSchema[]): FastifyInstance {
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name });
  app.addHook('onRoute', (r) => {
    const schema = r.schema as Record<string, unknown> | undefined;
    if (schema === undefined) return;
    const route = `${name} ${[r.method].flat().join(',')} ${r.url}`;
    for (const part of ['body', 'querystring', 'params', 'headers'] as const) if (schema[part] !== undefined) found.push({ route, part, schema: schema[part] });
    for (const [status, s] of Object.entries((schema.response ?? {}) as Record<string, unknown>)) found.push({ route, part: `response ${status}`, schema: s });
  });
  t.after(() => app.close());
  return app;
}

async function everyRouteSchema(t: TestContext): Promise<RouteSchema[]> {
  const found: RouteSchema[] = [];
  const clock = new ManualClock(1_800_000_000_000);
  const { provider } = localGrid(clock);
  t.after(() => provider.close());
  const settings = runtimeSettings({});

  const runtime = recordingServer(t, 'runtime', found);
  registerRuntimeApi(runtime, { provider, apiKeyHashes: [sha256('own-schemas-key-0123456789')], notReadyReasons: () => [], settings: () => settings, clock, decisionLog: 'none', engineId: 'engine-1' });
  await runtime.ready();

  const proxy = recordingServer(t, 'proxy', found);
  registerInlineProxy(proxy, { provider, settings: () => settings, clock, log: silentLogger(), decisionLog: 'none', engineId: 'engine-1' });
  await proxy.ready();

  const manage = recordingServer(t, 'manage', found);
  const config = buildNodeConfig(parseConfigText(configText(await validConfig('engine-1', 'engine')), '/x/engine-1.ini'), '/x/engine-1.ini', {});
  registerManageApi(manage, config, 'own-schemas-credential', {
    info: () => { throw new Error('not called'); },
    deleteNode: () => { throw new Error('not called'); },
    stopCluster: () => undefined,
    promote: async () => ({ epoch: 1 }),
    schedules: { list: async () => [], runs: async () => [] },
    metrics: { text: async () => '', contentType: 'text/plain' },
    drain: async () => 0,
  });
  await manage.ready();

  const repository = await sqliteRepository(t, clock);
  const auth = new AdminAuth({
    repository, clock, tokenTtlMs: 3_600_000, maxFailures: 3, lockoutMs: 60_000, userMaxFailures: 20,
    sourceBurst: 100, sourcePerMinute: 100, maxConcurrent: 4, log: silentLogger(), nodeId: 'console', auditsFailures: () => true,
  });
  const admin = recordingServer(t, 'admin', found);
  await registerAdminApi(admin, {
    auth,
    config: new ConfigService(repository, clock, 'console', () => true, new SecretKeyring([randomBytes(32)])),
    repository,
    cluster: async () => ({ clusterId: 'c', role: 'console', epoch: 0, configVersion: 0, mixedVersions: false, versions: ['1.0.0'], nodes: [], notes: [] }),
  });
  await registerWebConsole(admin, tmpDir(t));
  await admin.ready();
  return found;
}

describe('schemas of this code base, checked against the JSON Schema meta-schema', () => {
  it('the check refuses a schema the meta-schema refuses (it can fail)', () => {
    assert.notDeepEqual(metaErrors({ type: 'strin' }), []);
    assert.notDeepEqual(metaErrors({ type: 'object', properties: { a: { minLength: '5' } } }), []);
    assert.deepEqual(metaErrors({ type: 'object', properties: { a: { type: 'string', minLength: 5 } } }), []);
  });

  it('every route schema of the runtime, proxy, management and admin servers', async (t) => {
    const found = await everyRouteSchema(t);
    // Each server declares schemas (a server that registered nothing would pass vacuously).
    for (const server of ['runtime', 'manage', 'admin']) assert.ok(found.some((f) => f.route.startsWith(`${server} `)), `${server} routes with schemas`);
    assert.ok(found.length >= 40, `${found.length} route schema parts`);
    const bad = found.flatMap((f) => metaErrors(f.schema).map((e) => `${f.route} (${f.part}): ${e}`));
    assert.deepEqual(bad, []);
  });

  it('every route schema compiles with the compilers the servers use (they compile it only at the route\'s first request)', async (t) => {
    const found = await everyRouteSchema(t);
    const validators = (eagerValidators as unknown as (e: unknown, o: unknown) => (r: object) => unknown)({}, { customOptions: ROUTE_AJV_OPTIONS });
    const serializers = (eagerSerializers as unknown as (e: unknown, o: unknown) => (r: object) => unknown)({}, undefined);
    const failed: string[] = [];
    for (const f of found) {
      try {
        if (f.part.startsWith('response ')) serializers({ schema: f.schema, method: 'GET', url: f.route, httpStatus: f.part.slice(9) });
        else validators({ schema: f.schema, method: 'GET', url: f.route, httpPart: f.part });
      } catch (err) {
        failed.push(`${f.route} (${f.part}): ${(err as Error).message}`);
      }
    }
    assert.deepEqual(failed, []);
  });

  it('every configuration section and the schedule schema', () => {
    for (const [section, schema] of Object.entries(SECTION_SCHEMAS)) assert.deepEqual(metaErrors(schema), [], `section ${section}`);
    assert.deepEqual(metaErrors(SCHEDULE_SCHEMA), [], 'schedule');
  });
});
