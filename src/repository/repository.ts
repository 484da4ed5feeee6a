/**
 * The repository: where the console keeps versioned configuration documents and the audit
 * trail. SQLite (one host) and PostgreSQL (several hosts) implement the same interface and
 * pass the same contract tests (test/helpers/repository-contract.ts).
 *
 * Invariants, for every implementation:
 * - configuration versions are global across sections, start at 1 and have no gaps;
 * - the head epoch only moves forward, and so does the head version, except on a replica
 *   re-syncing from the fork point with its console (`truncateHistory`); a document's epoch
 *   is never lower than the head epoch at the time it was saved;
 * - a refused save stores nothing: no document, no head change, no audit record;
 * - every save and every epoch raise appends exactly one audit record in the same
 *   transaction.
 */

/** One stored version of one configuration section. */
export interface ConfigDocument {
  version: number;
  section: string;
  epoch: number;
  /** The section's JSON content, as parsed back from storage. */
  content: unknown;
  /** sha256 hex of the content's canonical JSON (sorted keys); equal content, equal hash. */
  hash: string;
  /** Milliseconds since the Unix epoch. */
  createdAt: number;
  author: string;
  node: string;
}

/** A version listing entry: a ConfigDocument without its content. */
export type ConfigVersionSummary = Omit<ConfigDocument, 'content'>;

export interface AuditRecord {
  id: number;
  /** Milliseconds since the Unix epoch. */
  at: number;
  user: string;
  node: string;
  action: string;
  section: string | null;
  versionBefore: number | null;
  versionAfter: number | null;
  summary: string;
}

export interface SaveConfigInput {
  section: string;
  /** Any JSON-serialisable value. */
  content: unknown;
  author: string;
  node: string;
  summary: string;
  /** The saver's epoch; refused with REPO_EPOCH_STALE when lower than the head epoch. */
  epoch?: number;
  /** Optimistic concurrency: refused with REPO_VERSION_CONFLICT unless it is the head version. */
  expectedVersion?: number;
}

export interface CurrentConfig {
  /** Head version; 0 when nothing was ever saved. */
  version: number;
  /** Head epoch; 0 until raised. */
  epoch: number;
  /** The latest document of every section. */
  sections: Record<string, ConfigDocument>;
}

export interface ListConfigVersionsOptions {
  section?: string;
  /** Default 100, at most 1000. */
  limit?: number;
  /** Only versions lower than this (paging backwards). */
  beforeVersion?: number;
}

export interface AuditInput {
  /** Defaults to the repository clock's now. */
  at?: number;
  user: string;
  node: string;
  action: string;
  section?: string | null;
  versionBefore?: number | null;
  versionAfter?: number | null;
  summary: string;
}

export interface ListAuditOptions {
  /** Default 100, at most 1000. */
  limit?: number;
  /** Only records with a lower id (paging backwards). */
  beforeId?: number;
  /** Only records with a higher id, oldest first (incremental pull by a replica). */
  sinceId?: number;
  /** Only records of this action (`config.save`, `config.discarded`, ...). */
  action?: string;
}

/** A user of the admin API. */
export interface AdminUser {
  name: string;
  /** scrypt hash in the form console/passwords.ts writes; never the password. */
  passwordHash: string;
  role: 'admin' | 'auditor';
  createdAt: number;
}

/** A bearer token of the admin API, as stored: its SHA-256 only, never the token. */
export interface AdminToken {
  /** sha256 hex of the token. */
  hash: string;
  user: string;
  role: AdminUser['role'];
  createdAt: number;
  expiresAt: number;
  /** When it was signed out; null while it is valid. */
  revokedAt: number | null;
}

/** A schedule's place in the scheduler's queue (one row per enabled schedule). */
export interface SchedulerJob {
  scheduleId: string;
  /** Hash of the schedule's definition: a changed definition resets the job. */
  definitionHash: string;
  nextFireAt: number;
  /** `idle`: waiting for `nextFireAt`; `claimed` by `node` (not started yet); `running` on `node`. */
  state: 'idle' | 'claimed' | 'running';
  node: string | null;
  /** Fencing token of the current claim: a completion must carry it. */
  token: number | null;
  /** The fire time being run. */
  fireAt: number | null;
  claimedAt: number | null;
  startedAt: number | null;
}

export interface SchedulerRun {
  id: number;
  scheduleId: string;
  fireAt: number;
  node: string;
  token: number;
  startedAt: number;
  endedAt: number;
  /** `rejected`: the node completed with a stale fencing token (its claim had been taken back). */
  outcome: 'succeeded' | 'failed' | 'rejected';
  error: string | null;
}

export interface SchedulerCheckIn {
  node: string;
  at: number;
  periodMs: number;
}

export interface SchedulerClaim {
  scheduleId: string;
  fireAt: number;
  token: number;
}

/** What the scheduler decides for a due job at claim time (scheduler/planning.ts). */
export interface ClaimPlan {
  /** False: skip this fire time (misfire policy `do-nothing`), only move `nextFireAt`. */
  fire: boolean;
  nextFireAt: number;
  /** Concurrent schedules are not held by their claim: the next fire may run beside this one. */
  concurrent: boolean;
}

/** The scheduler's tables (migration 3); every method is one transaction. */
export interface SchedulerStore {
  schedulerCheckIn(node: string, at: number, periodMs: number): Promise<void>;
  schedulerCheckIns(): Promise<SchedulerCheckIn[]>;
  /** Inserts missing jobs, resets those whose definition changed, removes those not listed. */
  schedulerSyncJobs(jobs: ReadonlyArray<{ scheduleId: string; definitionHash: string; firstFireAt: number }>): Promise<void>;
  schedulerJobs(): Promise<SchedulerJob[]>;
  /**
   * Claims up to `limit` idle jobs due at `now` for `node`, each with a new fencing token, and
   * moves their next fire time as `plan` says. Concurrent callers never claim the same job.
   */
  schedulerClaimDue(node: string, now: number, limit: number, plan: (scheduleId: string, fireAt: number) => ClaimPlan): Promise<SchedulerClaim[]>;
  /** Marks a claimed job started; false when the claim (token) is no longer the job's. */
  schedulerStart(scheduleId: string, token: number, at: number): Promise<boolean>;
  /**
   * Records a finished run and frees the job when `token` is still its claim; otherwise records
   * the run as `rejected` and leaves the job alone. Keeps the newest `keepRuns` runs of the
   * schedule. Returns whether the completion was accepted.
   */
  schedulerComplete(run: Omit<SchedulerRun, 'id'>, keepRuns: number, concurrent: boolean): Promise<boolean>;
  /**
   * Takes back the jobs claimed or running on `nodes` (they stopped checking in): each goes
   * back to `idle` with the next fire time `decide` gives, and loses its claim. Returns them.
   */
  schedulerRecover(nodes: readonly string[], decide: (job: SchedulerJob) => number): Promise<SchedulerJob[]>;
  /** Newest first. */
  schedulerRuns(scheduleId: string, limit: number): Promise<SchedulerRun[]>;
}

export interface Repository extends SchedulerStore {
  /** Applies pending migrations; safe when several processes call it at once. */
  migrate(): Promise<void>;
  saveConfigDocument(input: SaveConfigInput): Promise<ConfigDocument>;
  /** The latest document of `section`, or exactly `version` of it. */
  getConfigDocument(section: string, version?: number): Promise<ConfigDocument | undefined>;
  getCurrentConfig(): Promise<CurrentConfig>;
  /** Newest first. */
  listConfigVersions(opts?: ListConfigVersionsOptions): Promise<ConfigVersionSummary[]>;
  /** Up to `limit` documents (with content) of versions after `afterVersion`, oldest first: a replica catching up. */
  listConfigDocuments(afterVersion: number, limit: number): Promise<ConfigDocument[]>;
  /** Sets the head epoch to max(current, minEpoch), audits it, and returns the new epoch. */
  raiseEpoch(minEpoch: number, author: string, node: string, summary: string): Promise<number>;
  appendAudit(rec: AuditInput): Promise<AuditRecord>;
  /** Newest first; with `sinceId`, oldest first. */
  listAudit(opts?: ListAuditOptions): Promise<AuditRecord[]>;
  getAdminUser(name: string): Promise<AdminUser | undefined>;
  listAdminUsers(): Promise<AdminUser[]>;
  /** Stores a new user and audits it; false (nothing stored) when the name is taken. */
  createAdminUser(user: AdminUser, author: string, node: string): Promise<boolean>;
  /** Stores a newly issued admin token (its hash). */
  saveAdminToken(token: AdminToken): Promise<void>;
  getAdminToken(hash: string): Promise<AdminToken | undefined>;
  /** Marks a token signed out; false when it is unknown or already revoked. */
  revokeAdminToken(hash: string, at: number): Promise<boolean>;
  /** Tokens not yet expired at `now`, revoked ones included (a replica's copy must learn revocations). */
  listAdminTokens(now: number): Promise<AdminToken[]>;
  /**
   * A replica's copy of the console's tokens: inserted or updated; a token revoked on either
   * side stays revoked. Returns how many were given.
   */
  importAdminTokens(tokens: readonly AdminToken[]): Promise<number>;
  /** Drops tokens expired before `now`; returns how many. */
  deleteExpiredAdminTokens(now: number): Promise<number>;
  /**
   * A replica's copy: stores the documents it does not hold yet, under their own versions
   * (replacing one of the same version only when the incoming epoch is higher: a demoted
   * console takes the promoted one's history), and moves the head to the highest version and
   * epoch seen. Nothing is audited here: the console's audit records are imported as they are
   * (`importAudit`).
   */
  importConfigDocuments(docs: readonly ConfigDocument[], epoch: number): Promise<number>;
  /** A replica's copy of the admin users (inserted or updated; not audited). */
  importAdminUsers(users: readonly AdminUser[]): Promise<number>;
  /** Stores the audit records it does not hold yet, under their own ids; returns how many. */
  importAudit(records: readonly AuditRecord[]): Promise<number>;
  /**
   * A replica whose history forked from its console's (a console demoted after a promotion,
   * holding versions it saved that the promoted replica never pulled): in one transaction,
   * drops its documents after version `afterVersion` and its audit records after id
   * `afterAuditId`, and moves the head version back to `afterVersion` (the epoch stays), so
   * the console's history is imported from there as by any replica. Returns how many
   * documents and audit records were dropped.
   */
  truncateHistory(afterVersion: number, afterAuditId: number): Promise<{ documents: number; audit: number }>;
  close(): Promise<void>;
}
