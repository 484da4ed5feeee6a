/**
 * The persistent scheduler of one node (docs/operations.md, "The scheduler"). Every
 * scheduler node shares the repository; schedules run once per cluster because a due fire
 * time is claimed by exactly one node in a repository transaction (schedulerClaimDue).
 *
 * - Check-ins: every `check_in_interval + check_in_offset` the node writes the time. A node
 *   whose check-in is older than `instance_timeout` is `recovering`: any other node takes its
 *   jobs back (a claim it never started fires again; a started run follows the misfire
 *   policy). After another `instance_recovery_timeout` it is `down`.
 * - Every `poll_interval` the node brings the job table in line with the schedules (the
 *   console's `schedules` section), takes back recovering nodes' jobs, claims what is due,
 *   and runs it.
 * - Fencing: every claim has a new token. A run is marked started and completed with it; once
 *   its job was taken back (the node was paused past its check-in, say), the completion is
 *   rejected, recorded as `rejected` and logged, and the job stays with its new claim. So a
 *   non-concurrent schedule never has two runs at once that both count.
 * - At start the node takes back its own claims of a previous life (a kill -9 and a quick
 *   restart leave claims no check-in would ever expire).
 * - Secrets: the headers of HTTP schedules are stored sealed (core/sealed-secrets.ts). A node
 *   that cannot open a schedule's (an engine given the repository but not DATA_DIR/secrets.key)
 *   keeps its job in the table but never claims it, so a node that holds the key runs it; it
 *   logs that once per schedule and version.
 */
import type { Clock, TimerHandle } from '../core/clock.js';
import { isCohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { openSecrets, redactSecrets, type SecretKeyring } from '../core/sealed-secrets.js';
import { isoTime } from '../core/time-text.js';
import type { ConfigDocument, Repository, SchedulerCheckIn, SchedulerClaim } from '../repository/repository.js';
import { runJob, type JobContext } from './jobs.js';
import { definitionHash, nextFireAt, parseSchedule, planClaim, recoveredFireAt, type ScheduleDefinition } from './schedule-definition.js';
import { scheduleSecrets } from './schedule-secrets.js';

export interface SchedulerSettings {
  checkInIntervalMs: number;
  checkInOffsetMs: number;
  instanceTimeoutMs: number;
  instanceRecoveryTimeoutMs: number;
  pollIntervalMs: number;
  /** Runs kept per schedule. */
  runHistory: number;
}

export type SchedulerNodeState = 'running' | 'recovering' | 'down';

/** A node's scheduler state from the age of its last check-in. */
export function schedulerState(checkIn: SchedulerCheckIn, now: number, s: Pick<SchedulerSettings, 'instanceTimeoutMs' | 'instanceRecoveryTimeoutMs'>): SchedulerNodeState {
  const age = now - checkIn.at;
  if (age <= s.instanceTimeoutMs) return 'running';
  if (age <= s.instanceTimeoutMs + s.instanceRecoveryTimeoutMs) return 'recovering';
  return 'down';
}

/** Every node's scheduler state, from the check-ins in the repository. */
export async function schedulerStates(repository: Repository, now: number, s: Pick<SchedulerSettings, 'instanceTimeoutMs' | 'instanceRecoveryTimeoutMs'>): Promise<Map<string, SchedulerNodeState>> {
  return new Map((await repository.schedulerCheckIns()).map((c) => [c.node, schedulerState(c, now, s)]));
}

/**
 * The saved schedules with their job (queue state), as the admin API and `cohort schedules
 * list` show them: headers in clear (`clear`: admins) or redacted (`redacted`: auditors, the CLI).
 */
export async function scheduleViews(repository: Repository, secrets: SecretKeyring, view: 'clear' | 'redacted'): Promise<Array<ScheduleDefinition & { job: Record<string, unknown> | null }>> {
  const jobs = new Map((await repository.schedulerJobs()).map((j) => [j.scheduleId, j]));
  const doc = await repository.getConfigDocument('schedules');
  const shown = view === 'clear' ? openSecrets(scheduleSecrets, doc?.content, secrets) : redactSecrets(scheduleSecrets, doc?.content);
  return parseSaved(shown === undefined ? undefined : { content: shown }, undefined).map(({ def: d }) => {
    const j = jobs.get(d.id);
    return { ...d, job: j ? { state: j.state, node: j.node, nextFireAt: isoTime(j.nextFireAt), fireAt: isoTime(j.fireAt), startedAt: isoTime(j.startedAt) } : null };
  });
}

/** The newest `limit` runs of a schedule, times as ISO 8601. */
export async function runViews(repository: Repository, scheduleId: string, limit: number): Promise<Array<Record<string, unknown>>> {
  return (await repository.schedulerRuns(scheduleId, limit)).map((r) => ({ ...r, fireAt: isoTime(r.fireAt), startedAt: isoTime(r.startedAt), endedAt: isoTime(r.endedAt) }));
}

/** A schedule as saved, ready to run. */
export interface SavedSchedule {
  /** The definition, its secrets opened (redacted when `unopened`). */
  def: ScheduleDefinition;
  /** definitionHash of the stored form: the same on every node, key or no key. */
  hash: string;
  /** Why its secrets could not be opened on this node (it is then never claimed here). */
  unopened?: string;
}

/** The schedules saved in the repository's `schedules` section, secrets opened (invalid ones are skipped and logged). */
export async function savedSchedules(repository: Repository, secrets: SecretKeyring, log?: Logger): Promise<SavedSchedule[]> {
  return parseSaved(await repository.getConfigDocument('schedules'), secrets, log);
}

/** `secrets` undefined: the document's secrets are already as they should be shown. */
function parseSaved(doc: Pick<ConfigDocument, 'content'> | undefined, secrets: SecretKeyring | undefined, log?: Logger): SavedSchedule[] {
  const raw = ((doc?.content ?? { schedules: [] }) as { schedules: unknown[] }).schedules;
  const saved: SavedSchedule[] = [];
  for (const stored of Array.isArray(raw) ? raw : []) {
    let opened = stored;
    let unopened: string | undefined;
    if (secrets) {
      try {
        opened = (openSecrets(scheduleSecrets, { schedules: [stored] }, secrets) as { schedules: unknown[] }).schedules[0];
      } catch (err) {
        if (!isCohortError(err, 'SECRET_KEY_UNKNOWN') && !isCohortError(err, 'SECRET_TAMPERED')) throw err;
        opened = (redactSecrets(scheduleSecrets, { schedules: [stored] }) as { schedules: unknown[] }).schedules[0];
        unopened = `${err.code}: ${err.message}`;
      }
    }
    try {
      saved.push({ def: parseSchedule(opened), hash: definitionHash(stored), ...(unopened ? { unopened } : {}) });
    } catch (err) {
      log?.error({ err }, 'a saved schedule does not validate; it does not run');
    }
  }
  return saved;
}

const CLAIMS_PER_POLL = 20;
/** Polls between two job-table syncs when no schedule changed. */
const SYNC_EVERY_POLLS = 20;

export class Scheduler {
  private checkInTimer: TimerHandle | undefined;
  private pollTimer: TimerHandle | undefined;
  private stopped = false;
  private polling: Promise<void> | undefined;
  /** The schedules of the `schedules` document version last read (parsed once per version). */
  private schedules: { version: number | null; saved: SavedSchedule[] } = { version: -1, saved: [] };
  /** The document version the job table was last synchronised with. */
  private syncedVersion: number | null = -1;
  private pollsSinceSync = 0;
  private readonly running = new Set<Promise<void>>();

  constructor(
    private readonly o: {
      repository: Repository;
      clock: Clock;
      log: Logger;
      nodeId: string;
      settings: SchedulerSettings;
      /** The keys that open the schedules' secrets (DATA_DIR/secrets.key); may hold none. */
      secrets: SecretKeyring;
      jobs: Omit<JobContext, 'repository' | 'nodeId'>;
      /** False while this node must not run jobs (a replica with a repository of its own). */
      active?(): boolean;
      /** Told how every run this node started ended (the node's metrics); `rejected`: its fencing token was stale. */
      onRunFinished?(outcome: 'succeeded' | 'failed' | 'rejected'): void;
    },
  ) {}

  async start(): Promise<void> {
    const { repository, nodeId, clock } = this.o;
    const saved = await savedSchedules(repository, this.o.secrets, this.o.log);
    const taken = await repository.schedulerRecover([nodeId], (job) => recoveredFireAt(saved.find((s) => s.def.id === job.scheduleId)?.def, job, clock.now()));
    if (taken.length > 0) this.o.log.warn({ jobs: taken.map((j) => j.scheduleId) }, 'took back the claims this node held before it restarted');
    await this.checkIn();
    this.schedulePoll(0);
    this.o.log.info({ ...this.o.settings }, 'scheduler running');
  }

  /** Stops claiming; runs in progress finish (their completions are recorded if the repository is still open). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.o.clock.clearTimeout(this.checkInTimer);
    this.o.clock.clearTimeout(this.pollTimer);
    await this.polling;
    await Promise.allSettled([...this.running]);
  }

  private async checkIn(): Promise<void> {
    const { checkInIntervalMs, checkInOffsetMs } = this.o.settings;
    try {
      await this.o.repository.schedulerCheckIn(this.o.nodeId, this.o.clock.now(), checkInIntervalMs + checkInOffsetMs);
    } catch (err) {
      this.o.log.warn({ err }, 'scheduler check-in failed');
    }
    if (!this.stopped) this.checkInTimer = this.o.clock.setTimeout(() => void this.checkIn(), checkInIntervalMs + checkInOffsetMs);
  }

  private schedulePoll(delayMs: number): void {
    if (this.stopped) return;
    this.pollTimer = this.o.clock.setTimeout(() => {
      this.polling = this.poll().finally(() => {
        this.polling = undefined;
        this.schedulePoll(this.o.settings.pollIntervalMs);
      });
    }, delayMs);
  }

  private async poll(): Promise<void> {
    if (this.stopped || this.o.active?.() === false) return;
    try {
      const { repository, clock, nodeId } = this.o;
      const doc = await repository.getConfigDocument('schedules');
      const version = doc?.version ?? null;
      if (version !== this.schedules.version) {
        this.schedules = { version, saved: parseSaved(doc, this.o.secrets, this.o.log) };
        for (const s of this.schedules.saved) {
          if (s.unopened && s.def.enabled) this.o.log.warn({ schedule: s.def.id, version, reason: s.unopened }, `schedule ${s.def.id} holds secrets this node cannot open: left to the scheduler nodes that hold the key`);
        }
      }
      const saved = this.schedules.saved;
      const byId = new Map(saved.map((s) => [s.def.id, s.def]));
      // Claimed here only when this node can open its secrets.
      const runnable = new Set(saved.filter((s) => !s.unopened).map((s) => s.def.id));
      const now = clock.now();
      // Also now and then when nothing changed: rows of deleted schedules that were running
      // at the time are removed once their run is over.
      if (version !== this.syncedVersion || ++this.pollsSinceSync >= SYNC_EVERY_POLLS) {
        this.pollsSinceSync = 0;
        const enabled = saved.filter((s) => s.def.enabled);
        await repository.schedulerSyncJobs(enabled.map((s) => ({ scheduleId: s.def.id, definitionHash: s.hash, firstFireAt: nextFireAt(s.def, now) })));
        this.syncedVersion = version;
      }
      const stale = (await repository.schedulerCheckIns()).filter((c) => c.node !== nodeId && now - c.at > this.o.settings.instanceTimeoutMs).map((c) => c.node);
      const recovered = await repository.schedulerRecover(stale, (job) => recoveredFireAt(byId.get(job.scheduleId), job, now));
      for (const job of recovered) {
        this.o.log.warn({ schedule: job.scheduleId, from: job.node, state: job.state, token: job.token }, `took back job ${job.scheduleId} from ${job.node}, which stopped checking in`);
      }
      if (this.stopped) return;
      // A schedule another node synced before this one read it, or whose secrets this node
      // cannot open: left alone (until the next poll, or for a node that can).
      const claims = await repository.schedulerClaimDue(nodeId, now, CLAIMS_PER_POLL, (id, fireAt) => {
        const def = byId.get(id);
        return def && runnable.has(id) ? planClaim(def, fireAt, now) : { fire: false, nextFireAt: fireAt, concurrent: false };
      });
      for (const claim of claims) {
        const def = byId.get(claim.scheduleId);
        if (!def) continue;
        const run = this.execute(def, claim).finally(() => this.running.delete(run));
        this.running.add(run);
      }
    } catch (err) {
      this.o.log.warn({ err }, 'scheduler poll failed; trying again');
      this.syncedVersion = -1;
    }
  }

  /** Runs one claim; never rejects (a repository failure is logged; the claim expires with this node's check-in). */
  private async execute(def: ScheduleDefinition, claim: SchedulerClaim): Promise<void> {
    try {
      await this.run(def, claim);
    } catch (err) {
      this.o.log.warn({ err, schedule: def.id, token: claim.token }, 'a scheduled run could not be recorded');
    }
  }

  private async run(def: ScheduleDefinition, claim: SchedulerClaim): Promise<void> {
    const { repository, clock, nodeId, log } = this.o;
    const startedAt = clock.now();
    if (!def.concurrentExecution && !(await repository.schedulerStart(def.id, claim.token, startedAt))) {
      log.warn({ schedule: def.id, token: claim.token }, 'a claim was taken back before its run started; not running it');
      return;
    }
    let outcome: 'succeeded' | 'failed' = 'succeeded';
    let error: string | null = null;
    try {
      const what = await runJob(def, claim.fireAt, { repository, nodeId, ...this.o.jobs });
      log.debug({ schedule: def.id, fireAt: claim.fireAt, result: what }, 'scheduled job done');
    } catch (err) {
      outcome = 'failed';
      error = (err as Error).message;
      log.warn({ schedule: def.id, fireAt: claim.fireAt, err }, `scheduled job ${def.id} failed`);
    }
    const accepted = await repository
      .schedulerComplete({ scheduleId: def.id, fireAt: claim.fireAt, node: nodeId, token: claim.token, startedAt, endedAt: clock.now(), outcome, error }, this.o.settings.runHistory, def.concurrentExecution)
      .catch((err: unknown) => {
        log.warn({ err, schedule: def.id }, 'could not record the end of a scheduled run');
        return true;
      });
    this.o.onRunFinished?.(accepted ? outcome : 'rejected');
    if (!accepted) {
      log.warn({ schedule: def.id, token: claim.token, fireAt: claim.fireAt }, `completion of ${def.id} rejected: its fencing token ${claim.token} is stale (the job was taken back while this node was away)`);
    }
  }
}
