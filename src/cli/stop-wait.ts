/** `cohort cluster stop`: watching, from the CLI's host, the nodes of a cluster stop. */
import { connect } from 'node:net';
import { parseAddress } from '../config/values.js';

export interface StoppingNode {
  id: string;
  /** Its cluster address, host:port. */
  address: string;
}

/** `open` while a node listens on the cluster address; `closed` once nothing does; `unknown` if the host does not answer. */
export function portState(address: string, timeoutMs = 1000): Promise<'open' | 'closed' | 'unknown'> {
  const { host, port } = parseAddress(address);
  return new Promise((resolve) => {
    // A connection that sends nothing and closes is dropped by the node without a log line.
    const socket = connect({ host, port });
    const done = (state: 'open' | 'closed' | 'unknown'): void => {
      socket.destroy();
      resolve(state);
    };
    socket.setTimeout(timeoutMs, () => done('unknown'));
    socket.once('connect', () => done('open'));
    socket.once('error', (err: NodeJS.ErrnoException) => done(err.code === 'ECONNREFUSED' ? 'closed' : 'unknown'));
  });
}

/**
 * Waits until the cluster port of each node refuses connections: a node closes it only after
 * it has saved its state and left, just before it exits. Calls `onStopped` for each as it
 * stops; returns those still running when `timeoutMs` has passed.
 */
export async function waitUntilStopped(nodes: StoppingNode[], timeoutMs: number, onStopped: (node: StoppingNode, afterMs: number) => void): Promise<StoppingNode[]> {
  const startedAt = Date.now();
  let pending = nodes;
  while (pending.length > 0 && Date.now() - startedAt < timeoutMs) {
    const states = await Promise.all(pending.map((n) => portState(n.address)));
    for (const [i, n] of pending.entries()) if (states[i] === 'closed') onStopped(n, Date.now() - startedAt);
    pending = pending.filter((_, i) => states[i] !== 'closed');
    if (pending.length > 0) await new Promise((r) => setTimeout(r, 200));
  }
  return pending;
}
