/** A time (ms since the epoch) as the APIs show it: ISO 8601; null stays null. */
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
