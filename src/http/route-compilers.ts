/**
 * Route schemas compiled on a route's first use rather than when its server starts. A node
 * declares schemas on some sixty routes; compiling their request validators (Ajv) and answer
 * serializers (fast-json-stringify) at start took about 150 ms of the 0.8 s of CPU an engine
 * needed to start, for routes that most processes never serve (the management API's, say).
 * The compilers are Fastify's own, with the server's options; only the moment changes.
 *
 * What moves with it: a schema that cannot be compiled fails its route's first request (500
 * HTTP_INTERNAL, logged) instead of the server's start. test/unit/own-schemas.test.ts compiles
 * every route schema of every server with these compilers, so such a schema fails the tests.
 */
import AjvCompiler, { type ValidatorFactory } from '@fastify/ajv-compiler';
import SerializerSelector, { type SerializerFactory } from '@fastify/fast-json-stringify-compiler';

type ValidatorCompiler = ReturnType<ValidatorFactory>;
type Validate = ReturnType<ValidatorCompiler> & { errors?: unknown };
type SerializerCompiler = ReturnType<SerializerFactory>;

/** Fastify's validator compiler factory, compiling at once (the tests use it directly). */
export const eagerValidators: ValidatorFactory = AjvCompiler();
/** Fastify's serializer compiler factory, compiling at once (the tests use it directly). */
export const eagerSerializers: SerializerFactory = SerializerSelector();

/** A validator that compiles its schema when it is first called; Fastify reads `.errors` after a call, as from Ajv's own. */
function validatorOnFirstUse(compile: () => Validate): Validate {
  let compiled: Validate | undefined;
  const validate = ((data: unknown) => {
    compiled ??= compile();
    const result = compiled(data);
    validate.errors = compiled.errors;
    return result;
  }) as Validate;
  return validate;
}

/**
 * Header names arrive in lower case. Fastify lower-cases the names a headers schema declares,
 * but only for its own compiler: a compiler given in its place gets the schema as written.
 */
function lowerCaseHeaderNames(schema: unknown): unknown {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) return schema;
  const s = schema as { properties?: Record<string, unknown>; required?: unknown[] };
  return {
    ...s,
    ...(s.properties ? { properties: Object.fromEntries(Object.entries(s.properties).map(([k, v]) => [k.toLowerCase(), v])) } : {}),
    ...(Array.isArray(s.required) ? { required: s.required.map((r) => (typeof r === 'string' ? r.toLowerCase() : r)) } : {}),
  };
}

/** Fastify's validator factory, its Ajv instance made and each route's schema compiled when first needed. */
export const validatorsOnFirstUse = ((externalSchemas: unknown, options: unknown) => {
  let compiler: ValidatorCompiler | undefined;
  const build = (): ValidatorCompiler => (compiler ??= (eagerValidators as (e: unknown, o: unknown) => ValidatorCompiler)(externalSchemas, options));
  return (route: Parameters<ValidatorCompiler>[0]) => {
    const definition = route.httpPart === 'headers' ? { ...route, schema: lowerCaseHeaderNames(route.schema) } : route;
    return validatorOnFirstUse(() => build()(definition as Parameters<ValidatorCompiler>[0]) as Validate);
  };
}) as unknown as ValidatorFactory;

/** Fastify's serializer factory, each answer schema compiled when an answer first needs it. */
export const serializersOnFirstUse = ((externalSchemas: unknown, options: unknown) => {
  let compiler: SerializerCompiler | undefined;
  const build = (): SerializerCompiler => (compiler ??= (eagerSerializers as (e: unknown, o: unknown) => SerializerCompiler)(externalSchemas, options));
  return (route: Parameters<SerializerCompiler>[0]) => {
    let serialize: ReturnType<SerializerCompiler> | undefined;
    return (doc: unknown) => (serialize ??= build()(route))(doc);
  };
}) as unknown as SerializerFactory;
