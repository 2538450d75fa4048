/**
 * The dashboard's form generated from a product's metadataSchema (issue 15, "Create a store"):
 * the {expr} evaluator against the semantics it documents, the form's values and the metadata
 * they become (checked by the server's own validator), and the form rendered to HTML for the
 * test catalog test/fixtures/every-control.yaml, whose product has all twelve (type, ui:control)
 * variants and every kind of ui:hidden / ui:disabled / ui:read-only value.
 */
import assert from 'node:assert/strict';
import { register } from 'node:module';
import path from 'node:path';
import { describe, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { MetadataSchema$inboundSchema } from '@vercel/sdk/models/getconfigurationproductsresponsebody.js';
import { h, type FunctionComponent } from 'preact';
import { renderToString } from 'preact-render-to-string';
import type { Product } from '../src/catalog/catalog.ts';
import { loadCatalogFile } from '../src/catalog/catalog-file.ts';
import { SUPPORTED_PAIRS } from '../src/catalog/metadata-schema.ts';
import { validateMetadata } from '../src/stores/store-input.ts';
import {
  evaluate,
  evaluateCondition,
  evaluateText,
  ExpressionError,
  holds,
  type Scope,
} from '../dashboard/src/metadata-form/expressions.ts';
import {
  type FormValues,
  initialValues,
  type MetadataFormProps,
  metadataProblems,
  type MetadataSchema,
  orderedKeys,
  toMetadata,
} from '../dashboard/src/metadata-form/metadata.ts';
import { countryName, regionName } from '../dashboard/src/metadata-form/places.ts';
import { ROOT } from './helpers.ts';

const FIXTURE = path.join(ROOT, 'test/fixtures/every-control.yaml');
const product = loadCatalogFile(FIXTURE).integrations[0]!.products[0]!;
const schema = product.metadataSchema as unknown as MetadataSchema;

// The component is JSX, which this repository's tsconfig (Node code) does not compile; the
// dashboard's build checks it. tsx runs it here (the file names its JSX runtime, preact), and
// its stylesheet, which Vite bundles, is an empty module.
register(
  `data:text/javascript,${encodeURIComponent(
    "export const load = (url, context, next) => url.endsWith('.css') ? { format: 'module', source: '', shortCircuit: true } : next(url, context);",
  )}`,
);
const { MetadataForm } = (await import(pathToFileURL(path.join(ROOT, 'dashboard/src/metadata-form/MetadataForm.tsx')).href)) as {
  MetadataForm: FunctionComponent<MetadataFormProps>;
};

const scope = (metadata: Record<string, unknown>): Scope => ({ metadata });

describe('the every-control test catalog', () => {
  test('passes the real catalog validator and @vercel/sdk, with all twelve variants and every conditional kind', () => {
    const pairs = new Set(Object.values(schema.properties).map((p) => `${p.type}:${p['ui:control']}`));
    assert.deepEqual([...pairs].sort(), [...SUPPORTED_PAIRS].sort());
    // The SDK parses products' metadataSchema with one zod schema per variant (it throws on a
    // property that matches none) and names the keys its own way: each property keeps its control.
    const parsed = MetadataSchema$inboundSchema.parse(product.metadataSchema) as { properties: Record<string, { uiControl: string }> };
    assert.deepEqual(
      Object.fromEntries(Object.entries(parsed.properties).map(([key, p]) => [key, p.uiControl])),
      Object.fromEntries(Object.entries(schema.properties).map(([key, p]) => [key, p['ui:control']])),
    );
    const kinds = new Set<string>();
    for (const property of Object.values(schema.properties)) {
      for (const keyword of ['ui:hidden', 'ui:disabled', 'ui:read-only'] as const) {
        const value = property[keyword];
        if (value !== undefined) kinds.add(`${keyword}:${typeof value === 'object' ? 'expr' : String(value)}`);
      }
      for (const option of property['ui:options'] ?? []) {
        if (typeof option === 'object' && option.hidden) kinds.add('option hidden:expr');
        if (typeof option === 'object' && option.disabled) kinds.add('option disabled:expr');
      }
      if (typeof property['ui:description'] === 'object') kinds.add('ui:description:expr');
      if (property['ui:formatted-value']) kinds.add('ui:formatted-value:expr');
      if (property['ui:paid-only']) kinds.add('ui:paid-only');
    }
    for (const kind of [
      'ui:hidden:true',
      'ui:hidden:update',
      'ui:hidden:expr',
      'ui:disabled:create',
      'ui:disabled:expr',
      'ui:read-only:update',
      'ui:read-only:expr',
      'option hidden:expr',
      'option disabled:expr',
      'ui:description:expr',
      'ui:formatted-value:expr',
      'ui:paid-only',
    ]) {
      assert.ok(kinds.has(kind), `the fixture has ${kind}`);
    }
  });
});

describe('expressions', () => {
  const bools = [true, false];

  test('!, && and || follow JavaScript over every pair of operands, yielding an operand', () => {
    for (const a of bools) {
      assert.equal(evaluate('!metadata.a', scope({ a })), !a);
      assert.equal(evaluate('!!metadata.a', scope({ a })), a);
      for (const b of bools) {
        assert.equal(evaluate('metadata.a && metadata.b', scope({ a, b })), a && b, `${a} && ${b}`);
        assert.equal(evaluate('metadata.a || metadata.b', scope({ a, b })), a || b, `${a} || ${b}`);
        for (const c of bools) {
          const expected = (!a || (b && c)) as boolean;
          assert.equal(evaluate('!metadata.a || metadata.b && metadata.c', scope({ a, b, c })), expected, `!${a} || ${b} && ${c}`);
          assert.equal(evaluate('(metadata.a || metadata.b) && metadata.c', scope({ a, b, c })), (a || b) && c);
        }
      }
    }
    assert.equal(evaluate("metadata.x || 'fallback'", scope({ x: '' })), 'fallback');
    assert.equal(evaluate("metadata.x && 'then'", scope({ x: 0 })), 0);
  });

  test('comparisons: numbers with numbers and strings with strings; anything else is false', () => {
    const table: [string, Record<string, unknown>, boolean][] = [
      ['metadata.n < 10', { n: 9 }, true],
      ['metadata.n < 10', { n: 10 }, false],
      ['metadata.n <= 10', { n: 10 }, true],
      ['metadata.n > 10', { n: 11 }, true],
      ['metadata.n >= 10', { n: 9 }, false],
      ["metadata.s < 'b'", { s: 'a' }, true],
      ["metadata.s >= 'b'", { s: 'a' }, false],
      ['metadata.n < 10', { n: '9' }, false],
      ['metadata.n >= 0', {}, false],
      ['metadata.n < 1', { n: null }, false],
    ];
    for (const [source, metadata, expected] of table) assert.equal(evaluate(source, scope(metadata)), expected, source);
  });

  test('== and != are strict except that null and undefined are equal; === and !== are strict', () => {
    const table: [string, Record<string, unknown>, boolean][] = [
      ["metadata.t == 'pro'", { t: 'pro' }, true],
      ["metadata.t != 'pro'", { t: 'pro' }, false],
      ["metadata.t == 'pro'", { t: 'hobby' }, false],
      ['metadata.n == 1', { n: '1' }, false],
      ['metadata.n != 1', { n: '1' }, true],
      ['metadata.b == true', { b: 1 }, false],
      ['metadata.missing == null', {}, true],
      ['metadata.x == undefined', { x: null }, true],
      ['metadata.x === undefined', { x: null }, false],
      ['metadata.x !== null', { x: null }, false],
      ["metadata.n === 2 && metadata.t !== 'a'", { n: 2, t: 'b' }, true],
      ['metadata.list == metadata.list', { list: [1] }, true],
      ['[1] == [1]', {}, false],
    ];
    for (const [source, metadata, expected] of table) assert.equal(evaluate(source, scope(metadata)), expected, source);
  });

  test('arithmetic, concatenation, the conditional and precedence', () => {
    const table: [string, Record<string, unknown>, unknown][] = [
      ['1 + 2 * 3', {}, 7],
      ['(1 + 2) * 3', {}, 9],
      ['10 - 4 - 3', {}, 3],
      ['7 % 4 / 2', {}, 1.5],
      ['-metadata.n + 1', { n: 3 }, -2],
      ["metadata.size + ' GB'", { size: 8 }, '8 GB'],
      ["'Up to ' + (metadata.t == 'hobby' ? 8 : 64) + ' GB'", { t: 'pro' }, 'Up to 64 GB'],
      ["metadata.a ? 'a' : metadata.b ? 'b' : 'c'", { a: false, b: true }, 'b'],
      ["metadata.a ? 'a' : metadata.b ? 'b' : 'c'", { a: false, b: false }, 'c'],
      ['1 < 2 == true', {}, true],
      ['.5 + 1e1', {}, 10.5],
      ['"double" + \'single\' + "\\n"', {}, 'doublesingle\n'],
    ];
    for (const [source, metadata, expected] of table) assert.equal(evaluate(source, scope(metadata)), expected, source);
  });

  test('property access reads own data only, missing is undefined, and arrays and strings have length and includes()', () => {
    const metadata = { regions: ['iad1', 'fra1'], name: 'abc', nested: { deep: { x: 1 } }, list: [] };
    const table: [string, unknown][] = [
      ['metadata.nested.deep.x', 1],
      ["metadata['nested']['deep'].x", 1],
      ['metadata.regions[1]', 'fra1'],
      ['metadata.regions.length', 2],
      ['metadata.name.length', 3],
      ["metadata.regions.includes('fra1')", true],
      ["metadata.regions.includes('syd1')", false],
      ["metadata.name.includes('bc')", true],
      ['metadata.list.length == 0', true],
      ['metadata.missing', undefined],
      ['metadata.missing.deeper.still', undefined],
      ['metadata.constructor', undefined],
      ['metadata.__proto__', undefined],
      ["metadata['toString']", undefined],
      ['metadata.regions.map', undefined],
      ["['a', 'b'].includes(metadata.name)", false],
    ];
    for (const [source, expected] of table) assert.equal(evaluate(source, scope(metadata)), expected, source);
  });

  test('a condition is JavaScript truthiness; text joins arrays and shows nothing for null or undefined', () => {
    for (const [value, truth] of [
      [0, false],
      [1, true],
      ['', false],
      ['x', true],
      [null, false],
      [undefined, false],
      [[], true],
    ] as const) {
      assert.equal(evaluateCondition('metadata.v', scope({ v: value })), truth, String(value));
    }
    assert.equal(evaluateText('metadata.v', scope({ v: ['a', 'b'] })), 'a, b');
    assert.equal(evaluateText('metadata.v', scope({})), '');
    assert.equal(evaluateText('metadata.v', scope({ v: 12.5 })), '12.5');
  });

  test('malformed expressions throw ExpressionError from evaluate, are false or no text, with one warning each', (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const bad = [
      '',
      'metadata.',
      'metadata.a ==',
      '(metadata.a',
      'metadata.a)',
      "'unterminated",
      "'bad \\q escape'",
      'metadata.a = 1',
      'metadata.a ? 1',
      'plan.type == "paid"',
      'window.alert(1)',
      'metadata.a.toString()',
      '1 2',
      'metadata.a @ 2',
      '[1, 2',
      'constructor.constructor("return 1")()',
    ];
    for (const source of bad) {
      assert.throws(() => evaluate(source, scope({ a: 1, list: [] })), ExpressionError, source);
      assert.equal(evaluateCondition(source, scope({ a: 1, list: [] })), false, source);
      assert.equal(evaluateText(source, scope({ a: 1, list: [] })), '', source);
    }
    // evaluate throws without warning; the two safe forms warn once per expression, not per call
    assert.equal(warn.mock.callCount(), bad.length);
    assert.match(String(warn.mock.calls[9]!.arguments[0]), /unknown name "plan" \(expressions see metadata\)/);
  });

  test("holds: booleans, the form's own mode, and expressions", () => {
    const s = scope({ tier: 'pro' });
    for (const mode of ['create', 'update'] as const) {
      assert.equal(holds(undefined, mode, s), false);
      assert.equal(holds(true, mode, s), true);
      assert.equal(holds(false, mode, s), false);
      assert.equal(holds('create', mode, s), mode === 'create');
      assert.equal(holds('update', mode, s), mode === 'update');
      assert.equal(holds({ expr: "metadata.tier == 'pro'" }, mode, s), true);
      assert.equal(holds({ expr: "metadata.tier == 'hobby'" }, mode, s), false);
    }
  });
});

describe('form values and metadata', () => {
  test('ui:order comes first, the rest in schema order', () => {
    assert.deepEqual(orderedKeys(schema).slice(0, 6), ['tier', 'size', 'region', 'backups', 'backupWindow', 'encryption']);
    assert.deepEqual(
      orderedKeys({ type: 'object', properties: { a: schema.properties.tier!, b: schema.properties.size! }, 'ui:order': ['b', 'zz'] }),
      ['b', 'a'],
    );
  });

  test("initial values are the defaults on create, the store's own metadata on update", () => {
    const create = initialValues(schema, 'create');
    assert.deepEqual(create, {
      tier: 'hobby',
      size: '8',
      region: 'iad1',
      backups: false,
      backupWindow: '',
      encryption: true,
      features: ['json'],
      throughput: [500],
      replicaRegions: [],
      country: 'US',
      keyPrefix: '',
      domain: '',
      gitNamespace: '',
      internal: 'kept',
    });
    // The existing metadata is ignored on create; on update it wins where it has a value of the right kind.
    assert.deepEqual(initialValues(schema, 'create', { tier: 'pro' }), create);
    const update = initialValues(schema, 'update', {
      tier: 'pro',
      size: 32,
      throughput: [5000],
      features: [],
      keyPrefix: 'app-',
      domain: 7,
    });
    assert.deepEqual(update, { ...create, tier: 'pro', size: '32', throughput: [5000], features: [], keyPrefix: 'app-', domain: '' });
  });

  test('the create metadata of the defaults on a free plan: hidden, paid-only and empty fields left out', () => {
    const metadata = toMetadata(schema, initialValues(schema, 'create'), 'create', { paidPlan: false });
    assert.deepEqual(metadata, {
      tier: 'hobby',
      size: 8,
      region: 'iad1',
      backups: false,
      encryption: true,
      features: ['json'],
      country: 'US',
    });
    // The server takes it as it is, and fills in what was left out from the defaults.
    assert.deepEqual(validateMetadata(product as unknown as Product, metadata), { ...metadata, throughput: [500], internal: 'kept' });
  });

  test('every control changed, on a paid plan: numbers as numbers, lists as arrays, fields shown by expressions included', () => {
    const values: FormValues = {
      ...initialValues(schema, 'create'),
      tier: 'pro',
      size: ' 32 ',
      region: 'syd1',
      backups: true,
      backupWindow: 'night',
      encryption: false,
      features: ['json', 'timeseries'],
      throughput: [5000],
      replicaRegions: ['fra1', 'hnd1'],
      keyPrefix: 'app-',
      domain: 'db.example.com',
      gitNamespace: 'acme',
    };
    const metadata = toMetadata(schema, values, 'create', { paidPlan: true });
    assert.deepEqual(metadata, {
      tier: 'pro',
      size: 32,
      region: 'syd1',
      backups: true,
      backupWindow: 'night',
      encryption: false,
      features: ['json', 'timeseries'],
      throughput: [5000],
      replicaRegions: ['fra1', 'hnd1'],
      country: 'US',
      keyPrefix: 'app-',
      domain: 'db.example.com',
      gitNamespace: 'acme',
    });
    assert.deepEqual(validateMetadata(product as unknown as Product, metadata), { ...metadata, internal: 'kept' });
    // The same values on a free plan leave the paid-only slider out.
    assert.equal('throughput' in toMetadata(schema, values, 'create', { paidPlan: false }), false);
  });

  test('the update metadata leaves out what the update form hides or does not let change', () => {
    const values = initialValues(schema, 'update', { tier: 'scale', size: 32, keyPrefix: 'app-', domain: 'db.example.com', country: 'DE' });
    const metadata = toMetadata(schema, values, 'update', { paidPlan: true });
    // size is read-only on the scale tier (an expression), keyPrefix on every update form, domain hidden on it;
    // country, disabled on the create form only, can change.
    for (const key of ['size', 'keyPrefix', 'domain', 'internal']) assert.equal(key in metadata, false, key);
    assert.equal(metadata.country, 'DE');
    assert.equal(metadata.tier, 'scale');
  });

  test('a value whose option an expression hides is not sent, the way the form no longer shows it chosen', () => {
    const values = { ...initialValues(schema, 'create'), tier: 'scale', size: '16' };
    assert.equal(toMetadata(schema, values, 'create').tier, 'scale');
    // Below 16 GB the scale option is hidden: no tier is sent, and the server fills in the default.
    const smaller = toMetadata(schema, { ...values, size: '8' }, 'create');
    assert.equal('tier' in smaller, false);
    assert.equal(validateMetadata(product as unknown as Product, smaller).tier, 'hobby');
    const hiddenOption: MetadataSchema = {
      type: 'object',
      properties: {
        regions: {
          type: 'array',
          'ui:control': 'multi-vercel-region',
          items: { type: 'string' },
          'ui:options': ['iad1', { value: 'fra1', hidden: { expr: 'metadata.eu == false' } }],
        },
        eu: { type: 'boolean', 'ui:control': 'toggle' },
      },
    };
    assert.deepEqual(toMetadata(hiddenOption, { regions: ['iad1', 'fra1'], eu: false }, 'create').regions, ['iad1']);
    assert.deepEqual(toMetadata(hiddenOption, { regions: ['iad1', 'fra1'], eu: true }, 'create').regions, ['iad1', 'fra1']);
  });

  test("a number input's text that is not a number is sent as typed, and the server names the field", () => {
    const metadata = toMetadata(schema, { ...initialValues(schema, 'create'), size: '12abc' }, 'create');
    assert.equal(metadata.size, '12abc');
    assert.throws(
      () => validateMetadata(product as unknown as Product, metadata),
      (error: any) => error.code === 'validation_error' && error.extra.fields.some((f: any) => f.key === 'metadata.size'),
    );
    assert.equal('size' in toMetadata(schema, { ...initialValues(schema, 'create'), size: '  ' }, 'create'), false);
    const sent = (size: string) => toMetadata(schema, { ...initialValues(schema, 'create'), size }, 'create').size;
    assert.deepEqual(['-1.5', '+2', '1e1', '.5', '3.'].map(sent), [-1.5, 2, 10, 0.5, 3]);
    assert.deepEqual(['0x10', 'Infinity', '1,5', '1 2'].map(sent), ['0x10', 'Infinity', '1,5', '1 2']);
  });

  test("the form's own checks refuse what the server's validator refuses, in its words, and take what it takes", () => {
    const bounded: MetadataSchema = {
      type: 'object',
      properties: {
        count: { type: 'number', 'ui:control': 'input', minimum: 1, maximum: 10 },
        ratio: { type: 'number', 'ui:control': 'input', exclusiveMinimum: 0, exclusiveMaximum: 1 },
        name: { type: 'string', 'ui:control': 'input', minLength: 2, maxLength: 4, pattern: '^[a-z]' },
        slug: { type: 'string', 'ui:control': 'domain', pattern: 'x' },
        kind: { type: 'string', 'ui:control': 'select', enum: ['a', 'b'], 'ui:options': [{ value: 'a', label: 'A' }] },
        tags: {
          type: 'array',
          'ui:control': 'multi-select',
          items: { type: 'string' },
          minItems: 1,
          maxItems: 2,
          'ui:options': [{ value: 'a', label: 'A' }],
        },
        speed: {
          type: 'array',
          'ui:control': 'slider',
          items: { type: 'number', minimum: 5, maximum: 50 },
          'ui:steps': [1, 5, 50, 99],
        },
      },
    };
    const serverProduct = { slug: 'bounded', metadataSchema: bounded } as unknown as Product;
    const server = (key: string, value: FormValues[string]) => {
      try {
        validateMetadata(serverProduct, toMetadata(bounded, { [key]: value }, 'create'));
        return undefined;
      } catch (error: any) {
        return error.extra.fields.find((f: any) => f.key === `metadata.${key}`)?.message as string | undefined;
      }
    };
    const cases: [string, FormValues[string]][] = [
      ...['0', '1', '10', '10.5', '-3', 'x', '1e1', '1e2'].map((v) => ['count', v] as [string, string]),
      ...['0', '0.5', '1', '-1'].map((v) => ['ratio', v] as [string, string]),
      ...['a', 'ab', 'abcd', 'abcde', 'Ab', '1b', '😀😀', 'a😀😀😀', 'a😀😀😀😀'].map((v) => ['name', v] as [string, string]),
      ...['x', 'axb', 'abc'].map((v) => ['slug', v] as [string, string]),
      ...['a', 'b', 'c'].map((v) => ['kind', v] as [string, string]),
      ['tags', []],
      ['tags', ['a']],
      ['tags', ['a', 'b', 'c']],
      ['speed', [5]],
      ['speed', [50]],
      ['speed', [1]],
      ['speed', [99]],
    ];
    const refused = new Set<string>();
    for (const [key, value] of cases) {
      const own = metadataProblems(bounded, { [key]: value }, 'create')[key];
      assert.equal(own, server(key, value), `${key} = ${JSON.stringify(value)}`);
      if (own) refused.add(key);
    }
    // Every keyword was exercised on both sides of it.
    assert.deepEqual([...refused].sort(), ['count', 'kind', 'name', 'ratio', 'slug', 'speed', 'tags']);
  });

  test('a hidden field, a locked one on the update form and a paid-only one on a free plan are not checked (they are not sent)', () => {
    const values = { ...initialValues(schema, 'create'), backupWindow: 'nonsense', keyPrefix: 'A', throughput: [1] };
    assert.deepEqual(Object.keys(metadataProblems(schema, values, 'create')).sort(), ['keyPrefix']);
    assert.deepEqual(metadataProblems(schema, values, 'update'), {}, 'the key prefix is read-only on update');
    assert.deepEqual(Object.keys(metadataProblems(schema, values, 'create', { paidPlan: true })).sort(), ['keyPrefix', 'throughput']);
  });
});

describe('region and country names', () => {
  test("Vercel's region ids and ISO country codes are named; anything else is shown as it is", () => {
    assert.equal(regionName('fra1'), 'Frankfurt, Germany (fra1)');
    assert.equal(regionName('xyz9'), 'xyz9');
    assert.equal(countryName('DE'), 'Germany');
    assert.equal(countryName('jp'), 'Japan');
    assert.equal(countryName('not a code'), 'not a code');
  });
});

/** The tags of an HTML string with their attributes, enough for what preact-render-to-string writes. */
function tags(html: string, name?: string): { name: string; attrs: Record<string, string>; index: number }[] {
  const found = [];
  for (const match of html.matchAll(/<([a-z]+)((?:\s+[a-zA-Z-]+(?:="[^"]*")?)*)\s*\/?>/g)) {
    const attrs: Record<string, string> = {};
    for (const attr of match[2]!.matchAll(/([a-zA-Z-]+)(?:="([^"]*)")?/g)) attrs[attr[1]!] = attr[2] ?? '';
    if (!name || match[1] === name) found.push({ name: match[1]!, attrs, index: match.index });
  }
  return found;
}

/** The text of the element with this id (no nested tags of the same name in what it is used on). */
function textOf(html: string, id: string): string | undefined {
  const match = new RegExp(`<([a-z]+)[^>]*\\sid="${id}"[^>]*>(.*?)</\\1>`).exec(html);
  const entities: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"' };
  return match?.[2]?.replace(/<[^>]+>/g, '').replace(/&(amp|lt|gt|quot);/g, (_, name: string) => entities[name]!);
}

/** One field's HTML: its `<div class="mf-field" data-key=...>` up to the next field. */
function field(html: string, key: string): string | undefined {
  const start = html.indexOf(`data-key="${key}"`);
  if (start < 0) return undefined;
  const next = html.indexOf('class="mf-field"', start);
  return html.slice(start, next < 0 ? undefined : next);
}

function render(props: Partial<MetadataFormProps> & { values: FormValues }): string {
  return renderToString(h(MetadataForm, { schema, mode: 'create', onChange: () => {}, paidPlan: false, ...props }));
}

describe('the form rendered', () => {
  const values = initialValues(schema, 'create');

  test('every control kind, each control labelled, keyboard-reachable and tied to its description', () => {
    const html = render({ values });
    const inputs = tags(html).filter((tag) => tag.name === 'input' || tag.name === 'select');
    const labelled = new Set(tags(html, 'label').map((label) => label.attrs.for));
    for (const input of inputs) {
      assert.ok(labelled.has(input.attrs.id), `a <label for> names ${input.attrs.id}`);
      assert.notEqual(input.attrs.tabindex, '-1');
    }
    const kinds = (key: string) => tags(field(html, key) ?? '').filter((t) => ['input', 'select', 'fieldset'].includes(t.name));
    assert.deepEqual(
      kinds('tier').map((t) => t.attrs.type ?? t.name),
      ['fieldset', 'radio', 'radio'], // "scale" is hidden while size < 16
    );
    // A number is typed as text (inputmode decimal), so what was typed is kept and checked; its bounds are said under it.
    assert.equal(kinds('size')[0]!.attrs.type, 'text');
    assert.equal(kinds('size')[0]!.attrs.inputmode ?? kinds('size')[0]!.attrs.inputMode, 'decimal');
    assert.equal(kinds('size')[0]!.attrs.placeholder, '8');
    assert.equal(kinds('region')[0]!.name, 'select');
    assert.equal(kinds('encryption')[0]!.attrs.role, 'switch');
    assert.equal(kinds('backups')[0]!.attrs.type, 'checkbox');
    assert.deepEqual(
      kinds('features').map((t) => t.attrs.type ?? 'fieldset'),
      ['fieldset', 'checkbox', 'checkbox', 'checkbox'],
    );
    assert.equal(kinds('throughput')[0]!.attrs.type, 'range');
    assert.equal(kinds('throughput')[0]!.attrs['aria-valuetext'], '500');
    assert.equal(kinds('throughput')[0]!.attrs.max, '4'); // five steps
    assert.equal(kinds('country')[0]!.name, 'select');
    assert.equal(kinds('keyPrefix')[0]!.attrs.maxlength ?? kinds('keyPrefix')[0]!.attrs.maxLength, '20');
    assert.equal(kinds('domain')[0]!.attrs.inputmode ?? kinds('domain')[0]!.attrs.inputMode, 'url');
    assert.equal(kinds('gitNamespace')[0]!.attrs.placeholder, 'my-org');
    assert.match(field(html, 'gitNamespace')!, /A GitHub, GitLab user or organization\./);
    // Group controls are named by a legend.
    for (const key of ['tier', 'features']) assert.match(field(html, key)!, /<legend[^>]*>/);
    // Labels: ui:label, and the key for a property without one (none here is shown without a label).
    assert.match(field(html, 'size')!, />Size<span class="mf-required"> \(required\)<\/span><\/label>/);
    // Region and country names for bare codes; the catalog's own label otherwise.
    assert.match(field(html, 'region')!, />Washington, D\.C\., USA \(iad1\)<\/option>/);
    assert.match(field(html, 'region')!, />Sydney<\/option>/);
    assert.match(field(html, 'country')!, />United States<\/option>/);
    assert.match(field(html, 'country')!, />Japan<\/option>/);
    // The description is tied to its control.
    const size = kinds('size')[0]!;
    const described = size.attrs['aria-describedby']!.split(' ');
    assert.equal(textOf(html, described.find((id) => id.endsWith('-description'))!), 'Up to 8 GB on this tier');
    assert.equal(textOf(html, described.find((id) => id.endsWith('-value'))!), '8 GB');
    assert.equal(textOf(html, described.find((id) => id.endsWith('-hint'))!), 'A number, at least 1 and at most 64.');
    const prefixHint = kinds('keyPrefix')[0]!
      .attrs['aria-describedby']!.split(' ')
      .find((id) => id.endsWith('-hint'))!;
    assert.equal(textOf(html, prefixHint), '2 to 20 characters.');
    assert.equal(size.attrs['aria-required'], 'true');
  });

  test('ui:hidden: true, "update" and expressions leave fields out; ui:order orders the rest', () => {
    const html = render({ values });
    const shown = tags(html, 'div')
      .map((t) => t.attrs['data-key'])
      .filter(Boolean);
    assert.deepEqual(shown, [
      'tier',
      'size',
      'region',
      'backups',
      'encryption',
      'features',
      'throughput',
      'country',
      'keyPrefix',
      'domain',
      'gitNamespace',
    ]);
    const more = render({ values: { ...values, backups: true, tier: 'pro' } });
    assert.ok(field(more, 'backupWindow'), 'shown once backups is on');
    assert.ok(field(more, 'replicaRegions'), 'shown above the hobby tier');
    assert.equal(field(more, 'internal'), undefined);
    assert.match(field(more, 'backupWindow')!, /<option selected value>Choose a window<\/option>/, 'the placeholder, chosen');
    const update = render({ values, mode: 'update' });
    assert.equal(field(update, 'domain'), undefined, 'hidden on the update form');
  });

  test('ui:disabled and ui:read-only for the mode and the values; options hidden and disabled by expressions', () => {
    const attrs = (html: string, key: string) => tags(field(html, key)!).filter((t) => t.name === 'input' || t.name === 'select');
    const hobby = render({ values });
    assert.ok('disabled' in attrs(hobby, 'encryption')[0]!.attrs, 'encryption is locked on the hobby tier');
    assert.ok('disabled' in attrs(hobby, 'country')[0]!.attrs, 'country is disabled on the create form');
    assert.equal('readonly' in attrs(hobby, 'keyPrefix')[0]!.attrs || 'readOnly' in attrs(hobby, 'keyPrefix')[0]!.attrs, false);
    const timeseries = attrs(hobby, 'features').find((t) => t.attrs.value === 'timeseries')!;
    assert.ok('disabled' in timeseries.attrs, 'the timeseries module is disabled on the hobby tier');

    const pro = render({ values: { ...values, tier: 'pro', size: '16' } });
    assert.equal('disabled' in attrs(pro, 'encryption')[0]!.attrs, false);
    assert.equal('disabled' in attrs(pro, 'features').find((t) => t.attrs.value === 'timeseries')!.attrs, false);
    assert.deepEqual(
      attrs(pro, 'tier').map((t) => t.attrs.value),
      ['hobby', 'pro', 'scale'],
      'the scale option shows from 16 GB',
    );

    const scale = render({ values: { ...values, tier: 'scale', size: '16' }, mode: 'update' });
    const size = attrs(scale, 'size')[0]!.attrs;
    assert.ok('readonly' in size || 'readOnly' in size, 'size is read-only on the scale tier');
    assert.equal('disabled' in size, false, 'a read-only text box stays focusable');
    const keyPrefix = attrs(scale, 'keyPrefix')[0]!.attrs;
    assert.ok('readonly' in keyPrefix || 'readOnly' in keyPrefix, 'keyPrefix is read-only on the update form');
    assert.equal('disabled' in attrs(scale, 'country')[0]!.attrs, false, 'country can change on the update form');
  });

  test('ui:paid-only locks the control with an explanation on a free plan, not on a paid one', () => {
    const free = field(render({ values, paidPlan: false }), 'throughput')!;
    const slider = tags(free, 'input')[0]!.attrs;
    assert.ok('disabled' in slider);
    const paidNote = slider['aria-describedby']!.split(' ').find((id) => id.endsWith('-paid'))!;
    assert.match(textOf(free, paidNote)!, /Available on paid plans/);
    assert.match(free, /<output[^>]*>500 queries\/s<\/output>/);
    const paid = field(render({ values: { ...values, throughput: [5000] }, paidPlan: true }), 'throughput')!;
    assert.equal('disabled' in tags(paid, 'input')[0]!.attrs, false);
    assert.doesNotMatch(paid, /Available on paid plans/);
    assert.match(paid, /<output[^>]*>5000 queries\/s<\/output>/);
    assert.equal(tags(paid, 'input')[0]!.attrs.value, '3');
  });

  test("the server's validation errors appear beside their inputs, tied with aria-invalid and aria-describedby", () => {
    const html = render({
      values,
      errors: { 'metadata.size': 'must be <= 64', features: 'must NOT have fewer than 1 items', 'metadata.tier': 'is required' },
    });
    const size = tags(field(html, 'size')!, 'input')[0]!.attrs;
    assert.equal(size['aria-invalid'], 'true');
    const errorId = size['aria-describedby']!.split(' ').find((id) => id.endsWith('-error'))!;
    assert.equal(textOf(html, errorId), 'must be <= 64');
    assert.match(field(html, 'size')!, /role="alert"/);
    for (const checkbox of tags(field(html, 'features')!, 'input')) assert.equal(checkbox.attrs['aria-invalid'], 'true');
    assert.match(field(html, 'features')!, /must NOT have fewer than 1 items/);
    for (const radio of tags(field(html, 'tier')!, 'input')) assert.equal(radio.attrs['aria-invalid'], 'true');
    const group = tags(field(html, 'tier')!, 'fieldset')[0]!.attrs;
    assert.equal(textOf(html, group['aria-describedby']!.split(' ').find((id) => id.endsWith('-error'))!), 'is required');
    // Fields without errors are not marked.
    assert.equal(tags(field(html, 'region')!, 'select')[0]!.attrs['aria-invalid'], undefined);
  });

  test("a select shows a hidden option's value as nothing chosen, and a value no option names as it is", () => {
    const select: MetadataSchema = {
      type: 'object',
      properties: {
        size: {
          type: 'string',
          'ui:control': 'select',
          'ui:options': [
            { value: 'small', label: 'Small' },
            { value: 'huge', label: 'Huge', hidden: { expr: '!metadata.big' } },
          ],
        },
        big: { type: 'boolean', 'ui:control': 'toggle' },
      },
    };
    const selected = (html: string) => /<option selected value(?:="([^"]*)")?>([^<]*)<\/option>/.exec(html)?.slice(1);
    const show = (values: FormValues) =>
      renderToString(h(MetadataForm, { schema: select, mode: 'update', values, onChange: () => {}, paidPlan: false }));
    assert.deepEqual(selected(show({ size: 'huge', big: true })), ['huge', 'Huge']);
    assert.deepEqual(selected(show({ size: 'huge', big: false })), [undefined, 'Choose…']);
    assert.deepEqual(selected(show({ size: 'medium', big: false })), ['medium', 'medium']);
    assert.deepEqual(toMetadata(select, { size: 'medium', big: false }, 'update'), { size: 'medium', big: false });
  });

  test('a slider of two numbers is a group of two labelled thumbs over its steps', () => {
    const range: MetadataSchema = {
      type: 'object',
      properties: {
        window: {
          type: 'array',
          'ui:control': 'slider',
          'ui:label': 'Window',
          items: { type: 'number' },
          'ui:steps': [40, 10, 20, 30],
          minItems: 2,
        },
      },
    };
    const values = initialValues(range, 'create');
    assert.deepEqual(values.window, [10, 10], 'the lowest step, for each of minItems');
    const html = renderToString(
      h(MetadataForm, { schema: range, mode: 'create', values: { window: [10, 30] }, onChange: () => {}, paidPlan: false }),
    );
    assert.match(html, /<legend[^>]*>Window<\/legend>/);
    const thumbs = tags(html, 'input');
    assert.deepEqual(
      thumbs.map((t) => [t.attrs.value, t.attrs['aria-valuetext'], t.attrs.max]),
      [
        ['0', '10', '3'],
        ['2', '30', '3'],
      ],
    );
    const labels = tags(html, 'label').map((label) => label.attrs.for);
    assert.deepEqual(
      labels,
      thumbs.map((t) => t.attrs.id),
    );
    assert.match(html, />Window 1 of 2<\/label>/);
    assert.match(html, /<output[^>]*>10 – 30<\/output>/);
  });

  test('keys and option values with spaces make ids without them, each still named by its label', () => {
    const spaced: MetadataSchema = {
      type: 'object',
      properties: {
        'max size': { type: 'number', 'ui:control': 'input', description: 'In GB' },
        'log level': {
          type: 'string',
          'ui:control': 'radio-button',
          'ui:options': [
            { value: 'very loud', label: 'Very loud' },
            { value: 'very.loud', label: 'Dotted' },
          ],
        },
      },
    };
    const html = renderToString(
      h(MetadataForm, { schema: spaced, mode: 'create', values: { 'max size': '', 'log level': '' }, onChange: () => {}, paidPlan: false }),
    );
    const inputs = tags(html, 'input');
    assert.equal(inputs.length, 3);
    assert.equal(new Set(inputs.map((input) => input.attrs.id)).size, 3);
    const labels = new Set(tags(html, 'label').map((label) => label.attrs.for));
    for (const input of inputs) {
      assert.doesNotMatch(input.attrs.id!, /\s/);
      assert.ok(labels.has(input.attrs.id));
    }
    const described = inputs[0]!.attrs['aria-describedby']!;
    assert.equal(textOf(html, described.replace(/[.]/g, '\\.')), 'In GB');
  });

  test('disabled locks every control', () => {
    const html = render({ values: { ...values, tier: 'pro' }, paidPlan: true, disabled: true });
    const controls = tags(html).filter((t) => t.name === 'input' || t.name === 'select');
    assert.ok(controls.length > 10);
    for (const control of controls) assert.ok('disabled' in control.attrs || 'readonly' in control.attrs, control.attrs.id);
  });

  test('a malformed expression in a schema still renders, taken as false, with a console warning', (t) => {
    const warn = t.mock.method(console, 'warn', () => {});
    const broken: MetadataSchema = {
      type: 'object',
      properties: {
        note: { type: 'string', 'ui:control': 'input', 'ui:hidden': { expr: 'metadata.x ==' }, 'ui:formatted-value': { expr: 'oops(' } },
      },
    };
    const html = renderToString(
      h(MetadataForm, { schema: broken, mode: 'create', values: { note: '' }, onChange: () => {}, paidPlan: false }),
    );
    assert.ok(field(html, 'note'), 'shown: a bad ui:hidden is false');
    assert.equal(/<output/.test(html), false, 'no formatted value');
    assert.ok(warn.mock.callCount() >= 2);
  });
});
