/** Exit statuses of the `cohort` command; documented in docs/operations.md. */
export const EXIT = {
  OK: 0,
  /** The node or command failed while running (bind failure, repository down, node unreachable). */
  FAILURE: 1,
  /** Invalid configuration or command-line usage: nothing was started, bound or written. */
  INVALID: 2,
} as const;
