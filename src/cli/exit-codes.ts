/** Exit statuses of the `cohort` command; documented in docs/operations.md. */
export const EXIT = {
  OK: 0,
  /** The node or command failed while running (bind failure, repository down, node unreachable). */
  FAILURE: 1,
  /** Invalid configuration or command-line usage: nothing was started, bound or written. */
  INVALID: 2,
  /**
   * The cluster refused this node: another cluster id, a secret it could not prove, another
   * mode, an incompatible version, or its node id held by an active member.
   */
  REFUSED: 3,
  /** `cohort up`: the local cluster of its directory is already running; nothing was started or written. */
  RUNNING: 4,
} as const;

/** Codes meaning "the cluster refused this node" (exit status REFUSED). */
export function isRefusal(code: string): boolean {
  return code.startsWith('TRANSPORT_REFUSED_') || (code.startsWith('CLUSTER_JOIN_') && code !== 'CLUSTER_JOIN_NO_PEER');
}
