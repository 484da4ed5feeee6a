import type { Command } from 'commander';
import { parseRedisUrl } from '../../config/redis-url.js';
import { MODES, STATE_PROVIDERS, type Mode } from '../../config/schema.js';
import { InvalidValue } from '../../config/values.js';
import { CohortError } from '../../core/errors.js';
import { EXIT } from '../exit-codes.js';
import { fail } from '../fail.js';
import { askFrontDoor, frontDoorExample, frontDoorLines } from '../local-cluster/front-door-example.js';
import { DEFAULT_STOP_TIMEOUT_MS, lastError, LocalCluster, type ClusterFile, type LocalClusterOptions } from '../local-cluster/local-cluster.js';
import { parseStopTimeout } from './stop-timeout.js';

export function registerUp(program: Command): void {
  program
    .command('up')
    .description('start a local cluster (a console and N engines) on loopback; Ctrl-C stops it')
    .option('--engines <n>', 'number of engines', '2')
    .option('--dir <dir>', 'directory for config files, data and logs', '.cohort')
    .option('--mode <mode>', 'how engines enforce access decisions: sideband (the doors on the runtime port) or inline (each engine also runs the reverse proxy; cluster.json lists its address); default: the mode of the directory\'s existing files, else sideband')
    .option('--tls', 'serve every HTTP listener (runtime, admin, manage, proxy) over HTTPS, with certificates from a throwaway local CA in DIR/tls (cluster.json names its caFile; the CLI trusts it); default: what the directory\'s existing files say, else plain HTTP')
    .option('--state <provider>', 'where the engines keep runtime state: grid (in their memory) or redis (with --redis-url); default: what the directory\'s existing engine files say, else grid')
    .option('--redis-url <url>', 'with --state redis: redis://host:port, redis-cluster://host:port,host:port or redis-sentinel://host:port,host:port/master-name (keys are prefixed with the cluster id, so local clusters can share one Redis)')
    .option('--json', 'print cluster.json instead of a summary')
    .option('--start-timeout <seconds>', 'how long every node may take to answer (and every engine to become ready) before cohort up gives up and stops them; raise it on a slow or busy machine', '20')
    .option('--stop-timeout <seconds>', 'on Ctrl-C, how long to wait for the nodes to save their state and exit before killing them', String(DEFAULT_STOP_TIMEOUT_MS / 1000))
    .action(async (opts: { engines: string; dir: string; mode?: string; tls?: boolean; state?: string; redisUrl?: string; json?: boolean; startTimeout: string; stopTimeout: string }) => {
      const engines = Number(opts.engines);
      if (!Number.isInteger(engines) || engines < 0 || engines > 32) fail(new CohortError('CLI_USAGE', '--engines must be a whole number from 0 to 32'));
      if (opts.mode !== undefined && !(MODES as readonly string[]).includes(opts.mode)) fail(new CohortError('CLI_USAGE', `--mode must be ${MODES.join(' or ')}`));
      const state = stateOption(opts.state, opts.redisUrl);
      const stopTimeoutMs = parseStopTimeout(opts.stopTimeout);
      const startTimeoutMs = parseStopTimeout(opts.startTimeout, '--start-timeout');
      // Progress goes to standard error, so that standard output stays the summary (or, with
      // --json, cluster.json alone).
      const cluster = new LocalCluster({
        dir: opts.dir,
        engines,
        startTimeoutMs,
        ...(opts.mode !== undefined ? { mode: opts.mode as Mode } : {}),
        ...(opts.tls === true ? { tls: true } : {}),
        ...(state !== undefined ? { state } : {}),
        onProgress: (line) => process.stderr.write(`cohort up: ${line}\n`),
      });
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
        // Ctrl-C while starting: the nodes it stops make the start fail; the signal's stop
        // finishes and exits as it does after a start.
        if (stopping) return;
        stopping = true;
        await cluster.stop(stopTimeoutMs);
        fail(err);
      }
      started = true;
      process.stdout.write(opts.json ? `${JSON.stringify(file)}\n` : summary(file, cluster.dir));
      if (!opts.json) process.stdout.write(await frontDoorText(file));
    });
}

/** `--state` and `--redis-url`, checked; undefined when neither is given. */
export function stateOption(provider: string | undefined, redisUrl: string | undefined): LocalClusterOptions['state'] {
  if (provider === undefined && redisUrl === undefined) return undefined;
  const chosen = provider ?? 'redis';
  if (!(STATE_PROVIDERS as readonly string[]).includes(chosen)) fail(new CohortError('CLI_USAGE', `--state must be ${STATE_PROVIDERS.join(' or ')}`));
  if (chosen === 'grid') {
    if (redisUrl !== undefined) fail(new CohortError('CLI_USAGE', '--redis-url goes with --state redis, not --state grid'));
    return { provider: 'grid' };
  }
  if (redisUrl === undefined) fail(new CohortError('CLI_USAGE', '--state redis needs --redis-url URL'));
  try {
    parseRedisUrl(redisUrl);
  } catch (err) {
    if (err instanceof InvalidValue) fail(new CohortError('CLI_USAGE', `--redis-url: ${err.message}`));
    throw err;
  }
  return { provider: 'redis', redisUrl };
}

/**
 * A request through the front door of the cluster just started, as a command to paste, with
 * the answer it got when `cohort up` made it (printed after the summary, apart from it).
 */
async function frontDoorText(file: ClusterFile): Promise<string> {
  const example = frontDoorExample(file);
  if (example === undefined) return '';
  return `${frontDoorLines(example, await askFrontDoor(example)).join('\n')}\n\n`;
}

function summary(file: ClusterFile, dir: string): string {
  const lines = [
    `Cohort local cluster "${file.clusterId}" is running (${file.nodes.length} nodes). Ctrl-C stops it.`,
    '',
    ...consoleLines(file),
    '',
    ...file.nodes.map((n) => `  ${n.id.padEnd(10)} ${n.role.padEnd(8)} pid ${String(n.pid).padEnd(7)} cluster ${n.cluster}  manage ${n.manage}  ${n.admin ? `admin ${n.admin}` : `runtime ${n.runtime}`}${n.proxy ? `  proxy ${n.proxy}` : ''}`),
    '',
    `  admin user  ${file.adminUser} / ${file.adminPassword}`,
    `  API key     ${file.apiKey}`,
    ...(file.redisUrl ? [`  state       Redis at ${file.redisUrl}`] : []),
    ...(file.caFile ? [`  TLS CA      ${file.caFile}   (e.g. curl --cacert ${file.caFile} ${file.nodes.find((n) => n.runtime)?.runtime ?? file.adminUrl}/health/live)`] : []),
    `  details     ${dir}/cluster.json   logs ${dir}/<node>.log`,
    `  try         npx cohort cluster info -c ${dir}/console.ini`,
    '',
  ];
  return lines.join('\n');
}

/**
 * What a newcomer needs first: where the web console is and how to sign in to it (the
 * password was generated at the console's first start).
 */
export function consoleLines(file: Pick<ClusterFile, 'adminUrl' | 'adminUser' | 'adminPassword'>): string[] {
  return [
    `  web console  ${file.adminUrl}/`,
    `  sign in as   ${file.adminUser} / ${file.adminPassword}`,
  ];
}
