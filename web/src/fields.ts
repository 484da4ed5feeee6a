/**
 * A configuration document as a form: one field per leaf value (string, number, boolean,
 * null), named by its JSON Pointer, which is also where the schema's errors point
 * ("/defaultRateLimit/capacity: must be >= 1"), so each error is shown at its field.
 */
export type Leaf = string | number | boolean | null;

export interface Field {
  path: string;
  value: Leaf;
}

const escape = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');
const unescape = (part: string): string => part.replace(/~1/g, '/').replace(/~0/g, '~');

export function leafFields(doc: unknown, path = ''): Field[] {
  if (Array.isArray(doc)) return doc.flatMap((v, i) => leafFields(v, `${path}/${i}`));
  if (doc && typeof doc === 'object') return Object.entries(doc).flatMap(([k, v]) => leafFields(v, `${path}/${escape(k)}`));
  return path === '' ? [] : [{ path, value: doc as Leaf }];
}

/** A copy of `doc` with the value at `path` replaced. */
export function withValue(doc: unknown, path: string, value: Leaf): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>;
  const parts = path.split('/').slice(1).map(unescape);
  let at: Record<string, unknown> = copy;
  for (const part of parts.slice(0, -1)) at = at[part] as Record<string, unknown>;
  at[parts[parts.length - 1]!] = value;
  return copy;
}

/** What an input's text means for a field whose current value is `current`: a number stays a number when it reads as one. */
export function parseInput(text: string, current: Leaf): Leaf {
  if (typeof current === 'number') {
    const n = Number(text);
    return text.trim() !== '' && Number.isFinite(n) ? n : text;
  }
  if (current === null && text === '') return null;
  return text;
}

/** Splits the API's error list: those at a field's path, and the rest. */
export function errorsByField(errors: string[], paths: string[]): { at: Map<string, string[]>; other: string[] } {
  const at = new Map<string, string[]>();
  const other: string[] = [];
  const known = new Set(paths);
  for (const e of errors) {
    const colon = e.indexOf(': ');
    const path = colon > 0 ? e.slice(0, colon) : '';
    if (known.has(path)) at.set(path, [...(at.get(path) ?? []), e.slice(colon + 2)]);
    else other.push(e);
  }
  return { at, other };
}
