import { CohortError } from '../../core/errors.js';
import { fail } from '../fail.js';

/** `--stop-timeout SECONDS` of `cohort up` and `cohort cluster stop`, in milliseconds. */
export function parseStopTimeout(raw: string): number {
  const value = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isInteger(value) || value < 1 || value > 3600) {
    fail(new CohortError('CLI_USAGE', `--stop-timeout must be a whole number of seconds from 1 to 3600, not "${raw}"`));
  }
  return value * 1000;
}
