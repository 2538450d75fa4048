/**
 * Fastify compiles every route's validators (Ajv) and response serializers (fast-json-stringify)
 * when the app starts: with some forty routes that was half of the start-up time. These compiler
 * factories are Fastify's own, deferred: each route's schema is compiled the first time a request
 * needs it, then kept. A schema error therefore shows at a route's first request rather than at
 * start, which the test suite (it calls every route) catches.
 */
import { createRequire } from 'node:module';
import type { FastifySchemaValidationError } from 'fastify/types/schema.js';
import { createAjv } from '../catalog/metadata-schema.ts';

type Factory<F> = (externalSchemas: unknown, options: unknown) => (route: unknown) => F;
// biome-ignore lint/suspicious/noExplicitAny: Fastify's validator contract takes and returns anything
type Validate = ((data: any, context?: any) => any) & { errors?: FastifySchemaValidationError[] | null | undefined; schemaEnv?: unknown };

const requireHere = createRequire(import.meta.url);

export function lazyValidators(): Factory<Validate> {
  // Fastify's compiler (and the Ajv it loads) is loaded with the first compiler it makes.
  let made: Factory<Validate> | undefined;
  const build: Factory<Validate> = (externalSchemas, options) =>
    (made ??= (requireHere('@fastify/ajv-compiler') as { AjvCompiler: () => Factory<Validate> }).AjvCompiler())(externalSchemas, options);
  return (externalSchemas, options) => {
    // Making the compiler is making its Ajv: adding the shared schemas compiles JSON Schema's own
    // meta-schema to check them (a tenth of the start-up time), so that waits for a first request too.
    let compilerFor: ((route: unknown) => Validate) | undefined;
    return (route) => lazyValidator(() => (compilerFor ??= build(externalSchemas, options))(route));
  };
}

/** A validator that compiles on its first call; `errors` is the compiled one's, as Fastify reads it. */
export function lazyValidator(compile: () => Validate | { (data: unknown, context?: unknown): unknown; errors?: unknown }): Validate {
  let compiled: Validate | undefined;
  const validate: Validate = (data, context) => {
    compiled ??= compile() as Validate;
    const result = compiled(data, context);
    validate.errors = compiled.errors;
    return result;
  };
  // Marks it as Ajv's, so Fastify passes the parent object (defaults and coercion of a root value).
  validate.schemaEnv = true;
  return validate;
}

/**
 * A route's validator for JSON bodies checked as sent: no type coercion (the app's Ajv coerces,
 * for query strings, where every value arrives as text), so `"name": 5` or `"partial": "true"`
 * are 400s. One Ajv for every such route, made on the first one's first request.
 */
let bodyAjv: ReturnType<typeof createAjv> | undefined;
export const exactBodies = ({ schema }: { schema: object }) =>
  lazyValidator(() => (bodyAjv ??= createAjv({ strict: false, allErrors: false, useDefaults: true, coerceTypes: false })).compile(schema));

export function lazySerializers(): Factory<(data: unknown) => string> {
  // Fastify's serializer compiler (fast-json-stringify, which loads Ajv) too, with the first it makes.
  type Serializers = Factory<(data: unknown) => string>;
  let made: Serializers | undefined;
  const build: Serializers = (externalSchemas, options) =>
    (made ??= (requireHere('@fastify/fast-json-stringify-compiler') as { SerializerSelector: () => Serializers }).SerializerSelector())(
      externalSchemas,
      options,
    );
  return (externalSchemas, options) => {
    let compilerFor: ((route: unknown) => (data: unknown) => string) | undefined;
    return (route) => {
      let compiled: ((data: unknown) => string) | undefined;
      return (data) => (compiled ??= (compilerFor ??= build(externalSchemas, options))(route))(data);
    };
  };
}
