import type { Command } from 'commander';
import { CohortError } from '../../core/errors.js';
import { EXIT } from '../exit-codes.js';
import { fail } from '../fail.js';
import { lastError, LocalCluster, type ClusterFile } from '../local-cluster/local-cluster.js';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start a local cluster (a console and N engines) on loopback; Ctrl-C stops it')
    .option('--engines <n>', 'number of engines', '2')
    .option('--dir <dir>', 'directory for config files, data and logs', '.cohort')
    .option('--json', 'print cluster.json instead of a summary')
    .action(async (opts: { engines: string; dir: string; json?: boolean }) => {
      const engines = Number(opts.engines);
      if (!Number.isInteger(engines) || engines < 0 || engines > 32) fail(new CohortError('CLI_USAGE', '--engines must be a whole number from 0 to 32'));
      const cluster = new LocalCluster({ dir: opts.dir, engines });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`cohort up: ${signal}: stopping every node\n`);
        cluster.stop().then(() => process.exit(EXIT.OK), fail);
      };
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      let started = false;
      cluster.onNodeExit = (node) => {
        if (stopping) return;
        const status = node.exit?.code ?? node.exit?.signal;
        if (status !== 0) {
          const last = lastError(node.logFile);
          process.stderr.write(`cohort up: node ${node.id} (pid ${node.child.pid}) exited with ${status}${last ? ` (${last})` : ''}; see ${node.logFile}\n`);
        }
        // After `cohort cluster stop` every node exits by itself; so does cohort up then.
        if (started && cluster.allExited) {
          const failed = cluster.nodes.filter((n) => n.exit?.code !== 0);
          process.stderr.write(`cohort up: every node has stopped${failed.length > 0 ? ` (${failed.map((n) => n.id).join(', ')} not cleanly)` : ''}\n`);
          process.exit(failed.length > 0 ? EXIT.FAILURE : EXIT.OK);
        }
      };
      let file: ClusterFile;
      try {
        file = await cluster.start();
      } catch (err) {
        await cluster.stop(2000);
        fail(err);
      }
      started = true;
      process.stdout.write(opts.json ? `${JSON.stringify(file)}\n` : summary(file, cluster.dir));
    });
}

function summary(file: ClusterFile, dir: string): string {
  const lines = [
    `Cohort local cluster "${file.clusterId}" is running (${file.nodes.length} nodes). Ctrl-C stops it.`,
    '',
    ...file.nodes.map((n) => `  ${n.id.padEnd(10)} ${n.role.padEnd(8)} pid ${String(n.pid).padEnd(7)} cluster ${n.cluster}  manage ${n.manage}  ${n.admin ? `admin ${n.admin}` : `runtime ${n.runtime}`}`),
    '',
    `  admin user  ${file.adminUser} / ${file.adminPassword}`,
    `  API key     ${file.apiKey}`,
    `  details     ${dir}/cluster.json   logs ${dir}/<node>.log`,
    `  try         npx cohort cluster info -c ${dir}/console.ini`,
    '',
  ];
  return lines.join('\n');
}
