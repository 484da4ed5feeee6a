/**
 * The reasons a decision gives (`X-Cohort-Reason`), each a stable code of src/core/errors.ts
 * whose HTTP status is the status a deny answers with.
 */
import { ERROR_CODES } from '../../core/errors.js';

export const ACCESS_REASONS = [
  'ACCESS_ALLOWED',
  'ACCESS_NO_API',
  'ACCESS_METHOD_NOT_ALLOWED',
  'ACCESS_BAD_REQUEST',
  'ACCESS_DENIED_ADDRESS',
  'ACCESS_NO_CREDENTIAL',
  'ACCESS_INVALID_CREDENTIAL',
  'ACCESS_SESSION_UNKNOWN',
  'ACCESS_REVOKED',
  'ACCESS_TOKEN_REPLAYED',
  'ACCESS_DENIED_SUBJECT',
  'ACCESS_LOCKED',
  'ACCESS_RATE_LIMITED',
  'ACCESS_UNAVAILABLE',
] as const satisfies ReadonlyArray<keyof typeof ERROR_CODES>;
export type AccessReason = (typeof ACCESS_REASONS)[number];

export function reasonStatus(reason: AccessReason): number {
  return ERROR_CODES[reason].status;
}

/** Reasons that say the credential is missing or not valid: 401 with WWW-Authenticate at the forward door. */
export function isCredentialReason(reason: AccessReason): boolean {
  return reasonStatus(reason) === 401;
}
