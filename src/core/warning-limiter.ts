/**
 * Bounds the warnings a remote party can cause at will (refused handshakes, oversized frames,
 * sends over the frame limit): one line per key per window, a bounded number of keys
 * remembered, and what is held back counted and reported by one summary line per window.
 *
 * Keys are built by the caller from what the socket says (the real source host), never from
 * what a peer claims, so a caller cannot mint new keys by varying its claims; and a full key
 * table is not cleared (which would let every new caller be logged again) but stops admitting
 * keys until their window has passed.
 */
export const WARNING_WINDOW_MS = 60_000;
export const MAX_WARNING_KEYS = 1024;

export type WarningVerdict =
  /** Log this warning. */
  | { log: true }
  /** Hold it back; `summary` is set when a window has passed since the first one held back. */
  | { log: false; summary?: { suppressed: number; windowMs: number } };

export class WarningLimiter {
  /** Key → when it was last logged. Map order is insertion order, so the oldest come first. */
  private readonly lastLogged = new Map<string, number>();
  private suppressed = 0;
  /** When the first warning held back since the last summary was; undefined when none is. */
  private heldSince: number | undefined;

  constructor(
    private readonly windowMs = WARNING_WINDOW_MS,
    private readonly maxKeys = MAX_WARNING_KEYS,
  ) {}

  check(key: string, now: number): WarningVerdict {
    this.forgetExpired(now);
    const last = this.lastLogged.get(key);
    if (last === undefined && this.lastLogged.size < this.maxKeys) {
      this.lastLogged.set(key, now);
      return { log: true };
    }
    this.suppressed++;
    this.heldSince ??= now;
    if (now - this.heldSince < this.windowMs) return { log: false };
    const summary = { suppressed: this.suppressed, windowMs: this.windowMs };
    this.suppressed = 0;
    this.heldSince = undefined;
    return { log: false, summary };
  }

  private forgetExpired(now: number): void {
    for (const [key, at] of this.lastLogged) {
      if (now - at < this.windowMs) break;
      this.lastLogged.delete(key);
    }
  }
}
