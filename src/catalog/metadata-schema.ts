/**
 * JSON Schema for a product's `metadataSchema`: the JSON Schema subset with Vercel's `ui:*`
 * controls that @vercel/sdk accepts. Every property must be one of twelve (type, ui:control)
 * variants; anything else makes the SDK reject the whole products response, so the catalog is
 * held to exactly these shapes.
 */
import { createRequire } from 'node:module';
import type AjvModule from 'ajv';
import type { Options } from 'ajv';

/** Keywords of Vercel's metadata schemas that are not JSON Schema. Ajv keeps them as annotations. */
export const UI_KEYWORDS = [
  'ui:control',
  'ui:options',
  'ui:label',
  'ui:description',
  'ui:disabled',
  'ui:hidden',
  'ui:read-only',
  'ui:formatted-value',
  'ui:paid-only',
  'ui:placeholder',
  'ui:steps',
  'ui:order',
  'git:providers',
  'example',
];

/**
 * Ajv and its formats, loaded when the first Ajv is made: every one is made on first use (a
 * route's first request, a catalog that changed), and loading Ajv's 90 files at start-up was a
 * tenth of a start's time.
 */
const requireHere = createRequire(import.meta.url);
let ajvModules: { Ajv: typeof AjvModule.default; addFormats: (ajv: AjvModule.default) => unknown } | undefined;
const loadAjv = () =>
  (ajvModules ??= {
    Ajv: (requireHere('ajv') as typeof AjvModule).default,
    addFormats: (requireHere('ajv-formats') as { default: (ajv: AjvModule.default) => unknown }).default,
  });

/** An Ajv that understands the `ui:*` keywords (as annotations) and string formats. */
export function createAjv(options: Options = {}): AjvModule.default {
  const { Ajv, addFormats } = loadAjv();
  const ajv = new Ajv({ allErrors: true, strict: true, ...options });
  addFormats(ajv);
  ajv.addVocabulary(UI_KEYWORDS);
  return ajv;
}

const expr = {
  type: 'object',
  required: ['expr'],
  properties: { expr: { type: 'string' } },
  additionalProperties: false,
};
/** `ui:disabled`, `ui:hidden`, `ui:read-only`: always, never, on one form, or an expression. */
const conditional = { anyOf: [{ type: 'boolean' }, { enum: ['create', 'update'] }, expr] };

const common = {
  description: { type: 'string' },
  'ui:label': { type: 'string' },
  'ui:description': { anyOf: [{ type: 'string' }, expr] },
  'ui:disabled': conditional,
  'ui:hidden': conditional,
  'ui:read-only': conditional,
  'ui:formatted-value': expr,
  'ui:paid-only': { type: 'boolean' },
};

const option = {
  type: 'object',
  required: ['value', 'label'],
  properties: {
    value: { type: 'string' },
    label: { type: 'string' },
    description: { type: 'string' },
    disabled: conditional,
    hidden: conditional,
  },
  additionalProperties: false,
};
/** Region and country options may also be bare strings, or objects without a label. */
const placeOption = {
  anyOf: [{ type: 'string' }, { ...option, required: ['value'] }],
};
const options = (item: object) => ({ type: 'array', minItems: 1, items: item });

const stringKeywords = {
  default: { type: 'string' },
  enum: { type: 'array', minItems: 1, items: { type: 'string' } },
  minLength: { type: 'integer', minimum: 0 },
  maxLength: { type: 'integer', minimum: 1 },
  pattern: { type: 'string', format: 'regex' },
  'ui:placeholder': { type: 'string' },
};
const numberKeywords = {
  minimum: { type: 'number' },
  maximum: { type: 'number' },
  exclusiveMinimum: { type: 'number' },
  exclusiveMaximum: { type: 'number' },
};

function variant(type: string, control: string, properties: Record<string, unknown>, required: string[] = []) {
  return {
    type: 'object',
    required: ['type', 'ui:control', ...required],
    properties: { type: { const: type }, 'ui:control': { const: control }, ...common, ...properties },
    additionalProperties: false,
  };
}

const stringItems = {
  type: 'object',
  required: ['type'],
  properties: { type: { const: 'string' }, description: { type: 'string' }, ...stringKeywords },
  additionalProperties: false,
};
const arrayKeywords = { minItems: { type: 'integer', minimum: 0 }, maxItems: { type: 'integer', minimum: 0 } };

/** The twelve property shapes, keyed `<type>:<ui:control>`. */
export const PROPERTY_VARIANTS: Record<string, object> = {
  'array:slider': variant(
    'array',
    'slider',
    {
      items: {
        type: 'object',
        required: ['type'],
        properties: { type: { const: 'number' }, description: { type: 'string' }, default: { type: 'number' }, ...numberKeywords },
        additionalProperties: false,
      },
      'ui:steps': { type: 'array', minItems: 1, items: { type: 'number' } },
      default: { type: 'array', items: { type: 'number' } },
      ...arrayKeywords,
    },
    ['items', 'ui:steps'],
  ),
  'array:multi-select': variant(
    'array',
    'multi-select',
    {
      items: stringItems,
      'ui:options': options(option),
      default: { type: 'array', items: { type: 'string' } },
      example: { type: 'array', items: { type: 'string' } },
      'ui:placeholder': { type: 'string' },
      ...arrayKeywords,
    },
    ['items', 'ui:options'],
  ),
  'array:multi-vercel-region': variant(
    'array',
    'multi-vercel-region',
    {
      items: stringItems,
      'ui:options': options(placeOption),
      default: { type: 'array', items: { type: 'string' } },
      example: { type: 'array', items: { type: 'string' } },
      'ui:placeholder': { type: 'string' },
      ...arrayKeywords,
    },
    ['items', 'ui:options'],
  ),
  'string:select': variant('string', 'select', { ...stringKeywords, 'ui:options': options(option) }, ['ui:options']),
  'string:radio-button': variant('string', 'radio-button', { ...stringKeywords, 'ui:options': options(option) }, ['ui:options']),
  'string:vercel-region': variant('string', 'vercel-region', { ...stringKeywords, 'ui:options': options(placeOption) }, ['ui:options']),
  'string:vercel-country': variant('string', 'vercel-country', { ...stringKeywords, 'ui:options': options(placeOption) }, ['ui:options']),
  'string:input': variant('string', 'input', stringKeywords),
  'string:domain': variant('string', 'domain', stringKeywords),
  'string:git-namespace': variant('string', 'git-namespace', {
    'git:providers': { type: 'array', items: { enum: ['github', 'gitlab', 'bitbucket'] } },
    'ui:placeholder': { type: 'string' },
  }),
  'number:input': variant('number', 'input', { default: { type: 'number' }, ...numberKeywords, 'ui:placeholder': { type: 'string' } }),
  'boolean:toggle': variant('boolean', 'toggle', { default: { type: 'boolean' } }),
};

const CONTROLS = [...new Set(Object.keys(PROPERTY_VARIANTS).map((key) => key.split(':')[1]))];

/** One property: its `type` and `ui:control` pick the variant it is then held to. */
export const metadataPropertySchema = {
  type: 'object',
  required: ['type', 'ui:control'],
  properties: {
    type: { enum: ['string', 'number', 'boolean', 'array'] },
    'ui:control': { enum: CONTROLS },
  },
  allOf: Object.entries(PROPERTY_VARIANTS).map(([key, schema]) => {
    const [type, control] = key.split(':');
    return {
      if: { properties: { type: { const: type }, 'ui:control': { const: control } }, required: ['type', 'ui:control'] },
      then: schema,
    };
  }),
};

export const metadataSchemaSchema = {
  type: 'object',
  required: ['type', 'properties'],
  properties: {
    type: { const: 'object' },
    properties: { type: 'object', additionalProperties: metadataPropertySchema },
    required: { type: 'array', items: { type: 'string' }, uniqueItems: true },
    'ui:order': { type: 'array', items: { type: 'string' }, uniqueItems: true },
    additionalProperties: { type: 'boolean' },
  },
  additionalProperties: false,
};

/** `<type>:<ui:control>` pairs that are a variant, for the message when a pair is not. */
export const SUPPORTED_PAIRS = Object.keys(PROPERTY_VARIANTS);
