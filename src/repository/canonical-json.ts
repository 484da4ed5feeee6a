import { createHash } from 'node:crypto';

/**
 * JSON with every object's keys sorted (by UTF-16 code unit, recursively), so equal content
 * serialises to equal text whatever order its keys were built in. Arrays keep their order.
 */
export function canonicalJson(value: unknown): string {
  const text = JSON.stringify(value, (_key, v: unknown) => (isRecord(v) ? sortKeys(v) : v));
  if (text === undefined) throw new TypeError('Configuration content must be JSON-serialisable');
  return text;
}

/** sha256 hex of the content's canonical JSON. */
export function contentHash(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('hex');
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function sortKeys(obj: Record<string, unknown>): Record<string, unknown> {
  // Object.fromEntries defines own properties, so a key such as "__proto__" stays data.
  return Object.fromEntries(
    Object.keys(obj)
      .sort()
      .map((k) => [k, obj[k]]),
  );
}
