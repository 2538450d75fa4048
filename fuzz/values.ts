/**
 * fast-check arbitraries from JSON Schemas: valid values (so requests get past validation and
 * reach the code behind it), with real ids mixed into string fields, and near-valid ones: a
 * valid value with exactly one thing wrong (a wrong type, out of range, too long, empty, an
 * unknown key, a NUL byte, a lone surrogate, a huge number, hex, whitespace, a missing key).
 */
import fc, { type Arbitrary } from 'fast-check';
import { allIds, type Fixtures } from './fixtures.ts';
import type { Schema } from './openapi.ts';

/** Strings that are hard to handle, whatever the field. */
export const NASTY_STRINGS = [
  '',
  ' ',
  '\t',
  'a\u0000b',
  '\u0000',
  '\ud800',
  'x\udfffy',
  '0x3',
  '1e+23',
  '-1',
  '1.5',
  ' 3 ',
  'null',
  'true',
  '[]',
  '{}',
  '%00',
  '..',
  '../..',
  '%2e%2e',
  "'; DROP TABLE stores; --",
  '\u202e',
  '😀',
  'é',
  'NaN',
  'Infinity',
];

/**
 * Real values a field of this name most likely wants, read from the fixtures when a value is
 * drawn (a request that deletes one gets it remade under a new id); undefined when the name says
 * nothing.
 */
function realValuesFor(name: string): ((fx: Fixtures) => string[]) | undefined {
  const lower = name.toLowerCase();
  if (lower === 'teamid') return (fx) => [fx.teamId];
  if (lower === 'slug') return (fx) => [fx.teamSlug];
  if (lower === 'idorslug') return (fx) => [fx.teamId, fx.teamSlug];
  if (lower.includes('configurationid') || lower === 'installationid') return (fx) => [fx.installationId];
  if (lower === 'integrationidorslug' || lower === 'integrationid') return (fx) => fx.integrationIds;
  if (lower.includes('product')) return (fx) => [...fx.productIds, ...fx.productSlugs];
  if (lower.includes('planid')) return (fx) => fx.planIds;
  if (lower.includes('paymentmethod')) return (fx) => [fx.paymentMethodId];
  if (lower === 'projectid' || lower === 'idorname') return (fx) => [fx.projectId, fx.projectName];
  if (lower === 'storeid') return (fx) => [fx.storeId];
  if (lower === 'resourceid') return (fx) => [fx.resourceId, fx.storeId];
  if (lower === 'connectionid') return (fx) => [fx.connectionId];
  if (lower === 'memberid' || lower === 'userid') return () => ['me'];
  if (lower === 'token') return (fx) => [fx.tokens.installation, fx.tokens.owner];
  return undefined;
}

/** One of `values(fx)`, chosen when drawn; shrinks toward the first. */
export const oneOfLive = (fx: Fixtures, values: (fx: Fixtures) => string[]): Arbitrary<string> =>
  fc.nat(1000).map((i) => {
    const list = values(fx);
    return list[i % list.length]!;
  });

/** A string for a field: real ids first (they get past the lookups), then the schema's kind of string. */
function stringArbitrary(schema: Schema, name: string, fx: Fixtures): Arbitrary<string> {
  if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as string[]));
  const minLength = schema.minLength ?? 0;
  const maxLength = Math.min(schema.maxLength ?? 24, minLength + 24);
  const plain =
    schema.pattern === '^[A-Za-z_][A-Za-z0-9_]*$'
      ? fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,20}$/)
      : fc.string({ minLength, maxLength, unit: 'grapheme-ascii' });
  const real = realValuesFor(name);
  const choices: Array<{ arbitrary: Arbitrary<string>; weight: number }> = [
    { arbitrary: plain, weight: 3 },
    { arbitrary: oneOfLive(fx, allIds), weight: 1 },
  ];
  if (real) choices.push({ arbitrary: oneOfLive(fx, real), weight: 8 });
  return fc.oneof(...choices);
}

function numberArbitrary(schema: Schema): Arbitrary<number> {
  const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + 1 : -1000);
  const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - 1 : Math.max(min + 1000, 1000));
  if (schema.type === 'integer') return fc.integer({ min: Math.ceil(min), max: Math.floor(max) });
  return fc.oneof(fc.integer({ min: Math.ceil(min), max: Math.floor(max) }), fc.double({ min, max, noNaN: true, noDefaultInfinity: true }));
}

/** Metadata as the catalog's products take it: their settings, valid, or the schema's generic bag. */
function metadataArbitrary(generic: Arbitrary<unknown>): Arbitrary<unknown> {
  const postgres = fc.record(
    { connectionLimit: fc.integer({ min: 1, max: 100 }), statementTimeout: fc.constantFrom('off', '30s', '5min') },
    { requiredKeys: ['connectionLimit'] },
  );
  const redis = fc.record({ pubsub: fc.boolean() }, { requiredKeys: [] });
  return fc.oneof({ arbitrary: postgres, weight: 4 }, { arbitrary: redis, weight: 2 }, { arbitrary: generic, weight: 1 });
}

/** A valid value of `schema` (as far as a schema says what valid is); `name` is the field's name. */
export function validValue(schema: Schema | undefined, fx: Fixtures, name = '', depth = 0): Arbitrary<unknown> {
  if (!schema || depth > 6) return fc.constant(null);
  const self = (): Arbitrary<unknown> => {
    if (Array.isArray(schema.enum)) return fc.constantFrom(...(schema.enum as unknown[]));
    if ('const' in schema) return fc.constant(schema.const);
    const alternatives = schema.anyOf ?? schema.oneOf;
    if (Array.isArray(alternatives)) return fc.oneof(...alternatives.map((s: Schema) => validValue(s, fx, name, depth + 1)));
    if (Array.isArray(schema.allOf)) return validValue(Object.assign({}, ...schema.allOf), fx, name, depth + 1);
    const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
    switch (type ?? (schema.properties ? 'object' : undefined)) {
      case 'string':
        return stringArbitrary(schema, name, fx);
      case 'integer':
      case 'number':
        return numberArbitrary(schema);
      case 'boolean':
        return fc.boolean();
      case 'array':
        return fc.array(validValue(schema.items, fx, name, depth + 1), {
          minLength: schema.minItems ?? 0,
          maxLength: Math.min(schema.maxItems ?? 3, (schema.minItems ?? 0) + 3),
        });
      case 'object':
        return objectArbitrary(schema, fx, name, depth);
      default:
        return fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean());
    }
  };
  const value = self();
  return schema.nullable ? fc.option(value, { nil: null, freq: 8 }) : value;
}

function objectArbitrary(schema: Schema, fx: Fixtures, name: string, depth: number): Arbitrary<unknown> {
  const properties: Record<string, Schema> = schema.properties ?? {};
  const required: string[] = (schema.required ?? []).filter((key: string) => key in properties);
  const model: Record<string, Arbitrary<unknown>> = {};
  for (const [key, property] of Object.entries(properties)) {
    model[key] =
      key === 'metadata' ? metadataArbitrary(validValue(property, fx, key, depth + 1)) : validValue(property, fx, key, depth + 1);
  }
  const declared = fc.record(model, { requiredKeys: required });
  const extra = schema.additionalProperties;
  if (Object.keys(properties).length || !extra) return declared;
  const values =
    extra === true ? fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean()) : validValue(extra, fx, name, depth + 1);
  return fc.dictionary(fc.string({ minLength: 1, maxLength: 12, unit: 'grapheme-ascii' }), values, { maxKeys: 3 });
}

/** The ways a near-valid value differs from a valid one; each applies to one place in it. */
export const MUTATIONS = [
  'wrong-type',
  'out-of-range',
  'too-long',
  'empty',
  'unknown-key',
  'nul-byte',
  'lone-surrogate',
  'huge-number',
  'hex',
  'whitespace',
  'null',
  'drop-key',
  'nasty-string',
] as const;
export type Mutation = (typeof MUTATIONS)[number];

/** `value` with one leaf (the `at`-th, counting round) or one object changed by `mutation`. */
export function mutate(value: unknown, mutation: Mutation, at: number, nasty = 0): unknown {
  const places = leaves(value, []);
  const place = places[at % places.length]!;
  if (mutation === 'unknown-key' || mutation === 'drop-key') {
    const objects = objectsIn(value, []);
    if (!objects.length) return replaceAt(value, place.path, mutateLeaf(place.value, 'wrong-type', nasty));
    const target = objects[at % objects.length]!;
    const object = { ...(target.value as Record<string, unknown>) };
    const keys = Object.keys(object);
    if (mutation === 'drop-key' && keys.length) delete object[keys[at % keys.length]!];
    else object[`unknown_${at % 3}`] = at % 2 ? 'x' : 1;
    return replaceAt(value, target.path, object);
  }
  return replaceAt(value, place.path, mutateLeaf(place.value, mutation, nasty));
}

function mutateLeaf(leaf: unknown, mutation: Mutation, nasty: number): unknown {
  // Leaves may be empty objects without a prototype (fc.dictionary makes those), which String() refuses.
  const text = typeof leaf === 'string' ? leaf : leaf && typeof leaf === 'object' ? JSON.stringify(leaf) : String(leaf ?? '');
  switch (mutation) {
    case 'wrong-type':
      return typeof leaf === 'string' ? 1 : typeof leaf === 'number' ? String(leaf) : typeof leaf === 'boolean' ? 'true' : [leaf];
    case 'out-of-range':
      return typeof leaf === 'number' ? (nasty % 2 ? -1 - Math.abs(leaf) : 1e9 + leaf) : -1;
    case 'too-long':
      return (text || 'x').repeat(Math.ceil((nasty % 2 ? 300 : 20_000) / Math.max(1, text.length || 1)));
    case 'empty':
      return typeof leaf === 'string' ? '' : typeof leaf === 'number' ? 0 : {};
    case 'nul-byte':
      return `${text}\u0000`;
    case 'lone-surrogate':
      return `${text}\ud800`;
    case 'huge-number':
      return nasty % 2 ? 1e23 : -1e23;
    case 'hex':
      return '0x3';
    case 'whitespace':
      return nasty % 2 ? ` ${text} ` : ' ';
    case 'null':
      return null;
    case 'nasty-string':
      return NASTY_STRINGS[nasty % NASTY_STRINGS.length];
    default:
      return leaf;
  }
}

/** A near-valid value: a valid one with one mutation; shrinks toward the mutation's first place. */
export function nearValidValue(schema: Schema | undefined, fx: Fixtures, name = ''): Arbitrary<unknown> {
  return fc
    .tuple(validValue(schema, fx, name), fc.constantFrom(...MUTATIONS), fc.nat(20), fc.nat(NASTY_STRINGS.length * 2))
    .map(([value, mutation, at, nasty]) => mutate(value, mutation, at, nasty));
}

type Path = Array<string | number>;

function leaves(value: unknown, path: Path): Array<{ path: Path; value: unknown }> {
  if (Array.isArray(value) && value.length) return value.flatMap((item, i) => leaves(item, [...path, i]));
  if (value && typeof value === 'object' && Object.keys(value).length) {
    return Object.entries(value).flatMap(([key, item]) => leaves(item, [...path, key]));
  }
  return [{ path, value }];
}

function objectsIn(value: unknown, path: Path): Array<{ path: Path; value: unknown }> {
  if (Array.isArray(value)) return value.flatMap((item, i) => objectsIn(item, [...path, i]));
  if (!value || typeof value !== 'object') return [];
  return [{ path, value }, ...Object.entries(value).flatMap(([key, item]) => objectsIn(item, [...path, key]))];
}

function replaceAt(value: unknown, path: Path, replacement: unknown): unknown {
  if (!path.length) return replacement;
  const [head, ...rest] = path;
  if (Array.isArray(value)) return value.map((item, i) => (i === head ? replaceAt(item, rest, replacement) : item));
  const object = value as Record<string, unknown>;
  return { ...object, [head!]: replaceAt(object[head as string], rest, replacement) };
}
