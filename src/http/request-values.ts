/**
 * Values a request may carry that no route can store: refused by name, for every route at once,
 * before they reach a service or SQL (where PostgreSQL would refuse them with its own words, or
 * worse, quietly change them).
 *
 * - strings (and object keys) with a NUL character, which PostgreSQL's text and jsonb cannot hold;
 * - strings with a lone UTF-16 surrogate (`"\ud800"` is valid JSON), which is not Unicode: jsonb
 *   refuses it and text would get U+FFFD instead;
 * - numbers beyond ±(2^53 - 1) in a JSON body: JavaScript cannot hold them exactly, and bigint
 *   columns refuse their exponent form (`1e+23`);
 * - integers in the query that are not plain decimal digits (Ajv's coercion alone reads `0x3`
 *   as 3 and `" "` as 0), or beyond the same range.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify';
import fp from 'fastify-plugin';
import { badRequest, type AppError } from '../errors.ts';

const LONE_SURROGATE = /\p{Cs}/u;
const MAX = Number.MAX_SAFE_INTEGER;

type Location = 'body field' | 'query parameter' | 'path parameter';

/** How a field is named in messages: `metadata.region`, `items.0.name` (as validation messages name them). */
const fieldName = (path: string[]) => path.map((part) => JSON.stringify(part).slice(1, -1)).join('.');

function invalid(where: Location, path: string[], problem: string): AppError {
  const field = fieldName(path);
  return badRequest(field === '' ? `Invalid request body: ${problem}` : `Invalid ${where} "${field}": ${problem}`);
}

/** What is wrong with a string for storage, if anything. */
function stringProblem(text: string): string | undefined {
  if (text.includes('\u0000')) return 'must not contain a NUL character (\\u0000)';
  if (LONE_SURROGATE.test(text)) return 'must be valid Unicode text (it holds a lone UTF-16 surrogate)';
  return undefined;
}

/** The first value in a parsed JSON body that cannot be stored, as the 400 that names it. */
export function unstorableInBody(value: unknown, path: string[] = []): AppError | undefined {
  if (typeof value === 'string') {
    const problem = stringProblem(value);
    return problem === undefined ? undefined : invalid('body field', path, problem);
  }
  if (typeof value === 'number') {
    return Math.abs(value) > MAX ? invalid('body field', path, `must be a number from ${-MAX} to ${MAX}`) : undefined;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = unstorableInBody(value[i], [...path, String(i)]);
      if (found) return found;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [key, item] of Object.entries(value)) {
      const keyProblem = stringProblem(key);
      if (keyProblem) return invalid('body field', [...path, key], `its name ${keyProblem}`);
      const found = unstorableInBody(item, [...path, key]);
      if (found) return found;
    }
  }
  return undefined;
}

/** The first query or path value that cannot be stored, as the 400 that names it. */
function unstorableInStrings(values: unknown, where: Location): AppError | undefined {
  if (values === null || typeof values !== 'object') return undefined;
  // A plain loop: every request comes through here, most with nothing in their query.
  for (const key in values) {
    if (!Object.hasOwn(values, key)) continue;
    const raw = (values as Record<string, unknown>)[key];
    const problem = Array.isArray(raw) ? raw.map(textProblem).find((found) => found !== undefined) : textProblem(raw);
    if (problem) return invalid(where, [key], problem);
  }
  return undefined;
}

const textProblem = (value: unknown) => (typeof value === 'string' ? stringProblem(value) : undefined);

const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_NUMBER = /^-?\d+(\.\d+)?$/;

interface NumericParameter {
  name: string;
  integer: boolean;
}

/** The query parameters a route's schema declares as integers or numbers. */
function numericParameters(querystring: unknown): NumericParameter[] {
  if (querystring === null || typeof querystring !== 'object') return [];
  const schema = querystring as { properties?: Record<string, { type?: unknown }> };
  // Fastify takes a bare map of properties as the querystring schema too.
  const properties = schema.properties ?? (querystring as Record<string, { type?: unknown }>);
  return Object.entries(properties).flatMap(([name, property]): NumericParameter[] => {
    const types = [property?.type].flat();
    if (types.includes('integer')) return [{ name, integer: true }];
    if (types.includes('number')) return [{ name, integer: false }];
    return [];
  });
}

/** Plain decimal numbers only, within ±(2^53 - 1); Ajv then coerces them and checks the schema's bounds. */
function checkNumericQuery(query: Record<string, unknown>, parameters: NumericParameter[]): AppError | undefined {
  for (const { name, integer } of parameters) {
    for (const raw of [query[name]].flat()) {
      if (typeof raw !== 'string') continue;
      if (!(integer ? DECIMAL_INTEGER : DECIMAL_NUMBER).test(raw)) {
        return invalid(
          'query parameter',
          [name],
          integer ? 'must be a whole number in decimal digits' : 'must be a number in decimal digits',
        );
      }
      if (Math.abs(Number(raw)) > MAX) return invalid('query parameter', [name], `must be from ${-MAX} to ${MAX}`);
    }
  }
  return undefined;
}

/**
 * Every route: its query and path values are checked before validation (a body was already
 * checked as it was parsed, json-body.ts). Registered before the routes, so onRoute sees them all.
 */
export const requestValuesPlugin = fp(async function requestValuesPlugin(app: FastifyInstance) {
  app.addHook('onRoute', (route: RouteOptions) => {
    const parameters = numericParameters(route.schema?.querystring);
    const check = (request: FastifyRequest, _reply: FastifyReply, done: (error?: Error) => void) => {
      const query = request.query as Record<string, unknown>;
      done(
        unstorableInStrings(query, 'query parameter') ??
          unstorableInStrings(request.params, 'path parameter') ??
          (parameters.length > 0 ? checkNumericQuery(query, parameters) : undefined),
      );
    };
    const existing = route.preValidation === undefined ? [] : [route.preValidation].flat();
    route.preValidation = [check, ...existing] as RouteOptions['preValidation'];
  });
});
