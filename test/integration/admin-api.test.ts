/**
 * The console's admin API over a real repository, SQLite and PostgreSQL: login and tokens,
 * roles, lock-out, configuration sections with validation, versions, audit, API keys, the
 * OpenAPI document. Every refusal is checked to change no stored data.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { ManualClock } from '../../src/core/clock.js';
import { silentLogger } from '../../src/core/logger.js';
import { AdminAuth, ADMIN_PASSWORD_FILE } from '../../src/console/admin-auth.js';
import { registerAdminApi } from '../../src/console/admin-api.js';
import { ConfigService } from '../../src/console/config-service.js';
import { hashPassword } from '../../src/console/passwords.js';
import { createHttpServer } from '../../src/http/server.js';
import type { Repository } from '../../src/repository/repository.js';
import { postgresRepository, sqliteRepository } from '../helpers/repositories.js';
import { tmpDir } from '../helpers/tmp.js';
import { SecretKeyring } from '../../src/core/sealed-secrets.js';

interface Harness {
  app: FastifyInstance;
  repo: Repository;
  clock: ManualClock;
  password: string;
  dataDir: string;
  auth: AdminAuth;
}

type OpenRepo = (t: TestContext, clock: ManualClock) => Promise<Repository | undefined>;

async function harness(t: TestContext, open: OpenRepo): Promise<Harness | undefined> {
  const clock = new ManualClock(1_800_000_000_000);
  const repo = await open(t, clock);
  if (!repo) return undefined;
  const dataDir = tmpDir(t);
  const auth = new AdminAuth({
    repository: repo,
    clock,
    tokenTtlMs: 3_600_000,
    maxFailures: 3,
    lockoutMs: 60_000,
    userMaxFailures: 20,
    sourceBurst: 100,
    sourcePerMinute: 100,
    maxConcurrent: 4,
    log: silentLogger(),
    nodeId: 'console',
    auditsFailures: () => true,
  });
  const file = await auth.ensureFirstUser('admin', dataDir, 'console', silentLogger());
  assert.equal(file, join(dataDir, ADMIN_PASSWORD_FILE));
  assert.equal(statSync(file).mode & 0o777, 0o600, 'the password file is readable by its owner only');
  const password = readFileSync(file, 'utf8').trim();
  const config = new ConfigService(repo, clock, 'console', () => true, new SecretKeyring([randomBytes(32)]));
  const app = createHttpServer({ logger: silentLogger(), bodyLimit: 64 * 1024, name: 'admin' });
  await registerAdminApi(app, {
    auth,
    config,
    repository: repo,
    cluster: async () => ({ clusterId: 'c', role: 'console', epoch: 0, configVersion: 0, mixedVersions: false, versions: ['1.0.0'], nodes: [], notes: [] }),
  });
  t.after(() => app.close());
  return { app, repo, clock, password, dataDir, auth };
}

async function login(app: FastifyInstance, user: string, password: string): Promise<{ status: number; token?: string; code?: string }> {
  const r = await app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user, password } });
  const body = r.json();
  return { status: r.statusCode, token: body.token, code: body.error?.code };
}

/** Everything stored: head, sections, audit and users; compared before and after a refusal. */
async function snapshot(repo: Repository): Promise<string> {
  return JSON.stringify([await repo.getCurrentConfig(), await repo.listAudit({ limit: 1000 }), await repo.listAdminUsers()]);
}

function adminApiSuite(name: string, open: OpenRepo): void {
  describe(`admin API on ${name}`, () => {
    it('refuses unauthenticated calls, wrong passwords, auditors\' writes and malformed bodies, changing nothing; locks out after repeated wrong passwords', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const before = await snapshot(repo);
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/config/runtime' })).statusCode, 401);
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', payload: {}, headers: { authorization: 'Bearer forged' } })).json().error.code, 'AUTH_INVALID_CREDENTIAL');
      assert.equal((await login(app, 'admin', 'wrong')).code, 'AUTH_INVALID_CREDENTIAL');
      assert.equal((await login(app, 'nobody', 'x')).code, 'AUTH_INVALID_CREDENTIAL');
      const malformed = await app.inject({ method: 'POST', url: '/admin/v1/login', payload: '{"user": "admin",', headers: { 'content-type': 'application/json' } });
      assert.equal(malformed.statusCode, 400);
      assert.equal(malformed.json().error.code, 'HTTP_BAD_REQUEST');

      await repo.createAdminUser({ name: 'audrey', passwordHash: await hashPassword('auditor-pass'), role: 'auditor', createdAt: h.clock.now() }, 'test', 'console');
      const withAuditor = await snapshot(repo);
      const auditor = await login(app, 'audrey', 'auditor-pass');
      assert.equal(auditor.status, 200);
      const asAuditor = { authorization: `Bearer ${auditor.token}` };
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/config/runtime', headers: asAuditor })).statusCode, 200);
      for (const [method, url, payload] of [['PUT', '/admin/v1/config/runtime', {}], ['POST', '/admin/v1/api-keys', { name: 'k' }], ['DELETE', '/admin/v1/api-keys/x', undefined]] as const) {
        const r = await app.inject({ method, url, headers: asAuditor, ...(payload ? { payload } : {}) });
        assert.equal(r.statusCode, 403, `${method} ${url}`);
        assert.equal(r.json().error.code, 'AUTH_FORBIDDEN');
      }

      const admin = await login(app, 'admin', h.password);
      const asAdmin = { authorization: `Bearer ${admin.token}` };
      const notJson = await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', headers: { ...asAdmin, 'content-type': 'application/json' }, payload: '{nope' });
      assert.equal(notJson.json().error.code, 'HTTP_BAD_REQUEST');
      const invalid = await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', headers: asAdmin, payload: { lockout: { maxFailures: 0, windowSeconds: 60 }, colour: 'red' } });
      assert.equal(invalid.statusCode, 400);
      assert.equal(invalid.json().error.code, 'CONSOLE_DOCUMENT_INVALID');
      assert.match(invalid.json().error.message, /unknown field "colour"/);
      assert.match(invalid.json().error.message, /\/lockout/);
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/api-keys', headers: asAdmin, payload: { keys: [] } })).json().error.code, 'CONSOLE_SECTION_MANAGED');
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/colours', headers: asAdmin, payload: {} })).json().error.code, 'CONSOLE_SECTION_UNKNOWN');
      assert.equal((await app.inject({ method: 'DELETE', url: '/admin/v1/api-keys/none', headers: asAdmin })).json().error.code, 'ADMIN_NOT_FOUND');
      assert.equal(await snapshot(repo), withAuditor, 'no refusal changed stored data');

      // Lock-out: three wrong passwords in a row, then even the right one is refused for a while.
      for (let i = 0; i < 3; i++) assert.equal((await login(app, 'admin', 'guess')).code, 'AUTH_INVALID_CREDENTIAL');
      const locked = await app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user: 'admin', password: h.password } });
      assert.equal(locked.statusCode, 429);
      assert.equal(locked.json().error.code, 'AUTH_LOCKED_OUT');
      assert.equal(await snapshot(repo), withAuditor);
      h.clock.advance(60_001);
      assert.equal((await login(app, 'admin', h.password)).status, 200, 'the lock-out ends');
      assert.notEqual(before, withAuditor);

      // Tokens expire.
      h.clock.advance(3_600_001);
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/audit', headers: asAdmin })).statusCode, 401);
    });

    it('parallel wrong passwords get no more guesses than the lock-out allows', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const answers = await Promise.all(Array.from({ length: 12 }, () => login(h.app, 'admin', 'guess')));
      const checked = answers.filter((a) => a.code === 'AUTH_INVALID_CREDENTIAL').length;
      assert.ok(checked <= 3, `${checked} passwords were checked; the limit is 3`);
      assert.equal(answers.filter((a) => a.code === 'AUTH_LOCKED_OUT').length, 12 - checked);
      assert.equal((await login(h.app, 'admin', h.password)).code, 'AUTH_LOCKED_OUT', 'locked once the checked guesses failed');
    });

    it('signs a token out (refused from then on, auditors too), throttles an address past its budget with Retry-After, and audits failed sign-ins per user and address', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const token = (await login(app, 'admin', h.password)).token!;
      const asAdmin = { authorization: `Bearer ${token}` };
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/cluster', headers: asAdmin })).statusCode, 200);
      const out = await app.inject({ method: 'POST', url: '/admin/v1/logout', headers: asAdmin });
      assert.equal(out.statusCode, 204);
      const after = await app.inject({ method: 'GET', url: '/admin/v1/cluster', headers: asAdmin });
      assert.deepEqual([after.statusCode, after.json().error.code], [401, 'AUTH_INVALID_CREDENTIAL']);
      assert.equal((await repo.getAdminToken(createHash('sha256').update(token).digest('hex')))!.revokedAt, h.clock.now(), 'only the hash is stored, marked signed out');
      await repo.createAdminUser({ name: 'audrey', passwordHash: await hashPassword('auditor-pass'), role: 'auditor', createdAt: h.clock.now() }, 'test', 'console');
      const auditor = { authorization: `Bearer ${(await login(app, 'audrey', 'auditor-pass')).token}` };
      assert.equal((await app.inject({ method: 'POST', url: '/admin/v1/logout', headers: auditor })).statusCode, 204, 'an auditor may sign out');

      // One address past its budget (100 here) is refused before any password check.
      const from = (remoteAddress: string, user: string) => app.inject({ method: 'POST', url: '/admin/v1/login', payload: { user, password: 'guess' }, remoteAddress });
      const answers = [];
      for (let i = 0; i < 101; i++) answers.push(await from('203.0.113.7', `made-up-${i}`));
      assert.equal(answers.filter((r) => r.statusCode === 401).length, 100);
      const throttled = answers.at(-1)!;
      assert.deepEqual([throttled.statusCode, throttled.json().error.code], [429, 'AUTH_LOGIN_THROTTLED']);
      assert.ok(Number(throttled.headers['retry-after']) >= 1, `Retry-After: ${throttled.headers['retry-after']}`);
      // Each failure is audited, aggregated, when the minute ends. Made-up names are counted per address (they cannot crowd real users' failures out); a
      // wrong password for a real user per (user, address).
      await login(app, 'admin', 'wrong');
      await (h.auth as unknown as { trail: { flush(): Promise<void> } }).trail.flush();
      const failed = await repo.listAudit({ action: 'auth.login-failed', limit: 1000 });
      assert.equal(failed.length, 2, JSON.stringify(failed));
      assert.ok(failed.some((r) => r.user === '-' && /101 failed sign-in\(s\) with unknown user names .* from 203\.0\.113\.7 .*unknown-user 100, throttled 1/.test(r.summary)), JSON.stringify(failed));
      assert.ok(failed.some((r) => r.user === 'admin' && /1 failed sign-in\(s\) of user admin from 127\.0\.0\.1 .*wrong-password 1/.test(r.summary)), JSON.stringify(failed));
      assert.ok(!failed.some((r) => r.summary.includes('guess')), 'no password in the trail');
    });

    it('saves sections as new versions with epoch and hash, audits each change, and lists versions', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app } = h;
      const asAdmin = { authorization: `Bearer ${(await login(app, 'admin', h.password)).token}` };
      const empty = (await app.inject({ method: 'GET', url: '/admin/v1/config/apis', headers: asAdmin })).json();
      assert.deepEqual(empty, { section: 'apis', version: null, epoch: null, hash: null, createdAt: null, author: null, content: { apis: [] } });
      const runtime = { lockout: { maxFailures: 5, windowSeconds: 300, lockSeconds: 900 }, rateLimits: { login: { capacity: 10, refillPerSecond: 1 } } };
      const v1 = (await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', headers: asAdmin, payload: runtime })).json();
      assert.equal(v1.version, 1);
      assert.equal(v1.author, 'admin');
      assert.match(v1.hash, /^[0-9a-f]{64}$/);
      assert.deepEqual(v1.content, runtime);
      const v2 = (await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', headers: asAdmin, payload: { ...runtime, defaultRateLimit: { capacity: 5, refillPerSecond: 0.5 } } })).json();
      assert.equal(v2.version, 2);
      const services = (await app.inject({ method: 'PUT', url: '/admin/v1/config/services', headers: asAdmin, payload: { sessions: { idleTimeoutSeconds: 600 } } })).json();
      assert.equal(services.version, 3);
      const listing = await app.inject({ method: 'GET', url: '/admin/v1/config/versions?section=runtime', headers: asAdmin });
      assert.equal(listing.statusCode, 200, listing.body);
      const versions = listing.json().versions;
      assert.deepEqual(versions.map((v: { version: number }) => v.version), [2, 1]);
      const audit = (await app.inject({ method: 'GET', url: '/admin/v1/audit?limit=3', headers: asAdmin })).json().records;
      assert.deepEqual(
        audit.map((r: { action: string; section: string; versionBefore: number | null; versionAfter: number; summary: string; user: string }) => [r.action, r.section, r.versionBefore, r.versionAfter, r.summary, r.user]),
        [
          ['config.save', 'services', null, 3, 'services: first version', 'admin'],
          ['config.save', 'runtime', 1, 2, 'runtime: added defaultRateLimit', 'admin'],
          ['config.save', 'runtime', null, 1, 'runtime: first version', 'admin'],
        ],
      );
    });

    it('manages schedules: invalid ones refused with a code and nothing changed; saved, listed, deleted', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const asAdmin = { authorization: `Bearer ${(await login(app, 'admin', h.password)).token}` };
      const before = await snapshot(repo);
      for (const [body, message] of [
        [{ cron: '99 * * * *', type: 'purge-expired' }, /cron/],
        [{ intervalSeconds: 5, type: 'email' }, /type/],
        [{ intervalSeconds: 5, type: 'http' }, /http.url/],
      ] as const) {
        const r = await app.inject({ method: 'PUT', url: '/admin/v1/schedules/nightly', headers: asAdmin, payload: body });
        assert.equal(r.statusCode, 400, r.body);
        assert.equal(r.json().error.code, 'SCHEDULE_INVALID');
        assert.match(r.json().error.message, message);
      }
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/schedules', headers: asAdmin, payload: { schedules: [] } })).json().error.code, 'CONSOLE_SECTION_MANAGED');
      assert.equal((await app.inject({ method: 'DELETE', url: '/admin/v1/schedules/none', headers: asAdmin })).json().error.code, 'SCHEDULE_NOT_FOUND');
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/schedules/none/runs', headers: asAdmin })).json().error.code, 'SCHEDULE_NOT_FOUND');
      assert.equal(await snapshot(repo), before, 'no refusal changed stored data');

      const saved = await app.inject({ method: 'PUT', url: '/admin/v1/schedules/nightly', headers: asAdmin, payload: { cron: '0 3 * * *', timezone: 'Europe/Paris', type: 'config-backup', backup: { directory: '/tmp/x' } } });
      assert.equal(saved.statusCode, 200, saved.body);
      assert.equal(saved.json().misfirePolicy, 'fire-and-proceed');
      const listed = (await app.inject({ method: 'GET', url: '/admin/v1/schedules', headers: asAdmin })).json().schedules;
      assert.deepEqual(listed.map((d: { id: string; job: unknown }) => [d.id, d.job]), [['nightly', null]]);
      assert.deepEqual((await app.inject({ method: 'GET', url: '/admin/v1/schedules/nightly/runs', headers: asAdmin })).json(), { runs: [] });
      assert.equal((await app.inject({ method: 'DELETE', url: '/admin/v1/schedules/nightly', headers: asAdmin })).statusCode, 204);
      assert.deepEqual((await repo.listAudit({ limit: 2 })).map((r) => r.summary), ['schedules: deleted nightly', 'schedules: created nightly (config-backup, cron 0 3 * * * Europe/Paris)']);
    });

    it('creates API keys shown once and stored as hashes, lists them without secrets, deletes them; serves its OpenAPI document', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const asAdmin = { authorization: `Bearer ${(await login(app, 'admin', h.password)).token}` };
      const created = await app.inject({ method: 'POST', url: '/admin/v1/api-keys', headers: asAdmin, payload: { name: 'shop frontend' } });
      assert.equal(created.statusCode, 201);
      const { id, key } = created.json();
      assert.equal(typeof key, 'string');
      assert.ok(key.length >= 32);
      const stored = JSON.stringify(await repo.getCurrentConfig());
      assert.ok(!stored.includes(key), 'the key itself is stored nowhere');
      const listed = (await app.inject({ method: 'GET', url: '/admin/v1/api-keys', headers: asAdmin })).json().keys;
      assert.deepEqual(listed.map((k: { id: string; name: string; scope: string }) => [k.id, k.name, k.scope]), [[id, 'shop frontend', 'runtime']]);
      const client = await app.inject({ method: 'POST', url: '/admin/v1/api-keys', headers: asAdmin, payload: { name: 'orders app', scope: 'client' } });
      assert.equal(client.json().scope, 'client');
      assert.equal((await app.inject({ method: 'POST', url: '/admin/v1/api-keys', headers: asAdmin, payload: { name: 'x', scope: 'root' } })).statusCode, 400);
      assert.equal((await app.inject({ method: 'DELETE', url: `/admin/v1/api-keys/${client.json().id}`, headers: asAdmin })).statusCode, 204);
      assert.ok(!JSON.stringify(listed).includes('hash'));
      assert.equal((await app.inject({ method: 'DELETE', url: `/admin/v1/api-keys/${id}`, headers: asAdmin })).statusCode, 204);
      assert.deepEqual((await app.inject({ method: 'GET', url: '/admin/v1/api-keys', headers: asAdmin })).json().keys, []);
      const audit = (await repo.listAudit({ limit: 4 })).map((r) => r.summary);
      assert.deepEqual(audit, [`api-keys: deleted key ${id}`, `api-keys: deleted key ${client.json().id}`, `api-keys: created key ${client.json().id} (orders app), scope client`, `api-keys: created key ${id} (shop frontend), scope runtime`]);

      // Promotion is for a replica: this node has none to offer, and says so.
      const promote = await app.inject({ method: 'POST', url: '/admin/v1/replica/promote', headers: asAdmin, payload: {} });
      assert.equal(promote.statusCode, 409);
      assert.equal(promote.json().error.code, 'CONSOLE_PROMOTE_REFUSED');

      const openapi = (await app.inject({ method: 'GET', url: '/admin/v1/openapi.json' })).json();
      assert.match(openapi.openapi, /^3\./);
      for (const path of ['/admin/v1/login', '/admin/v1/cluster', '/admin/v1/config/{section}', '/admin/v1/config/versions', '/admin/v1/audit', '/admin/v1/api-keys']) {
        assert.ok(openapi.paths[path], `${path} is documented`);
      }
      assert.ok(existsSync(join(h.dataDir, ADMIN_PASSWORD_FILE)));
    });

    it('shows secrets (client secrets, schedule headers) redacted to auditors in every answer, in clear to admins; a redacted document saved back keeps them', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const asAdmin = { authorization: `Bearer ${(await login(app, 'admin', h.password)).token}` };
      await repo.createAdminUser({ name: 'audrey', passwordHash: await hashPassword('auditor-pass'), role: 'auditor', createdAt: h.clock.now() }, 'test', 'console');
      const asAuditor = { authorization: `Bearer ${(await login(app, 'audrey', 'auditor-pass')).token}` };
      const web = { id: 'web', pathPrefix: '/app', login: { issuer: 'https://idp.example', clientId: 'cohort', clientSecret: 'login-s3cret' } };
      const saved = await app.inject({ method: 'PUT', url: '/admin/v1/config/apis', headers: asAdmin, payload: { apis: [web] } });
      assert.equal(saved.statusCode, 200, saved.body);
      assert.equal(saved.json().content.apis[0].login.clientSecret, 'login-s3cret', 'the admin who saved sees it');
      const hook = { intervalSeconds: 60, type: 'http', http: { url: 'https://ops.example/hook', headers: { Authorization: 'Bearer hdr-s3cret' } } };
      const put = await app.inject({ method: 'PUT', url: '/admin/v1/schedules/hook', headers: asAdmin, payload: hook });
      assert.equal(put.json().http.headers.Authorization, 'Bearer hdr-s3cret');

      // Every answer an auditor can get: sections, versions, schedules, the dry run.
      const answers = await Promise.all(
        ['/admin/v1/config/apis', '/admin/v1/config/schedules', '/admin/v1/config/versions/1', '/admin/v1/config/versions/2', '/admin/v1/schedules', '/admin/v1/config/versions', '/admin/v1/audit'].map((url) =>
          app.inject({ method: 'GET', url, headers: asAuditor }),
        ),
      );
      answers.push(await app.inject({ method: 'POST', url: '/admin/v1/apis/test', headers: asAuditor, payload: { request: { method: 'GET', url: '/app/x', sourceIp: '192.0.2.1', headers: {} } } }));
      for (const r of answers) {
        assert.equal(r.statusCode, 200, r.body);
        assert.ok(!/s3cret|cohort-sealed/.test(r.body), `an auditor read a secret: ${r.body.slice(0, 400)}`);
      }
      const auditorApis = answers[0]!.json();
      assert.equal(auditorApis.content.apis[0].login.clientSecret, '********');
      assert.equal(answers[4]!.json().schedules[0].http.headers.Authorization, '********');
      assert.equal(answers[3]!.json().content.schedules[0].http.headers.Authorization, '********');
      // Admins read them in clear, versions too.
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/config/versions/1', headers: asAdmin })).json().content.apis[0].login.clientSecret, 'login-s3cret');
      assert.equal((await app.inject({ method: 'GET', url: '/admin/v1/schedules', headers: asAdmin })).json().schedules[0].http.headers.Authorization, 'Bearer hdr-s3cret');

      // GET -> PUT of the redacted document (with a change beside the secret) keeps the stored secret.
      const apisVersion = (await repo.getConfigDocument('apis'))!;
      const roundTrip = await app.inject({ method: 'PUT', url: '/admin/v1/config/apis', headers: asAdmin, payload: auditorApis.content });
      assert.equal(roundTrip.statusCode, 200, roundTrip.body);
      assert.equal(roundTrip.json().content.apis[0].login.clientSecret, 'login-s3cret');
      const unchanged = (await repo.getConfigDocument('apis'))!;
      assert.deepEqual(unchanged.content, apisVersion.content, 'stored as it was: the same envelope');
      assert.equal((await repo.listAudit({ limit: 1 }))[0]!.summary, 'apis: saved unchanged');
      const moved = { apis: [{ ...auditorApis.content.apis[0], pathPrefix: '/app2' }] };
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/apis', headers: asAdmin, payload: moved })).json().content.apis[0].login.clientSecret, 'login-s3cret');
      const auditorHook = answers[4]!.json().schedules[0];
      const { job: _job, ...hookBack } = auditorHook;
      const hookRoundTrip = await app.inject({ method: 'PUT', url: '/admin/v1/schedules/hook', headers: asAdmin, payload: { ...hookBack, intervalSeconds: 120 } });
      assert.equal(hookRoundTrip.statusCode, 200, hookRoundTrip.body);
      assert.equal(hookRoundTrip.json().http.headers.Authorization, 'Bearer hdr-s3cret');

      // A placeholder where nothing is stored is refused with the place named; nothing changes.
      const before = await snapshot(repo);
      const newApi = await app.inject({ method: 'PUT', url: '/admin/v1/config/apis', headers: asAdmin, payload: { apis: [{ ...web, id: 'other', login: { ...web.login, clientSecret: '********' } }] } });
      assert.deepEqual([newApi.statusCode, newApi.json().error.code], [400, 'CONSOLE_DOCUMENT_INVALID']);
      assert.deepEqual(newApi.json().error.errors, ['/apis/0/login/clientSecret: "********" stands for the stored secret, but none is stored here; write the secret itself']);
      const newHeader = await app.inject({ method: 'PUT', url: '/admin/v1/schedules/hook', headers: asAdmin, payload: { ...hook, http: { ...hook.http, headers: { 'X-Other': '********' } } } });
      assert.deepEqual([newHeader.statusCode, newHeader.json().error.code], [400, 'SCHEDULE_INVALID']);
      assert.equal(await snapshot(repo), before);
    });

    it('dry-runs an access decision on the current or a proposed apis document, for admins and auditors, touching nothing', async (t) => {
      const h = await harness(t, open);
      if (!h) return;
      const { app, repo } = h;
      const asAdmin = { authorization: `Bearer ${(await login(app, 'admin', h.password)).token}` };
      await repo.createAdminUser({ name: 'audrey', passwordHash: await hashPassword('auditor-pass'), role: 'auditor', createdAt: h.clock.now() }, 'test', 'console');
      const asAuditor = { authorization: `Bearer ${(await login(app, 'audrey', 'auditor-pass')).token}` };
      // A bucket of one: a dry run that took a token would deny the second request.
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/runtime', headers: asAdmin, payload: { rateLimits: { tight: { capacity: 1, refillPerSecond: 0.001 } } } })).statusCode, 200);
      const orders = { id: 'orders', pathPrefix: '/orders', credentials: ['session', 'apiKey'], rateLimit: { policy: 'tight', by: 'ip' }, lockout: { by: 'ip' } };
      assert.equal((await app.inject({ method: 'PUT', url: '/admin/v1/config/apis', headers: asAdmin, payload: { apis: [orders] } })).statusCode, 200);
      const clientKey = (await app.inject({ method: 'POST', url: '/admin/v1/api-keys', headers: asAdmin, payload: { name: 'orders app', scope: 'client' } })).json();
      const before = await snapshot(repo);
      const dry = (headers: Record<string, string>, payload: Record<string, unknown>) => app.inject({ method: 'POST', url: '/admin/v1/apis/test', headers, payload });
      const request = (extra: Record<string, string> = {}, sourceIp = '192.0.2.9') => ({ method: 'GET', url: '/orders/5', sourceIp, headers: extra });

      assert.equal((await dry({}, { request: request() })).statusCode, 401);
      const none = (await dry(asAuditor, { request: request() })).json();
      assert.deepEqual([none.decision, none.status, none.reason, none.api, none.document], ['deny', 401, 'ACCESS_NO_CREDENTIAL', 'orders', 'current']);
      for (let i = 0; i < 3; i++) {
        const r = await dry(asAdmin, { request: request({ Cookie: 'cohort_session=s-123' }) });
        assert.equal(r.statusCode, 200);
        const body = r.json();
        assert.deepEqual([body.decision, body.reason, body.sessionId], ['allow', 'ACCESS_ALLOWED', 's-123'], `dry run ${i + 1} takes no rate-limit token`);
        assert.ok(body.skipped.some((s: string) => s.startsWith('session lookup')));
        assert.ok(body.skipped.includes('revocation check'));
        assert.ok(body.skipped.includes('rate limit (no token taken)'));
        assert.equal(body.upstreamHeaders['X-Cohort-Api'], 'orders');
      }
      const keyed = (await dry(asAdmin, { request: request({ 'X-Api-Key': clientKey.key }) })).json();
      assert.deepEqual([keyed.decision, keyed.apiKeyId, keyed.subject], ['allow', clientKey.id, `apiKey:${clientKey.id}`]);
      const badKey = (await dry(asAdmin, { request: request({ 'X-Api-Key': 'not-a-key' }) })).json();
      assert.deepEqual([badKey.decision, badKey.reason], ['deny', 'ACCESS_INVALID_CREDENTIAL']);
      assert.ok(badKey.skipped.includes('lock-out failure count (not recorded)'));

      const proposed = { apis: [{ ...orders, denyList: ['ip:203.0.113.0/24'] }, { id: 'open', pathPrefix: '/open', publicPaths: ['/open'], enforce: false, denyList: ['ip:198.51.100.1'] }] };
      const blocked = (await dry(asAdmin, { request: request({ Cookie: 'cohort_session=s-123' }, '203.0.113.7'), apis: proposed })).json();
      assert.deepEqual([blocked.decision, blocked.status, blocked.reason, blocked.document], ['deny', 403, 'ACCESS_DENIED_ADDRESS', 'proposed']);
      const current = (await dry(asAdmin, { request: request({ Cookie: 'cohort_session=s-123' }, '203.0.113.7') })).json();
      assert.equal(current.decision, 'allow', 'the proposal is not saved');
      const monitored = (await dry(asAdmin, { request: { method: 'POST', url: '/open/x', sourceIp: '198.51.100.1', headers: {} }, apis: proposed })).json();
      assert.deepEqual([monitored.decision, monitored.reason, monitored.wouldDeny], ['allow', 'ACCESS_ALLOWED', 'ACCESS_DENIED_ADDRESS']);
      const unmatched = (await dry(asAdmin, { request: { method: 'GET', url: '/elsewhere', sourceIp: '192.0.2.9', headers: {} } })).json();
      assert.deepEqual([unmatched.decision, unmatched.reason], ['deny', 'ACCESS_NO_API']);

      // JWTs: signature and claims are checked for real; single-use tokens are not taken.
      const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
      const withJwt = { apis: [{ id: 'tokens', pathPrefix: '/tokens', credentials: ['jwt'], singleUseTokens: true, jwt: { issuer: 'https://issuer.test', audiences: ['tokens'], keys: [{ ...(await exportJWK(publicKey)), kid: 'k1' }], algorithms: ['ES256'] } }] };
      const token = await new SignJWT({ sub: 'zoe', jti: 'once' }).setProtectedHeader({ alg: 'ES256', kid: 'k1' }).setIssuer('https://issuer.test').setAudience('tokens').setExpirationTime('5m').sign(privateKey);
      const asTokens = (bearerToken: string) => ({ request: { method: 'GET', url: '/tokens/1', sourceIp: '192.0.2.9', headers: { authorization: `Bearer ${bearerToken}` } }, apis: withJwt });
      for (let i = 0; i < 2; i++) {
        const ok = (await dry(asAdmin, asTokens(token))).json();
        assert.deepEqual([ok.decision, ok.subject, ok.upstreamHeaders['X-Cohort-Subject']], ['allow', 'zoe', 'zoe'], `single-use token, dry run ${i + 1}`);
        assert.ok(ok.skipped.includes('replay prevention (single-use token)'));
      }
      const forged = `${token.slice(0, -4)}${token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`;
      assert.deepEqual([(await dry(asAdmin, asTokens(forged))).json().reason], ['ACCESS_INVALID_CREDENTIAL']);

      const invalid = await dry(asAdmin, { request: request(), apis: { apis: [{ id: 'x' }] } });
      assert.equal(invalid.statusCode, 400);
      assert.equal(invalid.json().error.code, 'CONSOLE_DOCUMENT_INVALID');
      assert.equal((await dry(asAdmin, { request: { method: 'GET', url: '/orders' } })).statusCode, 400);
      assert.equal(await snapshot(repo), before, 'a dry run stores nothing');
      assert.ok((await app.inject({ method: 'GET', url: '/admin/v1/openapi.json' })).json().paths['/admin/v1/apis/test'].post, 'the dry run is in the OpenAPI document');
    });
  });
}

adminApiSuite('SQLite', sqliteRepository);
adminApiSuite('PostgreSQL', postgresRepository);
