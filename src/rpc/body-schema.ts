/**
 * Small schemas for RPC bodies: a body from another node is untrusted until its method's
 * schema accepted it (protocol.ts checks every request before its handler runs). Each schema
 * names the first problem it finds, with the path to it (`op.id: a string expected`), or
 * undefined when the value fits; its type parameter is the type a value that fits has, so a
 * protocol table's declared request type is checked against its schema by the compiler.
 *
 * Deliberately shallow where a deeper check lives elsewhere: record lines are parsed line by
 * line (record-lines.ts), proofs are verified by the console's proof checker. A schema checks
 * what the handler would otherwise trust blindly (shapes, types, list lengths), and lets
 * unknown fields through: a newer node may send more (the wire is append-only).
 */
import { RawText } from './rpc.js';

export interface BodySchema<T> {
  /** The first problem with `value` (prefixed with `path`), or undefined when it fits. */
  problem(value: unknown, path: string): string | undefined;
  /** Type carrier only: never set. */
  readonly type?: T;
}

export type SchemaType<S> = S extends BodySchema<infer T> ? T : never;

function schema<T>(problem: (value: unknown, path: string) => string | undefined): BodySchema<T> {
  return { problem };
}

function at(path: string, what: string): string {
  return path === '' ? what : `${path}: ${what}`;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof RawText);
}

export const str: BodySchema<string> = schema((v, p) => (typeof v === 'string' ? undefined : at(p, 'a string expected')));

/** A string of at most `max` characters. */
export function shortStr(max: number): BodySchema<string> {
  return schema((v, p) => (typeof v !== 'string' ? at(p, 'a string expected') : v.length > max ? at(p, `at most ${max} characters expected`) : undefined));
}

/** A finite number. */
export const num: BodySchema<number> = schema((v, p) => (typeof v === 'number' && Number.isFinite(v) ? undefined : at(p, 'a number expected')));

export const int: BodySchema<number> = schema((v, p) => (Number.isSafeInteger(v) ? undefined : at(p, 'an integer expected')));

export const bool: BodySchema<boolean> = schema((v, p) => (typeof v === 'boolean' ? undefined : at(p, 'true or false expected')));

/** Exactly `true` (a flag that is present or absent). */
export const isTrue: BodySchema<true> = schema((v, p) => (v === true ? undefined : at(p, 'true expected')));

/** Anything (the handler checks it itself, or does not use it). */
export const anything: BodySchema<unknown> = schema(() => undefined);

/** Any JSON object, its fields unchecked (the handler or a deeper check looks at them). */
export const anyObject: BodySchema<Record<string, unknown>> = schema((v, p) => (isPlainObject(v) ? undefined : at(p, 'an object expected')));

/** A body sent as record lines (rpc.ts `RawText`), not JSON. */
export const rawText: BodySchema<RawText> = schema((v, p) => (v instanceof RawText ? undefined : at(p, 'record lines expected')));

/** One of the given strings. */
export function literal<const L extends string>(...values: readonly L[]): BodySchema<L> {
  const set = new Set<string>(values);
  return schema((v, p) => (typeof v === 'string' && set.has(v) ? undefined : at(p, `one of ${values.join(', ')} expected`)));
}

/** A list of values that each fit `item`, at most `max` long. */
export function listOf<T>(item: BodySchema<T>, max = Infinity): BodySchema<T[]> {
  return schema((v, p) => {
    if (!Array.isArray(v)) return at(p, 'a list expected');
    if (v.length > max) return at(p, `at most ${max} entries expected`);
    // Checked without a path first (schemas name the path only in a problem), so that a body
    // that fits, every one on a grid write's hot path, builds no path strings at all.
    for (let i = 0; i < v.length; i++) {
      if (item.problem(v[i], '') !== undefined) return item.problem(v[i], `${p}[${i}]`);
    }
    return undefined;
  });
}

type Shape = Record<string, BodySchema<unknown>>;
type Fields<S extends Shape> = { [K in keyof S]: SchemaType<S[K]> };
type OptionalFields<S extends Shape> = { [K in keyof S]?: SchemaType<S[K]> };
/** Flattens an intersection so error messages and hovers show one object type. */
type Flat<T> = { [K in keyof T]: T[K] };

/**
 * An object with the `required` fields, and the `optional` ones where present (absent, or
 * null: JSON has no undefined, and an older node may send null for a field it leaves empty).
 * Other fields are let through unchecked.
 */
export function object<R extends Shape, O extends Shape = Record<never, never>>(required: R, optional?: O): BodySchema<Flat<Fields<R> & OptionalFields<O>>> {
  const requiredFields = Object.entries(required);
  const optionalFields = Object.entries(optional ?? {});
  const field = (p: string, name: string): string => (p === '' ? name : `${p}.${name}`);
  return schema((v, p) => {
    if (!isPlainObject(v)) return at(p, 'an object expected');
    // As in listOf: the path is built only once a field is known not to fit.
    for (const [name, s] of requiredFields) {
      if (!(name in v)) return at(field(p, name), 'missing');
      if (s.problem(v[name], '') !== undefined) return s.problem(v[name], field(p, name));
    }
    for (const [name, s] of optionalFields) {
      if (v[name] === undefined || v[name] === null) continue;
      if (s.problem(v[name], '') !== undefined) return s.problem(v[name], field(p, name));
    }
    return undefined;
  });
}

/**
 * A tagged union: `tag` names the variant, and the variant's schema checks the rest. The
 * type parameter is the union the variants stand for (declared by the caller, since a
 * variant's schema may check fewer fields than the type names: see operations.ts).
 */
export function taggedUnion<T extends Record<Tag, string>, Tag extends string>(tag: Tag, variants: { [V in T[Tag]]: BodySchema<unknown> }): BodySchema<T> {
  const table = variants as Record<string, BodySchema<unknown> | undefined>;
  return schema((v, p) => {
    if (!isPlainObject(v)) return at(p, 'an object expected');
    const name = v[tag];
    const variant = typeof name === 'string' && Object.hasOwn(table, name) ? table[name] : undefined;
    if (variant === undefined) return at(p === '' ? tag : `${p}.${tag}`, `one of ${Object.keys(table).join(', ')} expected`);
    return variant.problem(v, p);
  });
}

/** `s`, trusted to stand for `T` once it fits: where the schema checks the fields the receiver relies on, not every one the type names. */
export function asType<T>(s: BodySchema<unknown>): BodySchema<T> {
  return s as BodySchema<T>;
}
