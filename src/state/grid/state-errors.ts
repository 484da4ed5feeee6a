/** How the grid turns failures to reach other engines into the state services' errors. */
import { CohortError } from '../../core/errors.js';

/** RPC failures become STATE_UNAVAILABLE; a state error from the remote engine passes through. */
export function asStateError(err: unknown, what: string): CohortError {
  if (err instanceof CohortError && err.code.startsWith('STATE_')) return err;
  const reason = err instanceof Error ? err.message : String(err);
  return new CohortError('STATE_UNAVAILABLE', `could not reach ${what}: ${reason}`, undefined, { cause: err });
}
