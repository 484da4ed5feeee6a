import { Server as NetServer } from 'node:net';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { systemClock, type Clock } from '../core/clock.js';
import type { CohortError } from '../core/errors.js';
import type { Logger } from '../core/logger.js';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import { formatAddress } from '../config/values.js';
import { createHttpServer, listen } from '../http/server.js';
import { httpsOptionsFor, loadTlsMaterial, tlsFilesSignature, type TlsMaterial } from '../http/tls.js';
import type { TlsListener } from '../config/schema.js';
import type { Server as TlsServer } from 'node:tls';
import { TlsReloader } from './tls-reloader.js';
import { openRepository } from '../repository/open-repository.js';
import type { Repository } from '../repository/repository.js';
import { ClusterMember } from './cluster-member.js';
import { ensureDataDir, loadOrCreateManageCredential } from './data-dir.js';
import { registerRuntimeApi } from '../engine/runtime-api.js';
import { decisionCaches } from '../engine/access/decision-caches.js';
import { sha256 } from '../http/bearer-auth.js';
import { openStateProvider, type OpenedProvider } from './state-provider.js';
import { registerManageApi } from './manage-api.js';
import { NodeMetrics } from './metrics.js';
import { gridRpc } from '../state/grid/grid-protocol.js';
import { clusterMetrics, consoleMetrics, engineMetrics, gridMetrics, tlsMetrics } from './metric-sources.js';
import { ConfigFollower } from '../engine/config-follower.js';
import { appliedConfigKeys } from '../engine/applied-config.js';
import { loadSecretKeyring, type SecretKeyring } from '../core/sealed-secrets.js';
// Console and scheduler modules (Ajv, OpenAPI, cron) are loaded only by the nodes that run
// them, so an engine starts as fast as before they existed.
import type { ConsoleRole } from '../console/console-role.js';
import type { AdminAuth } from '../console/admin-auth.js';
import type { Scheduler } from '../scheduler/scheduler.js';

/** What the process running a node hears from it (cli/commands/start.ts exits on these). */
export interface CohortNodeHooks {
  /** An operator ran `cohort cluster stop`: stop gracefully, exit 0. */
  onStopRequested?(by: string): void;
  /** The node cannot go on (a peer refused it while it retried to join): stop, exit non-zero. */
  onFatal?(err: CohortError): void;
}

/**
 * One Cohort node, wired from its configuration: which layers run depends on its role.
 *
 * Start order: data directory and credential, repository (roles that own configuration),
 * the cluster port and joining, then the HTTP listeners. Stop order is the reverse: the node
 * stops answering the CLI, leaves the cluster gracefully, then closes its stores, so nothing
 * is left half-open and every store is flushed before the process exits.
 */
export class CohortNode {
  private manageServer: FastifyInstance | undefined;
  private runtimeServer: FastifyInstance | undefined;
  private proxyServer: FastifyInstance | undefined;
  private adminServer: FastifyInstance | undefined;
  private follower: ConfigFollower | undefined;
  private consoleRole: ConsoleRole | undefined;
  private adminAuth: AdminAuth | undefined;
  private scheduler: Scheduler | undefined;
  private stateProvider: OpenedProvider | undefined;
  /** Set when the node starts draining (on its own, or stopping): readiness turns 503 before anything closes. */
  private draining = false;
  /** The drain, once begun (`drain()`). */
  private drainRun: Promise<number> | undefined;
  private repository: Repository | undefined;
  private keyring: SecretKeyring | undefined;
  private cluster: ClusterMember | undefined;
  private stopping: Promise<void> | undefined;
  /** `[tls]` as loaded at start, and what reloads it into the HTTPS listeners when the files change. */
  private tlsMaterial: TlsMaterial | undefined;
  private tlsReloader: TlsReloader | undefined;
  /** `[http] metrics`: this node's registry (node/metrics.ts); undefined when turned off. */
  readonly metrics: NodeMetrics | undefined;

  constructor(
    readonly config: NodeConfig,
    private readonly log: Logger,
    private readonly hooks: CohortNodeHooks = {},
    private readonly clock: Clock = systemClock,
  ) {
    this.metrics = config.http.metrics ? new NodeMetrics({ id: config.node.id, role: config.node.role }) : undefined;
  }

  /** The console's modules, loaded at start on a console or replica (see `start`). */
  private consoleModules: ReturnType<typeof loadConsoleModules> | undefined;

  /** The HTTPS listeners made so far, by name (their failed handshakes are a metric). */
  private readonly httpsListeners = new Map<TlsListener, FastifyInstance>();

  /** An HTTP server of this node, timed for the metrics. */
  private httpServer(name: TlsListener, clientTraffic = false): FastifyInstance {
    const { config, log } = this;
    const tls = this.tlsFor(name);
    const app = createHttpServer({ logger: log, bodyLimit: config.http.bodyLimit, name, tls, clock: this.clock, ...(clientTraffic ? { closeConnections: 'idle' as const } : {}) });
    if (tls) this.httpsListeners.set(name, app);
    this.metrics?.instrumentHttp(app, name);
    return app;
  }

  async start(): Promise<void> {
    const { config, log } = this;
    // Loaded while the repository opens and the node joins, instead of after: the console is
    // the node that takes longest to start.
    if (config.node.role !== 'engine') {
      this.consoleModules = loadConsoleModules();
      this.consoleModules.catch(() => undefined); // awaited (and reported) in startConsole
    }
    for (const warning of config.warnings) log.warn(warning);
    ensureDataDir(config.node.dataDir);
    const credential = loadOrCreateManageCredential(config.node.dataDir);
    if (credential.created) log.info({ dataDir: config.node.dataDir }, 'created management credential');
    if (credential.tightened) log.warn({ dataDir: config.node.dataDir }, 'management credential was readable by others; permissions reset to 0600');
    // Before anything binds: a certificate that does not load stops the node at once, not at
    // its first HTTPS listener after it has joined the cluster.
    let tlsSignature = '';
    if (config.tls) {
      tlsSignature = tlsFilesSignature(config.tls);
      this.tlsMaterial = loadTlsMaterial(config.tls);
    }

    if (config.repository.url) {
      const repository = await openRepository(config.repository.url);
      if (this.stopping) {
        await repository.close();
        return;
      }
      this.repository = repository;
      log.info({ repository: describeRepositoryUrl(config.repository.url) }, 'repository ready');
    }

    const cluster = new ClusterMember({
      config,
      log,
      clock: this.clock,
      onStopCluster: (by) => this.hooks.onStopRequested?.(by),
      onFatal: (err) => this.hooks.onFatal?.(err),
      ...(this.metrics ? { metrics: this.metrics } : {}),
    });
    this.cluster = cluster;
    if (this.metrics) {
      clusterMetrics(this.metrics, cluster);
      if (config.tls) tlsMetrics(this.metrics, () => this.httpsListeners);
    }
    await cluster.start();
    // Stopped while joining (SIGTERM, cluster stop): bind nothing more; stop() closes the rest.
    if (this.stopping) return;

    if (config.node.role === 'engine') {
      const follower = new ConfigFollower({
        rpc: cluster.rpc,
        clock: this.clock,
        log,
        dataDir: config.node.dataDir,
        pollingDelayMs: config.console.pollingDelayMs,
        integrityKeys: appliedConfigKeys(config.cluster.id, [config.cluster.secretKey, ...config.cluster.previousSecretKeys]),
        consoles: () => cluster.consoleCandidates(),
        consoleKey: config.cluster.consolePublicKey,
        ...(this.metrics ? { onApplied: (_version: number, savedAt: number | undefined, appliedAt: number) => savedAt !== undefined && this.metrics!.configApplied(appliedAt - savedAt) } : {}),
      });
      this.follower = follower;
      cluster.onMembersChanged(() => follower.consolesChanged());
      // The saved configuration is checked while the state provider opens, and before the
      // runtime API listens: its first answers already know whether the engine has one.
      const following = follower.start().catch((err: unknown) => log.error({ err }, 'could not start following the configuration'));
      const opened = await openStateProvider(config, log, cluster);
      this.stateProvider = opened;
      await following;
      if (this.stopping) return;
      // One set of decision caches for every door and the inline proxy of this engine.
      const accessCaches = decisionCaches(opened.provider, this.clock, config.access);
      const runtime = this.httpServer('runtime', true);
      const notReadyReasons = (): string[] => [
        ...(this.draining ? ['stopping'] : []),
        ...[follower.notReadyReason()].filter((r) => r !== undefined),
        ...opened.notReadyReasons(),
      ];
      if (this.metrics) {
        if (opened.gridStats) gridMetrics(this.metrics, opened.gridStats);
        engineMetrics(this.metrics, {
          ready: () => notReadyReasons().length === 0,
          draining: () => this.draining,
          configVersion: () => follower.state?.version,
          configEpoch: () => follower.state?.epoch,
        });
      }
      registerRuntimeApi(runtime, {
        provider: opened.provider,
        apiKeyHashes: config.http.apiKeys.map((k) => sha256(k.reveal())),
        settings: () => follower.settings(),
        notReadyReasons,
        writeRefusal: () => opened.writeRefusal(),
        limits: config.state.limits,
        clock: this.clock,
        decisionLog: config.access.decisionLog,
        engineId: config.node.id,
        trustedProxies: config.http.trustedProxies,
        accessCaches,
        ...(this.metrics ? { observeDecision: this.metrics.decision.bind(this.metrics) } : {}),
      });
      this.runtimeServer = runtime;
      await listen(runtime, config.http.runtime, 'runtime');
      if (this.stopping) return;
      if (config.node.mode === 'inline' && config.http.proxy) {
        // Loaded only in inline mode: a sideband engine never loads the proxy client.
        const { registerInlineProxy } = await import('../engine/access/proxy.js');
        const proxy = this.httpServer('proxy', true);
        registerInlineProxy(proxy, {
          provider: opened.provider,
          settings: () => follower.settings(),
          clock: this.clock,
          log,
          decisionLog: config.access.decisionLog,
          engineId: config.node.id,
          trustedProxies: config.http.trustedProxies,
          caches: accessCaches,
          ...(this.metrics ? { observeDecision: this.metrics.decision.bind(this.metrics) } : {}),
        });
        this.proxyServer = proxy;
        await listen(proxy, config.http.proxy, 'proxy');
        if (this.stopping) return;
      }
    } else if (this.repository) {
      await this.startConsole(cluster, this.repository);
      if (this.stopping) return;
    }
    if (this.repository && config.scheduler.enabled) {
      await this.startScheduler(cluster, this.repository);
      if (this.stopping) return;
    }

    const manage = this.httpServer('manage');
    registerManageApi(manage, config, credential.credential, {
      info: () => cluster.info(),
      deleteNode: (address) => cluster.deleteNode(address),
      stopCluster: () => cluster.stopCluster(),
      drain: () => this.drain(),
      promote: this.consoleRole ? (force) => this.consoleRole!.promote(force, { user: 'cli', role: 'admin' }) : undefined,
      schedules: this.repository ? scheduleListing(this.repository, this.secretKeys()) : undefined,
      ...(this.metrics ? { metrics: this.metrics } : {}),
    });
    this.manageServer = manage;
    await listen(manage, config.http.manage, 'manage');
    if (this.stopping) await manage.close();
    if (config.tls && this.tlsMaterial && !this.stopping) {
      this.tlsReloader = new TlsReloader({
        settings: config.tls,
        initial: this.tlsMaterial,
        initialSignature: tlsSignature,
        servers: () => this.httpsServers(),
        clock: this.clock,
        log,
      });
      this.tlsReloader.start();
    }

    log.info(
      {
        version: COHORT_VERSION,
        clusterId: config.cluster.id,
        mode: config.node.mode,
        cluster: formatAddress(config.cluster.bind),
        manage: formatAddress(config.http.manage),
        ...(config.node.role === 'engine' ? { runtime: formatAddress(config.http.runtime), state: config.state.provider } : {}),
        ...(this.proxyServer && config.http.proxy ? { proxy: formatAddress(config.http.proxy) } : {}),
        ...(config.tls && this.tlsMaterial
          ? { tls: { listeners: config.tls.listeners, clientCertificates: config.tls.clientCertificates, fingerprint: this.tlsMaterial.fingerprint, validTo: this.tlsMaterial.validTo } }
          : {}),
        dataDir: config.node.dataDir,
      },
      `${config.node.role} ${config.node.id} started`,
    );
  }

  /**
   * The keys of the secrets at rest on a node with the repository: the console role's (created
   * at a console's first start, adopted by a replica), or on an engine DATA_DIR/secrets.key if
   * an operator copied it there (without it, schedules with secrets are left to the console).
   */
  private secretKeys(): SecretKeyring {
    return (this.keyring ??= this.consoleRole?.secrets ?? loadSecretKeyring(this.config.node.dataDir, false));
  }

  /** The HTTPS options of one listener (undefined: it speaks plain HTTP). */
  private tlsFor(listener: TlsListener): ReturnType<typeof httpsOptionsFor> {
    return httpsOptionsFor(listener, this.config.tls, this.tlsMaterial);
  }

  /** The listeners started with TLS, whose certificate a reload replaces. */
  private httpsServers(): TlsServer[] {
    const tls = this.config.tls;
    if (!tls) return [];
    const servers: Array<[TlsListener, FastifyInstance | undefined]> = [
      ['runtime', this.runtimeServer], ['proxy', this.proxyServer], ['admin', this.adminServer], ['manage', this.manageServer],
    ];
    return servers.filter(([name, app]) => app !== undefined && tls.listeners.includes(name)).map(([, app]) => app!.server as unknown as TlsServer);
  }

  /**
   * Console and replica: the admin API, configuration replication, the replica's pulls and
   * promotion (console/console-role.ts). The first start of a console creates the admin user.
   */
  private async startConsole(cluster: ClusterMember, repository: Repository): Promise<void> {
    const { config, log } = this;
    const [{ ConsoleRole }, { AdminAuth }, { ConfigService }, { registerAdminApi }, { schedulerStates }, { ClusterEvents }, { addSecurityHeaders, registerWebConsole }] =
      await (this.consoleModules ??= loadConsoleModules());
    const role = new ConsoleRole({
      nodeId: config.node.id,
      configuredRole: config.node.role === 'replica' ? 'replica' : 'console',
      dataDir: config.node.dataDir,
      repository,
      rpc: cluster.rpc,
      clock: this.clock,
      log,
      pollingDelayMs: config.console.pollingDelayMs,
      cluster,
      schedulerStates: () => schedulerStates(repository, this.clock.now(), config.scheduler),
    });
    this.consoleRole = role;
    await role.start();
    if (this.metrics) consoleMetrics(this.metrics, () => role.view(config.cluster.id));
    const auth = new AdminAuth({
      repository,
      clock: this.clock,
      tokenTtlMs: config.console.tokenTtlMs,
      maxFailures: config.console.loginMaxFailures,
      lockoutMs: config.console.loginLockoutMs,
      userMaxFailures: config.console.loginUserMaxFailures,
      sourceBurst: config.console.loginSourceBurst,
      sourcePerMinute: config.console.loginSourcePerMinute,
      maxConcurrent: config.console.loginMaxConcurrent,
      log,
      nodeId: config.node.id,
      auditsFailures: () => role.isActive,
    });
    this.adminAuth = auth;
    auth.start();
    if (role.isActive) await auth.ensureFirstUser(config.console.adminUser, config.node.dataDir, config.node.id, log, config.console.adminPassword);
    const configService = new ConfigService(repository, this.clock, config.node.id, () => role.isActive, role.secrets);
    if (config.console.pushChanges) configService.onSaved((doc) => role.publisher.announce(doc));
    const admin = this.httpServer('admin');
    // The web console's live cluster page: snapshots compared every 250 ms while a page listens.
    const events = new ClusterEvents({ clock: this.clock, view: () => role.view(config.cluster.id) });
    // Open event streams end (with a `closing` event) before the server waits for its connections.
    admin.addHook('preClose', async () => events.close());
    addSecurityHeaders(admin);
    await registerAdminApi(admin, {
      auth,
      config: configService,
      repository,
      cluster: () => role.view(config.cluster.id),
      promote: (force, by) => role.promote(force, by),
      events,
    });
    await registerWebConsole(admin);
    this.adminServer = admin;
    await listen(admin, config.http.admin, 'admin');
  }

  /**
   * The persistent scheduler (scheduler/scheduler.ts) on a node with the repository: the
   * console (not while it is a replica: its repository may be a copy of its own), and engines
   * given a `[repository] url`.
   */
  private async startScheduler(cluster: ClusterMember, repository: Repository): Promise<void> {
    const { Scheduler } = await import('../scheduler/scheduler.js');
    const role = this.consoleRole;
    const scheduler = new Scheduler({
      repository,
      clock: this.clock,
      log: this.log,
      nodeId: this.config.node.id,
      settings: this.config.scheduler,
      secrets: this.secretKeys(),
      active: role ? () => role.isActive : undefined,
      ...(this.metrics ? { onRunFinished: (outcome: 'succeeded' | 'failed' | 'rejected') => this.metrics!.schedulerRun(outcome) } : {}),
      jobs: {
        // Every active engine sweeps: this one directly, the others over the cluster channel.
        purgeExpired: async () => {
          const others = [...cluster.activeEngines()].filter(([id]) => id !== this.config.node.id);
          const counts = await Promise.all(others.map(([, address]) => gridRpc(cluster.rpc).call(address, 'grid.sweep', {}).catch(() => 0)));
          return (this.stateProvider?.sweep() ?? 0) + counts.reduce((a, b) => a + b, 0);
        },
      },
    });
    this.scheduler = scheduler;
    await scheduler.start();
  }

  /**
   * The first part of a graceful stop, also asked for on its own by `cohort drain` (a
   * container's pre-stop hook) so that it is over before the stop signal comes: readiness
   * answers 503 while the engine keeps serving, connections kept alive as before, for
   * `[http] drain_seconds`. Resolves with the time drained (ms; 0 for a node serving no client
   * traffic). Asked again, or followed by `stop()`, it waits only for what is left of that time.
   *
   * Connections stay kept alive on purpose: a balancer without active checks (open-source
   * nginx) goes on sending to this engine until a connection is refused, and if every answer
   * closed its connection it would open a new one per request right up to the moment the
   * listener closes, when the connections the kernel accepted but the engine had not yet
   * taken are reset under requests already written — a POST there fails. Kept alive, the
   * balancer's connections are open long before the listener closes (`closeServingListener`).
   */
  drain(): Promise<number> {
    this.drainRun ??= (async () => {
      this.draining = true;
      const serving = this.servingListeners();
      if (serving.length === 0 || this.config.http.drainMs === 0) return 0;
      this.log.info({ drainMs: this.config.http.drainMs }, 'draining: ready answers 503; serving until drain_seconds have passed');
      await new Promise((resolve) => setTimeout(resolve, this.config.http.drainMs));
      return this.config.http.drainMs;
    })();
    return this.drainRun;
  }

  /** The listeners of client traffic (runtime API, inline proxy) that are listening. */
  private servingListeners(): FastifyInstance[] {
    return [this.proxyServer, this.runtimeServer].filter((s): s is FastifyInstance => s !== undefined && s.server.listening);
  }

  /**
   * Stops everything that was started; safe to call more than once and after a failed start.
   *
   * An engine that serves client traffic drains first: `/health/ready` answers 503 while it
   * keeps serving for `[http] drain_seconds`, so load balancers with active checks move their
   * traffic before anything closes. Then its listeners stop accepting (a balancer with passive
   * checks moves on the refused connection) and answer what still comes on open connections
   * with `Connection: close`, waiting up to `drain_seconds` more for the clients to close
   * them; it saves its state, hands its partitions off by leaving, and stops.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.drain();
      this.tlsReloader?.stop();
      const serving = this.servingListeners();
      await this.manageServer?.close();
      await this.adminServer?.close();
      await this.adminAuth?.stop().catch((err: unknown) => this.log.error({ err }, 'could not write failed sign-ins to the audit trail'));
      await Promise.all(serving.map((s) => closeServingListener(s, this.config.http.drainMs, FINISH_REQUESTS_MS)));
      for (const s of [this.proxyServer, this.runtimeServer]) if (s && !serving.includes(s)) await s.close();
      this.follower?.stop();
      this.consoleRole?.stop();
      await this.scheduler?.stop();
      // Saved while this engine still holds its share; then it leaves, and its partitions
      // move to the other engines.
      await this.stateProvider?.shutdown().catch((err: unknown) => this.log.error({ err }, 'could not save the grid state'));
      await this.cluster?.leave();
      await this.repository?.close();
      this.log.info(`${this.config.node.role} ${this.config.node.id} stopped`);
    })();
    return this.stopping;
  }
}

/** How long a stopping engine lets requests in flight finish after its listeners closed before it cuts them. */
export const FINISH_REQUESTS_MS = 5000;

/**
 * Closes a listener of client traffic without failing a request a client has sent. It stops
 * accepting: a new connection is refused, which any balancer retries on another engine,
 * whatever the method, since nothing was sent. What still comes on open connections is
 * answered with `Connection: close`. Connections left idle are not ended here but left to
 * their clients for up to `lingerMs`: an engine that ends a kept-alive connection races the
 * balancer reusing it, and a POST written into a connection being closed fails without a
 * retry, whereas a balancer closing its own idle connection (`cohort lb` sets its idle timeout
 * to half the drain) races nothing. Then the idle connections left are ended and requests in
 * flight get `finishMs` before they are cut.
 */
export async function closeServingListener(app: FastifyInstance, lingerMs: number, finishMs: number): Promise<void> {
  const started = performance.now();
  app.server.prependListener('request', closeAfterAnswer);
  // net.Server's close, not http.Server's, which would end the idle connections at once.
  const allClosed = new Promise<'closed'>((resolve) => NetServer.prototype.close.call(app.server, () => resolve('closed')));
  let lingerTimer: NodeJS.Timeout | undefined;
  const lingered = await Promise.race([allClosed, new Promise<'timeout'>((resolve) => (lingerTimer = setTimeout(resolve, lingerMs, 'timeout')))]);
  clearTimeout(lingerTimer);
  // The server's logger carries the listener's name.
  app.log.info({ lingerMs, waitedMs: Math.round(performance.now() - started), clientsClosedAll: lingered === 'closed' }, lingered === 'closed' ? 'listener closed; its clients closed every connection' : 'listener closed; ending the connections its clients left open');
  const timer = setTimeout(() => app.server.closeAllConnections(), finishMs);
  try {
    await app.close();
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `cohort schedules list|runs`, through the management API (scheduler module loaded on first
 * use); headers redacted, as for auditors: a listing is no place for credentials.
 */
function scheduleListing(repository: Repository, secrets: SecretKeyring): { list(): Promise<unknown[]>; runs(id: string, limit: number): Promise<unknown[]> } {
  return {
    list: async () => (await import('../scheduler/scheduler.js')).scheduleViews(repository, secrets, 'redacted'),
    runs: async (id, limit) => (await import('../scheduler/scheduler.js')).runViews(repository, id, limit),
  };
}

/** A repository URL fit for a log line: no password. */
export function describeRepositoryUrl(url: string): string {
  if (!url.startsWith('postgres')) return url;
  try {
    const u = new URL(url);
    u.password = '';
    return u.toString();
  } catch {
    return 'postgres://(unparseable)';
  }
}

/** What only a console or replica runs, loaded on those nodes alone. */
function loadConsoleModules() {
  return Promise.all([
    import('../console/console-role.js'),
    import('../console/admin-auth.js'),
    import('../console/config-service.js'),
    import('../console/admin-api.js'),
    import('../scheduler/scheduler.js'),
    import('../console/cluster-events.js'),
    import('../console/web-console.js'),
  ]);
}

/** Node's server writes `Connection: close` and ends the connection after this answer. */
function closeAfterAnswer(_request: IncomingMessage, response: ServerResponse): void {
  response.shouldKeepAlive = false;
}
