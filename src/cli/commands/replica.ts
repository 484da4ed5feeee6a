import type { Command } from 'commander';
import { fail } from '../fail.js';
import { manageRequest, manageTargetOfFile } from '../manage-client.js';
import { configOption } from '../config-option.js';

/** `cohort replica promote`: makes the replica of FILE the console. */
export function registerReplica(program: Command): void {
  const replica = program.command('replica').description('operate the replica console');

  replica
    .command('promote')
    .description('make the replica the console; refused while the console still answers, unless --force')
    .addOption(configOption('configuration file of the replica'))
    .option('--force', 'promote even though the console answers (it will be demoted when it sees the higher epoch)')
    .action(async (opts: { config: string; force?: boolean }) => {
      try {
        const answer = await manageRequest<{ epoch: number }>(manageTargetOfFile(opts.config), 'POST', '/manage/v1/replica/promote', { force: opts.force === true });
        process.stdout.write(`promoted to console at epoch ${answer.epoch}; engines follow it now\n`);
      } catch (err) {
        fail(err);
      }
    });
}
