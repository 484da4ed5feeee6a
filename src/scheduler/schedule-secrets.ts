/**
 * Which values of the `schedules` section are secrets (core/sealed-secrets.ts): kept apart
 * from schedule-definition.ts so that what reads it (the sections' policy, which engines load)
 * does not load the cron parser and the schedule schema.
 */
import type { SecretWalker } from '../core/sealed-secrets.js';

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
/** A JSON Pointer segment. */
const pointerSegment = (s: string): string => s.replace(/~/g, '~0').replace(/\//g, '~1');

/**
 * The secrets of the `schedules` section (core/sealed-secrets.ts): the values of every
 * schedule's HTTP headers, which may be credentials of the target. Placed by schedule id and
 * header name, so a secret stays with its schedule whatever the order of the list.
 */
export const scheduleSecrets: SecretWalker = (content, fn) => {
  if (!isRecord(content) || !Array.isArray(content.schedules)) return content;
  return {
    ...content,
    schedules: content.schedules.map((s: unknown, i) => {
      if (!isRecord(s) || typeof s.id !== 'string' || !isRecord(s.http) || !isRecord(s.http.headers)) return s;
      const headers = Object.fromEntries(
        Object.entries(s.http.headers).map(([name, value]) => [
          name,
          typeof value === 'string' ? fn(value, `schedules/${s.id as string}/http/headers/${name}`, `/schedules/${i}/http/headers/${pointerSegment(name)}`) : value,
        ]),
      );
      return { ...s, http: { ...s.http, headers } };
    }),
  };
};
