import type { Command } from 'commander';
import { CohortError } from '../../core/errors.js';
import { obfuscate } from '../../config/obfuscation.js';
import { MAX_SECRET_LENGTH } from '../../config/schema.js';
import { fail } from '../fail.js';

export function registerObfuscate(program: Command): void {
  program
    .command('obfuscate')
    .description('print the OBF: form of a secret, for [cluster] secret_key')
    .argument('<secret>', `the secret (1 to ${MAX_SECRET_LENGTH} characters)`)
    .action((secret: string) => {
      if (secret.length === 0 || secret.length > MAX_SECRET_LENGTH) {
        fail(new CohortError('CLI_USAGE', `a secret must be 1 to ${MAX_SECRET_LENGTH} characters long`));
      }
      process.stdout.write(`${obfuscate(secret)}\n`);
    });
}
