/**
 * The SQLite repository (better-sqlite3), for a console on one host.
 *
 * Several processes may share the file: WAL lets readers run beside the writer, and every
 * write transaction starts with BEGIN IMMEDIATE, which takes the write lock up front (waiting
 * up to busy_timeout for it). A deferred transaction that reads the head and then writes
 * could instead fail with SQLITE_BUSY when another process committed in between.
 *
 * better-sqlite3 is synchronous, so within one process calls never interleave (a write that
 * waits for another process's lock pauses between attempts, and other calls of this process
 * may run meanwhile: each is a transaction of its own).
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { systemClock, type Clock } from '../core/clock.js';
import { CohortError } from '../core/errors.js';
import { pendingMigrations, SCHEMA_MIGRATIONS_TABLE } from './migrations.js';
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

export interface SqliteRepositoryOptions {
  clock?: Clock;
}

/** How long a write waits for another process's write lock before giving up. */
const BUSY_TIMEOUT_MS = 5000;
/**
 * better-sqlite3 waits for a lock inside SQLite, holding the event loop; so a write waits this
 * long there and then, still refused, again after a pause of LOCK_RETRY_PAUSE_MS with the event
 * loop free (membership, the grid, every request go on), until BUSY_TIMEOUT_MS have passed.
 * Reads need no lock in WAL mode (but while a crashed writer's WAL is recovered, when they too
 * wait this long and then fail as REPO_UNAVAILABLE: `read`).
 */
const LOCK_WAIT_STEP_MS = 10;
const LOCK_RETRY_PAUSE_MS = 40;

const placeholder = (): string => '?';

export class SqliteRepository implements Repository {
  private readonly db: Database.Database;
  private readonly clock: Clock;
  /** The last of this process's writes waiting for another process's lock (`write`), while any waits. */
  private lockWaiters: Promise<LockOutcome> | undefined;

  /** Opens (creating if missing) the database file at `path`, or ':memory:'. */
  constructor(
    readonly path: string,
    opts: SqliteRepositoryOptions = {},
  ) {
    this.clock = opts.clock ?? systemClock;
    this.db = openDatabase(path);
  }

  async migrate(): Promise<void> {
    await this.write(() => {
      this.db.exec(SCHEMA_MIGRATIONS_TABLE);
      const { v } = this.db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
      for (const m of pendingMigrations(v ?? 0)) {
        this.db.exec(m.sqlite);
        this.db
          .prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)')
          .run(m.version, m.name, this.clock.now());
      }
    });
  }

  async saveConfigDocument(input: SaveConfigInput): Promise<ConfigDocument> {
    return this.write(() => {
      const head = this.readHead();
      const { doc, contentText } = planSave(head, input, this.clock.now());
      const { v: versionBefore } = this.db
        .prepare('SELECT MAX(version) AS v FROM config_documents WHERE section = ?')
        .get(doc.section) as { v: number | null };
      this.db
        .prepare(
          `INSERT INTO config_documents (version, section, epoch, content, hash, created_at, author, node)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(doc.version, doc.section, doc.epoch, contentText, doc.hash, doc.createdAt, doc.author, doc.node);
      this.db.prepare('UPDATE config_head SET version = ?, epoch = ? WHERE id = 1').run(doc.version, doc.epoch);
      this.insertAudit({
        at: doc.createdAt,
        user: doc.author,
        node: doc.node,
        action: 'config.save',
        section: doc.section,
        versionBefore,
        versionAfter: doc.version,
        summary: input.summary,
      });
      return doc;
    });
  }

  async getConfigDocument(section: string, version?: number): Promise<ConfigDocument | undefined> {
    return this.read(() => {
      const row = (
        version === undefined
          ? this.db
              .prepare('SELECT * FROM config_documents WHERE section = ? ORDER BY version DESC LIMIT 1')
              .get(section)
          : this.db.prepare('SELECT * FROM config_documents WHERE section = ? AND version = ?').get(section, version)
      ) as DocumentRow | undefined;
      return row && toDocument(row);
    });
  }

  async getCurrentConfig(): Promise<CurrentConfig> {
    // One read transaction, so the head and the documents come from the same snapshot.
    return this.read(() => this.db.transaction(() => {
      const head = this.readHead();
      const rows = this.db.prepare(LATEST_PER_SECTION_SQL).all() as DocumentRow[];
      return { ...head, sections: Object.fromEntries(rows.map((r) => [r.section, toDocument(r)])) };
    })());
  }

  async listConfigVersions(opts: ListConfigVersionsOptions = {}): Promise<ConfigVersionSummary[]> {
    return this.read(() => {
      const q = listVersionsQuery(opts, placeholder);
      return (this.db.prepare(q.sql).all(...q.params) as SummaryRow[]).map(toSummary);
    });
  }

  async listConfigDocuments(afterVersion: number, limit: number): Promise<ConfigDocument[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM config_documents WHERE version > ? ORDER BY version LIMIT ?').all(afterVersion, listLimit(limit)) as DocumentRow[]).map(toDocument));
  }

  async raiseEpoch(minEpoch: number, author: string, node: string, summary: string): Promise<number> {
    assertCount('minEpoch', minEpoch);
    return this.write(() => {
      const head = this.readHead();
      const epoch = Math.max(head.epoch, minEpoch);
      this.db.prepare('UPDATE config_head SET epoch = ? WHERE id = 1').run(epoch);
      this.insertAudit({
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
    return this.write(() => this.insertAudit(rec));
  }

  async listAudit(opts: ListAuditOptions = {}): Promise<AuditRecord[]> {
    return this.read(() => {
      const q = listAuditQuery(opts, placeholder);
      return (this.db.prepare(q.sql).all(...q.params) as AuditRow[]).map(toAudit);
    });
  }

  async getAdminUser(name: string): Promise<AdminUser | undefined> {
    return this.read(() => {
      const row = this.db.prepare('SELECT * FROM admin_users WHERE name = ?').get(name) as AdminUserRow | undefined;
      return row && toAdminUser(row);
    });
  }

  async listAdminUsers(): Promise<AdminUser[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM admin_users ORDER BY name').all() as AdminUserRow[]).map(toAdminUser));
  }

  async createAdminUser(user: AdminUser, author: string, node: string): Promise<boolean> {
    return this.write(() => {
      const { changes } = this.db
        .prepare('INSERT INTO admin_users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING')
        .run(user.name, user.passwordHash, user.role, user.createdAt);
      if (changes === 0) return false;
      this.insertAudit({ user: author, node, action: 'user.create', summary: `admin user ${user.name} (${user.role})` });
      return true;
    });
  }

  async saveAdminToken(t: AdminToken): Promise<void> {
    await this.write(() => this.db.prepare('INSERT INTO admin_tokens (token_hash, user_name, role, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)').run(t.hash, t.user, t.role, t.createdAt, t.expiresAt, t.revokedAt));
  }

  async getAdminToken(hash: string): Promise<AdminToken | undefined> {
    return this.read(() => {
      const row = this.db.prepare('SELECT * FROM admin_tokens WHERE token_hash = ?').get(hash) as AdminTokenRow | undefined;
      return row && toAdminToken(row);
    });
  }

  async revokeAdminToken(hash: string, at: number): Promise<boolean> {
    return this.write(() => this.db.prepare('UPDATE admin_tokens SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL').run(at, hash).changes > 0);
  }

  async listAdminTokens(now: number): Promise<AdminToken[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM admin_tokens WHERE expires_at > ? ORDER BY created_at, token_hash').all(now) as AdminTokenRow[]).map(toAdminToken));
  }

  async importAdminTokens(tokens: readonly AdminToken[]): Promise<number> {
    return this.write(() => {
      const upsert = this.db.prepare(
        `INSERT INTO admin_tokens (token_hash, user_name, role, created_at, expires_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (token_hash) DO UPDATE SET revoked_at = COALESCE(admin_tokens.revoked_at, excluded.revoked_at)`,
      );
      for (const t of tokens) upsert.run(t.hash, t.user, t.role, t.createdAt, t.expiresAt, t.revokedAt);
      return tokens.length;
    });
  }

  async deleteExpiredAdminTokens(now: number): Promise<number> {
    return this.write(() => this.db.prepare('DELETE FROM admin_tokens WHERE expires_at <= ?').run(now).changes);
  }

  async importConfigDocuments(docs: readonly ConfigDocument[], epoch: number): Promise<number> {
    return this.write(() => {
      let stored = 0;
      const insert = this.db.prepare(
        `INSERT INTO config_documents (version, section, epoch, content, hash, created_at, author, node)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET section = excluded.section, epoch = excluded.epoch, content = excluded.content,
           hash = excluded.hash, created_at = excluded.created_at, author = excluded.author, node = excluded.node
         WHERE config_documents.epoch < excluded.epoch`,
      );
      for (const d of docs) stored += insert.run(d.version, d.section, d.epoch, JSON.stringify(d.content), d.hash, d.createdAt, d.author, d.node).changes;
      const head = this.readHead();
      const version = Math.max(head.version, ...docs.map((d) => d.version));
      this.db.prepare('UPDATE config_head SET version = ?, epoch = ? WHERE id = 1').run(version, Math.max(head.epoch, epoch));
      return stored;
    });
  }

  async importAdminUsers(users: readonly AdminUser[]): Promise<number> {
    return this.write(() => {
      const upsert = this.db.prepare(
        `INSERT INTO admin_users (name, password_hash, role, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (name) DO UPDATE SET password_hash = excluded.password_hash, role = excluded.role`,
      );
      for (const u of users) upsert.run(u.name, u.passwordHash, u.role, u.createdAt);
      return users.length;
    });
  }

  async importAudit(records: readonly AuditRecord[]): Promise<number> {
    return this.write(() => {
      const insert = this.db.prepare(`INSERT INTO audit (${AUDIT_ALL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`);
      let stored = 0;
      for (const r of records) stored += insert.run(...auditRecordValues(r)).changes;
      return stored;
    });
  }

  async truncateHistory(afterVersion: number, afterAuditId: number): Promise<{ documents: number; audit: number }> {
    assertCount('afterVersion', afterVersion);
    assertCount('afterAuditId', afterAuditId);
    return this.write(() => {
      const documents = this.db.prepare('DELETE FROM config_documents WHERE version > ?').run(afterVersion).changes;
      const audit = this.db.prepare('DELETE FROM audit WHERE id > ?').run(afterAuditId).changes;
      this.db.prepare('UPDATE config_head SET version = MIN(version, ?) WHERE id = 1').run(afterVersion);
      // Ids follow on from the records kept, as they do after an import, should this node be
      // promoted later.
      this.db.prepare("UPDATE sqlite_sequence SET seq = (SELECT COALESCE(MAX(id), 0) FROM audit) WHERE name = 'audit'").run();
      return { documents, audit };
    });
  }

  // ---- scheduler (migration 3)

  async schedulerCheckIn(node: string, at: number, periodMs: number): Promise<void> {
    await this.write(() => {
      this.db.prepare('INSERT INTO scheduler_checkins (node, at, period_ms) VALUES (?, ?, ?) ON CONFLICT (node) DO UPDATE SET at = excluded.at, period_ms = excluded.period_ms').run(node, at, periodMs);
    });
  }

  async schedulerCheckIns(): Promise<SchedulerCheckIn[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM scheduler_checkins ORDER BY node').all() as CheckInRow[]).map(toCheckIn));
  }

  async schedulerSyncJobs(jobs: ReadonlyArray<{ scheduleId: string; definitionHash: string; firstFireAt: number }>): Promise<void> {
    await this.write(() => {
      const existing = new Map((this.db.prepare('SELECT * FROM scheduler_jobs').all() as JobRow[]).map((r) => [r.schedule_id, r]));
      for (const j of jobs) {
        const row = existing.get(j.scheduleId);
        existing.delete(j.scheduleId);
        if (!row) {
          this.db.prepare("INSERT INTO scheduler_jobs (schedule_id, definition_hash, next_fire_at, state) VALUES (?, ?, ?, 'idle')").run(j.scheduleId, j.definitionHash, j.firstFireAt);
        } else if (row.definition_hash !== j.definitionHash) {
          // A run in progress keeps its claim; the new definition applies from its next fire.
          this.db.prepare('UPDATE scheduler_jobs SET definition_hash = ?, next_fire_at = ? WHERE schedule_id = ?').run(j.definitionHash, j.firstFireAt, j.scheduleId);
        }
      }
      // A job still claimed or running keeps its row (and its fencing) until the run is over.
      for (const id of existing.keys()) this.db.prepare("DELETE FROM scheduler_jobs WHERE schedule_id = ? AND state = 'idle'").run(id);
    });
  }

  async schedulerJobs(): Promise<SchedulerJob[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM scheduler_jobs ORDER BY schedule_id').all() as JobRow[]).map(toJob));
  }

  async schedulerClaimDue(node: string, now: number, limit: number, plan: (scheduleId: string, fireAt: number) => ClaimPlan): Promise<SchedulerClaim[]> {
    // BEGIN IMMEDIATE: the write lock is taken before the due jobs are read, so two
    // processes never claim the same one.
    return this.write(() => {
      const due = this.db.prepare("SELECT * FROM scheduler_jobs WHERE state = 'idle' AND next_fire_at <= ? ORDER BY next_fire_at LIMIT ?").all(now, limit) as JobRow[];
      const claims: SchedulerClaim[] = [];
      for (const row of due) {
        const fireAt = Number(row.next_fire_at);
        const p = plan(row.schedule_id, fireAt);
        if (!p.fire) {
          this.db.prepare('UPDATE scheduler_jobs SET next_fire_at = ? WHERE schedule_id = ?').run(p.nextFireAt, row.schedule_id);
          continue;
        }
        const { last: token } = this.db.prepare('UPDATE scheduler_tokens SET last = last + 1 WHERE id = 1 RETURNING last').get() as { last: number };
        this.db
          .prepare('UPDATE scheduler_jobs SET next_fire_at = ?, state = ?, node = ?, token = ?, fire_at = ?, claimed_at = ?, started_at = NULL WHERE schedule_id = ?')
          .run(p.nextFireAt, p.concurrent ? 'idle' : 'claimed', p.concurrent ? null : node, p.concurrent ? null : token, p.concurrent ? null : fireAt, p.concurrent ? null : now, row.schedule_id);
        claims.push({ scheduleId: row.schedule_id, fireAt, token: Number(token) });
      }
      return claims;
    });
  }

  async schedulerStart(scheduleId: string, token: number, at: number): Promise<boolean> {
    return this.write(() => this.db.prepare("UPDATE scheduler_jobs SET state = 'running', started_at = ? WHERE schedule_id = ? AND token = ? AND state = 'claimed'").run(at, scheduleId, token).changes === 1);
  }

  async schedulerComplete(run: Omit<SchedulerRun, 'id'>, keepRuns: number, concurrent: boolean): Promise<boolean> {
    return this.write(() => {
      const accepted = concurrent || this.db.prepare(`UPDATE scheduler_jobs SET ${RELEASE_CLAIM} WHERE schedule_id = ? AND token = ?`).run(run.scheduleId, run.token).changes === 1;
      this.db
        .prepare(`INSERT INTO scheduler_runs (${RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`)
        .run(...runValues(run, accepted));
      this.db.prepare('DELETE FROM scheduler_runs WHERE schedule_id = ? AND id NOT IN (SELECT id FROM scheduler_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?)').run(run.scheduleId, run.scheduleId, keepRuns);
      return accepted;
    });
  }

  async schedulerRecover(nodes: readonly string[], decide: (job: SchedulerJob) => number): Promise<SchedulerJob[]> {
    if (nodes.length === 0) return [];
    return this.write(() => {
      const rows = this.db.prepare(`SELECT * FROM scheduler_jobs WHERE state <> 'idle' AND node IN (${nodes.map(() => '?').join(', ')})`).all(...nodes) as JobRow[];
      const jobs = rows.map(toJob);
      for (const job of jobs) {
        this.db.prepare(`UPDATE scheduler_jobs SET ${RELEASE_CLAIM}, next_fire_at = ? WHERE schedule_id = ?`).run(decide(job), job.scheduleId);
      }
      return jobs;
    });
  }

  async schedulerRuns(scheduleId: string, limit: number): Promise<SchedulerRun[]> {
    return this.read(() => (this.db.prepare('SELECT * FROM scheduler_runs WHERE schedule_id = ? ORDER BY id DESC LIMIT ?').all(scheduleId, limit) as RunRow[]).map(toRun));
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }

  private readHead(): Head {
    return toHead(this.db.prepare('SELECT version, epoch FROM config_head WHERE id = 1').get() as HeadRow);
  }

  private insertAudit(rec: AuditInput): AuditRecord {
    const row = this.db
      .prepare(`INSERT INTO audit (${AUDIT_INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING *`)
      .get(...auditValues(rec, this.clock.now())) as AuditRow;
    return toAudit(row);
  }

  /**
   * Runs a read: reads take no lock in WAL mode, so this only turns what can still go wrong
   * into coded errors — a closed repository (a request still in flight while the node stops),
   * and a file left unreadable for LOCK_WAIT_STEP_MS (another process recovering the log of a
   * writer that crashed) — instead of better-sqlite3's uncoded TypeError and raw SQLITE_BUSY.
   */
  private async read<T>(fn: () => T): Promise<T> {
    if (!this.db.open) throw this.closed();
    try {
      return fn();
    } catch (err) {
      throw readFailure(err, this.path);
    }
  }

  private closed(): CohortError {
    return new CohortError('REPO_UNAVAILABLE', `SQLite repository at ${this.path} is closed`, { path: this.path });
  }

  /**
   * Runs `fn` in a BEGIN IMMEDIATE transaction: at once when the write lock is free, else
   * behind the writes of this process already waiting for it (one waits at a time, so N of
   * them do not hold the event loop N steps in a row), trying every LOCK_WAIT_STEP_MS +
   * LOCK_RETRY_PAUSE_MS; still locked BUSY_TIMEOUT_MS after it was asked for, REPO_UNAVAILABLE.
   */
  private async write<T>(fn: () => T): Promise<T> {
    if (!this.db.open) throw this.closed();
    const transaction = this.db.transaction(fn);
    const started = this.clock.now();
    let busy: unknown;
    if (this.lockWaiters === undefined) {
      try {
        return transaction.immediate();
      } catch (err) {
        if (!isBusy(err)) throw err;
        busy = err;
      }
    }
    const before = this.lockWaiters;
    let done!: (outcome: LockOutcome) => void;
    const mine = new Promise<LockOutcome>((resolve) => (done = resolve));
    this.lockWaiters = mine;
    // Whether this write found the lock free in the end: the next waiter's hint.
    let outcome: LockOutcome = 'gave up';
    // A pause keeps the process alive: a node opening its repository at start may have nothing
    // else running yet. (A test clock that never moves would wait for ever: tests that contend
    // for the lock use the real one.)
    const pause = (): Promise<void> => new Promise((resolve) => this.clock.setTimeout(resolve, LOCK_RETRY_PAUSE_MS, { keepAlive: true }));
    try {
      let ahead: LockOutcome | undefined;
      // First in line, it has just tried (and waited a step) above: the loop free before the next.
      if (before === undefined) await pause();
      else ahead = await before;
      for (let attempt = 0; ; attempt++) {
        if (!this.db.open) throw this.closed();
        // Out of time: one more try, unless the write ahead has just given up (the lock is
        // still held: trying would hold the event loop once more for each write queued).
        if (this.clock.now() - started >= BUSY_TIMEOUT_MS && (attempt > 0 || ahead === 'gave up')) {
          throw new CohortError(
            'REPO_UNAVAILABLE',
            `SQLite repository at ${this.path} stayed locked by another process for ${BUSY_TIMEOUT_MS} ms`,
            { path: this.path },
            { cause: busy },
          );
        }
        try {
          const result = transaction.immediate();
          outcome = 'found free';
          return result;
        } catch (err) {
          if (!isBusy(err)) {
            outcome = 'found free';
            throw err;
          }
          busy = err;
        }
        await pause();
      }
    } finally {
      done(outcome);
      if (this.lockWaiters === mine) this.lockWaiters = undefined;
    }
  }
}

/** What a failed read is reported as (pure): REPO_UNAVAILABLE when SQLite found the file locked (busy), else the error itself. */
export function readFailure(err: unknown, path: string): unknown {
  if (!isBusy(err)) return err;
  return new CohortError('REPO_UNAVAILABLE', `SQLite repository at ${path} could not be read: another process holds it locked (${(err as { code: string }).code})`, { path }, { cause: err });
}

/** How a write that waited for the lock ended: it took it (or failed otherwise), or it ran out of time. */
type LockOutcome = 'found free' | 'gave up';

/** SQLITE_BUSY and its extended codes (SQLITE_BUSY_RECOVERY, SQLITE_BUSY_SNAPSHOT, ...): the lock is held elsewhere. */
function isBusy(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && code.startsWith('SQLITE_BUSY');
}

/**
 * Creates the database file readable and writable by its owner only (it holds password hashes
 * and audit records), or tightens an existing one, before SQLite opens it.
 */
function ownerOnly(path: string): void {
  closeSync(openSync(path, 'a', 0o600));
  chmodSync(path, 0o600);
}

function openDatabase(path: string): Database.Database {
  let db: Database.Database | undefined;
  try {
    if (path !== ':memory:') {
      mkdirSync(dirname(resolve(path)), { recursive: true, mode: 0o700 });
      ownerOnly(path);
    }
    db = new Database(path);
    // Opening waits the whole time at once (the node is starting); later writes wait in steps (`write`).
    db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    enableWal(db);
    // SQLite gives its WAL and shared-memory files the database file's mode; files an older
    // version created (0644) are tightened here too.
    if (path !== ':memory:') for (const suffix of ['-wal', '-shm']) if (existsSync(`${path}${suffix}`)) chmodSync(`${path}${suffix}`, 0o600);
    db.pragma('synchronous = NORMAL');
    db.pragma('foreign_keys = ON');
    db.pragma(`busy_timeout = ${LOCK_WAIT_STEP_MS}`);
    return db;
  } catch (err) {
    db?.close();
    throw new CohortError(
      'REPO_UNAVAILABLE',
      `Cannot open SQLite repository at ${path}: ${(err as Error).message}`,
      { path },
      { cause: err },
    );
  }
}

const WAL_RETRY_MS = 20;
const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Switches the file to WAL. When two processes create the file at once, each may hold a shared
 * lock while wanting the exclusive one; SQLite then fails one of them with SQLITE_BUSY at once
 * rather than call the busy handler (waiting could deadlock), so retry for up to busy_timeout.
 * The wait blocks the thread, as SQLite's own busy wait does; it only happens while opening.
 */
function enableWal(db: Database.Database): void {
  for (let waited = 0; ; waited += WAL_RETRY_MS) {
    try {
      db.pragma('journal_mode = WAL');
      return;
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'SQLITE_BUSY' || waited >= BUSY_TIMEOUT_MS) throw err;
      Atomics.wait(sleeper, 0, 0, WAL_RETRY_MS);
    }
  }
}
