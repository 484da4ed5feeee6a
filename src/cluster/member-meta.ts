/**
 * A member's metadata as the cluster layer carries it: an opaque JSON object that the node
 * announces about itself and every member passes on unchanged (memberlist's node meta).
 *
 * The cluster layer never reads a field of it: it bounds its size, compares two versions of it
 * (a change is news for the listener), and leaves everything else to the delegate
 * (delegate.ts). The fields themselves are declared by the layer that owns them
 * (node/node-meta.ts) by merging into `MemberMeta`, so the code that reads them (the node,
 * the grid's directory, the console) reads them typed; nothing under cluster/ names one.
 *
 * Invariants: a metadata value is a plain JSON object of at most MAX_META_BYTES encoded; the
 * cluster layer never mutates one (a change replaces the whole object), and a field it does
 * not know is carried through untouched, so nodes of different versions can add fields.
 */

/** Declared empty here: node/node-meta.ts merges the node's fields into it. */
export interface MemberMeta {
  readonly [field: string]: unknown;
}

/**
 * Largest metadata a member may announce, encoded as JSON (bytes). A member's metadata rides
 * in every push-pull for every member, so it must stay small; a node's is about 200 bytes.
 */
export const MAX_META_BYTES = 4096;

const encoder = new TextEncoder();

/** Size of `meta` encoded as JSON, in bytes. */
export function metaBytes(meta: MemberMeta): number {
  return encoder.encode(JSON.stringify(meta)).length;
}

/** Whether `v` has the shape metadata must have on the wire: a plain object (not an array, not null). */
export function isMetaShaped(v: unknown): v is MemberMeta {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Whether two metadata values are equal as JSON values (field order aside). */
export function sameMeta(a: MemberMeta, b: MemberMeta): boolean {
  return a === b || sameJson(a, b);
}

function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const other = b as unknown[];
    return a.length === other.length && a.every((v, i) => sameJson(v, other[i]));
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  const keys = Object.keys(x).filter((k) => x[k] !== undefined);
  if (keys.length !== Object.keys(y).filter((k) => y[k] !== undefined).length) return false;
  return keys.every((k) => sameJson(x[k], y[k]));
}
