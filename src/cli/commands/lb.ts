import type { Command } from 'commander';
import type { ClusterInfo } from '../../node/cluster-info.js';
import { loadNodeConfig } from '../../config/node-config.js';
import { parseAddress, formatAddress } from '../../config/values.js';
import { CohortError } from '../../core/errors.js';
import { fail } from '../fail.js';
import { haproxyLbConfig, nginxLbConfig, type LbEngine } from '../lb/lb-config.js';
import { manageRequest, manageTargetOf } from '../manage-client.js';
import { configOption } from '../config-option.js';

const BALANCERS = { nginx: nginxLbConfig, haproxy: haproxyLbConfig } as const;

/** `cohort lb nginx|haproxy -c FILE [--listen HOST:PORT]`: a load-balancer configuration for the engines. */
export function registerLb(program: Command): void {
  program
    .command('lb')
    .description('print a complete load-balancer configuration (nginx or haproxy) for the cluster\'s engines, as the node of FILE sees them')
    .argument('<balancer>', 'nginx or haproxy')
    .addOption(configOption('configuration file of any running node'))
    .option('--listen <host:port>', 'where the load balancer listens', '127.0.0.1:8080')
    .action(async (balancer: string, opts: { config: string; listen: string }) => {
      try {
        const render = BALANCERS[balancer as keyof typeof BALANCERS];
        if (!render) throw new CohortError('CLI_USAGE', `unknown load balancer "${balancer}"; allowed: ${Object.keys(BALANCERS).join(', ')}`);
        let listen: string;
        try {
          listen = formatAddress(parseAddress(opts.listen));
        } catch {
          throw new CohortError('CLI_USAGE', `--listen "${opts.listen}" is not host:port`);
        }
        const config = loadNodeConfig(opts.config);
        const info = await manageRequest<ClusterInfo>(manageTargetOf(config), 'GET', '/manage/v1/cluster');
        const engines = lbEngines(info);
        if (engines.length === 0) throw new CohortError('CLI_NO_ENGINES', `the cluster as ${info.node} sees it has no engine announcing its runtime address; start the engines first`);
        process.stdout.write(render({ clusterId: info.clusterId, engines, listen, drainMs: config.http.drainMs }));
      } catch (err) {
        fail(err);
      }
    });
}

/**
 * Every engine the cluster lists with its runtime address, whatever its state: one that is
 * restarting or down now is expected back, and the balancer's checks keep it out meanwhile.
 */
export function lbEngines(info: ClusterInfo): LbEngine[] {
  return info.nodes
    .filter((n) => n.role === 'engine' && n.id !== null && n.runtime !== undefined)
    .map((n) => ({ id: n.id!, address: n.runtime! }))
    .sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
}
