/**
 * A chaos run of the replicated grid between real processes: a console and five engines
 * (`cohort start` each, RF 3, loopback only), clients using the public runtime API only,
 * and faults chosen by a seed: kill -9 followed by a restart, SIGSTOP followed by SIGCONT,
 * never more than `maxDown` engines down or paused at once (an engine restarted after a
 * kill counts as down until its /health/ready answers 200). Then every fault is healed, the
 * cluster is left to settle, and the invariants are checked:
 *
 * - every acknowledged session (201) is read (200) on every engine, unless a delete or a
 *   revocation of it was attempted (then 404 is allowed);
 * - every acknowledged revocation (a 204 of POST /runtime/v1/revocations, or of DELETE
 *   /runtime/v1/sessions/{id}) is seen as revoked on every engine;
 * - no replay id is acknowledged (201) twice, including when it is sent again at the end.
 *
 * An operation that failed (an error status, a timeout, a reset connection) is unknown: it
 * may or may not have happened, so it is never counted as acknowledged.
 *
 * The seed decides the fault plan (when, which kind, which engine, for how long) and each
 * client's sequence of operations; the processes' real timing decides the rest, so a seed
 * replays the same plan, not the same interleaving.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';
import { seededRandom, type Random } from '../../src/core/random.js';
import { clusterInfoOf, startNode, stateOf, waitUntil } from './cluster.js';
import { runCohort, type CohortProcess } from './processes.js';

export interface RealChaosOptions {
  seed: number;
  /** How long clients and faults run (s). */
  seconds: number;
  engines?: number;
  clients?: number;
  replicationFactor?: number;
  /** Most engines down (killed and not ready yet) or paused at once. Default: replicationFactor - 1. */
  maxDown?: number;
  /** Progress lines (faults as they happen, phases). */
  log?: (line: string) => void;
  /** Keep the processes' configurations and logs even when every invariant holds. */
  keepLogs?: boolean;
}

export interface RealChaosResult {
  seed: number;
  durationMs: number;
  operations: number;
  acknowledged: { sessions: number; deletes: number; revocations: number; replayIds: number; total: number };
  unknown: number;
  /** Every fault and recovery, `<seconds from start> <what> <engine>`. */
  faults: string[];
  /** Acknowledged sessions no engine reads, with their partition. */
  lost: string[];
  /** Every broken invariant (lost sessions included), one line each. */
  violations: string[];
  /** Where the processes' configurations and logs are (kept when an invariant broke, or when asked). */
  dir: string;
}

const API_KEY = 'grid-chaos-api-key-0123456789abcdef';
/** A client gives up on a request after this long (ms): about as long as a write retries while placements switch; a paused engine holds a client no longer. */
const REQUEST_TIMEOUT_MS = 2500;
/** How long after healing a session or revocation missing somewhere may take to appear (ms). */
const SETTLE_DEADLINE_MS = 30_000;
/** Requests in flight while checking the invariants. */
const CHECK_CONCURRENCY = 16;

type EngineState = 'up' | 'paused' | 'down' | 'starting';

interface ChaosEngine {
  id: string;
  file: string;
  runtime: string;
  proc: CohortProcess;
  state: EngineState;
  /** Every process this engine ran, oldest first (for the logs). */
  procs: CohortProcess[];
}

interface Answer {
  status: number;
  json: Record<string, unknown>;
}

/** One request to an engine's runtime API; status 0 when it failed without an answer (timeout, refused, reset). */
async function request(engine: ChaosEngine, method: string, path: string, body?: unknown, timeoutMs = REQUEST_TIMEOUT_MS): Promise<Answer> {
  try {
    const r = await fetch(`http://${engine.runtime}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? null : JSON.stringify(body),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await r.text();
    let json: Record<string, unknown> = {};
    try {
      json = text ? (JSON.parse(text) as Record<string, unknown>) : {};
    } catch {
      // not JSON: the status says enough
    }
    return { status: r.status, json };
  } catch {
    return { status: 0, json: {} };
  }
}

async function isReady(engine: ChaosEngine): Promise<boolean> {
  try {
    return (await fetch(`http://${engine.runtime}/health/ready`, { signal: AbortSignal.timeout(1000) })).status === 200;
  } catch {
    return false;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const between = (random: Random, low: number, high: number): number => low + random() * (high - low);
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;

/** Runs `work` over `items` with at most `concurrency` at once. */
async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

/** The partition a cluster-wide session id names (`<partition>.<random>`). */
function partitionOfId(id: string): string {
  return id.split('.')[0] ?? '?';
}

export async function realGridChaos(t: Pick<TestContext, 'after'>, options: RealChaosOptions): Promise<RealChaosResult> {
  const engineCount = options.engines ?? 5;
  const clientCount = options.clients ?? 8;
  const rf = options.replicationFactor ?? 3;
  const maxDown = options.maxDown ?? rf - 1;
  const log = options.log ?? (() => undefined);
  const dir = mkdtempSync(join(tmpdir(), 'cohort-grid-chaos-'));
  let keepDir = false;
  t.after(() => {
    if (!keepDir) rmSync(dir, { recursive: true, force: true });
  });

  // ---------------------------------------------------------------- the cluster
  const consoleNode = await startNode(t, dir, 'console', { role: 'console' });
  const overrides = { http: { api_keys: API_KEY }, state: { replication_factor: String(rf) } };
  const engines: ChaosEngine[] = [];
  for (let i = 1; i <= engineCount; i++) {
    const n = await startNode(t, dir, `engine-${i}`, { peers: consoleNode.address, overrides });
    engines.push({ id: n.id, file: n.file, runtime: n.config.http!.runtime!, proc: n.proc, state: 'up', procs: [n.proc] });
  }
  for (const e of engines) await waitUntil(() => isReady(e), (ok) => ok, 30_000, 50);
  await waitUntil(() => clusterInfoOf(consoleNode.file), (info) => engines.every((e) => stateOf(info, e.id) === 'active'), 30_000, 50);

  // ---------------------------------------------------------------- faults
  const started = performance.now();
  const at = (): string => ((performance.now() - started) / 1000).toFixed(1);
  const faults: string[] = [];
  const note = (what: string, e: ChaosEngine): void => {
    const line = `${at()} ${what} ${e.id}`;
    faults.push(line);
    log(line);
  };
  const notUp = (): number => engines.filter((e) => e.state !== 'up').length;
  const recoveries: Array<Promise<void>> = [];

  /** Starts the engine again with its own configuration; it is up once it reports ready. */
  const restart = async (e: ChaosEngine): Promise<void> => {
    const proc = runCohort(t, ['start', '-c', e.file]);
    e.proc = proc;
    e.procs.push(proc);
    e.state = 'starting';
    note('restarted', e);
    await waitUntil(() => isReady(e), (ok) => ok, 60_000, 50);
    e.state = 'up';
    note('ready', e);
  };

  const kill = async (e: ChaosEngine, downMs: number): Promise<void> => {
    e.state = 'down';
    note('kill -9', e);
    process.kill(e.proc.pid, 'SIGKILL');
    await e.proc.exited;
    await sleep(downMs);
    await restart(e);
  };

  const pause = async (e: ChaosEngine, pausedMs: number): Promise<void> => {
    e.state = 'paused';
    note('SIGSTOP', e);
    process.kill(e.proc.pid, 'SIGSTOP');
    await sleep(pausedMs);
    process.kill(e.proc.pid, 'SIGCONT');
    e.state = 'up';
    note('SIGCONT', e);
  };

  const faultRandom = seededRandom(options.seed);
  const endAt = started + options.seconds * 1000;
  const faultLoop = async (): Promise<void> => {
    // The first fault comes after the clients made some sessions.
    await sleep(between(faultRandom, 1000, 3000));
    while (performance.now() < endAt) {
      // Drawn whether or not a fault can be made now, so the plan depends on the seed alone.
      const kind = faultRandom() < 0.45 ? 'kill' : 'pause';
      const lengthMs = kind === 'kill' ? between(faultRandom, 200, 4000) : between(faultRandom, 200, 6000);
      const choice = faultRandom();
      const gapMs = between(faultRandom, 1000, 5000);
      const candidates = engines.filter((e) => e.state === 'up');
      if (notUp() < maxDown && candidates.length > 0) {
        const e = candidates[Math.floor(choice * candidates.length)]!;
        // Nothing outlives the run: a fault started near its end is still healed below.
        recoveries.push(kind === 'kill' ? kill(e, lengthMs) : pause(e, Math.min(lengthMs, Math.max(200, endAt - performance.now()))));
      }
      await sleep(gapMs);
    }
  };

  // ---------------------------------------------------------------- clients
  const sessions = new Map<string, string>(); // acknowledged session id → engine that created it
  const touched = new Set<string>(); // sessions a delete or revocation was attempted on
  const revoked = new Set<string>(); // acknowledged revocations (tokens and deleted or revoked sessions)
  const replayAccepted = new Map<string, number>(); // replay id → number of 201 answers
  const sessionList: string[] = [];
  let operations = 0;
  let unknown = 0;
  const acknowledged = { sessions: 0, deletes: 0, revocations: 0, replayIds: 0, total: 0 };
  const maxOpsPerClient = Math.max(1000, options.seconds * 2000);

  const client = async (index: number): Promise<void> => {
    const random = seededRandom((options.seed * 131 + index * 7919) >>> 0);
    let n = 0;
    while (performance.now() < endAt && n < maxOpsPerClient) {
      n++;
      const engine = pick(random, engines);
      const r = random();
      if (r < 0.55 || sessionList.length === 0) {
        operations++;
        const a = await request(engine, 'POST', '/runtime/v1/sessions', { subject: `user-${index}-${n}`, attributes: { n }, idleTimeoutSeconds: 3600, maxLifetimeSeconds: 7200 });
        if (a.status === 201 && typeof a.json.id === 'string') {
          sessions.set(a.json.id, engine.id);
          sessionList.push(a.json.id);
          acknowledged.sessions++;
        } else unknown++;
      } else if (r < 0.65) {
        const id = pick(random, sessionList);
        touched.add(id);
        operations++;
        const a = await request(engine, 'DELETE', `/runtime/v1/sessions/${id}`);
        if (a.status === 204) {
          revoked.add(id);
          acknowledged.deletes++;
        } else unknown++;
      } else if (r < 0.75) {
        // A token id, or an acknowledged session's id.
        const id = random() < 0.5 ? `token-${options.seed}-${index}-${n}` : pick(random, sessionList);
        touched.add(id);
        operations++;
        const a = await request(engine, 'POST', '/runtime/v1/revocations', { id });
        if (a.status === 204) {
          revoked.add(id);
          acknowledged.revocations++;
        } else unknown++;
      } else {
        // Two engines at once with the same new id; now and then an id acknowledged before.
        const seen = [...replayAccepted.keys()];
        const id = random() < 0.1 && seen.length > 0 ? pick(random, seen) : `replay-${options.seed}-${index}-${n}`;
        const other = pick(random, engines.filter((e) => e !== engine));
        const answers = await Promise.all([engine, other].map((e) => request(e, 'POST', '/runtime/v1/replay', { id, ttlSeconds: 3600 })));
        for (const a of answers) {
          operations++;
          if (a.status === 201) {
            replayAccepted.set(id, (replayAccepted.get(id) ?? 0) + 1);
            acknowledged.replayIds++;
          } else if (a.status !== 409) unknown++;
        }
      }
    }
  };

  log(`seed ${options.seed}: clients and faults for ${options.seconds} s`);
  await Promise.all([faultLoop(), ...Array.from({ length: clientCount }, (_, i) => client(i))]);
  const durationMs = performance.now() - started;

  // ---------------------------------------------------------------- heal
  await Promise.all(recoveries);
  for (const e of engines) if (e.state !== 'up') await waitUntil(() => isReady(e), (ok) => ok, 60_000, 50);
  await waitUntil(() => clusterInfoOf(consoleNode.file), (info) => engines.every((e) => stateOf(info, e.id) === 'active'), 30_000, 50);
  log(`${at()} healed: every engine running and ready`);

  // ---------------------------------------------------------------- invariants
  acknowledged.total = acknowledged.sessions + acknowledged.deletes + acknowledged.revocations + acknowledged.replayIds;
  const violations: string[] = [];

  // Sessions and revocations: checked, and what is missing checked again until the deadline,
  // so that a repair still under way after healing is not taken for a loss.
  const mustRead = [...sessions.keys()].filter((id) => !touched.has(id));
  const mayBeGone = [...sessions.keys()].filter((id) => touched.has(id));
  const missing = new Map<string, Set<string>>(); // session id → engines that do not read it
  const notRevoked = new Map<string, Set<string>>(); // revoked id → engines that do not say so
  const checkSessions = async (ids: readonly string[]): Promise<void> => {
    await pool(ids.flatMap((id) => engines.map((e) => [id, e] as const)), CHECK_CONCURRENCY, async ([id, e]) => {
      const a = await request(e, 'GET', `/runtime/v1/sessions/${id}`);
      const ok = a.status === 200 || (a.status === 404 && mayBeGoneSet.has(id));
      const set = missing.get(id) ?? new Set<string>();
      if (ok) set.delete(e.id);
      else set.add(`${e.id}:${a.status}`);
      if (set.size > 0) missing.set(id, set);
      else missing.delete(id);
    });
  };
  const checkRevocations = async (ids: readonly string[]): Promise<void> => {
    await pool(ids.flatMap((id) => engines.map((e) => [id, e] as const)), CHECK_CONCURRENCY, async ([id, e]) => {
      const a = await request(e, 'GET', `/runtime/v1/revocations/${encodeURIComponent(id)}`);
      const set = notRevoked.get(id) ?? new Set<string>();
      if (a.status === 200 && a.json.revoked === true) set.delete(e.id);
      else set.add(e.id);
      if (set.size > 0) notRevoked.set(id, set);
      else notRevoked.delete(id);
    });
  };
  const mayBeGoneSet = new Set(mayBeGone);
  await checkSessions([...mustRead, ...mayBeGone]);
  await checkRevocations([...revoked]);
  const settleStart = performance.now();
  while ((missing.size > 0 || notRevoked.size > 0) && performance.now() - settleStart < SETTLE_DEADLINE_MS) {
    log(`${at()} ${missing.size} sessions and ${notRevoked.size} revocations not yet on every engine; checking again`);
    await sleep(2000);
    // A failed answer is stored with its status: start each pass from a clean slate.
    const sessionIds = [...missing.keys()];
    const revocationIds = [...notRevoked.keys()];
    for (const id of sessionIds) missing.delete(id);
    for (const id of revocationIds) notRevoked.delete(id);
    await checkSessions(sessionIds);
    await checkRevocations(revocationIds);
  }
  const lost: string[] = [];
  for (const [id, where] of missing) {
    const everywhere = where.size === engines.length && [...where].every((w) => w.endsWith(':404'));
    const line = `session ${id} (partition ${partitionOfId(id)}, created on ${sessions.get(id)}) ${everywhere ? 'lost: 404 on every engine' : `not read on ${[...where].join(', ')}`}`;
    if (everywhere) lost.push(line);
    violations.push(line);
  }
  for (const [id, where] of notRevoked) violations.push(`revocation ${id} not seen on ${[...where].join(', ')}`);

  // Replay ids: never two 201s, and each accepted one is refused when sent again now.
  for (const [id, count] of replayAccepted) if (count > 1) violations.push(`replay id ${id} accepted ${count} times`);
  let replayIndex = 0;
  await pool([...replayAccepted.keys()], CHECK_CONCURRENCY, async (id) => {
    const e = engines[replayIndex++ % engines.length]!;
    const a = await request(e, 'POST', '/runtime/v1/replay', { id, ttlSeconds: 3600 });
    if (a.status === 201) violations.push(`replay id ${id} accepted again by ${e.id} after healing`);
  });

  if (violations.length > 0 || options.keepLogs === true) {
    keepDir = true;
    // The logs of every process, for whoever looks into the seed.
    for (const e of engines) e.procs.forEach((p, i) => writeFileSync(join(dir, `${e.id}.${i}.log`), p.stdout() + p.stderr()));
    writeFileSync(join(dir, 'console.log'), consoleNode.proc.stdout() + consoleNode.proc.stderr());
    writeFileSync(join(dir, 'violations.txt'), `${violations.join('\n')}\nfaults:\n${faults.join('\n')}\n`);
  }
  return { seed: options.seed, durationMs, operations, acknowledged, unknown, faults, lost, violations, dir };
}
