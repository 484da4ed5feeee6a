import type { Command } from 'commander';
import { loadNodeConfig } from '../../config/node-config.js';
import { CohortError } from '../../core/errors.js';
import { MANAGE_LIVE_PATH } from '../../node/manage-api.js';
import { configOption } from '../config-option.js';
import { fail } from '../fail.js';
import { clientTlsFor, listenerUrl, nodeRequest } from '../node-http.js';

/**
 * `cohort health -c FILE`: exits 0 when the node of FILE answers `/health/live` on its manage
 * listener, 1 otherwise. Made for container health checks: every role has a manage listener
 * (a console has no runtime one), and the check needs no credential.
 */
export function registerHealth(program: Command): void {
  program
    .command('health')
    .description('exit 0 when the node of FILE answers GET /health/live on its manage listener (a container health check), 1 otherwise')
    .addOption(configOption('node configuration file'))
    .option('--timeout <seconds>', 'how long to wait for the answer', '5')
    .action(async (opts: { config: string; timeout: string }) => {
      try {
        const seconds = Number(opts.timeout);
        if (!Number.isFinite(seconds) || seconds <= 0 || seconds > 3600) throw new CohortError('CLI_USAGE', `--timeout "${opts.timeout}" is not a number of seconds from 0 to 3600`);
        const config = loadNodeConfig(opts.config);
        const url = `${listenerUrl(config, 'manage')}${MANAGE_LIVE_PATH}`;
        let status: number;
        try {
          status = (await nodeRequest(url, { timeoutMs: seconds * 1000, tls: clientTlsFor(config, 'manage') })).status;
        } catch (err) {
          throw new CohortError('CLI_NODE_UNREACHABLE', `${config.node.id} does not answer at ${url}: ${(err as Error).message}`);
        }
        if (status !== 200) throw new CohortError('CLI_REQUEST_FAILED', `${config.node.id} answered ${status} at ${url}`, { status });
        process.stdout.write(`${config.node.id} is live\n`);
      } catch (err) {
        fail(err);
      }
    });
}
