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
 * Every engine is the production grid engine (state/grid/grid-engine.ts) over its node's
 * membership as its directory and on its node's own pausable clock, so a paused node's timers
 * stop with it; engines start together, as a full start does (each syncs with the others,
 * then announces that it holds state). Clients send requests only to engines that are ready,
 * as load balancers do.
 *
 * Workloads: `mixed` (the above), and `failed-write`, which overwrites a few state keys and
 * creates sessions for a few subjects while links fail one way (answers lost, so primaries
 * time out on backups that did apply the write) and engines pause: most failed writes are
 * then writes some backups hold, which must be undone everywhere; `large-record`, the
 * mixed workload with, now and then, a session of 1 MB for one subject, so that its partition
 * grows past the frame size and moves in slices whenever engines join, fail or resync; and
 * `lifecycle`, the mixed workload with logouts, while engines join the running cluster,
 * restart gracefully one at a time (saving their state, leaving, and loading it again at
 * start), and crash and restart with the state they saved at their last graceful stop, each
 * start a staged join through the production path. Its faults never take down more than
 * replication_factor - 1 engines at once (stopped, crashed, or started and not yet ready), and
 * a graceful restart begins only when every engine is ready (a rolling restart). Besides the
 * invariants above: no acknowledged logout is undone (a restarted engine's saved state must
 * not bring a deleted session back), and at the end every engine is ready.
 */
import { silentLogger } from '../core/logger.js';
import { seededRandom } from '../core/random.js';
import { PROFILES } from '../cluster/timing.js';
import { Rpc } from '../rpc/rpc.js';
import { engineDirectoryView, type GridDirectory } from '../state/grid/grid-directory.js';
import { openGridEngine, type GridEngine } from '../state/grid/grid-engine.js';
import { EVERYWHERE, partitionOfSessionId, type GridProvider } from '../state/grid/grid-provider.js';
import { scopeKeys } from '../state/grid/scopes.js';
import type { SessionCursor } from '../state/services.js';
import { runUntil, settleSimulated } from './drive.js';
import { SimCluster, type SimNodeHandle } from './sim-cluster.js';
import { SimGridState } from './sim-grid-state.js';

export type GridWorkload = 'mixed' | 'failed-write' | 'large-record' | 'lifecycle';

/** Attributes of a `large-record` session: one subject's partition grows far past a bulk message (4 MiB) and a frame (16 MiB). */
const LARGE_ATTRIBUTES_CHARS = 1_000_000;

export interface GridChaosOptions {
  seed: number;
  nodes?: number;
  replicationFactor?: number;
  /** How long faults and workload run (simulated ms). */
  faultMs?: number;
  /** `mixed` (default), `failed-write`, `large-record` or `lifecycle` (see the header). */
  workload?: GridWorkload;
}

export interface GridChaosResult {
  violations: string[];
  faults: string[];
  acknowledged: { sessions: number; revocations: number; replayIds: number; logouts: number };
  /** Writes that failed (refused or unanswered), and state puts acknowledged. */
  failedWrites: number;
  /** `lifecycle`: engines that joined, restarted gracefully, and restarted after a crash. */
  lifecycle: { joins: number; gracefulRestarts: number; crashRestarts: number; savedStatesLoaded: number };
}

interface Engine {
  node: SimNodeHandle;
  grid: GridEngine;
  rpc: Rpc;
  provider: GridProvider;
  /** A graceful stop began: it takes no more client requests. */
  stopping: boolean;
  /** Client requests in flight here: their connections reset when the process dies. */
  clients: Set<(err: Error) => void>;
}

const STEP_MS = 8;
const HEAL_LIMIT_MS = 10_000;
/** node/cluster-member.ts LEAVE_HANDOFF_MS: how long a leaving node keeps answering. */
const LEAVE_HANDOFF_MS = 250;
/** How often a starting node tries again to join when no member answered (simulated ms). */
const JOIN_RETRY_MS = 500;
/** Every service cluster-wide: the simulated engines have no subclusters. */
const CLUSTER_KEYS = scopeKeys({ architecture: 'adaptive', groupId: null, interGroup: [], preferredNodeIndices: {} });

export async function gridChaos(options: GridChaosOptions): Promise<GridChaosResult> {
  const n = options.nodes ?? 5;
  const rf = options.replicationFactor ?? 3;
  const faultMs = options.faultMs ?? 15_000;
  const random = seededRandom(options.seed ^ 0x5eed);
  /** By node index; undefined while the node is down (crashed, stopped) or not yet started. */
  const engines: Array<Engine | undefined> = [];
  /** Each node's member-change listeners (its grid engine's), by node index: the node's membership calls them. */
  const listeners: Array<Array<() => void>> = [];
  const cluster = new SimCluster({
    nodes: n,
    seed: options.seed,
    timing: PROFILES.local,
    onMemberChange: (i) => {
      for (const listener of listeners[i] ?? []) listener();
    },
  });
  /** Each node's disk for its saved grid state: it outlives the node's processes. */
  const disks: SimGridState[] = [];
  const diskOf = (i: number): SimGridState => (disks[i] ??= new SimGridState(cluster.clock));

  /** The node's directory: its membership (as node/cluster-member.ts), its own clock. */
  const directoryOf = (node: SimNodeHandle): GridDirectory => {
    const own: Array<() => void> = [];
    listeners[node.index] = own;
    return {
      ...engineDirectoryView(() => node.membership.list()),
      clock: node.clock,
      announceHoldsState: () => node.membership.updateMeta({ holdsState: true }),
      announceWriteRefusal: (refusing) => node.membership.updateMeta({ refusesWrites: refusing }),
      announceEngineCount: (count) => node.membership.updateMeta({ engineCount: count }),
      onMembersChanged: (listener) => own.push(listener),
    };
  };
  let savedStatesLoaded = 0;
  const openEngine = async (node: SimNodeHandle): Promise<Engine> => {
    const rpc = new Rpc({ mux: node.mux, clock: node.clock, logger: silentLogger(), timeoutMs: 500 });
    const grid = await openGridEngine({
      self: node.id,
      directory: directoryOf(node),
      rpc,
      logger: silentLogger(),
      replicationFactor: rf,
      bulkTimeoutMs: 2000,
      scopeKeys: CLUSTER_KEYS,
      savedState: diskOf(node.index),
    });
    if (grid.savedStateAtStart.kind === 'loaded') savedStatesLoaded++;
    const engine: Engine = { node, grid, rpc, provider: grid.provider, stopping: false, clients: new Set() };
    engines[node.index] = engine;
    return engine;
  };
  for (const node of cluster.nodes) await openEngine(node);

  const advance = (ms: number): void => cluster.run(ms);
  const run = async (ms: number): Promise<void> => void (await runUntil(advance, () => false, ms, STEP_MS));
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => cluster.clock.setTimeout(resolve, ms));
  await run(2000);

  const faults: string[] = [];
  const sessions = new Map<string, string>(); // id → subject, acknowledged
  const loggedOut = new Set<string>(); // acknowledged logouts (session deletes)
  const revoked: string[] = [];
  const replayAccepts = new Map<string, number>();
  const pending: Promise<unknown>[] = [];
  /** Engines that are up (process running, not stopping), by node index. */
  const up = (): number[] => engines.flatMap((e, i) => (e && !e.node.crashed && !e.stopping ? [i] : []));
  /** Engines a client may send to: up, not paused, ready (load balancers follow readiness). */
  const live = (): number[] => up().filter((i) => !cluster.isPaused(i) && engines[i]!.grid.ready);
  /**
   * A client's request to engine `i`: a process that dies (its clock stops for good) never
   * answers, so its clients see their connections reset instead.
   */
  const client = <T>(i: number, request: (p: GridProvider) => Promise<T>): Promise<T> => {
    const e = engines[i]!;
    return new Promise<T>((resolve, reject) => {
      e.clients.add(reject);
      request(e.provider)
        .then(resolve, reject)
        .finally(() => e.clients.delete(reject));
    });
  };
  const resetClients = (i: number): void => {
    for (const reject of engines[i]?.clients ?? []) reject(new Error(`connection to engine ${i} reset: its process exited`));
  };
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const at = (): number => cluster.now - start;
  let crashes = 0;
  let opCount = 0;
  const paused = new Set<number>();
  const failedWrite = options.workload === 'failed-write';
  const lifecycle = options.workload === 'lifecycle';
  const subjects = new Set<string>();
  const stateKeys = new Set<string>();
  let failedWrites = 0;
  const failed = (): void => void failedWrites++;

  // Lifecycle: starts and stops in flight, and what they did.
  const counts = { joins: 0, gracefulRestarts: 0, crashRestarts: 0 };
  /** Nodes whose process is down or starting (a start not yet ready counts until it is). */
  const starting = new Set<number>();
  const lifecycleTasks: Promise<void>[] = [];
  /** Starts node `index`'s process: joins through a live member (retrying), then opens its grid engine. */
  const startNode = async (index: number): Promise<void> => {
    for (let attempt = 0; ; attempt++) {
      const peers = cluster.nodes.filter((x) => x.index !== index && !x.crashed).map((x) => x.index);
      try {
        const node = await cluster.start(index, peers.sort(() => random() - 0.5));
        await openEngine(node);
        return;
      } catch (err) {
        if (attempt >= 40) throw err;
        await sleep(JOIN_RETRY_MS);
      }
    }
  };
  /** Down (crashed or stopped) or started and not ready: what a new fault may add to. */
  const down = (): number => cluster.nodes.filter((x, i) => x.crashed || starting.has(i) || engines[i]?.stopping === true || engines[i]?.grid.ready === false).length;
  const restartLater = (index: number, delayMs: number, kind: 'graceful' | 'crash' | 'join'): void => {
    starting.add(index);
    lifecycleTasks.push(
      (async () => {
        await sleep(delayMs);
        await startNode(index);
        faults.push(`${kind === 'join' ? 'joined' : 'restarted'} ${index} at ${at()}`);
        if (kind === 'graceful') counts.gracefulRestarts++;
        else if (kind === 'crash') counts.crashRestarts++;
        else counts.joins++;
        // Down until its engine is ready (it was placed on, and took its partitions).
        await runUntilReady(index);
        starting.delete(index);
      })(),
    );
  };
  const runUntilReady = async (index: number): Promise<void> => {
    while (engines[index] && !engines[index]!.node.crashed && !engines[index]!.grid.ready) await sleep(50);
  };
  const stopGracefully = (index: number): void => {
    const e = engines[index]!;
    e.stopping = true;
    starting.add(index);
    lifecycleTasks.push(
      (async () => {
        // As the node stops (node/cohort-node.ts): saves while it holds its share, then leaves
        // and keeps answering for a moment, then its process exits.
        await e.grid.shutdown();
        await new Promise<void>((resolve) => cluster.leave(index, LEAVE_HANDOFF_MS, resolve));
        e.rpc.close();
        resetClients(index);
        engines[index] = undefined;
        faults.push(`stopped ${index} at ${at()}`);
        starting.delete(index);
        restartLater(index, 500 + Math.floor(random() * 2500), 'graceful');
      })(),
    );
  };
  const crash = (index: number): void => {
    cluster.crash(index);
    resetClients(index);
    engines[index]?.grid.close();
    engines[index] = undefined;
    crashes++;
    paused.delete(index);
  };

  const start = cluster.now;
  while (cluster.now - start < faultMs) {
    // Workload: a few operations every step of 50-150 ms.
    for (let k = 0; k < 3 && live().length > 0; k++) {
      const from = pick(live());
      const roll = random();
      const tag = `${options.seed}-${opCount++}`;
      if (failedWrite) {
        if (roll < 0.5) {
          const key = `k-${Math.floor(random() * 12)}`;
          stateKeys.add(key);
          pending.push(client(from, (p) => p.requestState.put(key, tag, 3_600_000)).catch(failed));
        } else {
          const subject = `s-${Math.floor(random() * 8)}`;
          subjects.add(subject);
          pending.push(client(from, (p) => p.sessions.create({ subject, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 })).then((s) => sessions.set(s.id, s.subject), failed));
        }
        continue;
      }
      if (options.workload === 'large-record' && roll < 0.06) {
        subjects.add('large');
        const attributes = { blob: 'x'.repeat(LARGE_ATTRIBUTES_CHARS), tag };
        pending.push(client(from, (p) => p.sessions.create({ subject: 'large', attributes, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 })).then((s) => sessions.set(s.id, s.subject), failed));
      } else if (lifecycle && roll < 0.08 && sessions.size > 0) {
        // A logout of an acknowledged session: once acknowledged, it must stay gone. Until
        // then, whether it is gone is unknown, so the session is no longer checked either way.
        const id = pick([...sessions.keys()]);
        sessions.delete(id);
        pending.push(client(from, (p) => p.sessions.delete(id)).then(() => loggedOut.add(id), () => undefined));
      } else if (roll < 0.5) {
        pending.push(client(from, (p) => p.sessions.create({ subject: `u-${tag}`, idleTimeoutMs: 3_600_000, maxLifetimeMs: 3_600_000 })).then((s) => sessions.set(s.id, s.subject), () => undefined));
      } else if (roll < 0.7) {
        const id = `revoked-${tag}`;
        pending.push(client(from, (p) => p.revocations.revoke(id)).then(() => revoked.push(id), () => undefined));
      } else {
        const id = `replay-${tag}`;
        const other = pick(live());
        for (const e of [from, other]) {
          pending.push(client(e, (p) => p.replay.checkAndInsert(id, 3_600_000)).then((fresh) => fresh && replayAccepts.set(id, (replayAccepts.get(id) ?? 0) + 1), () => undefined));
        }
      }
    }
    // Faults.
    const f = random();
    const running = up().filter((i) => !cluster.isPaused(i));
    if (lifecycle && f < 0.03) {
      const g = random();
      if (g < 0.3 && counts.joins + starting.size < 2 && cluster.nodes.length < n + 2) {
        // A new engine joins the running cluster.
        const index = cluster.nodes.length;
        faults.push(`join ${index} at ${at()}`);
        restartLater(index, 0, 'join');
      } else if (g < 0.7 && down() === 0 && paused.size === 0) {
        // Rolling restart: only when every engine is ready.
        const victim = pick(running);
        faults.push(`graceful stop ${victim} at ${at()}`);
        stopGracefully(victim);
      } else if (crashes < rf - 1 && down() < rf - 1 && running.length > Math.ceil(n / 2) + 1) {
        // A crash, and a restart with what the node saved at its last graceful stop.
        const victim = pick(running);
        crash(victim);
        faults.push(`crash ${victim} at ${at()} (restarts with its saved state)`);
        restartLater(victim, 1000 + Math.floor(random() * 3000), 'crash');
      }
    } else if (failedWrite && f < 0.12) {
      // Answers lost one way for a while: the primary times out on a backup that applied.
      const [a, b] = [pick(running), pick(running)];
      if (a !== b) {
        cluster.cutOneWay(a, b);
        faults.push(`cut ${a} -> ${b} at ${at()}`);
      }
    } else if (!lifecycle && f < 0.02 && crashes < rf - 1 && running.length > Math.ceil(n / 2) + 1) {
      const victim = pick(running);
      crash(victim);
      faults.push(`crash ${victim} at ${at()}`);
    } else if (f < 0.05 && paused.size === 0 && running.length > 0) {
      const victim = pick(running);
      cluster.pause(victim);
      paused.add(victim);
      faults.push(`pause ${victim} at ${at()}`);
    } else if (f < 0.09 && paused.size > 0) {
      for (const p of paused) cluster.resume(p);
      faults.push(`resume ${[...paused]} at ${at()}`);
      paused.clear();
    } else if (f < 0.11) {
      const all = cluster.nodes.map((x) => x.index);
      const shuffled = all.sort(() => random() - 0.5);
      const cut = 1 + Math.floor(random() * (all.length - 1));
      cluster.partition(shuffled.slice(0, cut), shuffled.slice(cut));
      faults.push(`partition ${shuffled.slice(0, cut)} | ${shuffled.slice(cut)} at ${at()}`);
    } else if (f < 0.15) {
      cluster.heal();
      faults.push(`heal at ${at()}`);
    }
    await run(50 + Math.floor(random() * 100));
  }

  // Faults end: every pause and split ends, and every start and stop under way finishes.
  for (const p of paused) if (!cluster.nodes[p]!.crashed) cluster.resume(p);
  cluster.heal();
  faults.push(`all faults end at ${at()}`);
  const violations: string[] = [];
  const settledTasks = await settleSimulated(Promise.allSettled(lifecycleTasks), advance, 60_000, 50).catch(() => undefined);
  for (const r of settledTasks ?? []) if (r.status === 'rejected') violations.push(`a node could not start again: ${String(r.reason)}`);
  if (!settledTasks) violations.push('starts and stops under way did not finish within 60 s of the faults ending');
  /** The settled state the heal phase waits for (checked synchronously on the stores). */
  const wholeAndRevoked = (): boolean => {
    // Membership first: until every live engine sees every other, one may still serve alone.
    if (cluster.disagreements().length > 0) return false;
    const ups = up();
    if (!ups.every((i) => engines[i]!.grid.ready)) return false;
    for (const id of sessions.keys()) {
      for (const r of engines[ups[0]!]!.grid.executor.replicasOf(partitionOfSessionId(id)!)) {
        const i = cluster.nodes.findIndex((x) => x.id === r);
        if (!engines[i]?.grid.store.get('session', id)) return false;
      }
    }
    return revoked.every((id) => ups.every((i) => engines[i]!.grid.store.get('revocation', id) === true));
  };
  // Runs until every replica set is whole and every engine has every revocation, or the
  // 10 s bar passes (then the checks below report what is missing).
  await runUntil(advance, wholeAndRevoked, HEAL_LIMIT_MS, 250);
  // Operations still in flight settle (answer or time out) as simulated time goes on.
  await settleSimulated(Promise.allSettled(pending), advance, 30_000, 50);
  // Quiet for a few seconds: reverts not delivered yet and background repairs are retried
  // every second, and replicas compare their copies every two (anti-entropy acts on a
  // difference seen twice).
  await run(8000);

  const disagreements = cluster.disagreements();
  if (disagreements.length > 0) violations.push(`membership not converged 10 s after the faults: ${disagreements.slice(0, 3).join('; ')}`);
  const survivors = up();
  const notReady = survivors.filter((i) => !engines[i]!.grid.ready);
  if (notReady.length > 0) violations.push(`engines ${notReady.join(',')} not ready after the faults ended`);
  for (const [id, count] of replayAccepts) if (count > 1) violations.push(`replay id ${id} accepted ${count} times`);
  const check = <T>(p: Promise<T>): Promise<T> => settleSimulated(p, advance, 5000, STEP_MS);
  for (const [id, subject] of sessions) {
    for (const i of survivors) {
      const got = await check(engines[i]!.provider.sessions.get(id)).catch((err: unknown) => String(err));
      if (typeof got === 'string' || got?.subject !== subject) violations.push(`acknowledged session ${id} not readable on engine ${i}: ${typeof got === 'string' ? got : 'not found'}`);
    }
    const replicas = engines[survivors[0]!]!.grid.executor.replicasOf(partitionOfSessionId(id)!);
    for (const r of replicas) {
      const i = cluster.nodes.findIndex((x) => x.id === r);
      if (!engines[i]?.grid.store.get('session', id)) violations.push(`replica set of ${id} not whole 10 s after the faults: ${r} lacks it`);
    }
  }
  for (const id of loggedOut) {
    for (const i of survivors) {
      const got = await check(engines[i]!.provider.sessions.get(id)).catch((err: unknown) => String(err));
      if (got !== undefined) violations.push(`acknowledged logout of ${id} undone on engine ${i}: ${typeof got === 'string' ? got : 'the session is back'}`);
    }
  }
  for (const id of revoked) {
    for (const i of survivors) if (engines[i]!.grid.store.get('revocation', id) !== true) violations.push(`acknowledged revocation ${id} missing on engine ${i}`);
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
  // (anti-entropy.ts `dropMoved`), so memory does not grow with every rebalancing.
  for (const i of survivors) {
    const { store, executor } = engines[i]!.grid;
    const self = cluster.nodes[i]!.id;
    const kept = store.partitions().filter((p) => p !== EVERYWHERE && store.recordCount(p) > 0 && !executor.replicasOf(p).includes(self));
    if (kept.length > 0) violations.push(`engine ${i} still holds ${kept.reduce((a, p) => a + store.recordCount(p), 0)} records of ${kept.length} partitions it does not replicate (${kept.slice(0, 5).join(', ')})`);
  }
  for (const e of engines) e?.grid.close();
  return {
    violations: violations.slice(0, 20),
    faults,
    acknowledged: { sessions: sessions.size, revocations: revoked.length, replayIds: replayAccepts.size, logouts: loggedOut.size },
    failedWrites,
    lifecycle: { ...counts, savedStatesLoaded },
  };
}
