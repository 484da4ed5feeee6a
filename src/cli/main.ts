#!/usr/bin/env node
import { Command } from 'commander';
import { COHORT_VERSION } from '../core/version.js';
import { registerCluster } from './commands/cluster.js';
import { registerDrain } from './commands/drain.js';
import { registerHealth } from './commands/health.js';
import { registerLb } from './commands/lb.js';
import { registerObfuscate } from './commands/obfuscate.js';
import { registerStart } from './commands/start.js';
import { registerUp } from './commands/up.js';
import { registerReplica } from './commands/replica.js';
import { registerSchedules } from './commands/schedules.js';
import { EXIT } from './exit-codes.js';

const program = new Command();
program
  .name('cohort')
  .description('Cohort: a clustered runtime for identity and access services')
  .version(COHORT_VERSION, '-v, --version')
  .showHelpAfterError()
  .exitOverride((err) => {
    // commander exits 0 for --help/--version; usage mistakes exit 2 like invalid configuration.
    process.exit(err.exitCode === 0 ? EXIT.OK : EXIT.INVALID);
  });

registerStart(program);
registerUp(program);
registerReplica(program);
registerSchedules(program);
registerCluster(program);
registerHealth(program);
registerDrain(program);
registerLb(program);
registerObfuscate(program);

await program.parseAsync(process.argv);
