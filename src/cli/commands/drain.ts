import type { Command } from 'commander';
import { loadNodeConfig } from '../../config/node-config.js';
import { configOption } from '../config-option.js';
import { fail } from '../fail.js';
import { seconds } from '../local-cluster/local-cluster.js';
import { manageRequest, manageTargetOf } from '../manage-client.js';

/** How much longer than `[http] drain_seconds` the command waits for the node's answer. */
const ANSWER_MARGIN_MS = 10_000;

/**
 * `cohort drain -c FILE`: the first part of a graceful stop, on its own, for a container's
 * pre-stop hook. The engine's `/health/ready` answers 503 and every answer closes its
 * connection while it serves on for `[http] drain_seconds`; the command returns when that time
 * has passed. The node stays drained (not ready) until it is stopped, and its stop then goes
 * straight to closing its listeners, saving its state and leaving.
 */
export function registerDrain(program: Command): void {
  program
    .command('drain')
    .description('take the engine of FILE out of load balancing (ready 503, serving on for [http] drain_seconds) and return when the drain is over; stop the node afterwards')
    .addOption(configOption('node configuration file'))
    .action(async (opts: { config: string }) => {
      try {
        const config = loadNodeConfig(opts.config);
        const answer = await manageRequest<{ drained: boolean; drainMs: number }>(manageTargetOf(config), 'POST', '/manage/v1/drain', undefined, config.http.drainMs + ANSWER_MARGIN_MS);
        process.stdout.write(
          answer.drainMs > 0
            ? `${config.node.id} drained for ${seconds(answer.drainMs)}: it answers ready with 503 until it stops; stop it now (SIGTERM)\n`
            : `${config.node.id} serves no client traffic (or drain_seconds is 0): nothing to drain\n`,
        );
      } catch (err) {
        fail(err);
      }
    });
}
