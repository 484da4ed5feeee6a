import { MessageType, type Broadcast } from './messages.js';

interface Queued {
  msg: Broadcast;
  /** Invalidation key: a newer update with the same key replaces this one. */
  key: string;
  transmits: number;
  /** Insertion order, to break ties fairly. */
  order: number;
}

/**
 * Updates waiting to be piggy-backed on probes and gossip, each sent a limited number of
 * times (SWIM's infection-style dissemination).
 *
 * Invariants: at most one queued update per key (a newer one replaces the older, so a stale
 * "suspect" never travels after the "alive" that refuted it); updates sent fewer times go
 * first; an update is dropped once it has been sent `limit` times.
 */
export class BroadcastQueue {
  private items = new Map<string, Queued>();
  private order = 0;

  constructor(private readonly retransmitLimit: () => number) {}

  enqueue(msg: Broadcast): void {
    const key = keyOf(msg);
    this.items.set(key, { msg, key, transmits: 0, order: this.order++ });
  }

  get size(): number {
    return this.items.size;
  }

  /** Up to `max` updates to send now; each counts as transmitted once. */
  take(max: number): Broadcast[] {
    if (this.items.size === 0) return [];
    const limit = this.retransmitLimit();
    const chosen = [...this.items.values()].sort((a, b) => a.transmits - b.transmits || a.order - b.order).slice(0, max);
    for (const q of chosen) {
      q.transmits++;
      if (q.transmits >= limit) this.items.delete(q.key);
    }
    return chosen.map((q) => q.msg);
  }

  /** Drops every queued update (used when the node leaves). */
  clear(): void {
    this.items.clear();
  }
}

function keyOf(msg: Broadcast): string {
  switch (msg.t) {
    case MessageType.Alive:
    case MessageType.Suspect:
    case MessageType.Dead:
      return `node:${msg.id}`;
    case MessageType.Forget:
      return `forget:${msg.id}`;
    case MessageType.StopCluster:
      return 'stop-cluster';
    case MessageType.User:
      return `user:${msg.topic}`;
  }
}
