/**
 * The replicated grid under random faults, in the simulator: real membership, rpc, executor
 * and store code on SimNetwork, one seed deciding everything.
 *
 * A run: N engines (local profile), a workload of session creates, revocations and replay
 * inserts (each replay id sent by two engines at the same moment) from random engines, while
 * engines crash (at most replication_factor - 1 over the run), pause, and the network splits
 * and heals. Then the faults end and the grid's reliability invariants are checked:
 * - no acknowledged session is lost (every live engine reads it);
 * - no acknowledged revocation is lost (every live engine answers it locally);
 * - no replay id is accepted twice;
 * - within 10 s of the faults ending, every replica set is whole again (each live replica of
 *   an acknowledged session's partition holds it);
 * - once the cluster is quiet, every engine answers the same for every key: each subject's
 *   sessions and each inter-request state value, acknowledged or not (a write that failed
 *   must be undone everywhere, not left on some replicas);
 * - once the cluster is quiet, no engine holds records of a partition it does not replicate:
 *   partitions that moved away were dropped once their new replicas held them.
 *
 * Workloads: `mixed` (the above), and `failed-write`, which overwrites a few state keys and
 * creates sessions for a few subjects while links fail one way (answers lost, so primaries
 * time out on backups that did apply the write) and engines pause: most failed writes are
 * then writes some backups hold, which must be undone everywhere; and `large-record`, the
 * mixed workload with, now and then, a session of 1 MB for one subject, so that its partition
 * grows past the frame size and moves in slices whenever engines join, fail or resync.
 */
import { silentLogger } from '../core/logger.js';
import { seededRandom } from '../core/random.js';
import { isActive } from '../cluster/member-list.js';
import { PROFILES } from '../cluster/timing.js';
import { Rpc } from '../rpc/rpc.js';
import { EVERYWHERE, GridProvider, partitionOfSessionId } from '../state/grid/grid-provider.js';
import type { SessionCursor } from '../state/services.js';
import { GridStore } from '../state/grid/grid-store.js';
import { ReplicatedExecutor } from '../state/grid/replicated-executor.js';
import { runUntil, settleSimulated } from './drive.js';
import { SimCluster } from './sim-cluster.js';

export type GridWorkload = 'mixed' | 'failed-write' | 'large-record';

/** Attributes of a `large-record` session: one subject's partition grows far past a bulk message (4 MiB) and a frame (16 MiB). */
const LARGE_ATTRIBUTES_CHARS = 1_000_000;

export interface GridChaosOptions {
  seed: number;
  nodes?: number;
  replicationFactor?: number;
  /** How long faults and workload run (simulated ms). */
  faultMs?: number;
  /** `mixed` (default) or `failed-write` (see the header). */
  workload?: GridWorkload;
}

export interface GridChaosResult {
  violations: string[];
  faults: string[];
  acknowledged: { sessions: number; revocations: number; replayIds: number };
  /** Writes that failed (refused or unanswered), and state puts acknowledged. */
  failedWrites: number;
}

interface Engine {
  store: GridStore;
  executor: ReplicatedExecutor;
  provider: GridProvider;
}

const STEP_MS = 8;
const HEAL_LIMIT_MS = 10_000;

export async function gridChaos(options: GridChaosOptions): Promise<GridChaosResult> {
  const n = options.nodes ?? 5;
  const rf = options.replicationFactor ?? 3;
  const faultMs = options.faultMs ?? 15_000;
  const random = seededRandom(options.seed ^ 0x5eed);
  const engines: Engine[] = [];
  const cluster = new SimCluster({
    nodes: n,
    seed: options.seed,
    timing: PROFILES.local,
    onMemberChange: (i) => engines[i] && updatePlacement(i),
  });
  const updatePlacement = (i: number): void => {
    const node = cluster.nodes[i]!;
    if (node.crashed) return;
    const members = node.membership.list();
    const active = new Map(members.filter(isActive).map((m) => [m.id, m.address]));
    engines[i]!.executor.setEngines(active, members.filter((m) => m.status !== 'left').length);
  };
  for (const node of cluster.nodes) {
    const clock = cluster.clock;
    const rpc = new Rpc({ mux: node.mux, clock, logger: silentLogger(), timeoutMs: 500 });
    const store = new GridStore(clock, node.id);
    store.start();
    const executor = new ReplicatedExecutor({ store, rpc, clock, logger: silentLogger(), self: node.id, replicationFactor: rf, bulkTimeoutMs: 2000 });
    engines.push({ store, executor, provider: new GridProvider(executor, clock) });
  }
  for (let i = 0; i < n; i++) updatePlacement(i);

  const advance = (ms: number): void => cluster.run(ms);
  const run = async (ms: number): Promise<void> => void (await runUntil(advance, () => false, ms, STEP_MS));
  await run(2000);

  const faults: string[] = [];
  /** The settled state the heal phase waits for (checked synchronously on the stores). */
  const wholeAndRevoked = (): boolean => {
    // Membership first: until every live engine sees every other, one may still serve alone.
    if (cluster.disagreements().length > 0) return false;
    const up = cluster.live().map((x) => x.index);
    for (const id of sessions.keys()) {
      for (const r of engines[up[0]!]!.executor.replicasOf(partitionOfSessionId(id)!)) {
        const i = cluster.nodes.findIndex((x) => x.id === r);
        if (!engines[i]!.store.get('session', id)) return false;
      }
    }
    return revoked.every((id) => up.every((i) => engines[i]!.store.get('revocation', id) === true));
  };
  const sessions = new Map<string, string>(); // id → subject, acknowledged
  const revoked: string[] = [];
  const replayAccepts = new Map<string, number>();
  const pending: Promise<unknown>[] = [];
  const live = (): number[] => cluster.nodes.filter((x) => !x.crashed && !cluster.isPaused(x.index)).map((x) => x.index);
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  let crashes = 0;
  let opCount = 0;
  const paused = new Set<number>();
  const failedWrite = options.workload === 'failed-write';
  const subjects = new Set<string>();
  const stateKeys = new Set<string>();
  let failedWrites = 0;
  const failed = (): void => void failedWrites++;

  const start = cluster.now;
  while (cluster.now - start < faultMs) {
    // Workload: a few operations every step of 50-150 ms.
    for (let k = 0; k < 3; k++) {
      const from = pick(live());
      const roll = random();
      const tag = `${options.seed}-${opCount++}`;
      if (failedWrite) {
        if (roll < 0.5) {
          const key = `k-${Math.floor(random() * 12)}`;
          stateKeys.add(key);
          pending.push(engines[from]!.provider.requestState.put(key, tag, 3_600_000).catch(failed));
        } else {
          const subject = `s-${Math.floor(random() * 8)}`;
          subjects.add(subject);
          pending.push(engines[from]!.provider.sessions.create({ subject, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 }).then((s) => sessions.set(s.id, s.subject), failed));
        }
        continue;
      }
      if (options.workload === 'large-record' && roll < 0.06) {
        subjects.add('large');
        const attributes = { blob: 'x'.repeat(LARGE_ATTRIBUTES_CHARS), tag };
        pending.push(engines[from]!.provider.sessions.create({ subject: 'large', attributes, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 }).then((s) => sessions.set(s.id, s.subject), failed));
      } else if (roll < 0.5) {
        pending.push(engines[from]!.provider.sessions.create({ subject: `u-${tag}`, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 }).then((s) => sessions.set(s.id, s.subject), () => undefined));
      } else if (roll < 0.7) {
        const id = `revoked-${tag}`;
        pending.push(engines[from]!.provider.revocations.revoke(id).then(() => revoked.push(id), () => undefined));
      } else {
        const id = `replay-${tag}`;
        const other = pick(live());
        for (const e of [from, other]) {
          pending.push(engines[e]!.provider.replay.checkAndInsert(id, 3_600_000).then((fresh) => fresh && replayAccepts.set(id, (replayAccepts.get(id) ?? 0) + 1), () => undefined));
        }
      }
    }
    // Faults.
    const f = random();
    if (failedWrite && f < 0.12) {
      // Answers lost one way for a while: the primary times out on a backup that applied.
      const [a, b] = [pick(live()), pick(live())];
      if (a !== b) {
        cluster.cutOneWay(a, b);
        faults.push(`cut ${a} -> ${b} at ${cluster.now - start}`);
      }
    } else if (f < 0.02 && crashes < rf - 1 && live().length > Math.ceil(n / 2) + 1) {
      const victim = pick(live());
      cluster.crash(victim);
      crashes++;
      faults.push(`crash ${victim} at ${cluster.now - start}`);
    } else if (f < 0.05 && paused.size === 0) {
      const victim = pick(live());
      cluster.pause(victim);
      paused.add(victim);
      faults.push(`pause ${victim} at ${cluster.now - start}`);
    } else if (f < 0.09 && paused.size > 0) {
      for (const p of paused) cluster.resume(p);
      faults.push(`resume ${[...paused]} at ${cluster.now - start}`);
      paused.clear();
    } else if (f < 0.11) {
      const shuffled = cluster.nodes.map((x) => x.index).sort(() => random() - 0.5);
      const cut = 1 + Math.floor(random() * (n - 1));
      cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      faults.push(`partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)} at ${cluster.now - start}`);
    } else if (f < 0.15) {
      cluster.heal();
      faults.push(`heal at ${cluster.now - start}`);
    }
    await run(50 + Math.floor(random() * 100));
  }

  // Faults end.
  for (const p of paused) cluster.resume(p);
  cluster.heal();
  faults.push(`all faults end at ${cluster.now - start}`);
  // Runs until every replica set is whole and every engine has every revocation, or the
  // 10 s bar passes (then the checks below report what is missing).
  await runUntil(advance, wholeAndRevoked, HEAL_LIMIT_MS, 250);
  // Operations still in flight settle (answer or time out) as simulated time goes on.
  await settleSimulated(Promise.allSettled(pending), advance, 30_000, 50);
  // Quiet for a few seconds: reverts not delivered yet and background repairs are retried
  // every second, and replicas compare their copies every two (anti-entropy acts on a
  // difference seen twice).
  await run(8000);

  const violations: string[] = [];
  const disagreements = cluster.disagreements();
  if (disagreements.length > 0) violations.push(`membership not converged 10 s after the faults: ${disagreements.slice(0, 3).join('; ')}`);
  for (const [id, count] of replayAccepts) if (count > 1) violations.push(`replay id ${id} accepted ${count} times`);
  const survivors = cluster.live().map((x) => x.index);
  const check = <T>(p: Promise<T>): Promise<T> => settleSimulated(p, advance, 5000, STEP_MS);
  for (const [id, subject] of sessions) {
    for (const i of survivors) {
      const got = await check(engines[i]!.provider.sessions.get(id)).catch((err: unknown) => String(err));
      if (typeof got === 'string' || got?.subject !== subject) violations.push(`acknowledged session ${id} not readable on engine ${i}: ${typeof got === 'string' ? got : 'not found'}`);
    }
    const replicas = engines[survivors[0]!]!.executor.replicasOf(partitionOfSessionId(id)!);
    for (const r of replicas) {
      const i = cluster.nodes.findIndex((x) => x.id === r);
      if (!engines[i]!.store.get('session', id)) violations.push(`replica set of ${id} not whole 10 s after the faults: ${r} lacks it`);
    }
  }
  for (const id of revoked) {
    for (const i of survivors) if (engines[i]!.store.get('revocation', id) !== true) violations.push(`acknowledged revocation ${id} missing on engine ${i}`);
  }
  // Quiet now: every engine answers the same for every key.
  const answers = async (read: (p: GridProvider) => Promise<unknown>): Promise<string[]> =>
    Promise.all(survivors.map((i) => check(read(engines[i]!.provider)).then((v) => JSON.stringify(v) ?? 'undefined', (err: unknown) => `error ${String(err)}`)));
  for (const subject of subjects) {
    // Page by page, as the API lists them: a subject of large sessions is more than a message holds.
    const listed = await answers(async (p) => {
      const ids: string[] = [];
      let after: SessionCursor | undefined;
      do {
        const page = await p.sessions.pageBySubject(subject, { limit: 1000, after });
        ids.push(...page.sessions.map((s) => s.id));
        after = page.next;
      } while (after !== undefined);
      return ids.sort();
    });
    if (new Set(listed).size > 1) {
      const lists = listed.map((l) => (l.startsWith('[') ? (JSON.parse(l) as string[]) : [l]));
      const all = [...new Set(lists.flat())];
      const odd = all.filter((id) => !lists.every((l) => l.includes(id)));
      violations.push(`engines disagree on the sessions of ${subject}: ${odd.map((id) => `${id} listed by engines ${survivors.filter((_, k) => lists[k]!.includes(id)).join(',')}`).join('; ')}`);
    }
  }
  for (const key of stateKeys) {
    const values = await answers((p) => p.requestState.get(key));
    if (new Set(values).size > 1) {
      violations.push(`engines disagree on state ${key}: ${survivors.map((i, k) => `engine ${i}: ${values[k]}`).join('; ')}`);
    }
  }
  // Quiet, every replica set whole: no engine still holds records of partitions it gave away
  // (replicated-executor.ts `dropMoved`), so memory does not grow with every rebalancing.
  for (const i of survivors) {
    const e = engines[i]!;
    const self = cluster.nodes[i]!.id;
    const kept = e.store.partitions().filter((p) => p !== EVERYWHERE && e.store.recordCount(p) > 0 && !e.executor.replicasOf(p).includes(self));
    if (kept.length > 0) violations.push(`engine ${i} still holds ${kept.reduce((a, p) => a + e.store.recordCount(p), 0)} records of ${kept.length} partitions it does not replicate (${kept.slice(0, 5).join(', ')})`);
  }
  for (const e of engines) {
    e.executor.close();
    e.store.stop();
  }
  return { violations: violations.slice(0, 20), faults, acknowledged: { sessions: sessions.size, revocations: revoked.length, replayIds: replayAccepts.size }, failedWrites };
}
