/**
 * `npm run bench:membership`: failure detection between real `cohort start` processes on
 * loopback.
 *
 * For each profile (lan, local) it starts a cluster of --nodes processes and measures:
 * - crash: kill -9 of one node until every other node has declared it inactive;
 * - pause: SIGSTOP of one node (a silent host) until every other node has declared it
 *   inactive; then SIGCONT, and the node refutes and is active again before the next trial;
 * - false positives: one node's event loop blocked 400 ms every 2 s (a busy loop injected with
 *   `node --import`, so the node's own code is unchanged) for --fp-seconds; any node declared
 *   inactive or left meanwhile is a false positive, and suspicions are counted too.
 *
 * The same is measured, in the same run, for the peer: happn-swim, a SWIM gossip library for
 * Node.js (bench/peer-swim-node.ts), with the profile's probe interval, probe timeout and
 * indirect checks. Its suspicion timer restarts on every failed probe of the suspect, so its
 * suspicion timeout is set to one probe interval (longer and it may never fire); a paused peer
 * node is restarted after each trial instead of waiting for it to rejoin.
 *
 * Times come from the nodes' own log lines ("member X is dead", with pino's millisecond
 * timestamp) minus the moment the signal was sent, so the bench does not poll and perturb the
 * nodes it measures. Every process is killed by pid when the bench ends, even on failure.
 *
 * Usage: node dist/bench/membership.js [--profiles lan,local] [--nodes 5] [--trials 20]
 *                                      [--fp-seconds 60] [--no-peer] [--json]
 */
import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort } from '../src/cli/free-port.js';
import { percentile } from '../src/core/stats.js';
import { PROFILES, type MembershipTiming } from '../src/cluster/timing.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'dist/src/cli/cohort.js');
const BLOCK_LOOP = join(ROOT, 'dist/bench/block-event-loop.js');
const PEER = join(ROOT, 'dist/bench/peer-swim-node.js');
/** This run's own (a survivor dialling a crashed node's port never reaches another run's node). */
const SECRET = randomBytes(32).toString('base64url');

interface LogLine {
  time: number;
  msg: string;
  member?: string;
  to?: string;
}

/** How to run one node of the system under test: `node ARGS`. */
interface NodeSpec {
  id: string;
  args: string[];
}

/** Cohort, or the peer it is compared with. */
interface System {
  name: string;
  /** Writes whatever the nodes need and says how to start each; the first is the seed. */
  prepare(dir: string, count: number, profile: string): Promise<NodeSpec[]>;
  /** True when a paused node rejoins by itself after SIGCONT (refutation). */
  refutes: boolean;
}

interface BenchNode {
  spec: NodeSpec;
  id: string;
  child: ChildProcess;
  lines: LogLine[];
  waiters: Set<() => void>;
}

interface Figures {
  system: string;
  profile: string;
  nodes: number;
  crash: number[];
  pause: number[];
  refute: number[];
  fpSeconds: number;
  falsePositives: number;
  suspicions: number;
}

const { values: args } = parseArgs({
  options: {
    profiles: { type: 'string', default: 'lan,local' },
    nodes: { type: 'string', default: '5' },
    trials: { type: 'string', default: '20' },
    'fp-seconds': { type: 'string', default: '60' },
    json: { type: 'boolean', default: false },
    'no-peer': { type: 'boolean', default: false },
  },
});

const running = new Set<ChildProcess>();
function killAll(): void {
  for (const c of running) if (c.pid && c.exitCode === null && c.signalCode === null) {
    try {
      process.kill(c.pid, 'SIGCONT');
      process.kill(c.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}
const tempDirs = new Set<string>();
process.on('exit', () => {
  killAll();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});
process.on('SIGINT', () => process.exit(130));
process.on('SIGTERM', () => process.exit(143));

async function main(): Promise<void> {
  const profiles = args.profiles.split(',').map((p) => p.trim());
  const nodes = Number(args.nodes);
  const trials = Number(args.trials);
  const fpSeconds = Number(args['fp-seconds']);
  const unknown = profiles.filter((p) => !(p in PROFILES));
  if (unknown.length > 0 || !Number.isInteger(nodes) || nodes < 3 || !Number.isInteger(trials) || trials < 1 || !(fpSeconds >= 0)) {
    process.stderr.write('usage: bench:membership [--profiles lan,local,wan] [--nodes N>=3] [--trials T>=1] [--fp-seconds S>=0] [--no-peer] [--json]\n');
    process.exit(2);
  }
  const results: Figures[] = [];
  const systems = args['no-peer'] ? [COHORT] : [COHORT, PEER_SWIM];
  for (const profile of profiles) {
    for (const system of systems) results.push(await benchProfile(system, profile, nodes, trials, fpSeconds));
  }
  if (args.json) {
    process.stdout.write(`${JSON.stringify(results.map(summary))}\n`);
    return;
  }
  process.stdout.write(table(results));
}

async function benchProfile(system: System, profile: string, count: number, trials: number, fpSeconds: number): Promise<Figures> {
  const dir = mkdtempSync(join(tmpdir(), `cohort-bench-${profile}-`));
  tempDirs.add(dir);
  const figures: Figures = { system: system.name, profile, nodes: count, crash: [], pause: [], refute: [], fpSeconds, falsePositives: 0, suspicions: 0 };
  const label = `${system.name} ${profile}`;
  const nodes: BenchNode[] = [];
  try {
    const specs = await system.prepare(dir, count, profile);
    nodes.push(spawnNode(specs[0]!));
    await allActive(nodes, 20_000);
    for (const spec of specs.slice(1)) nodes.push(spawnNode(spec));
    await allActive(nodes, 20_000);
    log(`${label}: ${count} nodes active`);

    // Crashes: the victim is restarted (same files and ports) before the next trial.
    for (let t = 0; t < trials; t++) {
      const { i, victim, observers, mark } = trial(nodes, t);
      const sentAt = Date.now();
      victim.child.kill('SIGKILL');
      const times = await Promise.all(observers.map((o, k) => waitForLine(o, mark[k]!, (l) => l.member === victim.id && l.to === 'dead', 60_000)));
      figures.crash.push(Math.max(...times.map((l) => l.time)) - sentAt);
      await exited(victim.child);
      nodes[i] = spawnNode(victim.spec);
      await allActive(nodes, 20_000);
    }
    log(`${label}: crash trials done`);

    // Pauses: SIGSTOP until every other node declares the victim dead, then SIGCONT.
    for (let t = 0; t < trials; t++) {
      const { i, victim, observers, mark } = trial(nodes, t);
      const sentAt = Date.now();
      process.kill(victim.child.pid!, 'SIGSTOP');
      let times: LogLine[];
      try {
        times = await Promise.all(observers.map((o, k) => waitForLine(o, mark[k]!, (l) => l.member === victim.id && l.to === 'dead', 60_000)));
      } finally {
        process.kill(victim.child.pid!, 'SIGCONT');
      }
      const resumedAt = Date.now();
      figures.pause.push(Math.max(...times.map((l) => l.time)) - sentAt);
      if (!system.refutes) {
        victim.child.kill('SIGKILL');
        await exited(victim.child);
        nodes[i] = spawnNode(victim.spec);
      }
      // Back when every node's latest verdict on the victim is alive again (20 ms resolution).
      await allActive(nodes, 20_000);
      if (system.refutes) figures.refute.push(Date.now() - resumedAt);
    }
    log(`${label}: pause trials done`);

    // False positives: one node (restarted with the busy-loop module) blocks 400 ms every 2 s.
    const blocked = nodes[count - 1]!;
    blocked.child.kill('SIGKILL');
    await exited(blocked.child);
    nodes[count - 1] = spawnNode(blocked.spec, ['--import', BLOCK_LOOP]);
    await allActive(nodes, 20_000);
    const marks = nodes.map((n) => n.lines.length);
    await sleep(fpSeconds * 1000);
    nodes.forEach((n, k) => {
      for (const l of n.lines.slice(marks[k])) {
        if (l.to === 'dead' || l.to === 'left') figures.falsePositives++;
        if (l.to === 'suspect') figures.suspicions++;
      }
    });
    log(`${label}: false-positive run done`);
  } finally {
    for (const n of nodes) {
      running.delete(n.child);
      if (n.child.exitCode === null && n.child.signalCode === null) n.child.kill('SIGKILL');
    }
    await Promise.all(nodes.map((n) => exited(n.child)));
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

/** Trial t's victim (never the seed, each other node in turn), its observers, and where their logs stand. */
function trial(nodes: BenchNode[], t: number): { i: number; victim: BenchNode; observers: BenchNode[]; mark: number[] } {
  const i = 1 + (t % (nodes.length - 1));
  const victim = nodes[i]!;
  const observers = nodes.filter((n) => n !== victim);
  return { i, victim, observers, mark: observers.map((o) => o.lines.length) };
}

const COHORT: System = {
  name: 'cohort',
  refutes: true,
  async prepare(dir, count, profile) {
    const ports: Array<{ cluster: number; manage: number; runtime: number }> = [];
    for (let i = 0; i < count; i++) ports.push({ cluster: await freePort(), manage: await freePort(), runtime: await freePort() });
    const seed = `127.0.0.1:${ports[0]!.cluster}`;
    return ports.map((p, i) => {
      const id = i === 0 ? 'seed' : `node-${i}`;
      const file = join(dir, `${id}.ini`);
      writeFileSync(file, [
        '[node]', `id = ${id}`, 'role = engine', `data_dir = ./${id}`,
        '[cluster]', 'id = bench', `bind = 127.0.0.1:${p.cluster}`, `peers = ${i === 0 ? '' : seed}`, `secret_key = ${SECRET}`, `profile = ${profile}`,
        '[http]', `manage = 127.0.0.1:${p.manage}`, `runtime = 127.0.0.1:${p.runtime}`,
        '[log]', 'format = json',
      ].join('\n') + '\n');
      return { id, args: [CLI, 'start', '-c', file] };
    });
  },
};

const PEER_SWIM: System = {
  name: 'happn-swim',
  refutes: false,
  async prepare(_dir, count, profile) {
    const t: MembershipTiming = PROFILES[profile as keyof typeof PROFILES];
    const hosts: string[] = [];
    for (let i = 0; i < count; i++) hosts.push(`127.0.0.1:${await freePort()}`);
    return hosts.map((h, i) => ({ id: h, args: [PEER, h, i === 0 ? '-' : hosts[0]!, String(t.probeIntervalMs), String(t.probeTimeoutMs), String(t.probeIntervalMs)] }));
  },
};

function spawnNode(spec: NodeSpec, nodeArgs: string[] = []): BenchNode {
  const child = spawn(process.execPath, [...nodeArgs, ...spec.args], { stdio: ['ignore', 'pipe', 'inherit'] });
  running.add(child);
  const node: BenchNode = { spec, id: spec.id, child, lines: [], waiters: new Set() };
  let buffered = '';
  child.stdout!.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const text = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      try {
        node.lines.push(JSON.parse(text) as LogLine);
      } catch {
        continue;
      }
      for (const w of node.waiters) w();
    }
  });
  return node;
}

/** The first log line of `node` from index `from` that matches. */
function waitForLine(node: BenchNode, from: number, match: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
  return new Promise((resolvePromise, reject) => {
    let next = from;
    const check = (): void => {
      for (; next < node.lines.length; next++) {
        const l = node.lines[next]!;
        if (match(l)) {
          done();
          resolvePromise(l);
          return;
        }
      }
    };
    const timer = setTimeout(() => {
      done();
      const recent = node.lines.slice(Math.max(from, node.lines.length - 15)).map((l) => `${l.time} ${l.msg}`).join('\n  ');
      reject(new Error(`${node.id}: no matching log line within ${timeoutMs} ms; its last lines:\n  ${recent}`));
    }, timeoutMs);
    const done = (): void => {
      clearTimeout(timer);
      node.waiters.delete(check);
    };
    node.waiters.add(check);
    check();
  });
}

/** Waits until every node has logged that each other node is alive more recently than any other verdict. */
async function allActive(nodes: BenchNode[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = nodes.every((n) =>
      nodes.every((m) => {
        if (m === n) return n.lines.some((l) => /started$/.test(l.msg));
        const last = [...n.lines].reverse().find((l) => l.member === m.id && l.to !== undefined);
        return last?.to === 'alive';
      }),
    );
    if (ok) return;
    if (Date.now() > deadline) throw new Error('the cluster did not become fully active in time');
    await sleep(20);
  }
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => child.once('exit', () => r()));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function log(text: string): void {
  process.stderr.write(`bench:membership: ${text}\n`);
}

function summary(f: Figures) {
  const q = (xs: number[], p: number) => (xs.length === 0 ? null : percentile(xs, p));
  return {
    system: f.system,
    profile: f.profile,
    nodes: f.nodes,
    trials: f.crash.length,
    crashP50Ms: q(f.crash, 50),
    crashP99Ms: q(f.crash, 99),
    pauseP50Ms: q(f.pause, 50),
    pauseP99Ms: q(f.pause, 99),
    refuteP50Ms: q(f.refute, 50),
    fpSeconds: f.fpSeconds,
    falsePositives: f.falsePositives,
    suspicions: f.suspicions,
  };
}

function table(results: Figures[]): string {
  const s = (ms: number | null) => (ms === null ? '—' : `${(ms / 1000).toFixed(2)} s`);
  const rows = results.map(summary).map((r) =>
    `| ${r.system} | ${r.profile} | ${r.nodes} | ${r.trials} | ${s(r.crashP50Ms)} | ${s(r.crashP99Ms)} | ${s(r.pauseP50Ms)} | ${s(r.pauseP99Ms)} | ${s(r.refuteP50Ms)} | ${r.falsePositives} in ${r.fpSeconds} s (${r.suspicions} suspicions) |`,
  );
  return [
    '| system | profile | nodes | trials | crash p50 | crash p99 | pause p50 | pause p99 | active again after SIGCONT p50 | false positives (400 ms block every 2 s) |',
    '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows,
    '',
  ].join('\n');
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:membership failed: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exit(1);
});
