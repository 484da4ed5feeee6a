import type { Command } from 'commander';
import { isCohortError } from '../../core/errors.js';
import { createLogger } from '../../core/logger.js';
import { loadNodeConfig, type NodeConfig } from '../../config/node-config.js';
import { EXIT, isRefusal } from '../exit-codes.js';
import { fail } from '../fail.js';
import { configOption } from '../config-option.js';

/**
 * The node's modules are imported when `start` runs, not when the CLI loads: every other
 * command (`cohort up`, `cluster info`, `health`) would otherwise read and parse the whole
 * server (Fastify, the grid, the metrics) at each run (scripts/build.mjs splits the bundle at
 * dynamic imports).
 */
export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run one node in the foreground; SIGTERM or SIGINT stops it gracefully')
    .addOption(configOption('node configuration file'))
    .action(async (opts: { config: string }) => {
      // First thing: a node is a long-lived server (node/tick-object-shape.ts says why).
      const { keepTickObjectShape } = await import('../../node/tick-object-shape.js');
      keepTickObjectShape();
      let config: NodeConfig;
      const { membershipTiming } = await import('../../node/cluster-member.js');
      try {
        config = loadNodeConfig(opts.config);
        membershipTiming(config); // timings that clash are invalid configuration, caught before anything binds
      } catch (err) {
        fail(err);
      }
      await runNode(config);
    });
}

/** Exit status for an error that ended the node. */
function exitStatusOf(err: unknown): number {
  return isCohortError(err) && isRefusal(err.code) ? EXIT.REFUSED : EXIT.FAILURE;
}

async function runNode(config: NodeConfig): Promise<void> {
  const { CohortNode } = await import('../../node/cohort-node.js');
  const log = createLogger({ level: config.log.level, format: config.log.format, base: { node: config.node.id, role: config.node.role } });
  let exiting = false;
  const shutdown = (reason: string, status: number): void => {
    if (exiting) return;
    exiting = true;
    log.info({ reason }, 'stopping');
    node.stop().then(
      () => process.exit(status),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(EXIT.FAILURE);
      },
    );
  };
  const node = new CohortNode(config, log, {
    onStopRequested: (by) => shutdown(`cluster stop requested by ${by}`, EXIT.OK),
    onFatal: (err) => {
      log.error({ code: err.code }, err.message);
      process.stderr.write(`cohort: ${err.message} [${err.code}]\n`);
      shutdown('refused by the cluster', exitStatusOf(err));
    },
  });
  process.on('SIGTERM', () => shutdown('SIGTERM', EXIT.OK));
  process.on('SIGINT', () => shutdown('SIGINT', EXIT.OK));
  try {
    await node.start();
  } catch (err) {
    const code = isCohortError(err) ? err.code : undefined;
    log.error({ err, code }, (err as Error).message);
    await node.stop().catch(() => undefined);
    process.stderr.write(`cohort: ${(err as Error).message}${code ? ` [${code}]` : ''}\n`);
    process.exit(exitStatusOf(err));
  }
}
