/**
 * Row shapes and their mapping to records, shared by both implementations. Both drivers return
 * rows with the same column names; pg returns BIGINT columns as strings (they may exceed 2^53),
 * better-sqlite3 returns numbers, so every numeric column goes through Number().
 */
import type { AdminToken, AdminUser, AuditInput, AuditRecord, ConfigDocument, ConfigVersionSummary, SchedulerCheckIn, SchedulerJob, SchedulerRun } from './repository.js';

type Numeric = number | string;

export interface HeadRow {
  version: Numeric;
  epoch: Numeric;
}

export interface DocumentRow {
  version: Numeric;
  section: string;
  epoch: Numeric;
  content: string;
  hash: string;
  created_at: Numeric;
  author: string;
  node: string;
}

export type SummaryRow = Omit<DocumentRow, 'content'>;

export interface AuditRow {
  id: Numeric;
  at: Numeric;
  user_name: string;
  node: string;
  action: string;
  section: string | null;
  version_before: Numeric | null;
  version_after: Numeric | null;
  summary: string;
}

/** Columns of a version listing, in SummaryRow order. */
export const SUMMARY_COLUMNS = 'version, section, epoch, hash, created_at, author, node';

/** Columns written by an audit insert, in the order of auditValues(). */
export const AUDIT_INSERT_COLUMNS = 'at, user_name, node, action, section, version_before, version_after, summary';

export function toHead(row: HeadRow): { version: number; epoch: number } {
  return { version: Number(row.version), epoch: Number(row.epoch) };
}

export function toSummary(row: SummaryRow): ConfigVersionSummary {
  return {
    version: Number(row.version),
    section: row.section,
    epoch: Number(row.epoch),
    hash: row.hash,
    createdAt: Number(row.created_at),
    author: row.author,
    node: row.node,
  };
}

export function toDocument(row: DocumentRow): ConfigDocument {
  return { ...toSummary(row), content: JSON.parse(row.content) as unknown };
}

export function toAudit(row: AuditRow): AuditRecord {
  return {
    id: Number(row.id),
    at: Number(row.at),
    user: row.user_name,
    node: row.node,
    action: row.action,
    section: row.section,
    versionBefore: row.version_before === null ? null : Number(row.version_before),
    versionAfter: row.version_after === null ? null : Number(row.version_after),
    summary: row.summary,
  };
}

/** Parameters for an audit insert (AUDIT_INSERT_COLUMNS order), `at` defaulting to `now`. */
export function auditValues(rec: AuditInput, now: number): (string | number | null)[] {
  return [
    rec.at ?? now,
    rec.user,
    rec.node,
    rec.action,
    rec.section ?? null,
    rec.versionBefore ?? null,
    rec.versionAfter ?? null,
    rec.summary,
  ];
}

export interface AdminUserRow {
  name: string;
  password_hash: string;
  role: string;
  created_at: Numeric;
}

export function toAdminUser(row: AdminUserRow): AdminUser {
  return { name: row.name, passwordHash: row.password_hash, role: row.role === 'admin' ? 'admin' : 'auditor', createdAt: Number(row.created_at) };
}

export interface AdminTokenRow {
  token_hash: string;
  user_name: string;
  role: string;
  created_at: Numeric;
  expires_at: Numeric;
  revoked_at: Numeric | null;
}

export function toAdminToken(row: AdminTokenRow): AdminToken {
  return {
    hash: row.token_hash,
    user: row.user_name,
    role: row.role === 'admin' ? 'admin' : 'auditor',
    createdAt: Number(row.created_at),
    expiresAt: Number(row.expires_at),
    revokedAt: row.revoked_at === null ? null : Number(row.revoked_at),
  };
}

/** Every audit column, for imports that keep the original id (AUDIT_ALL_COLUMNS order). */
export const AUDIT_ALL_COLUMNS = `id, ${AUDIT_INSERT_COLUMNS}`;

export function auditRecordValues(r: AuditRecord): (string | number | null)[] {
  return [r.id, r.at, r.user, r.node, r.action, r.section, r.versionBefore, r.versionAfter, r.summary];
}

export interface JobRow {
  schedule_id: string;
  definition_hash: string;
  next_fire_at: Numeric;
  state: string;
  node: string | null;
  token: Numeric | null;
  fire_at: Numeric | null;
  claimed_at: Numeric | null;
  started_at: Numeric | null;
}

const numOrNull = (v: Numeric | null): number | null => (v === null ? null : Number(v));

export function toJob(r: JobRow): SchedulerJob {
  return {
    scheduleId: r.schedule_id,
    definitionHash: r.definition_hash,
    nextFireAt: Number(r.next_fire_at),
    state: r.state as SchedulerJob['state'],
    node: r.node,
    token: numOrNull(r.token),
    fireAt: numOrNull(r.fire_at),
    claimedAt: numOrNull(r.claimed_at),
    startedAt: numOrNull(r.started_at),
  };
}

export interface RunRow {
  id: Numeric;
  schedule_id: string;
  fire_at: Numeric;
  node: string;
  token: Numeric;
  started_at: Numeric;
  ended_at: Numeric;
  outcome: string;
  error: string | null;
}

export function toRun(r: RunRow): SchedulerRun {
  return {
    id: Number(r.id),
    scheduleId: r.schedule_id,
    fireAt: Number(r.fire_at),
    node: r.node,
    token: Number(r.token),
    startedAt: Number(r.started_at),
    endedAt: Number(r.ended_at),
    outcome: r.outcome as SchedulerRun['outcome'],
    error: r.error,
  };
}

export interface CheckInRow {
  node: string;
  at: Numeric;
  period_ms: Numeric;
}

export function toCheckIn(r: CheckInRow): SchedulerCheckIn {
  return { node: r.node, at: Number(r.at), periodMs: Number(r.period_ms) };
}

/** Columns written by a run insert (without the id). */
export const RUN_COLUMNS = 'schedule_id, fire_at, node, token, started_at, ended_at, outcome, error';
