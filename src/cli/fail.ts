import { isCohortError } from '../core/errors.js';
import { EXIT } from './exit-codes.js';

/**
 * Prints `cohort: <message>` on stderr and exits: 2 for configuration and usage errors, 4 when
 * `cohort up` finds its cluster already running, 1 otherwise.
 */
export function fail(err: unknown): never {
  const message = err instanceof Error ? err.message : String(err);
  const code = isCohortError(err) ? ` [${err.code}]` : '';
  process.stderr.write(`cohort: ${message}${code}\n`);
  process.exit(exitStatusOfError(err));
}

export function exitStatusOfError(err: unknown): number {
  if (!isCohortError(err)) return EXIT.FAILURE;
  if (err.code.startsWith('CONFIG_') || err.code === 'CLI_USAGE') return EXIT.INVALID;
  if (err.code === 'CLI_LOCAL_CLUSTER_RUNNING') return EXIT.RUNNING;
  return EXIT.FAILURE;
}
