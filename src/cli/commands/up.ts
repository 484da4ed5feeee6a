import type { Command } from 'commander';
import { MODES, type Mode } from '../../config/schema.js';
import { CohortError } from '../../core/errors.js';
import { EXIT } from '../exit-codes.js';
import { fail } from '../fail.js';
import { DEFAULT_STOP_TIMEOUT_MS, lastError, LocalCluster, type ClusterFile } from '../local-cluster/local-cluster.js';
import { parseStopTimeout } from './stop-timeout.js';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start a local cluster (a console and N engines) on loopback; Ctrl-C stops it')
    .option('--engines <n>', 'number of engines', '2')
    .option('--dir <dir>', 'directory for config files, data and logs', '.cohort')
    .option('--mode <mode>', 'how engines enforce access decisions: sideband (the doors on the runtime port) or inline (each engine also runs the reverse proxy; cluster.json lists its address); default: the mode of the directory\'s existing files, else sideband')
    .option('--json', 'print cluster.json instead of a summary')
    .option('--stop-timeout <seconds>', 'on Ctrl-C, how long to wait for the nodes to save their state and exit before killing them', String(DEFAULT_STOP_TIMEOUT_MS / 1000))
    .option('--start-timeout <seconds>', 'how long each node may take to answer (an engine: to be ready) before the start counts as failed', '20')
    .action(async (opts: { engines: string; dir: string; mode?: string; json?: boolean; stopTimeout: string; startTimeout: string }) => {
      const engines = Number(opts.engines);
      if (!Number.isInteger(engines) || engines < 0 || engines > 32) fail(new CohortError('CLI_USAGE', '--engines must be a whole number from 0 to 32'));
      if (opts.mode !== undefined && !(MODES as readonly string[]).includes(opts.mode)) fail(new CohortError('CLI_USAGE', `--mode must be ${MODES.join(' or ')}`));
      const stopTimeoutMs = parseStopTimeout(opts.stopTimeout);
      const startTimeoutMs = parseStopTimeout(opts.startTimeout, '--start-timeout');
      // Progress goes to standard error, so that standard output stays the summary (or, with
      // --json, cluster.json alone).
      const cluster = new LocalCluster({ dir: opts.dir, engines, ...(opts.mode !== undefined ? { mode: opts.mode as Mode } : {}), startTimeoutMs, onProgress: (line) => process.stderr.write(`cohort up: ${line}\n`) });
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) {
          // A second Ctrl-C: the operator does not want to wait.
          cluster.killNow();
          return;
        }
        stopping = true;
        process.stderr.write(`cohort up: ${signal}: stopping every node (${signal} again kills them at once)\n`);
        cluster.stop(stopTimeoutMs).then(() => process.exit(cluster.killed.size > 0 ? EXIT.FAILURE : EXIT.OK), fail);
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
        stopping = true;
        await cluster.stop(stopTimeoutMs);
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
    ...file.nodes.map((n) => `  ${n.id.padEnd(10)} ${n.role.padEnd(8)} pid ${String(n.pid).padEnd(7)} cluster ${n.cluster}  manage ${n.manage}  ${n.admin ? `admin ${n.admin}` : `runtime ${n.runtime}`}${n.proxy ? `  proxy ${n.proxy}` : ''}`),
    '',
    `  admin user  ${file.adminUser} / ${file.adminPassword}`,
    `  API key     ${file.apiKey}`,
    `  details     ${dir}/cluster.json   logs ${dir}/<node>.log`,
    `  try         npx cohort cluster info -c ${dir}/console.ini`,
    '',
  ];
  return lines.join('\n');
}
