import { CohortError } from '../../core/errors.js';
import { fail } from '../fail.js';

/** `--stop-timeout SECONDS` of `cohort up` and `cohort cluster stop` (and `--start-timeout` of `cohort up`), in milliseconds. */
export function parseStopTimeout(raw: string, flag = '--stop-timeout'): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(value) || value < 1 || value > 3600) {
    fail(new CohortError('CLI_USAGE', `${flag} must be a whole number of seconds from 1 to 3600, not "${raw}"`));
  }
  return value * 1000;
}
