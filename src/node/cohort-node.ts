import type { FastifyInstance } from 'fastify';
import type { Logger } from '../core/logger.js';
import { COHORT_VERSION } from '../core/version.js';
import type { NodeConfig } from '../config/node-config.js';
import { formatAddress } from '../config/values.js';
import { createHttpServer, listen } from '../http/server.js';
import { openRepository } from '../repository/open-repository.js';
import type { Repository } from '../repository/repository.js';
import { ensureDataDir, loadOrCreateManageCredential } from './data-dir.js';
import { registerManageApi } from './manage-api.js';

/**
 * One Cohort node, wired from its configuration: which layers run depends on its role.
 *
 * Start order: data directory and credential, repository (roles that own configuration),
 * then the network listeners. Stop order is the reverse, so nothing is left half-open and
 * every store is flushed before the process exits.
 */
export class CohortNode {
  private manageServer: FastifyInstance | undefined;
  private repository: Repository | undefined;
  private stopping: Promise<void> | undefined;

  constructor(
    readonly config: NodeConfig,
    private readonly log: Logger,
  ) {}

  async start(): Promise<void> {
    const { config, log } = this;
    for (const warning of config.warnings) log.warn(warning);
    ensureDataDir(config.node.dataDir);
    const credential = loadOrCreateManageCredential(config.node.dataDir);
    if (credential.created) log.info({ dataDir: config.node.dataDir }, 'created management credential');
    if (credential.tightened) log.warn({ dataDir: config.node.dataDir }, 'management credential was readable by others; permissions reset to 0600');

    if (config.repository.url) {
      this.repository = await openRepository(config.repository.url);
      log.info({ repository: describeRepositoryUrl(config.repository.url) }, 'repository ready');
    }

    const manage = createHttpServer({ logger: log, bodyLimit: config.http.bodyLimit, name: 'manage' });
    registerManageApi(manage, config, credential.credential);
    await listen(manage, config.http.manage, 'manage');
    this.manageServer = manage;

    log.info(
      {
        version: COHORT_VERSION,
        clusterId: config.cluster.id,
        mode: config.node.mode,
        manage: formatAddress(config.http.manage),
        dataDir: config.node.dataDir,
      },
      `${config.node.role} ${config.node.id} started`,
    );
  }

  /** Stops everything that was started; safe to call more than once and after a failed start. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      await this.manageServer?.close();
      await this.repository?.close();
      this.log.info(`${this.config.node.role} ${this.config.node.id} stopped`);
    })();
    return this.stopping;
  }
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
