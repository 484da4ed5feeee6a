import type { Command } from 'commander';
import { createLogger } from '../../core/logger.js';
import { loadNodeConfig, type NodeConfig } from '../../config/node-config.js';
import { CohortNode } from '../../node/cohort-node.js';
import { EXIT } from '../exit-codes.js';
import { fail } from '../fail.js';

export function registerStart(program: Command): void {
  program
    .command('start')
    .description('run one node in the foreground; SIGTERM or SIGINT stops it gracefully')
    .requiredOption('-c, --config <file>', 'node configuration file')
    .action(async (opts: { config: string }) => {
      let config: NodeConfig;
      try {
        config = loadNodeConfig(opts.config);
      } catch (err) {
        fail(err);
      }
      await runNode(config);
    });
}

async function runNode(config: NodeConfig): Promise<void> {
  const log = createLogger({ level: config.log.level, format: config.log.format, base: { node: config.node.id, role: config.node.role } });
  const node = new CohortNode(config, log);
  let exiting = false;
  const shutdown = (signal: string): void => {
    if (exiting) return;
    exiting = true;
    log.info({ signal }, 'stopping');
    node.stop().then(
      () => process.exit(EXIT.OK),
      (err: unknown) => {
        log.error({ err }, 'stop failed');
        process.exit(EXIT.FAILURE);
      },
    );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  try {
    await node.start();
  } catch (err) {
    log.error({ err }, (err as Error).message);
    await node.stop().catch(() => undefined);
    process.stderr.write(`cohort: ${(err as Error).message}\n`);
    process.exit(EXIT.FAILURE);
  }
}
