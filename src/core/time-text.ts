/**
 * Times (ms since the epoch) as the APIs show them: ISO 8601 in UTC with milliseconds, the
 * text `Date#toISOString` gives. A session lookup shows three of them, and V8 formats each
 * through a C++ printf (about a microsecond, a fortieth of what a whole lookup costs here), so
 * the common case is written out: the date part once per day (cached), the time of day from
 * digits. Anything unusual (before 1970, past 9999, a fraction of a millisecond, not a number)
 * goes to `toISOString`, which formats it or throws as it always did.
 */

const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00.000Z: from here on the year has five digits and a sign. */
const YEAR_10000_MS = 253_402_300_800_000;
/** Most days kept (a lookup shows at most three): past it the cache starts again. */
const DAYS_CACHED = 64;
const dayPrefixes = new Map<number, string>();
const TWO_DIGITS = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, '0'));
const THREE_DIGITS = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, '0'));

/** `new Date(ms).toISOString()`, without the printf for the times an API shows. */
export function isoText(ms: number): string {
  if (!Number.isInteger(ms) || ms < 0 || ms >= YEAR_10000_MS) return new Date(ms).toISOString();
  const timeOfDay = ms % DAY_MS;
  const dayStart = ms - timeOfDay;
  let prefix = dayPrefixes.get(dayStart);
  if (prefix === undefined) {
    if (dayPrefixes.size >= DAYS_CACHED) dayPrefixes.clear();
    prefix = new Date(dayStart).toISOString().slice(0, 11); // YYYY-MM-DDT
    dayPrefixes.set(dayStart, prefix);
  }
  const hours = Math.floor(timeOfDay / 3_600_000);
  const minutes = Math.floor(timeOfDay / 60_000) % 60;
  const seconds = Math.floor(timeOfDay / 1000) % 60;
  return `${prefix}${TWO_DIGITS[hours]}:${TWO_DIGITS[minutes]}:${TWO_DIGITS[seconds]}.${THREE_DIGITS[timeOfDay % 1000]}Z`;
}

/** A time (ms since the epoch) as the APIs show it: ISO 8601; null stays null. */
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : isoText(ms);
}
