/**
 * Schedules as JSON documents, their validation, and the time maths of firing them. Pure
 * functions (the clock is a parameter), tested in test/unit/scheduler-definition.test.ts.
 *
 * A schedule fires on a cron expression (five fields, or six with seconds first, in an
 * explicit IANA time zone; parsed by cron-parser) or every `intervalSeconds` (aligned on
 * multiples of the interval since the Unix epoch, so every node computes the same fire
 * times). A fire time is "missed" when it is claimed more than MISFIRE_THRESHOLD_MS late (the
 * previous run of a non-concurrent schedule overran it, or no scheduler node was up):
 * `fire-and-proceed` runs it once, late, then carries on from now; `do-nothing` skips it.
 */
import { Ajv } from 'ajv';
import { CronExpressionParser } from 'cron-parser';
import { CohortError } from '../core/errors.js';
import { OWN_SCHEMA_OPTIONS } from '../core/own-schemas.js';
import { contentHash } from '../repository/canonical-json.js';
import type { ClaimPlan, SchedulerJob } from '../repository/repository.js';

export const JOB_TYPES = ['http', 'purge-expired', 'config-backup'] as const;
export type JobType = (typeof JOB_TYPES)[number];
export const MISFIRE_POLICIES = ['fire-and-proceed', 'do-nothing'] as const;
export type MisfirePolicy = (typeof MISFIRE_POLICIES)[number];

/** A fire time claimed later than this counts as missed (misfire policy). */
export const MISFIRE_THRESHOLD_MS = 1000;

export interface ScheduleDefinition {
  id: string;
  enabled: boolean;
  cron?: string;
  intervalSeconds?: number;
  timezone: string;
  type: JobType;
  http?: { method: string; url: string; headers?: Record<string, string>; body?: string; timeoutMs?: number };
  backup?: { directory: string };
  concurrentExecution: boolean;
  misfirePolicy: MisfirePolicy;
}

export const SCHEDULE_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['id', 'type'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,64}$' },
    enabled: { type: 'boolean' },
    cron: { type: 'string', minLength: 1, maxLength: 200 },
    intervalSeconds: { type: 'integer', minimum: 1, maximum: 31_536_000 },
    timezone: { type: 'string', minLength: 1, maxLength: 64 },
    type: { type: 'string', enum: [...JOB_TYPES] },
    http: {
      type: 'object',
      additionalProperties: false,
      required: ['url'],
      properties: {
        method: { type: 'string', enum: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD'] },
        url: { type: 'string', pattern: '^https?://', maxLength: 2048 },
        headers: { type: 'object', additionalProperties: { type: 'string', maxLength: 4096 }, maxProperties: 50 },
        body: { type: 'string', maxLength: 1_048_576 },
        timeoutMs: { type: 'integer', minimum: 1, maximum: 3_600_000 },
      },
    },
    backup: { type: 'object', additionalProperties: false, required: ['directory'], properties: { directory: { type: 'string', minLength: 1, maxLength: 1024 } } },
    concurrentExecution: { type: 'boolean' },
    misfirePolicy: { type: 'string', enum: [...MISFIRE_POLICIES] },
  },
} as const;

const validate = new Ajv({ allErrors: true, strict: true, ...OWN_SCHEMA_OPTIONS }).compile(SCHEDULE_SCHEMA);

function invalid(id: unknown, problems: string[]): CohortError {
  const name = typeof id === 'string' ? id : '(no id)';
  return new CohortError('SCHEDULE_INVALID', `schedule ${name} is not valid: ${problems.join('; ')}`, { id: name, errors: problems });
}

/** The schedule in `raw` with its defaults filled in; SCHEDULE_INVALID listing every problem otherwise. */
export function parseSchedule(raw: unknown): ScheduleDefinition {
  if (!validate(raw)) {
    const problems = (validate.errors ?? []).map((e) =>
      e.keyword === 'additionalProperties'
        ? `${e.instancePath || '(schedule)'}: unknown field ${JSON.stringify((e.params as { additionalProperty: string }).additionalProperty)}`
        : `${e.instancePath || '(schedule)'}: ${e.message ?? 'invalid'}`,
    );
    throw invalid((raw as { id?: unknown } | null)?.id, problems);
  }
  const r = raw as Partial<ScheduleDefinition> & { id: string; type: JobType };
  const def: ScheduleDefinition = {
    id: r.id,
    enabled: r.enabled ?? true,
    timezone: r.timezone ?? 'UTC',
    type: r.type,
    concurrentExecution: r.concurrentExecution ?? false,
    misfirePolicy: r.misfirePolicy ?? 'fire-and-proceed',
    ...(r.cron !== undefined ? { cron: r.cron } : {}),
    ...(r.intervalSeconds !== undefined ? { intervalSeconds: r.intervalSeconds } : {}),
    ...(r.http ? { http: { method: r.http.method ?? 'POST', url: r.http.url, ...(r.http.headers ? { headers: r.http.headers } : {}), ...(r.http.body !== undefined ? { body: r.http.body } : {}), timeoutMs: r.http.timeoutMs ?? 10_000 } } : {}),
    ...(r.backup ? { backup: r.backup } : {}),
  };
  const problems: string[] = [];
  if ((def.cron === undefined) === (def.intervalSeconds === undefined)) problems.push('exactly one of cron and intervalSeconds is required');
  if (!isTimeZone(def.timezone)) problems.push(`/timezone: ${JSON.stringify(def.timezone)} is not an IANA time zone`);
  if (def.cron !== undefined && problems.length === 0) {
    try {
      CronExpressionParser.parse(def.cron, { tz: def.timezone, strict: false }).next();
    } catch (err) {
      problems.push(`/cron: ${JSON.stringify(def.cron)} is not a cron expression (${(err as Error).message})`);
    }
  }
  if (def.type === 'http' && !def.http) problems.push('/http: an http schedule needs http.url');
  if (def.type === 'config-backup' && !def.backup) problems.push('/backup: a config-backup schedule needs backup.directory');
  if (problems.length > 0) throw invalid(def.id, problems);
  return def;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * Identifies a definition's content as stored (its secrets sealed): a changed definition
 * resets its job's fire times. Taken from the stored form, so every scheduler node computes
 * the same, whether or not it holds the key that opens the secrets.
 */
export function definitionHash(stored: unknown): string {
  return contentHash(stored);
}

/** The first fire time strictly after `after` (ms since the epoch). */
export function nextFireAt(def: ScheduleDefinition, after: number): number {
  if (def.intervalSeconds !== undefined) {
    const period = def.intervalSeconds * 1000;
    return (Math.floor(after / period) + 1) * period;
  }
  return CronExpressionParser.parse(def.cron!, { currentDate: new Date(after), tz: def.timezone }).next().getTime();
}

/** What to do with a due fire time claimed at `now` (see the header: misfires). */
export function planClaim(def: ScheduleDefinition, fireAt: number, now: number): ClaimPlan {
  const missed = now - fireAt > MISFIRE_THRESHOLD_MS;
  const next = nextFireAt(def, Math.max(fireAt, now));
  if (missed && def.misfirePolicy === 'do-nothing') return { fire: false, nextFireAt: next, concurrent: def.concurrentExecution };
  return { fire: true, nextFireAt: next, concurrent: def.concurrentExecution };
}

/**
 * The next fire time of a job taken back from a node that stopped checking in: a claim that
 * never started fires again at its own time; a started run follows the misfire policy (its
 * fire time runs again at once, or waits for the next fire time).
 */
export function recoveredFireAt(def: ScheduleDefinition | undefined, job: SchedulerJob, now: number): number {
  if (job.state === 'claimed' && job.fireAt !== null) return job.fireAt;
  if (def && def.misfirePolicy === 'do-nothing') return nextFireAt(def, now);
  // fire-and-proceed: the interrupted fire time is due again at once (and runs under its own time).
  return job.fireAt ?? now;
}
