/**
 * The cluster snapshots behind `GET /admin/v1/events` (server-sent events), shared by every
 * open stream.
 *
 * One poller for all subscribers: while at least one stream is open, the cluster view is
 * taken every `intervalMs` and handed to the subscribers only when it differs from the last
 * one sent, so a change in membership, health or configuration reaches the page within one
 * interval and an idle cluster costs no traffic. Polling the view (rather than listening for
 * membership and configuration events) also catches health colours, which change only by
 * the passing of time. Subscribers also hear a heartbeat every `heartbeatMs`, so proxies and
 * the browser see a live connection, and each turn checks that the subscriber's session is
 * still valid (an expired or revoked token ends its stream).
 *
 * Invariants: no timer runs while there is no subscriber; a view that failed to come (the
 * repository busy) is skipped, never sent as an error, and the next turn tries again; a new
 * subscriber gets the current snapshot first, before any change.
 */
import type { Clock, TimerHandle } from '../core/clock.js';

export interface ClusterEventSubscriber {
  /** A snapshot, as JSON text. */
  snapshot(json: string): void;
  heartbeat(): void;
  /** False ends the subscription (the session expired or was revoked). */
  stillValid(): boolean | Promise<boolean>;
  /** Called once when the hub ends the subscription itself. */
  ended(reason: 'signed-out' | 'closing'): void;
}

export interface ClusterEventsOptions {
  clock: Clock;
  view(): Promise<unknown>;
  /** How often the view is compared, ms (default 250). */
  intervalMs?: number;
  /** How often a heartbeat goes out, ms (default 15000). */
  heartbeatMs?: number;
}

export class ClusterEvents {
  private readonly subscribers = new Set<ClusterEventSubscriber>();
  private readonly intervalMs: number;
  private readonly heartbeatMs: number;
  private timer: TimerHandle | undefined;
  /** Which run of the poller is current: a turn of a stopped run (all unsubscribed meanwhile) ends itself. */
  private run = 0;
  private polling = false;
  private last: string | undefined;
  private lastHeartbeat = 0;
  private closed = false;

  constructor(private readonly o: ClusterEventsOptions) {
    this.intervalMs = o.intervalMs ?? 250;
    this.heartbeatMs = o.heartbeatMs ?? 15_000;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** Adds a subscriber; it gets the current snapshot at once. Returns the unsubscribe function. */
  subscribe(s: ClusterEventSubscriber): () => void {
    if (this.closed) {
      s.ended('closing');
      return () => {};
    }
    this.subscribers.add(s);
    if (this.last !== undefined) s.snapshot(this.last);
    if (!this.polling) {
      this.polling = true;
      this.lastHeartbeat = this.o.clock.now();
      void this.turn(++this.run);
    }
    return () => this.remove(s);
  }

  /** Ends every subscription (the server is closing). */
  close(): void {
    this.closed = true;
    this.stopPolling();
    for (const s of [...this.subscribers]) {
      this.subscribers.delete(s);
      s.ended('closing');
    }
  }

  private remove(s: ClusterEventSubscriber): void {
    this.subscribers.delete(s);
    if (this.subscribers.size === 0) this.stopPolling();
  }

  private stopPolling(): void {
    this.o.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.polling = false;
    this.run++;
    // A later first subscriber must get a fresh view, not one that may be stale.
    this.last = undefined;
  }

  private async turn(run: number): Promise<void> {
    let json: string | undefined;
    try {
      json = JSON.stringify(await this.o.view());
    } catch {
      json = undefined;
    }
    if (run !== this.run) return;
    for (const s of [...this.subscribers]) {
      if (!(await s.stillValid())) {
        this.subscribers.delete(s);
        s.ended('signed-out');
      }
    }
    if (json !== undefined && json !== this.last) {
      this.last = json;
      for (const s of this.subscribers) s.snapshot(json);
    }
    const now = this.o.clock.now();
    if (now - this.lastHeartbeat >= this.heartbeatMs) {
      this.lastHeartbeat = now;
      for (const s of this.subscribers) s.heartbeat();
    }
    if (this.subscribers.size === 0) {
      this.stopPolling();
      return;
    }
    this.timer = this.o.clock.setTimeout(() => void this.turn(run), this.intervalMs);
  }
}
