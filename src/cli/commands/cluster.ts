import type { Command } from 'commander';
import type { ClusterInfo } from '../../node/cluster-info.js';
import { CohortError } from '../../core/errors.js';
import { formatAddress, parseAddress } from '../../config/values.js';
import { fail } from '../fail.js';
import { DEFAULT_STOP_TIMEOUT_MS, seconds } from '../local-cluster/local-cluster.js';
import { manageRequest, manageTargetOfFile } from '../manage-client.js';
import { parseStopTimeout } from './stop-timeout.js';
import { portState, waitUntilStopped } from '../stop-wait.js';
import { configOption } from '../config-option.js';

/** `cohort cluster info | delete-node | stop`: operations on the cluster through one node. */
export function registerCluster(program: Command): void {
  const cluster = program.command('cluster').description('inspect and operate the cluster through one of its nodes');

  cluster
    .command('info')
    .description('the cluster as the node of FILE sees it')
    .addOption(configOption('node configuration file'))
    .option('--json', 'print the cluster as JSON (clusterId, versions, nodes with their states) instead of a table')
    .action(async (opts: { config: string; json?: boolean }) => {
      try {
        const info = await manageRequest<ClusterInfo>(manageTargetOfFile(opts.config), 'GET', '/manage/v1/cluster');
        process.stdout.write(opts.json ? `${JSON.stringify(info, null, 2)}\n` : renderClusterInfo(info));
      } catch (err) {
        fail(err);
      }
    });

  cluster
    .command('delete-node')
    .description('remove an inactive or left node from the member list; an active node is refused')
    .argument('<host:port>', 'cluster address of the node to remove')
    .addOption(configOption('configuration file of any running node'))
    .action(async (address: string, opts: { config: string }) => {
      try {
        let normalized: string;
        try {
          normalized = formatAddress(parseAddress(address));
        } catch {
          throw new CohortError('CLI_USAGE', `"${address}" is not a host:port cluster address`);
        }
        const target = manageTargetOfFile(opts.config);
        const answer = await manageRequest<{ deleted: { id: string; address: string } }>(target, 'DELETE', `/manage/v1/cluster/nodes/${encodeURIComponent(normalized)}`);
        process.stdout.write(`deleted ${answer.deleted.id} (${answer.deleted.address}) from the cluster\n`);
      } catch (err) {
        fail(err);
      }
    });

  cluster
    .command('stop')
    .description('stop every node of the cluster gracefully, and wait until each has stopped')
    .addOption(configOption('configuration file of any running node'))
    .option('--stop-timeout <seconds>', 'how long to wait for the nodes to save their state and exit', String(DEFAULT_STOP_TIMEOUT_MS / 1000))
    .action(async (opts: { config: string; stopTimeout: string }) => {
      const timeoutMs = parseStopTimeout(opts.stopTimeout);
      try {
        const target = manageTargetOfFile(opts.config);
        const info = await manageRequest<ClusterInfo>(target, 'GET', '/manage/v1/cluster');
        const running = info.nodes.filter((n) => n.state === 'active' || n.state === 'suspect').map((n) => ({ id: n.id ?? n.address, address: n.address }));
        // Only the nodes whose cluster port this host can reach can be watched.
        const watched = (await Promise.all(running.map(async (n) => ((await portState(n.address)) === 'open' ? n : undefined)))).filter((n) => n !== undefined);
        await manageRequest(target, 'POST', '/manage/v1/cluster/stop');
        const unwatched = running.filter((n) => !watched.includes(n));
        process.stdout.write(
          `every node of the cluster was asked to stop; waiting for ${watched.map((n) => n.id).join(', ') || 'no node'} to save their state and stop (up to ${seconds(timeoutMs)})\n`,
        );
        if (unwatched.length > 0) process.stdout.write(`not watched (their cluster port does not answer from this host): ${unwatched.map((n) => `${n.id} (${n.address})`).join(', ')}\n`);
        const left = await waitUntilStopped(watched, timeoutMs, (n, ms) => process.stdout.write(`${n.id} stopped (${seconds(ms)})\n`));
        if (left.length > 0) {
          throw new CohortError(
            'CLI_STOP_TIMEOUT',
            `still running ${seconds(timeoutMs)} after the stop: ${left.map((n) => `${n.id} (${n.address})`).join(', ')}; they may still be saving their state (see their logs), or be stuck`,
          );
        }
        process.stdout.write('every node of the cluster has stopped\n');
      } catch (err) {
        fail(err);
      }
    });
}

/** A table for people; `--json` is for scripts. */
export function renderClusterInfo(info: ClusterInfo): string {
  const rows = info.nodes.map((n) => [
    `${n.id ?? '?'}${n.self ? ' *' : ''}`,
    n.role ?? '',
    n.state,
    n.address,
    n.version ?? '',
    n.group ?? '',
    n.clockOffsetMs === null ? '' : `${n.clockOffsetMs} ms`,
    n.writes ?? '',
  ]);
  const header = ['NODE', 'ROLE', 'STATE', 'CLUSTER ADDRESS', 'VERSION', 'GROUP', 'CLOCK', 'WRITES'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const out = [
    `cluster ${info.clusterId} as seen by ${info.node} (*)`,
    `versions ${info.versions.join(', ')}${info.mixedVersions ? '  (mixed: finish the rolling upgrade)' : ''}`,
  ];
  const refusing = info.nodes.filter((n) => n.writes === 'refused').map((n) => n.id);
  if (refusing.length > 0) out.push(`WARNING: ${refusing.join(', ')} refuse${refusing.length === 1 ? 's' : ''} writes: no majority of the cluster in view (see docs/operations.md, "Write majority")`);
  if (info.clockSkewWarning) out.push(`WARNING: wall clocks differ by ${info.clockSkewMs} ms (over 1 s); run NTP on every node`);
  out.push('', line(header), ...rows.map(line), '');
  return out.join('\n');
}
