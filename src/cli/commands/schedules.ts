import type { Command } from 'commander';
import { fail } from '../fail.js';
import { manageRequest, manageTargetOfFile } from '../manage-client.js';
import { configOption } from '../config-option.js';

interface ListedSchedule {
  id: string;
  enabled: boolean;
  type: string;
  cron?: string;
  intervalSeconds?: number;
  timezone: string;
  job: { state: string; node: string | null; nextFireAt: string } | null;
}

interface ListedRun {
  fireAt: string;
  node: string;
  startedAt: string;
  endedAt: string;
  outcome: string;
  error: string | null;
}

/** `cohort schedules list | runs ID`: the persistent scheduler, through a node with the repository. */
export function registerSchedules(program: Command): void {
  const schedules = program.command('schedules').description('the persistent scheduler: schedules and their runs');

  schedules
    .command('list')
    .description('every schedule with its next fire time and who runs it now')
    .addOption(configOption('configuration file of the console (or a node with the repository)'))
    .option('--json', 'print JSON')
    .action(async (opts: { config: string; json?: boolean }) => {
      try {
        const { schedules: list } = await manageRequest<{ schedules: ListedSchedule[] }>(manageTargetOfFile(opts.config), 'GET', '/manage/v1/schedules');
        if (opts.json) return void process.stdout.write(`${JSON.stringify(list, null, 2)}\n`);
        const rows = list.map((s) => [s.id, s.enabled ? 'on' : 'off', s.type, s.cron !== undefined ? `cron ${s.cron} ${s.timezone}` : `every ${s.intervalSeconds} s`, s.job?.nextFireAt ?? '-', s.job ? `${s.job.state}${s.job.node ? ` on ${s.job.node}` : ''}` : '-']);
        process.stdout.write(table(['ID', 'ENABLED', 'TYPE', 'WHEN', 'NEXT FIRE', 'STATE'], rows));
      } catch (err) {
        fail(err);
      }
    });

  schedules
    .command('runs')
    .description('the latest runs of a schedule, newest first')
    .argument('<id>', 'schedule id')
    .addOption(configOption('configuration file of the console (or a node with the repository)'))
    .option('--json', 'print JSON')
    .action(async (id: string, opts: { config: string; json?: boolean }) => {
      try {
        const { runs } = await manageRequest<{ runs: ListedRun[] }>(manageTargetOfFile(opts.config), 'GET', `/manage/v1/schedules/${encodeURIComponent(id)}/runs`);
        if (opts.json) return void process.stdout.write(`${JSON.stringify(runs, null, 2)}\n`);
        process.stdout.write(table(['FIRE TIME', 'NODE', 'OUTCOME', 'TOOK', 'ERROR'], runs.map((r) => [r.fireAt, r.node, r.outcome, `${Date.parse(r.endedAt) - Date.parse(r.startedAt)} ms`, r.error ?? ''])));
      } catch (err) {
        fail(err);
      }
    });
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n';
}
