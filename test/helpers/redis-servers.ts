/**
 * Real Redis deployments on this machine, for the integration tests and bench:runtime: a
 * Redis Cluster of 6 processes (3 masters, 3 replicas) and a Sentinel set (a master, 2
 * replicas, 3 Sentinels), each on ports of its own (free-port.ts; the cluster bus ports too,
 * through `cluster-port`), in a directory the caller owns.
 *
 * Every process runs in a process group of its own; `stop()` kills them all by pid (SIGKILL:
 * nothing here needs saving), and so does the exit of this process, so that no Redis outlives
 * a failed test. Callers register `stop()` with `t.after` (or a suite's cleanups).
 *
 * Timings are the short end of what Redis allows, so that a killed master is replaced within
 * a few seconds: cluster-node-timeout 1000 ms; Sentinel down-after-milliseconds 1000 ms,
 * failover-timeout 5000 ms.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/cli/free-port.js';

export const REDIS_SERVER = process.env.COHORT_TEST_REDIS_SERVER ?? 'redis-server';
export const REDIS_CLI = process.env.COHORT_TEST_REDIS_CLI ?? 'redis-cli';

/** Why redis-server and redis-cli cannot be run here, or undefined when they can. */
export function redisBinariesMissing(): string | undefined {
  for (const bin of [REDIS_SERVER, REDIS_CLI]) {
    const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) return `${bin} --version failed: ${r.error?.message ?? r.stderr.trim()}`;
  }
  const v = /v=(\d+)\./.exec(spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' }).stdout);
  if (!v || Number(v[1]) < 7) return `${REDIS_SERVER} is older than 7.0`;
  return undefined;
}

export interface RedisProcess {
  port: number;
  /** The process running now on `port` (after a restart, the new one). */
  child: ChildProcess;
}

interface Spawned {
  processes: Map<number, RedisProcess>;
  argsOf: Map<number, string[]>;
}

const everyChild = new Set<ChildProcess>();
let exitHookInstalled = false;

function killGroup(child: ChildProcess): void {
  if (child.pid === undefined) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

function startProcess(args: string[], logFile: string): ChildProcess {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.once('exit', () => {
      for (const c of everyChild) killGroup(c);
    });
  }
  const child = spawn(REDIS_SERVER, [...args, '--logfile', logFile], { detached: true, stdio: 'ignore' });
  everyChild.add(child);
  child.once('exit', () => everyChild.delete(child));
  return child;
}

async function waitFor<T>(what: string, timeoutMs: number, check: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Runs `fn` with a short-lived plain connection to one server. */
async function withServer<T>(port: number, fn: (r: Redis) => Promise<T>): Promise<T> {
  const r = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 1000, commandTimeout: 2000 });
  r.on('error', () => undefined);
  try {
    await r.connect();
    return await fn(r);
  } finally {
    r.disconnect();
  }
}

function info(text: string): Record<string, string> {
  return Object.fromEntries(text.split('\r\n').filter((l) => l.includes(':')).map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]));
}

export interface RedisClusterHandle {
  /** `redis-cluster://` URL naming every node as seed. */
  url: string;
  ports: number[];
  processes: Map<number, RedisProcess>;
  /** The port of the master serving `slot` now, as the node on `askPort` (or any live one) sees it. */
  masterOfSlot(slot: number): Promise<number>;
  /** SIGKILL the process on `port` (its whole group). */
  kill(port: number): void;
  /** Starts the process on `port` again with its nodes.conf: it rejoins (a killed master as a replica). */
  restart(port: number): void;
  /** Resolves once every live node says cluster_state:ok and every master has a replica in sync. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** A 3-master, 3-replica Redis Cluster in `dir`, ready (cluster_state:ok) when this resolves. */
export async function startRedisCluster(dir: string, options: { timeoutMs?: number } = {}): Promise<RedisClusterHandle> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const ports: number[] = [];
  const busPorts: number[] = [];
  for (let i = 0; i < 6; i++) {
    ports.push(await freePort());
    busPorts.push(await freePort());
  }
  const spawned: Spawned = { processes: new Map(), argsOf: new Map() };
  ports.forEach((port, i) => {
    const nodeDir = join(dir, `redis-${port}`);
    mkdirSync(nodeDir, { recursive: true });
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--cluster-enabled', 'yes',
      '--cluster-port', String(busPorts[i]),
      '--cluster-config-file', join(nodeDir, 'nodes.conf'),
      '--cluster-node-timeout', '1000',
      // A replica fails over however long it was cut off from its master: the test kills masters.
      '--cluster-replica-validity-factor', '0',
      '--dir', nodeDir,
      '--save', '',
      '--appendonly', 'no',
      '--daemonize', 'no',
    ];
    spawned.argsOf.set(port, args);
    spawned.processes.set(port, { port, child: startProcess(args, join(nodeDir, 'redis.log')) });
  });
  const handle = clusterHandle(ports, spawned, dir);
  try {
    for (const port of ports) await waitFor(`redis-server on ${port}`, timeoutMs, () => withServer(port, async (r) => ((await r.ping()) === 'PONG' ? true : undefined)));
    const create = spawnSync(REDIS_CLI, ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { encoding: 'utf8', timeout: timeoutMs });
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status}): ${create.stdout.slice(-2000)} ${create.stderr.slice(-2000)}`);
    await handle.waitHealthy(timeoutMs);
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}

function clusterHandle(ports: number[], spawned: Spawned, dir: string): RedisClusterHandle {
  const live = (): number[] => ports.filter((p) => spawned.processes.get(p)!.child.exitCode === null && spawned.processes.get(p)!.child.signalCode === null);
  return {
    url: `redis-cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    processes: spawned.processes,
    async masterOfSlot(slot) {
      for (const port of live()) {
        try {
          const slots = (await withServer(port, (r) => r.cluster('SLOTS'))) as unknown as Array<[number, number, [string, number, string]]>;
          const range = slots.find(([from, to]) => slot >= from && slot <= to);
          if (range) return range[2][1];
        } catch {
          // ask the next
        }
      }
      throw new Error(`no live node knows slot ${slot}`);
    },
    kill(port) {
      killGroup(spawned.processes.get(port)!.child);
    },
    restart(port) {
      const args = spawned.argsOf.get(port)!;
      spawned.processes.set(port, { port, child: startProcess(args, join(dir, `redis-${port}`, 'redis.log')) });
    },
    async waitHealthy(timeoutMs = 30_000) {
      await waitFor('a healthy Redis Cluster (every node ok, every master with a replica in sync)', timeoutMs, async () => {
        const alive = live();
        let masters = 0;
        for (const port of alive) {
          const [cluster, replication] = await withServer(port, async (r) => [info(String(await r.cluster('INFO'))), info(await r.info('replication'))] as const);
          if (cluster.cluster_state !== 'ok' || Number(cluster.cluster_known_nodes) < 6) return undefined;
          if (replication.role === 'master') {
            masters++;
            // A master holds slots and has a replica whose link is up.
            if (Number(replication.connected_slaves) < 1 || !/state=online/.test(replication.slave0 ?? '')) return undefined;
          } else if (replication.master_link_status !== 'up') return undefined;
        }
        return masters === 3 ? true : undefined;
      });
    },
    async stop() {
      for (const p of spawned.processes.values()) killGroup(p.child);
    },
  };
}

export interface RedisSentinelHandle {
  /** `redis-sentinel://` URL naming the three Sentinels. */
  url: string;
  masterName: string;
  /** The data nodes: the first started as master. */
  dataPorts: number[];
  sentinelPorts: number[];
  processes: Map<number, RedisProcess>;
  /** The port of the master as the Sentinels report it now. */
  currentMaster(): Promise<number>;
  kill(port: number): void;
  stop(): Promise<void>;
}

/** A master, 2 replicas and 3 Sentinels watching them, in `dir`; ready when this resolves. */
export async function startRedisSentinels(dir: string, options: { timeoutMs?: number; masterName?: string } = {}): Promise<RedisSentinelHandle> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const masterName = options.masterName ?? 'cohort-test';
  const dataPorts = [await freePort(), await freePort(), await freePort()];
  const sentinelPorts = [await freePort(), await freePort(), await freePort()];
  const processes = new Map<number, RedisProcess>();
  const handle: RedisSentinelHandle = {
    url: `redis-sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/${masterName}`,
    masterName,
    dataPorts,
    sentinelPorts,
    processes,
    async currentMaster() {
      for (const port of sentinelPorts) {
        try {
          const [, masterPort] = (await withServer(port, (r) => r.call('SENTINEL', 'get-master-addr-by-name', masterName))) as [string, string];
          return Number(masterPort);
        } catch {
          // ask the next
        }
      }
      throw new Error('no Sentinel answers');
    },
    kill(port) {
      killGroup(processes.get(port)!.child);
    },
    async stop() {
      for (const p of processes.values()) killGroup(p.child);
    },
  };
  try {
    dataPorts.forEach((port, i) => {
      const nodeDir = join(dir, `redis-${port}`);
      mkdirSync(nodeDir, { recursive: true });
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(i > 0 ? ['--replicaof', '127.0.0.1', String(dataPorts[0])] : [])];
      processes.set(port, { port, child: startProcess(args, join(nodeDir, 'redis.log')) });
    });
    for (const port of dataPorts.slice(1)) {
      await waitFor(`replica ${port} in sync`, timeoutMs, () => withServer(port, async (r) => (info(await r.info('replication')).master_link_status === 'up' ? true : undefined)));
    }
    for (const port of sentinelPorts) {
      const sentinelDir = join(dir, `sentinel-${port}`);
      mkdirSync(sentinelDir, { recursive: true });
      // Sentinel rewrites its configuration file as it learns: one writable file each.
      const conf = join(sentinelDir, 'sentinel.conf');
      writeFileSync(conf, [
        `port ${port}`,
        'bind 127.0.0.1',
        `dir ${sentinelDir}`,
        `sentinel monitor ${masterName} 127.0.0.1 ${dataPorts[0]} 2`,
        `sentinel down-after-milliseconds ${masterName} 1000`,
        `sentinel failover-timeout ${masterName} 5000`,
        `sentinel parallel-syncs ${masterName} 2`,
        '',
      ].join('\n'));
      processes.set(port, { port, child: startProcess([conf, '--sentinel'], join(sentinelDir, 'sentinel.log')) });
    }
    await waitFor('3 Sentinels that see the master, its 2 replicas and each other', timeoutMs, async () => {
      for (const port of sentinelPorts) {
        const flat = (await withServer(port, (r) => r.call('SENTINEL', 'master', masterName))) as string[];
        const m = Object.fromEntries(flat.flatMap((v, i) => (i % 2 === 0 ? [[v, flat[i + 1]]] : [])));
        if (Number(m['num-slaves']) < 2 || Number(m['num-other-sentinels']) < 2) return undefined;
      }
      return true;
    });
  } catch (err) {
    await handle.stop();
    throw err;
  }
  return handle;
}
