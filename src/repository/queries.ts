/**
 * The decisions both implementations share, kept free of I/O so they behave identically on
 * SQLite and PostgreSQL: whether a save is accepted and what it stores, and how listings page.
 */
import { CohortError } from '../core/errors.js';
import { contentHash } from './canonical-json.js';
import type { ConfigDocument, ListAuditOptions, ListConfigVersionsOptions, SaveConfigInput, SchedulerRun } from './repository.js';
import { SUMMARY_COLUMNS } from './rows.js';

/** The cluster-wide configuration head: latest version and current epoch. */
export interface Head {
  version: number;
  epoch: number;
}

export interface PlannedSave {
  /** The document as it will read back once stored. */
  doc: ConfigDocument;
  /** The content column's value. */
  contentText: string;
}

/** Accepts or refuses a save against the head read inside the saving transaction. */
export function planSave(head: Head, input: SaveConfigInput, now: number): PlannedSave {
  if (input.expectedVersion !== undefined) assertCount('expectedVersion', input.expectedVersion);
  if (input.epoch !== undefined) assertCount('epoch', input.epoch);
  if (input.expectedVersion !== undefined && input.expectedVersion !== head.version) {
    throw new CohortError(
      'REPO_VERSION_CONFLICT',
      `Configuration is at version ${head.version}, not the expected ${input.expectedVersion}; reload and retry`,
      { expectedVersion: input.expectedVersion, currentVersion: head.version },
    );
  }
  if (input.epoch !== undefined && input.epoch < head.epoch) {
    throw new CohortError(
      'REPO_EPOCH_STALE',
      `Configuration save carries epoch ${input.epoch}, but the repository is at epoch ${head.epoch}`,
      { epoch: input.epoch, currentEpoch: head.epoch },
    );
  }
  const hash = contentHash(input.content); // also refuses content that is not JSON
  const contentText = JSON.stringify(input.content);
  return {
    contentText,
    doc: {
      version: head.version + 1,
      section: input.section,
      epoch: input.epoch ?? head.epoch,
      content: JSON.parse(contentText) as unknown,
      hash,
      createdAt: now,
      author: input.author,
      node: input.node,
    },
  };
}

/** Throws unless `value` is a non-negative safe integer (versions, epochs, ids). */
export function assertCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}

export const DEFAULT_LIST_LIMIT = 100;
export const MAX_LIST_LIMIT = 1000;

/** A listing limit clamped to 1..MAX_LIST_LIMIT. */
export function listLimit(limit: number | undefined): number {
  if (limit === undefined || Number.isNaN(limit)) return DEFAULT_LIST_LIMIT;
  return Math.min(MAX_LIST_LIMIT, Math.max(1, Math.floor(limit)));
}

/** The latest document of every section (no parameters, same text in both dialects). */
export const LATEST_PER_SECTION_SQL = `
  SELECT d.* FROM config_documents d
  JOIN (SELECT section, MAX(version) AS version FROM config_documents GROUP BY section) latest
    ON d.version = latest.version
  ORDER BY d.section`;

/** Makes the n-th (1-based) parameter marker: `?` for SQLite, `$n` for PostgreSQL. */
export type Placeholder = (n: number) => string;

export interface Query {
  sql: string;
  params: (string | number)[];
}

export function listVersionsQuery(opts: ListConfigVersionsOptions, ph: Placeholder): Query {
  return select(
    ph,
    `SELECT ${SUMMARY_COLUMNS} FROM config_documents`,
    [
      ['section =', opts.section],
      ['version <', opts.beforeVersion],
    ],
    'version DESC',
    listLimit(opts.limit),
  );
}

export function listAuditQuery(opts: ListAuditOptions, ph: Placeholder): Query {
  return select(
    ph,
    'SELECT * FROM audit',
    [
      ['id <', opts.beforeId],
      ['id >', opts.sinceId],
      ['action =', opts.action],
    ],
    // A replica pulling with sinceId applies records in the order they happened.
    opts.sinceId === undefined ? 'id DESC' : 'id ASC',
    listLimit(opts.limit),
  );
}

function select(
  ph: Placeholder,
  base: string,
  conditions: [string, string | number | undefined][],
  order: string,
  limit: number,
): Query {
  const params: (string | number)[] = [];
  const where: string[] = [];
  for (const [test, value] of conditions) {
    if (value === undefined) continue;
    params.push(value);
    where.push(`${test} ${ph(params.length)}`);
  }
  params.push(limit);
  const whereSql = where.length > 0 ? ` WHERE ${where.join(' AND ')}` : '';
  return { sql: `${base}${whereSql} ORDER BY ${order} LIMIT ${ph(params.length)}`, params };
}

/** The SET clause that frees a scheduler job of its claim (same text in both dialects). */
export const RELEASE_CLAIM = "state = 'idle', node = NULL, token = NULL, fire_at = NULL, claimed_at = NULL, started_at = NULL";

/**
 * A finished run's values in RUN_COLUMNS order: as reported when its token was still the job's
 * claim, else `rejected` with the reason.
 */
export function runValues(run: Omit<SchedulerRun, 'id'>, accepted: boolean): (string | number | null)[] {
  const error = accepted ? run.error : `stale fencing token ${run.token}: the claim was taken back while this node was away${run.error ? ` (${run.error})` : ''}`;
  return [run.scheduleId, run.fireAt, run.node, run.token, run.startedAt, run.endedAt, accepted ? run.outcome : 'rejected', error];
}
