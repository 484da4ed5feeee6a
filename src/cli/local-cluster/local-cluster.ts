import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { CohortError } from '../../core/errors.js';
import { randomToken } from '../../core/ids.js';
import { ADMIN_PASSWORD_FILE } from '../../console/admin-auth.js';
import { obfuscate } from '../../config/obfuscation.js';
import { loadNodeConfig } from '../../config/node-config.js';
import { redactRedisUrl } from '../../config/redis-url.js';
import { loadAuthority } from '../../policy/console-authority.js';
import { gridStateFiles } from '../../state/grid/grid-state-file.js';
import { TLS_LISTENERS, type Mode } from '../../config/schema.js';
import { CLI_ENTRY } from '../cli-entry.js';
import { freePort } from '../free-port.js';
import { manageRequest, manageTargetOf } from '../manage-client.js';
import { clientTlsFor, nodeRequest } from '../node-http.js';
import { localNodeConfigText, localUrls, type LocalClusterSecrets, type LocalNodePlan } from './plan.js';

export interface LocalClusterOptions {
  dir: string;
  engines: number;
  /**
   * `inline` gives every engine a proxy port. Unset: the mode of the directory's existing
   * files, else sideband; set and different from the existing files' mode, refused (the mode
   * must be the same on every node, and the files are reused as they are).
   */
  mode?: Mode;
  /**
   * `--tls`: every HTTP listener on HTTPS with a throwaway local CA (DIR/tls, local-ca.ts).
   * Unset: whatever the directory's existing files say; set on a directory whose files speak
   * plain HTTP, refused (the files are reused as they are).
   */
  tls?: boolean;
  /**
   * `--state redis --redis-url URL`: the engines keep their state in that Redis (one server, a
   * Redis Cluster or a Sentinel set) instead of the grid. Unset: whatever the directory's
   * existing engine files say (a new engine joins with the same URL), else the grid; set and
   * different from the existing files, refused (the files are reused as they are).
   */
  state?: { provider: 'grid' } | { provider: 'redis'; redisUrl: string };
  /** How long to wait for every node to answer its management API. */
  startTimeoutMs?: number;
  /** Where progress goes, one line at a time, as it happens (starting, each node ready, stopping). */
  onProgress?: (line: string) => void;
  /** Picks a free port for a new node's listener (default: freePort). Tests hand out taken ones. */
  pickPort?: () => Promise<number>;
}

/**
 * How many times a new node that could not bind a port is started again on a fresh one. A
 * port found free is only free until the node binds it, and on a busy host another process
 * (a test run next door picking ports the same way) can take it in between.
 */
export const BIND_RETRIES = 3;

/** The listener fields of a node's plan, each a port `cohort up` picked. */
const PORT_FIELDS = ['cluster', 'manage', 'http', 'proxy'] as const;
type PortField = (typeof PORT_FIELDS)[number];

/** A node of DIR found running: its management API answered with its id and pid. */
export interface RunningLocalNode {
  id: string;
  pid: number;
  configFile: string;
}

export interface RunningNode extends LocalNodePlan {
  child: ChildProcess;
  exit?: { code: number | null; signal: NodeJS.Signals | null };
}

/** The content of DIR/cluster.json, which scripts read to find the local cluster. */
export interface ClusterFile {
  clusterId: string;
  adminUrl: string;
  adminUser: string;
  adminPassword: string;
  apiKey: string;
  /** With --tls: the CA file (PEM) that clients of this cluster trust; its URLs are https://. */
  caFile?: string;
  /** When the engines keep their state in Redis: its URL, the password replaced by ***. */
  redisUrl?: string;
  nodes: Array<{ id: string; role: string; pid: number; configFile: string; logFile: string; cluster: string; manage: string; admin?: string; runtime?: string; proxy?: string }>;
}

/** How long `stop` waits for the nodes to save their state and exit before it kills them. */
export const DEFAULT_STOP_TIMEOUT_MS = 60_000;

/** `1.2 s`, for progress lines. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/**
 * A console and N engines as separate `cohort start` processes on loopback.
 *
 * A second run in the same directory reuses the config files (ports, secret, data
 * directories), so whatever the nodes persisted is found again.
 */
export class LocalCluster {
  readonly dir: string;
  readonly nodes: RunningNode[] = [];
  private secrets!: LocalClusterSecrets;
  /** DIR/tls/ca.pem when the cluster runs on HTTPS. */
  private caFile: string | undefined;
  /** The console authority's public key, written into the engines' new files. */
  private consolePublicKey: string | undefined;
  /** Nodes `stop` is waiting for, and how to kill each at once. */
  private readonly killers = new Map<RunningNode, () => void>();
  /** Ids of the nodes `stop` had to kill. */
  readonly killed = new Set<string>();
  /** The stop under way (`stop`), while one is. */
  private stopping: Promise<void> | undefined;
  /** Ids of the nodes whose configuration file this run wrote (their ports may be picked again). */
  private readonly fresh = new Set<string>();
  /** Nodes stopped on purpose while starting (their seed moved): started again, not failed. */
  private readonly restarting = new Set<string>();
  /** The first node of the plan: the others join the cluster through it. */
  private seed: LocalNodePlan | undefined;
  onNodeExit: (node: RunningNode) => void = () => undefined;

  /** True once every node process has exited (for instance after `cohort cluster stop`). */
  get allExited(): boolean {
    return this.nodes.length > 0 && this.nodes.every((n) => n.exit !== undefined);
  }

  constructor(private readonly options: LocalClusterOptions) {
    this.dir = resolve(options.dir);
  }

  async start(): Promise<ClusterFile> {
    // Before anything is written or started: a second run in the directory of a running
    // cluster must not rewrite cluster.json, nor start nodes that fail to bind and append
    // their failure to the running nodes' logs.
    const running = await this.runningNodes();
    if (running.length > 0) {
      const console = running.find((n) => n.id === 'console') ?? running[0]!;
      throw new CohortError(
        'CLI_LOCAL_CLUSTER_RUNNING',
        `the local cluster in ${this.dir} is already running: ${running.map((n) => `${n.id} (pid ${n.pid})`).join(', ')}; nothing was started or changed. ` +
          `Stop it first (Ctrl-C where it runs, or cohort cluster stop -c ${console.configFile}), or pick another --dir`,
        { nodes: running },
      );
    }
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.secrets = this.loadOrCreateSecrets();
    const plans = await this.plan();
    // Made (or renewed near its expiry) before the nodes start, which load it at start.
    if (plans.some((p) => p.httpsListeners.length > 0)) {
      // Loaded only with --tls: the X.509 library alone takes a sixth of a second to load.
      const { ensureLocalCa } = await import('./local-ca.js');
      this.caFile = (await ensureLocalCa(this.dir)).caFile;
    }
    this.seed = plans[0];
    this.consolePublicKey = this.consoleAuthorityKey(plans);
    for (const plan of plans) {
      if (!existsSync(plan.configFile)) {
        writeFileSync(plan.configFile, localNodeConfigText(plan, this.seed, this.secrets, this.consolePublicKey), { mode: 0o600 });
        this.fresh.add(plan.id);
      }
    }
    this.forgetEnginesNotStarted(plans);
    this.progress(`starting ${plans.map((p) => p.id).join(', ')} in ${this.dir} (logs: ${join(this.dir, '<node>.log')})`);
    const startedAt = Date.now();
    // All at once: an engine that is up before the console retries its join shortly after.
    for (const plan of plans) this.nodes.push(this.spawnNode(plan));
    await Promise.all(this.nodes.map((_, index) => this.bringUp(index, startedAt)));
    const file = this.clusterFile();
    writeFileSync(join(this.dir, 'cluster.json'), `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    return file;
  }

  /**
   * The nodes of this directory that are running: every `DIR/*.ini` node whose management API
   * answers, with its credential, as that node. A process that merely holds a pid listed in a
   * stale cluster.json (left by a run that was killed) is not one of them.
   */
  async runningNodes(): Promise<RunningLocalNode[]> {
    let names: string[];
    try {
      names = readdirSync(this.dir).filter((f) => f.endsWith('.ini')).sort();
    } catch {
      return [];
    }
    const found = await Promise.all(
      names.map(async (name): Promise<RunningLocalNode | undefined> => {
        const configFile = join(this.dir, name);
        try {
          const config = loadNodeConfig(configFile);
          const info = await manageRequest<{ id: string; pid: number }>(manageTargetOf(config), 'GET', '/manage/v1/node', undefined, 2000);
          return info.id === config.node.id ? { id: info.id, pid: info.pid, configFile } : undefined;
        } catch {
          // not a node's configuration, never started (no credential), or not answering
          return undefined;
        }
      }),
    );
    return found.filter((n): n is RunningLocalNode => n !== undefined);
  }

  /**
   * SIGTERM to every running node, then waits for each to stop by itself: a node saves what it
   * holds before it exits, which takes longer the more state it has. A node still running
   * after `timeoutMs` is killed, and that is reported. A second call while one is under way
   * (Ctrl-C during a start that then fails because a node it was waiting for stopped) waits for
   * that one: the nodes are told and waited for once.
   */
  stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    this.stopping ??= this.stopRunning(timeoutMs).finally(() => {
      this.stopping = undefined;
    });
    return this.stopping;
  }

  private async stopRunning(timeoutMs: number): Promise<void> {
    const running = this.nodes.filter((n) => !n.exit);
    if (running.length === 0) return;
    this.progress(`waiting for ${running.map((n) => n.id).join(', ')} to stop gracefully (each saves its state first; up to ${seconds(timeoutMs)})`);
    const startedAt = Date.now();
    await Promise.all(
      running.map(
        (n) =>
          new Promise<void>((done) => {
            const timer = setTimeout(() => {
              this.progress(`${n.id} (pid ${n.child.pid}) did not stop within ${seconds(timeoutMs)}: killing it (SIGKILL); what it had not saved yet is lost`);
              this.killed.add(n.id);
              n.child.kill('SIGKILL');
            }, timeoutMs);
            this.killers.set(n, () => {
              clearTimeout(timer);
              this.killed.add(n.id);
              n.child.kill('SIGKILL');
            });
            n.child.once('exit', (code, signal) => {
              clearTimeout(timer);
              this.killers.delete(n);
              if (code === 0) this.progress(`${n.id} stopped (${seconds(Date.now() - startedAt)})`);
              else this.progress(`${n.id} ended with ${code ?? signal} (${seconds(Date.now() - startedAt)}); see ${n.logFile}`);
              done();
            });
            n.child.kill('SIGTERM');
          }),
      ),
    );
  }

  /** During `stop`: kills the nodes still running now instead of waiting for them. */
  killNow(): void {
    for (const [n, kill] of this.killers) {
      this.progress(`killing ${n.id} (pid ${n.child.pid}) without waiting; what it had not saved yet is lost`);
      kill();
    }
  }

  clusterFile(): ClusterFile {
    const console = this.nodes.find((n) => n.role === 'console')!;
    return {
      clusterId: this.secrets.clusterId,
      adminUrl: localUrls(console).admin!,
      adminUser: this.secrets.adminUser,
      adminPassword: this.adminPassword(console),
      apiKey: this.secrets.apiKey,
      ...(this.caFile ? { caFile: this.caFile } : {}),
      ...(redisUrlOf(this.nodes) !== undefined ? { redisUrl: redactRedisUrl(redisUrlOf(this.nodes)!) } : {}),
      nodes: this.nodes.map((n) => ({ id: n.id, role: n.role, pid: n.child.pid ?? 0, configFile: n.configFile, logFile: n.logFile, ...localUrls(n) })),
    };
  }

  /**
   * Waits until the node at `index` answers (an engine: is ready). A new node that exited
   * because a port picked for it was taken meanwhile (NODE_BIND_FAILED naming that port) is
   * given a fresh port and started again, up to BIND_RETRIES times; when that port was the
   * seed's cluster port, the other new nodes, which join through it, are started again with
   * the new address too.
   */
  private async bringUp(index: number, startedAt: number): Promise<void> {
    for (let retries = 0; ; ) {
      const node = this.nodes[index]!;
      try {
        await this.waitUntilAnswering(node);
        this.progress(`${node.id} ready (pid ${node.child.pid}, ${seconds(Date.now() - startedAt)})`);
        return;
      } catch (err) {
        if (this.restarting.delete(node.id)) {
          this.nodes[index] = this.spawnNode(planOf(node));
          continue;
        }
        const taken = this.fresh.has(node.id) && retries < BIND_RETRIES ? takenPort(node) : undefined;
        if (taken === undefined) throw err;
        retries++;
        const port = await this.pickPort();
        const plan: LocalNodePlan = { ...planOf(node), [taken.field]: port };
        this.progress(`${node.id}: port ${taken.port} was taken by another process before it could bind it; starting it again on port ${port}`);
        const seedMoved = taken.field === 'cluster' && node.id === this.seed?.id;
        if (seedMoved) this.seed = plan;
        writeFileSync(plan.configFile, localNodeConfigText(plan, this.seed, this.secrets, this.consolePublicKey), { mode: 0o600 });
        this.nodes[index] = this.spawnNode(plan);
        if (seedMoved) this.rejoinThroughSeed();
      }
    }
  }

  /** The seed moved: every other new node gets the new peer address and is started again by its bringUp. */
  private rejoinThroughSeed(): void {
    for (const n of this.nodes) {
      if (n.id === this.seed?.id || !this.fresh.has(n.id)) continue;
      writeFileSync(n.configFile, localNodeConfigText(planOf(n), this.seed, this.secrets, this.consolePublicKey), { mode: 0o600 });
      if (n.exit) continue; // it failed already; its bringUp starts it again with the new file
      this.restarting.add(n.id);
      n.child.kill('SIGKILL');
    }
  }

  private pickPort(): Promise<number> {
    return (this.options.pickPort ?? freePort)();
  }

  private progress(line: string): void {
    this.options.onProgress?.(line);
  }

  /** The password the console generated at its first start (DATA_DIR/admin-password). */
  private adminPassword(console: RunningNode): string {
    try {
      return readFileSync(join(loadNodeConfig(console.configFile).node.dataDir, ADMIN_PASSWORD_FILE), 'utf8').trim();
    } catch {
      return '';
    }
  }

  /**
   * The public key of the console authority, which the console would otherwise make at its
   * first start: made here first, in the console's data directory (0600, as the console does),
   * so that the engines' files can pin it. An existing key (a second run) is kept.
   */
  private consoleAuthorityKey(plans: LocalNodePlan[]): string {
    const console = plans.find((p) => p.role === 'console')!;
    const dataDir = existsSync(console.configFile) ? loadNodeConfig(console.configFile).node.dataDir : join(this.dir, console.id);
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    return loadAuthority(dataDir, true)!.publicKeyText;
  }

  /**
   * An engine counts the engines of its previous run as voters until it serves, and a full
   * start waits for a majority of them (docs/operations.md). Started with fewer engines than
   * this directory ran before, on one machine where no network splits them, the engines forget
   * the ones this run does not start rather than wait for them.
   */
  private forgetEnginesNotStarted(plans: readonly LocalNodePlan[]): void {
    const started = new Set(plans.filter((p) => p.role === 'engine').map((p) => p.id));
    for (const plan of plans) {
      if (plan.role !== 'engine' || !existsSync(plan.configFile)) continue;
      const storage = gridStateFiles(loadNodeConfig(plan.configFile).node.dataDir);
      const remembered = storage.rememberedEngines() ?? [];
      const absent = remembered.filter((id) => !started.has(id));
      if (absent.length === 0) continue;
      storage.rememberEngines(remembered.filter((id) => started.has(id)));
      this.progress(`${plan.id} last ran beside ${absent.join(', ')}, not started now: it no longer waits for ${absent.length === 1 ? 'it' : 'them'}`);
    }
  }

  /** Secrets live in DIR/secrets.json (0600) so that a second run keeps the same cluster. */
  private loadOrCreateSecrets(): LocalClusterSecrets {
    const path = join(this.dir, 'secrets.json');
    if (existsSync(path)) return JSON.parse(readFileSync(path, 'utf8')) as LocalClusterSecrets;
    const secrets: LocalClusterSecrets = {
      clusterId: 'local',
      secretKey: obfuscate(randomToken(32)),
      adminUser: 'admin',
      apiKey: randomToken(32),
    };
    writeFileSync(path, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
    return secrets;
  }

  private async plan(): Promise<LocalNodePlan[]> {
    const ids: Array<{ id: string; role: 'console' | 'engine' }> = [{ id: 'console', role: 'console' }];
    for (let i = 1; i <= this.options.engines; i++) ids.push({ id: `engine-${i}`, role: 'engine' });
    const existing = ids.map(({ id }) => join(this.dir, `${id}.ini`)).filter((f) => existsSync(f)).map((f) => ({ file: f, config: loadNodeConfig(f) }));
    const found = existing[0]?.config.node.mode;
    if (this.options.mode !== undefined && found !== undefined && found !== this.options.mode) {
      throw new CohortError('CLI_USAGE', `--mode ${this.options.mode}: the local cluster in ${this.dir} runs in ${found} mode (${existing[0]!.file}); the mode must be the same on every node. Leave --mode out, or pick another --dir`);
    }
    const foundTls = existing.length > 0 ? existing[0]!.config.tls !== undefined : undefined;
    if (this.options.tls === true && foundTls === false) {
      throw new CohortError('CLI_USAGE', `--tls: the local cluster in ${this.dir} speaks plain HTTP (${existing[0]!.file} has no [tls] section); its files are reused as they are. Leave --tls out, or pick another --dir`);
    }
    const tls = this.options.tls ?? foundTls ?? false;
    const mode: Mode = this.options.mode ?? found ?? 'sideband';
    const existingEngine = existing.find((e) => e.config.node.role === 'engine');
    const foundRedisUrl = existingEngine === undefined ? undefined : existingEngine.config.state.provider === 'redis' ? existingEngine.config.state.redisUrl!.reveal() : null;
    const wanted = this.options.state;
    if (wanted !== undefined && foundRedisUrl !== undefined) {
      const foundText = foundRedisUrl === null ? 'the grid' : `Redis at ${redactRedisUrl(foundRedisUrl)}`;
      if (wanted.provider === 'grid' ? foundRedisUrl !== null : foundRedisUrl !== wanted.redisUrl) {
        throw new CohortError('CLI_USAGE', `--state ${wanted.provider}: the engines of the local cluster in ${this.dir} keep their state in ${foundText} (${existingEngine!.file}); its files are reused as they are. Leave --state and --redis-url out, or pick another --dir`);
      }
    }
    const redisUrl = wanted !== undefined ? (wanted.provider === 'redis' ? wanted.redisUrl : undefined) : (foundRedisUrl ?? undefined);
    const plans: LocalNodePlan[] = [];
    for (const { id, role } of ids) {
      const configFile = join(this.dir, `${id}.ini`);
      const logFile = join(this.dir, `${id}.log`);
      if (existsSync(configFile)) {
        const c = loadNodeConfig(configFile);
        plans.push({
          id, role, configFile, logFile, mode: c.node.mode,
          cluster: c.cluster.bind.port, manage: c.http.manage.port, http: role === 'engine' ? c.http.runtime.port : c.http.admin.port,
          ...(role === 'engine' && c.node.mode === 'inline' && c.http.proxy ? { proxy: c.http.proxy.port } : {}),
          httpsListeners: c.tls?.listeners ?? [],
          ...(role === 'engine' && c.state.provider === 'redis' ? { redisUrl: c.state.redisUrl!.reveal() } : {}),
        });
      } else {
        plans.push({
          id, role, configFile, logFile, mode,
          cluster: await this.pickPort(), manage: await this.pickPort(), http: await this.pickPort(),
          ...(role === 'engine' && mode === 'inline' ? { proxy: await this.pickPort() } : {}),
          httpsListeners: tls ? [...TLS_LISTENERS] : [],
          ...(role === 'engine' && redisUrl !== undefined ? { redisUrl } : {}),
        });
      }
    }
    return plans;
  }

  private spawnNode(plan: LocalNodePlan): RunningNode {
    const out = openSync(plan.logFile, 'a');
    const child = spawn(process.execPath, [CLI_ENTRY, 'start', '-c', plan.configFile], {
      stdio: ['ignore', out, out],
      env: { ...process.env, COHORT_LOG_FORMAT: 'json' },
    });
    closeSync(out);
    const node: RunningNode = { ...plan, child };
    child.once('exit', (code, signal) => {
      node.exit = { code, signal };
      // A node stopped on purpose to be started again is no news.
      if (!this.restarting.has(node.id)) this.onNodeExit(node);
    });
    return node;
  }

  private async waitUntilAnswering(node: RunningNode): Promise<void> {
    const deadline = Date.now() + (this.options.startTimeoutMs ?? 20_000);
    const config = loadNodeConfig(node.configFile);
    while (Date.now() < deadline) {
      if (node.exit) break;
      try {
        await manageRequest(manageTargetOf(config), 'GET', '/manage/v1/node', undefined, 1000);
        // An engine is only useful once it holds its share of the state: wait for readiness.
        if (node.role === 'engine') {
          const ready = await nodeRequest(`${localUrls(node).runtime}/health/ready`, { timeoutMs: 1000, tls: clientTlsFor(config, 'runtime') });
          if (ready.status !== 200) throw new Error('not ready yet');
        }
        return;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const why = node.exit ? `exited with ${node.exit.code ?? node.exit.signal}` : 'did not answer (or, an engine, become ready) in time';
    const last = lastError(node.logFile);
    throw new CohortError('CLI_LOCAL_CLUSTER_FAILED', `${node.id} ${why}${last ? ` (${last})` : ''}; see ${node.logFile}`, { node: node.id });
  }
}

/** The plan part of a running node (without its process). */
/** The Redis URL the engines use, if they use one. */
function redisUrlOf(nodes: readonly LocalNodePlan[]): string | undefined {
  return nodes.find((n) => n.redisUrl !== undefined)?.redisUrl;
}

function planOf(node: RunningNode): LocalNodePlan {
  const { child: _child, exit: _exit, ...plan } = node;
  return plan;
}

/**
 * The port of `node`'s plan that its last start could not bind (its log's last error is
 * NODE_BIND_FAILED naming it), or undefined when it failed for another reason.
 */
export function takenPort(node: LocalNodePlan): { field: PortField; port: number } | undefined {
  if (!(node as Partial<RunningNode>).exit) return undefined;
  const last = lastError(node.logFile);
  // Local nodes listen on loopback only: the address in the message is 127.0.0.1:PORT.
  const m = last?.startsWith('NODE_BIND_FAILED') ? /\b127\.0\.0\.1:(\d{1,5})\b/.exec(last) : null;
  if (!m) return undefined;
  const port = Number(m[1]);
  const field = PORT_FIELDS.find((f) => node[f] === port);
  return field === undefined ? undefined : { field, port };
}

/** The message of the last error line (pino level 50 or more) of a node's log, for the failure message. */
export function lastError(logFile: string): string | undefined {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.trimEnd().split('\n').reverse()) {
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; code?: string };
      if ((entry.level ?? 0) >= 50) return `${entry.code ? `${entry.code}: ` : ''}${entry.msg ?? ''}`;
    } catch {
      // not a JSON line
    }
  }
  return undefined;
}
