import { isCohortError } from '../core/errors.js';
import { EXIT } from './exit-codes.js';

/** Prints `cohort: <message>` on stderr and exits: 2 for configuration and usage errors, 1 otherwise. */
export function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  const code = isCohortError(err) ? ` [${err.code}]` : '';
  process.stderr.write(`cohort: ${message}${code}\n`);
  const invalid = isCohortError(err) && (err.code.startsWith('CONFIG_') || err.code === 'CLI_USAGE');
  process.exit(invalid ? EXIT.INVALID : EXIT.FAILURE);
}
