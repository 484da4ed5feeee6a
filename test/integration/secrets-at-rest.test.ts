/**
 * Secrets at rest in a real repository, SQLite and PostgreSQL: what the console saves (the
 * client secrets of an API, the headers of an HTTP schedule) is in no stored row in clear,
 * neither in a document nor in the audit trail; the console and the scheduler read it back
 * in clear; a row changed by hand is refused with a coded error rather than used.
 */
import { describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { ManualClock } from '../../src/core/clock.js';
import { isCohortError } from '../../src/core/errors.js';
import { REDACTED, SecretKeyring } from '../../src/core/sealed-secrets.js';
import { ConfigService } from '../../src/console/config-service.js';
import { openRepository } from '../../src/repository/open-repository.js';
import type { Repository } from '../../src/repository/repository.js';
import { savedSchedules, Scheduler } from '../../src/scheduler/scheduler.js';
import { silentLogger } from '../../src/core/logger.js';
import { createServer } from 'node:http';
import { waitUntil } from '../helpers/cluster.js';
import { postgresUrlOrSkip, uniquePostgresSchemaUrl, withPostgres } from '../helpers/services.js';
import { tmpDir } from '../helpers/tmp.js';

/** A repository and a way to read and change its rows as stored, bypassing Cohort. */
interface RawRepository {
  repo: Repository;
  /** Every stored text of the documents and audit tables. */
  rows(): Promise<string[]>;
  /** Sets the content column of document `version`. */
  setContent(version: number, content: string): Promise<void>;
}

type Open = (t: TestContext, clock: ManualClock) => Promise<RawRepository | undefined>;

const openSqlite: Open = async (t, clock) => {
  const file = join(tmpDir(t), 'repository.db');
  const repo = await openRepository(`sqlite:${file}`, { clock });
  t.after(() => repo.close());
  const raw = (fn: (db: Database.Database) => unknown) => {
    const db = new Database(file);
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  return {
    repo,
    rows: async () => raw((db) => [...db.prepare('SELECT content FROM config_documents').all(), ...db.prepare('SELECT summary FROM audit').all()].map((r) => JSON.stringify(r))) as string[],
    setContent: async (version, content) => void raw((db) => db.prepare('UPDATE config_documents SET content = ? WHERE version = ?').run(content, version)),
  };
};

const openPostgres: Open = async (t, clock) => {
  const baseUrl = await postgresUrlOrSkip(t);
  if (baseUrl === undefined) return undefined;
  const { url, schema, dropSchema } = uniquePostgresSchemaUrl(baseUrl);
  const repo = await openRepository(url, { clock });
  t.after(async () => {
    await repo.close();
    await dropSchema();
  });
  return {
    repo,
    rows: () =>
      withPostgres(baseUrl, async (c) => {
        const docs = await c.query(`SELECT content FROM "${schema}".config_documents`);
        const audit = await c.query(`SELECT summary FROM "${schema}".audit`);
        return [...docs.rows, ...audit.rows].map((r) => JSON.stringify(r));
      }),
    setContent: (version, content) => withPostgres(baseUrl, async (c) => void (await c.query(`UPDATE "${schema}".config_documents SET content = $1 WHERE version = $2`, [content, version]))),
  };
};

const admin = { user: 'ops', role: 'admin' as const };
const SECRETS = ['login-s3cret-value', 'upstream-s3cret-value', 'Bearer header-s3cret-value'];

function secretsSuite(name: string, open: Open): void {
  describe(`secrets at rest on ${name}`, () => {
    it('stores no secret in clear, in any document or audit row, and reads each back in clear', async (t) => {
      const clock = new ManualClock(1_800_000_000_000);
      const raw = await open(t, clock);
      if (!raw) return;
      const ring = new SecretKeyring([randomBytes(32)]);
      const config = new ConfigService(raw.repo, clock, 'console', () => true, ring);
      await config.put('apis', {
        apis: [
          {
            id: 'web',
            pathPrefix: '/app',
            upstream: 'http://127.0.0.1:9',
            login: { issuer: 'https://idp.example', clientId: 'cohort', clientSecret: SECRETS[0] },
            upstreamToken: { tokenEndpoint: 'https://idp.example/token', clientId: 'cohort', clientSecret: SECRETS[1], grant: 'client-credentials' },
          },
        ],
      }, admin);
      const schedule = await config.putSchedule('nightly', { intervalSeconds: 3600, type: 'http', http: { url: 'https://ops.example/hook', headers: { Authorization: SECRETS[2] } } }, admin);
      assert.equal(schedule.http!.headers!.Authorization, SECRETS[2], 'the saved schedule is answered in clear to the admin who saved it');

      const rows = await raw.rows();
      assert.ok(rows.length >= 4, `${rows.length} rows`);
      for (const row of rows) for (const secret of SECRETS) assert.ok(!row.includes(secret), `a stored row holds ${secret}: ${row.slice(0, 300)}`);
      assert.ok(rows.some((r) => r.includes('$cohort-sealed$v1$')), 'the secrets are stored sealed');

      const apis = (await config.get('apis', 'clear')).content as { apis: Array<{ login: { clientSecret: string }; upstreamToken: { clientSecret: string } }> };
      assert.equal(apis.apis[0]!.login.clientSecret, SECRETS[0]);
      assert.equal(apis.apis[0]!.upstreamToken.clientSecret, SECRETS[1]);
      const [saved] = await savedSchedules(raw.repo, ring);
      assert.equal(saved!.def.http!.headers!.Authorization, SECRETS[2], 'the scheduler opens the headers it sends');
      assert.equal(saved!.unopened, undefined);
      // A scheduler node without the key keeps the job's identity but cannot open it.
      const [keyless] = await savedSchedules(raw.repo, new SecretKeyring());
      assert.equal(keyless!.hash, saved!.hash, 'the same job on every node, key or no key');
      assert.match(keyless!.unopened!, /^SECRET_KEY_UNKNOWN/);
      assert.equal(keyless!.def.http!.headers!.Authorization, REDACTED);
    });

    it('a stored secret changed by hand is refused (SECRET_TAMPERED) where it would be used; the redacted view still reads', async (t) => {
      const clock = new ManualClock(1_800_000_000_000);
      const raw = await open(t, clock);
      if (!raw) return;
      const ring = new SecretKeyring([randomBytes(32)]);
      const config = new ConfigService(raw.repo, clock, 'console', () => true, ring);
      const doc = await config.put('apis', { apis: [{ id: 'web', pathPrefix: '/app', login: { issuer: 'https://idp.example', clientId: 'cohort', clientSecret: SECRETS[0] } }] }, admin);
      const stored = JSON.stringify(doc.content);
      const envelope = /"(\$cohort-sealed\$[^"]+)"/.exec(stored)![1]!;
      const last = envelope.at(-2) === 'A' ? 'B' : 'A';
      await raw.setContent(doc.version, stored.replace(envelope, `${envelope.slice(0, -2)}${last}${envelope.at(-1)}`));
      await assert.rejects(config.get('apis', 'clear'), (err) => isCohortError(err, 'SECRET_TAMPERED'));
      // Another API's client secret moved in its place: also refused.
      await raw.setContent(doc.version, stored.replace('"web"', '"other"'));
      await assert.rejects(config.get('apis', 'clear'), (err) => isCohortError(err, 'SECRET_TAMPERED'));
      const redacted = (await config.get('apis', 'redacted')).content as { apis: Array<{ login: { clientSecret: string } }> };
      assert.equal(redacted.apis[0]!.login.clientSecret, REDACTED);
      // Opened with another key: SECRET_KEY_UNKNOWN.
      await raw.setContent(doc.version, stored);
      const elsewhere = new ConfigService(raw.repo, clock, 'console', () => true, new SecretKeyring([randomBytes(32)]));
      await assert.rejects(elsewhere.get('apis', 'clear'), (err) => isCohortError(err, 'SECRET_KEY_UNKNOWN'));
    });
  });
}

describe('secrets at rest: the scheduler', () => {
  it('a scheduler node without the key never claims a schedule whose headers it cannot open; one with the key sends them in clear', async (t) => {
    const seen: Array<string | undefined> = [];
    const server = createServer((req, res) => {
      seen.push(req.headers.authorization);
      res.writeHead(204).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    t.after(() => new Promise<void>((r) => server.close(() => r())));
    const clock = new ManualClock(1_800_000_000_000);
    const raw = (await openSqlite(t, clock))!;
    const ring = new SecretKeyring([randomBytes(32)]);
    const config = new ConfigService(raw.repo, clock, 'console', () => true, ring);
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/hook`;
    await config.putSchedule('hook', { intervalSeconds: 1, type: 'http', http: { url, headers: { Authorization: 'Bearer hdr-s3cret' } } }, admin);
    await config.putSchedule('purge', { intervalSeconds: 1, type: 'purge-expired' }, admin);
    const settings = { checkInIntervalMs: 1000, checkInOffsetMs: 0, instanceTimeoutMs: 30_000, instanceRecoveryTimeoutMs: 30_000, pollIntervalMs: 100, runHistory: 100 };
    const scheduler = (nodeId: string, secrets: SecretKeyring) => {
      const s = new Scheduler({ repository: raw.repo, clock, log: silentLogger(), nodeId, settings, secrets, jobs: { purgeExpired: async () => 0 } });
      t.after(() => s.stop());
      return s;
    };
    const runsOf = async (id: string) => (await raw.repo.schedulerRuns(id, 100)).map((r) => r.node);
    const tick = async () => {
      clock.advance(100);
      await new Promise((r) => setTimeout(r, 5));
    };

    await scheduler('engine-1', new SecretKeyring()).start();
    // It runs what it can open (purge), and leaves the job of the other in the table, unclaimed.
    await waitUntil(async () => (await tick(), (await runsOf('purge')).length), (n) => n >= 3, 20_000, 1);
    assert.deepEqual(await runsOf('hook'), []);
    assert.deepEqual(seen, []);
    const job = (await raw.repo.schedulerJobs()).find((j) => j.scheduleId === 'hook')!;
    assert.equal(job.state, 'idle');
    assert.ok(job.nextFireAt <= clock.now(), 'due, and left for a node that holds the key');

    await scheduler('console', ring).start();
    await waitUntil(async () => (await tick(), seen.length), (n) => n >= 2, 20_000, 1);
    assert.ok(seen.every((h) => h === 'Bearer hdr-s3cret'), JSON.stringify(seen));
    assert.ok((await runsOf('hook')).every((node) => node === 'console'));
  });
});

secretsSuite('SQLite', openSqlite);
secretsSuite('PostgreSQL', openPostgres);
