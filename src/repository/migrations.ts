/**
 * Schema migrations, one entry per schema version, in both SQL dialects.
 *
 * Append-only: a released migration is never edited, reordered or removed, because databases
 * in the field record which versions they ran (table `schema_migrations`). A database holding
 * a version higher than the last one here was migrated by a newer Cohort; opening it is
 * refused (REPO_SCHEMA_TOO_NEW) rather than risk writing rows that code cannot read.
 *
 * Each migration runs in the same transaction as its `schema_migrations` row, so a failed
 * migration leaves no trace. PostgreSQL stores content as TEXT, not JSONB: the repository
 * hands back exactly the JSON it was given, key order included.
 */
import { CohortError } from '../core/errors.js';

export interface Migration {
  version: number;
  name: string;
  sqlite: string;
  postgres: string;
}

/** Created before the first migration, outside the list. */
export const SCHEMA_MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INTEGER PRIMARY KEY,
  name TEXT NOT NULL,
  applied_at BIGINT NOT NULL
)`;

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'configuration documents and audit',
    sqlite: `
      CREATE TABLE config_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version INTEGER NOT NULL,
        epoch INTEGER NOT NULL
      );
      INSERT INTO config_head (id, version, epoch) VALUES (1, 0, 0);
      CREATE TABLE config_documents (
        version INTEGER PRIMARY KEY,
        section TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        content TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        author TEXT NOT NULL,
        node TEXT NOT NULL
      );
      CREATE INDEX config_documents_section_version ON config_documents (section, version);
      CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at INTEGER NOT NULL,
        user_name TEXT NOT NULL,
        node TEXT NOT NULL,
        action TEXT NOT NULL,
        section TEXT,
        version_before INTEGER,
        version_after INTEGER,
        summary TEXT NOT NULL
      );`,
    postgres: `
      CREATE TABLE config_head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        version BIGINT NOT NULL,
        epoch BIGINT NOT NULL
      );
      INSERT INTO config_head (id, version, epoch) VALUES (1, 0, 0);
      CREATE TABLE config_documents (
        version BIGINT PRIMARY KEY,
        section TEXT NOT NULL,
        epoch BIGINT NOT NULL,
        content TEXT NOT NULL,
        hash TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        author TEXT NOT NULL,
        node TEXT NOT NULL
      );
      CREATE INDEX config_documents_section_version ON config_documents (section, version);
      CREATE TABLE audit (
        id BIGSERIAL PRIMARY KEY,
        at BIGINT NOT NULL,
        user_name TEXT NOT NULL,
        node TEXT NOT NULL,
        action TEXT NOT NULL,
        section TEXT,
        version_before BIGINT,
        version_after BIGINT,
        summary TEXT NOT NULL
      );`,
  },
  {
    version: 2,
    name: 'admin users',
    sqlite: `
      CREATE TABLE admin_users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL
      );`,
    postgres: `
      CREATE TABLE admin_users (
        name TEXT PRIMARY KEY,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL
      );`,
  },
  {
    version: 3,
    name: 'scheduler: jobs, fencing tokens, check-ins, run history',
    sqlite: `
      CREATE TABLE scheduler_jobs (
        schedule_id TEXT PRIMARY KEY,
        definition_hash TEXT NOT NULL,
        next_fire_at INTEGER NOT NULL,
        state TEXT NOT NULL,
        node TEXT,
        token INTEGER,
        fire_at INTEGER,
        claimed_at INTEGER,
        started_at INTEGER
      );
      CREATE TABLE scheduler_tokens (id INTEGER PRIMARY KEY CHECK (id = 1), last INTEGER NOT NULL);
      INSERT INTO scheduler_tokens (id, last) VALUES (1, 0);
      CREATE TABLE scheduler_checkins (
        node TEXT PRIMARY KEY,
        at INTEGER NOT NULL,
        period_ms INTEGER NOT NULL
      );
      CREATE TABLE scheduler_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        schedule_id TEXT NOT NULL,
        fire_at INTEGER NOT NULL,
        node TEXT NOT NULL,
        token INTEGER NOT NULL,
        started_at INTEGER NOT NULL,
        ended_at INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT
      );
      CREATE INDEX scheduler_runs_schedule ON scheduler_runs (schedule_id, id);`,
    postgres: `
      CREATE TABLE scheduler_jobs (
        schedule_id TEXT PRIMARY KEY,
        definition_hash TEXT NOT NULL,
        next_fire_at BIGINT NOT NULL,
        state TEXT NOT NULL,
        node TEXT,
        token BIGINT,
        fire_at BIGINT,
        claimed_at BIGINT,
        started_at BIGINT
      );
      CREATE TABLE scheduler_tokens (id INTEGER PRIMARY KEY CHECK (id = 1), last BIGINT NOT NULL);
      INSERT INTO scheduler_tokens (id, last) VALUES (1, 0);
      CREATE TABLE scheduler_checkins (
        node TEXT PRIMARY KEY,
        at BIGINT NOT NULL,
        period_ms BIGINT NOT NULL
      );
      CREATE TABLE scheduler_runs (
        id BIGSERIAL PRIMARY KEY,
        schedule_id TEXT NOT NULL,
        fire_at BIGINT NOT NULL,
        node TEXT NOT NULL,
        token BIGINT NOT NULL,
        started_at BIGINT NOT NULL,
        ended_at BIGINT NOT NULL,
        outcome TEXT NOT NULL,
        error TEXT
      );
      CREATE INDEX scheduler_runs_schedule ON scheduler_runs (schedule_id, id);`,
  },
  {
    version: 4,
    name: 'admin tokens',
    // Only the SHA-256 of a token is stored: a copy of the database gives no usable token.
    sqlite: `
      CREATE TABLE admin_tokens (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        revoked_at INTEGER
      );
      CREATE INDEX admin_tokens_expiry ON admin_tokens (expires_at);`,
    postgres: `
      CREATE TABLE admin_tokens (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        revoked_at BIGINT
      );
      CREATE INDEX admin_tokens_expiry ON admin_tokens (expires_at);`,
  },
];

/** The highest schema version this code knows. */
export const LATEST_SCHEMA_VERSION = MIGRATIONS.reduce((max, m) => Math.max(max, m.version), 0);

/**
 * The migrations a database at `current` still needs, in order; refuses a database that is
 * ahead of this code.
 */
export function pendingMigrations(current: number): readonly Migration[] {
  if (current > LATEST_SCHEMA_VERSION) {
    throw new CohortError(
      'REPO_SCHEMA_TOO_NEW',
      `Repository schema is at version ${current}, but this Cohort knows versions up to ${LATEST_SCHEMA_VERSION}; upgrade Cohort`,
      { schemaVersion: current, knownVersion: LATEST_SCHEMA_VERSION },
    );
  }
  return MIGRATIONS.filter((m) => m.version > current);
}
