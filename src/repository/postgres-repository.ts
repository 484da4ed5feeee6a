/**
 * The PostgreSQL repository (pg Pool), for consoles and schedulers on several hosts.
 *
 * Saves serialise on the single config_head row (SELECT ... FOR UPDATE): the version a save
 * takes is the head it read under that lock, so concurrent saves from any number of hosts get
 * distinct consecutive versions. Migrations serialise on a transaction-scoped advisory lock,
 * so several nodes starting at once migrate the schema exactly once.
 */
import pg from 'pg';
import { systemClock, type Clock } from '../core/clock.js';
import { CohortError, isCohortError } from '../core/errors.js';
import { pendingMigrations, SCHEMA_MIGRATIONS_TABLE } from './migrations.js';
import { parsePostgresUrl, scrub, type PostgresTarget } from './postgres-url.js';
import {
  assertCount,
  LATEST_PER_SECTION_SQL,
  listLimit,
  RELEASE_CLAIM,
  runValues,
  listAuditQuery,
  listVersionsQuery,
  planSave,
  type Head,
} from './queries.js';
import type {
  ClaimPlan,
  SchedulerCheckIn,
  SchedulerClaim,
  SchedulerJob,
  SchedulerRun,
  AdminToken,
  AdminUser,
  AuditInput,
  AuditRecord,
  ConfigDocument,
  ConfigVersionSummary,
  CurrentConfig,
  ListAuditOptions,
  ListConfigVersionsOptions,
  Repository,
  SaveConfigInput,
} from './repository.js';
import {
  AUDIT_ALL_COLUMNS,
  AUDIT_INSERT_COLUMNS,
  auditRecordValues,
  auditValues,
  toAdminToken,
  toAdminUser,
  toCheckIn,
  toJob,
  toRun,
  RUN_COLUMNS,
  type CheckInRow,
  type JobRow,
  type RunRow,
  type AdminTokenRow,
  type AdminUserRow,
  toAudit,
  toDocument,
  toHead,
  toSummary,
  type AuditRow,
  type DocumentRow,
  type HeadRow,
  type SummaryRow,
} from './rows.js';

export interface PostgresRepositoryOptions {
  clock?: Clock;
}

/** How long opening a connection may take before the repository counts as unavailable. */
const CONNECT_TIMEOUT_MS = 10_000;

/**
 * How long the server lets a transaction of ours wait for its next statement before it ends the
 * session. Between the statements of a Cohort transaction the node only computes, so a
 * transaction idle this long belongs to a node that is stopped (a pause, a frozen VM) or cut
 * off: without a limit its row locks (a scheduler sync locks every job, a save the
 * configuration head) would stop every other node's scheduler and saves until it came back.
 * Its own next statement then fails as REPO_UNAVAILABLE and it goes on with a new connection.
 * Set with SET LOCAL in each transaction (in the same round trip as its BEGIN): it applies to
 * Cohort's transactions only, leaves the role's and database's settings alone, and needs no
 * startup parameter, which a pooler such as PgBouncer may refuse.
 */
const TRANSACTION_IDLE_LIMIT_MS = 5000;

const placeholder = (n: number): string => `$${n}`;

type Client = pg.PoolClient;

export class PostgresRepository implements Repository {
  private readonly target: PostgresTarget;
  private readonly pool: pg.Pool;
  private readonly clock: Clock;
  private closed = false;

  /** Parses `url` (REPO_URL_INVALID when malformed); connects lazily, on first use. */
  constructor(url: string, opts: PostgresRepositoryOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    this.target = parsePostgresUrl(url);
    this.pool = new pg.Pool({
      connectionString: this.target.connectionString,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      // How the sessions show in pg_stat_activity, unless the URL names them (application_name).
      fallback_application_name: 'cohort',
      // A server option, so every pooled connection starts in the schema: no per-checkout SET.
      ...(this.target.schema === undefined ? {} : { options: `-c search_path="${this.target.schema}"` }),
    });
    // An idle client whose server went away is dropped by the pool; the next checkout
    // reconnects or reports REPO_UNAVAILABLE. Without a listener the error would crash the node.
    this.pool.on('error', () => undefined);
  }

  async migrate(): Promise<void> {
    const schema = this.target.schema;
    await this.transaction(async (c) => {
      await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`cohort.migrate:${schema ?? ''}`]);
      // Checked first because CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege on the
      // database even when the schema exists, which a least-privilege role may not have.
      if (schema !== undefined) {
        const found = await c.query('SELECT 1 FROM pg_namespace WHERE nspname = $1', [schema]);
        if (found.rowCount === 0) await c.query(`CREATE SCHEMA "${schema}"`);
      }
      await c.query(SCHEMA_MIGRATIONS_TABLE);
      const { v } = await one<{ v: number | null }>(c, 'SELECT MAX(version) AS v FROM schema_migrations');
      for (const m of pendingMigrations(v ?? 0)) {
        await c.query(m.postgres);
        await c.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [
          m.version,
          m.name,
          this.clock.now(),
        ]);
      }
    });
  }

  async saveConfigDocument(input: SaveConfigInput): Promise<ConfigDocument> {
    return this.transaction(async (c) => {
      const head = await readHead(c, 'FOR UPDATE');
      const { doc, contentText } = planSave(head, input, this.clock.now());
      const { v } = await one<{ v: string | null }>(
        c,
        'SELECT MAX(version) AS v FROM config_documents WHERE section = $1',
        [doc.section],
      );
      await c.query(
        `INSERT INTO config_documents (version, section, epoch, content, hash, created_at, author, node)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [doc.version, doc.section, doc.epoch, contentText, doc.hash, doc.createdAt, doc.author, doc.node],
      );
      await c.query('UPDATE config_head SET version = $1, epoch = $2 WHERE id = 1', [doc.version, doc.epoch]);
      await this.insertAudit(c, {
        at: doc.createdAt,
        user: doc.author,
        node: doc.node,
        action: 'config.save',
        section: doc.section,
        versionBefore: v === null ? null : Number(v),
        versionAfter: doc.version,
        summary: input.summary,
      });
      return doc;
    });
  }

  async getConfigDocument(section: string, version?: number): Promise<ConfigDocument | undefined> {
    const { rows } = await this.withClient((c) =>
      version === undefined
        ? c.query<DocumentRow>('SELECT * FROM config_documents WHERE section = $1 ORDER BY version DESC LIMIT 1', [
            section,
          ])
        : c.query<DocumentRow>('SELECT * FROM config_documents WHERE section = $1 AND version = $2', [
            section,
            version,
          ]),
    );
    return rows[0] && toDocument(rows[0]);
  }

  async getCurrentConfig(): Promise<CurrentConfig> {
    // One snapshot for the head and the documents, so a concurrent save cannot split them.
    return this.transaction(async (c) => {
      const head = await readHead(c, '');
      const { rows } = await c.query<DocumentRow>(LATEST_PER_SECTION_SQL);
      return { ...head, sections: Object.fromEntries(rows.map((r) => [r.section, toDocument(r)])) };
    }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  }

  async listConfigVersions(opts: ListConfigVersionsOptions = {}): Promise<ConfigVersionSummary[]> {
    const q = listVersionsQuery(opts, placeholder);
    const { rows } = await this.withClient((c) => c.query<SummaryRow>(q.sql, q.params));
    return rows.map(toSummary);
  }

  async listConfigDocuments(afterVersion: number, limit: number): Promise<ConfigDocument[]> {
    const { rows } = await this.withClient((c) => c.query<DocumentRow>('SELECT * FROM config_documents WHERE version > $1 ORDER BY version LIMIT $2', [afterVersion, listLimit(limit)]));
    return rows.map(toDocument);
  }

  async raiseEpoch(minEpoch: number, author: string, node: string, summary: string): Promise<number> {
    assertCount('minEpoch', minEpoch);
    return this.transaction(async (c) => {
      const head = await readHead(c, 'FOR UPDATE');
      const epoch = Math.max(head.epoch, minEpoch);
      await c.query('UPDATE config_head SET epoch = $1 WHERE id = 1', [epoch]);
      await this.insertAudit(c, {
        user: author,
        node,
        action: 'config.epoch',
        versionBefore: head.version,
        versionAfter: head.version,
        summary,
      });
      return epoch;
    });
  }

  async appendAudit(rec: AuditInput): Promise<AuditRecord> {
    return this.withClient((c) => this.insertAudit(c, rec));
  }

  async listAudit(opts: ListAuditOptions = {}): Promise<AuditRecord[]> {
    const q = listAuditQuery(opts, placeholder);
    const { rows } = await this.withClient((c) => c.query<AuditRow>(q.sql, q.params));
    return rows.map(toAudit);
  }

  async getAdminUser(name: string): Promise<AdminUser | undefined> {
    const { rows } = await this.withClient((c) => c.query<AdminUserRow>('SELECT * FROM admin_users WHERE name = $1', [name]));
    return rows[0] && toAdminUser(rows[0]);
  }

  async listAdminUsers(): Promise<AdminUser[]> {
    const { rows } = await this.withClient((c) => c.query<AdminUserRow>('SELECT * FROM admin_users ORDER BY name'));
    return rows.map(toAdminUser);
  }

  async createAdminUser(user: AdminUser, author: string, node: string): Promise<boolean> {
    return this.transaction(async (c) => {
      const { rowCount } = await c.query(
        'INSERT INTO admin_users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING',
        [user.name, user.passwordHash, user.role, user.createdAt],
      );
      if (rowCount === 0) return false;
      await this.insertAudit(c, { user: author, node, action: 'user.create', summary: `admin user ${user.name} (${user.role})` });
      return true;
    });
  }

  async saveAdminToken(t: AdminToken): Promise<void> {
    await this.withClient((c) =>
      c.query('INSERT INTO admin_tokens (token_hash, user_name, role, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)', [t.hash, t.user, t.role, t.createdAt, t.expiresAt, t.revokedAt]),
    );
  }

  async getAdminToken(hash: string): Promise<AdminToken | undefined> {
    const { rows } = await this.withClient((c) => c.query<AdminTokenRow>('SELECT * FROM admin_tokens WHERE token_hash = $1', [hash]));
    return rows[0] && toAdminToken(rows[0]);
  }

  async revokeAdminToken(hash: string, at: number): Promise<boolean> {
    const { rowCount } = await this.withClient((c) => c.query('UPDATE admin_tokens SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL', [at, hash]));
    return (rowCount ?? 0) > 0;
  }

  async listAdminTokens(now: number): Promise<AdminToken[]> {
    const { rows } = await this.withClient((c) => c.query<AdminTokenRow>('SELECT * FROM admin_tokens WHERE expires_at > $1 ORDER BY created_at, token_hash', [now]));
    return rows.map(toAdminToken);
  }

  async importAdminTokens(tokens: readonly AdminToken[]): Promise<number> {
    return this.transaction(async (c) => {
      for (const t of tokens) {
        await c.query(
          `INSERT INTO admin_tokens (token_hash, user_name, role, created_at, expires_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (token_hash) DO UPDATE SET revoked_at = COALESCE(admin_tokens.revoked_at, excluded.revoked_at)`,
          [t.hash, t.user, t.role, t.createdAt, t.expiresAt, t.revokedAt],
        );
      }
      return tokens.length;
    });
  }

  async deleteExpiredAdminTokens(now: number): Promise<number> {
    const { rowCount } = await this.withClient((c) => c.query('DELETE FROM admin_tokens WHERE expires_at <= $1', [now]));
    return rowCount ?? 0;
  }

  async importConfigDocuments(docs: readonly ConfigDocument[], epoch: number): Promise<number> {
    return this.transaction(async (c) => {
      const head = await readHead(c, 'FOR UPDATE');
      let stored = 0;
      for (const d of docs) {
        const { rowCount } = await c.query(
          `INSERT INTO config_documents (version, section, epoch, content, hash, created_at, author, node)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (version) DO UPDATE SET section = excluded.section, epoch = excluded.epoch, content = excluded.content,
           hash = excluded.hash, created_at = excluded.created_at, author = excluded.author, node = excluded.node
         WHERE config_documents.epoch < excluded.epoch`,
          [d.version, d.section, d.epoch, JSON.stringify(d.content), d.hash, d.createdAt, d.author, d.node],
        );
        stored += rowCount ?? 0;
      }
      const version = Math.max(head.version, ...docs.map((d) => d.version));
      await c.query('UPDATE config_head SET version = $1, epoch = $2 WHERE id = 1', [version, Math.max(head.epoch, epoch)]);
      return stored;
    });
  }

  async importAdminUsers(users: readonly AdminUser[]): Promise<number> {
    return this.transaction(async (c) => {
      for (const u of users) {
        await c.query(
          `INSERT INTO admin_users (name, password_hash, role, created_at) VALUES ($1, $2, $3, $4)
           ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role`,
          [u.name, u.passwordHash, u.role, u.createdAt],
        );
      }
      return users.length;
    });
  }

  async importAudit(records: readonly AuditRecord[]): Promise<number> {
    return this.transaction(async (c) => {
      let stored = 0;
      for (const r of records) {
        const { rowCount } = await c.query(`INSERT INTO audit (${AUDIT_ALL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`, auditRecordValues(r));
        stored += rowCount ?? 0;
      }
      // Ids given explicitly do not move the sequence: after a promotion, new records follow on.
      await c.query(`SELECT setval(pg_get_serial_sequence('audit', 'id'), GREATEST((SELECT COALESCE(MAX(id), 0) FROM audit), 1))`);
      return stored;
    });
  }

  async truncateHistory(afterVersion: number, afterAuditId: number): Promise<{ documents: number; audit: number }> {
    assertCount('afterVersion', afterVersion);
    assertCount('afterAuditId', afterAuditId);
    return this.transaction(async (c) => {
      await readHead(c, 'FOR UPDATE');
      const documents = (await c.query('DELETE FROM config_documents WHERE version > $1', [afterVersion])).rowCount ?? 0;
      const audit = (await c.query('DELETE FROM audit WHERE id > $1', [afterAuditId])).rowCount ?? 0;
      await c.query('UPDATE config_head SET version = LEAST(version, $1) WHERE id = 1', [afterVersion]);
      // Ids follow on from the records kept, as they do after an import, should this node be
      // promoted later.
      await c.query(`SELECT setval(pg_get_serial_sequence('audit', 'id'), GREATEST((SELECT COALESCE(MAX(id), 0) FROM audit), 1))`);
      return { documents, audit };
    });
  }

  // ---- scheduler (migration 3)

  async schedulerCheckIn(node: string, at: number, periodMs: number): Promise<void> {
    await this.withClient((c) =>
      c.query('INSERT INTO scheduler_checkins (node, at, period_ms) VALUES ($1, $2, $3) ON CONFLICT (node) DO UPDATE SET at = excluded.at, period_ms = excluded.period_ms', [node, at, periodMs]),
    );
  }

  async schedulerCheckIns(): Promise<SchedulerCheckIn[]> {
    const { rows } = await this.withClient((c) => c.query<CheckInRow>('SELECT * FROM scheduler_checkins ORDER BY node'));
    return rows.map(toCheckIn);
  }

  async schedulerSyncJobs(jobs: ReadonlyArray<{ scheduleId: string; definitionHash: string; firstFireAt: number }>): Promise<void> {
    await this.transaction(async (c) => {
      const { rows } = await c.query<JobRow>('SELECT * FROM scheduler_jobs FOR UPDATE');
      const existing = new Map(rows.map((r) => [r.schedule_id, r]));
      for (const j of jobs) {
        const row = existing.get(j.scheduleId);
        existing.delete(j.scheduleId);
        if (!row) {
          await c.query("INSERT INTO scheduler_jobs (schedule_id, definition_hash, next_fire_at, state) VALUES ($1, $2, $3, 'idle') ON CONFLICT (schedule_id) DO NOTHING", [j.scheduleId, j.definitionHash, j.firstFireAt]);
        } else if (row.definition_hash !== j.definitionHash) {
          await c.query('UPDATE scheduler_jobs SET definition_hash = $1, next_fire_at = $2 WHERE schedule_id = $3', [j.definitionHash, j.firstFireAt, j.scheduleId]);
        }
      }
      // A job still claimed or running keeps its row (and its fencing) until the run is over.
      for (const id of existing.keys()) await c.query("DELETE FROM scheduler_jobs WHERE schedule_id = $1 AND state = 'idle'", [id]);
    });
  }

  async schedulerJobs(): Promise<SchedulerJob[]> {
    const { rows } = await this.withClient((c) => c.query<JobRow>('SELECT * FROM scheduler_jobs ORDER BY schedule_id'));
    return rows.map(toJob);
  }

  async schedulerClaimDue(node: string, now: number, limit: number, plan: (scheduleId: string, fireAt: number) => ClaimPlan): Promise<SchedulerClaim[]> {
    // SKIP LOCKED: jobs another node is claiming right now are left to it, not waited for.
    return this.transaction(async (c) => {
      const { rows: due } = await c.query<JobRow>(
        "SELECT * FROM scheduler_jobs WHERE state = 'idle' AND next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2 FOR UPDATE SKIP LOCKED",
        [now, limit],
      );
      const claims: SchedulerClaim[] = [];
      for (const row of due) {
        const fireAt = Number(row.next_fire_at);
        const p = plan(row.schedule_id, fireAt);
        if (!p.fire) {
          await c.query('UPDATE scheduler_jobs SET next_fire_at = $1 WHERE schedule_id = $2', [p.nextFireAt, row.schedule_id]);
          continue;
        }
        const { last } = await one<{ last: string }>(c, 'UPDATE scheduler_tokens SET last = last + 1 WHERE id = 1 RETURNING last');
        const token = Number(last);
        await c.query('UPDATE scheduler_jobs SET next_fire_at = $1, state = $2, node = $3, token = $4, fire_at = $5, claimed_at = $6, started_at = NULL WHERE schedule_id = $7', [
          p.nextFireAt,
          p.concurrent ? 'idle' : 'claimed',
          p.concurrent ? null : node,
          p.concurrent ? null : token,
          p.concurrent ? null : fireAt,
          p.concurrent ? null : now,
          row.schedule_id,
        ]);
        claims.push({ scheduleId: row.schedule_id, fireAt, token });
      }
      return claims;
    });
  }

  async schedulerStart(scheduleId: string, token: number, at: number): Promise<boolean> {
    const { rowCount } = await this.withClient((c) =>
      c.query("UPDATE scheduler_jobs SET state = 'running', started_at = $1 WHERE schedule_id = $2 AND token = $3 AND state = 'claimed'", [at, scheduleId, token]),
    );
    return rowCount === 1;
  }

  async schedulerComplete(run: Omit<SchedulerRun, 'id'>, keepRuns: number, concurrent: boolean): Promise<boolean> {
    return this.transaction(async (c) => {
      const accepted =
        concurrent ||
        (await c.query(`UPDATE scheduler_jobs SET ${RELEASE_CLAIM} WHERE schedule_id = $1 AND token = $2`, [run.scheduleId, run.token])).rowCount === 1;
      await c.query(`INSERT INTO scheduler_runs (${RUN_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, runValues(run, accepted));
      await c.query('DELETE FROM scheduler_runs WHERE schedule_id = $1 AND id NOT IN (SELECT id FROM scheduler_runs WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2)', [run.scheduleId, keepRuns]);
      return accepted;
    });
  }

  async schedulerRecover(nodes: readonly string[], decide: (job: SchedulerJob) => number): Promise<SchedulerJob[]> {
    if (nodes.length === 0) return [];
    return this.transaction(async (c) => {
      const { rows } = await c.query<JobRow>("SELECT * FROM scheduler_jobs WHERE state <> 'idle' AND node = ANY($1) FOR UPDATE", [[...nodes]]);
      const jobs = rows.map(toJob);
      for (const job of jobs) {
        await c.query(`UPDATE scheduler_jobs SET ${RELEASE_CLAIM}, next_fire_at = $1 WHERE schedule_id = $2`, [decide(job), job.scheduleId]);
      }
      return jobs;
    });
  }

  async schedulerRuns(scheduleId: string, limit: number): Promise<SchedulerRun[]> {
    const { rows } = await this.withClient((c) => c.query<RunRow>('SELECT * FROM scheduler_runs WHERE schedule_id = $1 ORDER BY id DESC LIMIT $2', [scheduleId, limit]));
    return rows.map(toRun);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.pool.end();
  }

  private async insertAudit(c: Client, rec: AuditInput): Promise<AuditRecord> {
    return toAudit(
      await one<AuditRow>(
        c,
        `INSERT INTO audit (${AUDIT_INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *`,
        auditValues(rec, this.clock.now()),
      ),
    );
  }

  /** Runs `fn` between `begin` and COMMIT on one client, idle for at most TRANSACTION_IDLE_LIMIT_MS at a time; ROLLBACK on any failure. */
  private transaction<T>(fn: (c: Client) => Promise<T>, begin = 'BEGIN'): Promise<T> {
    return this.withClient(async (c) => {
      await c.query(`${begin}; SET LOCAL idle_in_transaction_session_timeout = ${TRANSACTION_IDLE_LIMIT_MS}`);
      try {
        const result = await fn(c);
        await c.query('COMMIT');
        return result;
      } catch (err) {
        // If ROLLBACK itself fails, its error (the connection's) replaces `err`, so the
        // client is discarded below rather than returned to the pool mid-transaction.
        await c.query('ROLLBACK');
        throw err;
      }
    });
  }

  /**
   * Runs `fn` on a pooled client. Lost connections become REPO_UNAVAILABLE; a client that
   * failed for any reason other than a refusal of ours is discarded, not reused.
   */
  private async withClient<T>(fn: (c: Client) => Promise<T>): Promise<T> {
    let client: Client;
    try {
      client = await this.pool.connect();
    } catch (err) {
      throw this.unavailable(err);
    }
    // The server may end the session while it is checked out (the idle-transaction limit, an
    // operator's pg_terminate_backend, a restart): the client then emits 'error' between
    // queries, which would crash the node without a listener (the pool listens only to idle
    // clients). Its next query fails; the loss, not that failure, is what is reported.
    let lost: unknown;
    const onLost = (err: unknown): void => {
      // The first is the server's reason (25P03, 57P01, ...); "Connection terminated" follows.
      lost ??= err;
    };
    client.on('error', onLost);
    let failure: unknown;
    try {
      return await fn(client);
    } catch (err) {
      failure = err;
      throw lost !== undefined || isConnectionError(err) ? this.unavailable(lost ?? err) : err;
    } finally {
      client.off('error', onLost);
      client.release(lost !== undefined || (failure !== undefined && !isCohortError(failure)));
    }
  }

  private unavailable(err: unknown): CohortError {
    const reason = scrub(err instanceof Error ? err.message : String(err), this.target.secrets);
    return new CohortError(
      'REPO_UNAVAILABLE',
      `Cannot reach the PostgreSQL repository at ${this.target.where}: ${reason}`,
      { where: this.target.where },
      { cause: err },
    );
  }
}

async function one<T extends pg.QueryResultRow>(c: Client, sql: string, params: unknown[] = []): Promise<T> {
  const { rows } = await c.query<T>(sql, params);
  if (rows[0] === undefined) throw new Error(`Expected a row from: ${sql}`);
  return rows[0];
}

async function readHead(c: Client, lock: 'FOR UPDATE' | ''): Promise<Head> {
  return toHead(await one<HeadRow>(c, `SELECT version, epoch FROM config_head WHERE id = 1 ${lock}`));
}

/** Errors that mean the server or the connection is gone, as opposed to a bad statement. */
function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    // SQLSTATE class 08 (connection exception), 57P* (server shutting down or restarting),
    // 25P03 (the session sat idle inside a transaction past its limit and was ended), or a
    // Node socket error (ECONNRESET, EPIPE, ...).
    return code.startsWith('08') || code.startsWith('57P') || code === '25P03' || code.startsWith('E');
  }
  return err instanceof Error && /Connection terminated|timeout exceeded when trying to connect/i.test(err.message);
}
