/**
 * A product's `metadataSchema` as the form reads it, the form's values, and the `metadata` they
 * become. The twelve property shapes are the catalog's (src/catalog/metadata-schema.ts, the ones
 * @vercel/sdk accepts); these types say only what the form uses of them.
 *
 * Form values keep what a person typed (a number input holds its text until it is sent, so
 * "1." or "-" can be on the way to a number); `toMetadata` makes them the values the API takes:
 * numbers as numbers, multi-selects and sliders as arrays, a toggle as a boolean.
 */
import { type Conditional, holds, type Scope } from './expressions.ts';

export type Mode = 'create' | 'update';
type Expr = { expr: string };

export interface OptionObject {
  value: string;
  label?: string;
  description?: string;
  disabled?: Conditional;
  hidden?: Conditional;
}
/** Region and country options may be bare strings (the region or country code). */
export type Option = OptionObject | string;

export interface MetadataProperty {
  type: 'string' | 'number' | 'boolean' | 'array';
  'ui:control':
    | 'input'
    | 'toggle'
    | 'slider'
    | 'select'
    | 'multi-select'
    | 'radio-button'
    | 'vercel-region'
    | 'multi-vercel-region'
    | 'vercel-country'
    | 'domain'
    | 'git-namespace';
  description?: string;
  default?: unknown;
  'ui:label'?: string;
  'ui:description'?: string | Expr;
  'ui:placeholder'?: string;
  'ui:hidden'?: Conditional;
  'ui:disabled'?: Conditional;
  'ui:read-only'?: Conditional;
  'ui:formatted-value'?: Expr;
  'ui:paid-only'?: boolean;
  'ui:options'?: Option[];
  'ui:steps'?: number[];
  'git:providers'?: ('github' | 'gitlab' | 'bitbucket')[];
  items?: NumberBounds & StringBounds & { type: 'string' | 'number'; default?: unknown; enum?: string[] };
  enum?: string[];
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  minItems?: number;
  maxItems?: number;
}

interface NumberBounds {
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
}
interface StringBounds {
  minLength?: number;
  maxLength?: number;
  pattern?: string;
}

export interface MetadataSchema {
  type: 'object';
  properties: Record<string, MetadataProperty>;
  required?: string[];
  'ui:order'?: string[];
}

/** What a control holds: text (string and number inputs, selects), a toggle's boolean, a list's items. */
export type FieldValue = string | boolean | string[] | number[];
export type FormValues = Record<string, FieldValue>;
export type Metadata = Record<string, string | number | boolean | string[] | number[]>;

/** What MetadataForm takes (here, beside the values, so code that does not render it needs no JSX). */
export interface MetadataFormProps {
  schema: MetadataSchema;
  mode: Mode;
  values: FormValues;
  onChange: (values: FormValues) => void;
  /** The server's validation_error fields, by key: `metadata.size` (as the API names them) or `size`. */
  errors?: Record<string, string> | undefined;
  /** Whether the chosen plan is paid: a `ui:paid-only` control is locked, with a note, on a free one. */
  paidPlan: boolean;
  /** Locks every control (while the form is being sent). */
  disabled?: boolean | undefined;
}

/** The properties in the order the form shows them: `ui:order` first, then the rest as the schema lists them. */
export function orderedKeys(schema: MetadataSchema): string[] {
  const keys = Object.keys(schema.properties);
  const first = (schema['ui:order'] ?? []).filter((key) => keys.includes(key));
  return [...first, ...keys.filter((key) => !first.includes(key))];
}

const isSlider = (property: MetadataProperty) => property['ui:control'] === 'slider';

/** A slider with nothing chosen yet: its items' default (or minimum, or its lowest step), minItems times (at least once). */
function sliderStart(property: MetadataProperty): number[] {
  const steps = property['ui:steps'] ?? [];
  const item = property.items ?? { type: 'number' };
  const start = typeof item.default === 'number' ? item.default : (item.minimum ?? (steps.length > 0 ? Math.min(...steps) : 0));
  return Array.from({ length: Math.max(1, property.minItems ?? 1) }, () => start);
}

/** A value from the schema or an existing store, as its control holds it; nothing (or a value of the wrong kind) is the empty one. */
function asFieldValue(property: MetadataProperty, value: unknown): FieldValue {
  switch (property.type) {
    case 'boolean':
      return typeof value === 'boolean' ? value : false;
    case 'number':
      return typeof value === 'number' ? String(value) : '';
    case 'array':
      if (isSlider(property)) return Array.isArray(value) && value.every((v) => typeof v === 'number') ? [...value] : sliderStart(property);
      return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
    default:
      return typeof value === 'string' ? value : '';
  }
}

/**
 * The form's first values: on an update form the store's own metadata where it has a value,
 * else each property's `default`, else empty (a toggle off, no option chosen).
 */
export function initialValues(schema: MetadataSchema, mode: Mode, existing: Record<string, unknown> = {}): FormValues {
  const values: FormValues = {};
  for (const [key, property] of Object.entries(schema.properties)) {
    const own = mode === 'update' && existing[key] !== undefined;
    values[key] = asFieldValue(property, own ? existing[key] : property.default);
  }
  return values;
}

const DECIMAL = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

/**
 * One value as the API takes it, or undefined for none given: an empty text or choice is none
 * (the server then fills the property's default, or says it is required). A number input's text
 * that is not a number is sent as typed, so the server's validation_error names the field.
 */
function metadataValue(property: MetadataProperty, value: FieldValue | undefined): Metadata[string] | undefined {
  if (value === undefined) return undefined;
  if (property.type === 'number') {
    const typed = String(value).trim();
    if (typed === '') return undefined;
    // Decimal notation only: Number() would also read "0x10" as 16 and " " as 0.
    return DECIMAL.test(typed) ? Number(typed) : typed;
  }
  if (typeof value === 'string' && value === '') return undefined;
  return Array.isArray(value) ? ([...value] as string[] | number[]) : value;
}

/** Every property's value as an expression sees it (`metadata.key`), hidden ones too, so one hidden field can depend on another. */
export function expressionScope(schema: MetadataSchema, values: FormValues): Scope {
  const metadata: Record<string, unknown> = {};
  for (const [key, property] of Object.entries(schema.properties)) metadata[key] = metadataValue(property, values[key]);
  return { metadata };
}

export interface FieldState {
  hidden: boolean;
  /** Cannot be changed: `ui:disabled`, `ui:read-only`, or `ui:paid-only` on a free plan. */
  locked: boolean;
  /** Locked by `ui:paid-only` on a free plan, which the form explains. */
  paidOnly: boolean;
  readOnly: boolean;
}

export interface FormContext {
  /** Whether the chosen plan is paid: `ui:paid-only` controls are locked on a free one. */
  paidPlan?: boolean;
}

/** Whether a property shows on this form and whether it can be changed, for the form's current values. */
export function fieldState(property: MetadataProperty, mode: Mode, scope: Scope, context: FormContext = {}): FieldState {
  const readOnly = holds(property['ui:read-only'], mode, scope);
  const paidOnly = property['ui:paid-only'] === true && context.paidPlan !== true;
  return {
    hidden: holds(property['ui:hidden'], mode, scope),
    readOnly,
    paidOnly,
    locked: readOnly || paidOnly || holds(property['ui:disabled'], mode, scope),
  };
}

/**
 * A value without the options the form hides now: one chosen before its option was hidden (a
 * radio button, a select entry, a checkbox) is no longer shown as chosen, so it is not sent.
 */
function withoutHiddenOptions(property: MetadataProperty, value: Metadata[string] | undefined, mode: Mode, scope: Scope) {
  const hidden = (property['ui:options'] ?? [])
    .filter((option): option is OptionObject => typeof option === 'object' && holds(option.hidden, mode, scope))
    .map((option) => option.value);
  if (hidden.length === 0 || value === undefined) return value;
  if (Array.isArray(value)) return (value as string[]).filter((item) => !hidden.includes(item));
  return typeof value === 'string' && hidden.includes(value) ? undefined : value;
}

/**
 * The `metadata` the create or update request sends. Left out: properties hidden on this form
 * (as the Vercel CLI leaves out a property hidden on create, util/integration/format-schema-help.ts)
 * and values of hidden options, values not given (the server fills defaults in), paid-only
 * properties on a free plan, and, on an update form, properties the form does not let change
 * (the server keeps the store's own value, and refuses a change to a read-only one).
 */
export function toMetadata(schema: MetadataSchema, values: FormValues, mode: Mode, context: FormContext = {}): Metadata {
  const scope = expressionScope(schema, values);
  const metadata: Metadata = {};
  for (const key of orderedKeys(schema)) {
    const property = schema.properties[key]!;
    const state = fieldState(property, mode, scope, context);
    if (state.hidden || state.paidOnly || (mode === 'update' && state.locked)) continue;
    const value = withoutHiddenOptions(property, scope.metadata[key] as Metadata[string] | undefined, mode, scope);
    if (value !== undefined) metadata[key] = value;
  }
  return metadata;
}

/** An option as `{value, label}`: a bare region or country code is its own value, labelled by `name` when it has one. */
export function normalizeOption(option: Option, name: (code: string) => string = (code) => code): OptionObject & { label: string } {
  if (typeof option === 'string') return { value: option, label: name(option) };
  return { ...option, label: option.label ?? name(option.value) };
}

/** Ajv's "must be <= 64"-style message for the first bound a number breaks, as the server words it. */
function numberProblem(bounds: NumberBounds, n: number): string | undefined {
  if (bounds.maximum !== undefined && !(n <= bounds.maximum)) return `must be <= ${bounds.maximum}`;
  if (bounds.minimum !== undefined && !(n >= bounds.minimum)) return `must be >= ${bounds.minimum}`;
  if (bounds.exclusiveMaximum !== undefined && !(n < bounds.exclusiveMaximum)) return `must be < ${bounds.exclusiveMaximum}`;
  if (bounds.exclusiveMinimum !== undefined && !(n > bounds.exclusiveMinimum)) return `must be > ${bounds.exclusiveMinimum}`;
  return undefined;
}

/**
 * The first string keyword a text breaks, worded as the server's Ajv words it. Lengths count code
 * points (as Ajv does, not UTF-16 units), and a pattern is JSON Schema's: unanchored, with the `u`
 * flag (an HTML `pattern` attribute would anchor it, so the input does not carry one).
 */
function stringProblem(bounds: StringBounds & { enum?: string[] }, text: string): string | undefined {
  const length = [...text].length;
  if (bounds.maxLength !== undefined && length > bounds.maxLength) return `must NOT have more than ${bounds.maxLength} characters`;
  if (bounds.minLength !== undefined && length < bounds.minLength) return `must NOT have fewer than ${bounds.minLength} characters`;
  if (bounds.pattern !== undefined) {
    let pattern: RegExp | undefined;
    try {
      pattern = new RegExp(bounds.pattern, 'u');
    } catch {
      // A pattern this browser cannot compile: the server (which the catalog validator holds to it) decides.
    }
    if (pattern && !pattern.test(text)) return `must match pattern "${bounds.pattern}"`;
  }
  if (bounds.enum && !bounds.enum.includes(text)) return `must be one of: ${bounds.enum.join(', ')}`;
  return undefined;
}

/** What the server's validator would say of one value the form sends, or undefined when it takes it. */
export function valueProblem(property: MetadataProperty, value: Metadata[string]): string | undefined {
  if (property.type === 'number') return typeof value === 'number' ? numberProblem(property, value) : 'must be number';
  if (property.type === 'string' && typeof value === 'string') return stringProblem(property, value);
  if (property.type === 'array' && Array.isArray(value)) {
    if (property.maxItems !== undefined && value.length > property.maxItems) return `must NOT have more than ${property.maxItems} items`;
    if (property.minItems !== undefined && value.length < property.minItems) return `must NOT have fewer than ${property.minItems} items`;
    const items = property.items ?? {};
    for (const item of value as unknown[]) {
      const problem =
        typeof item === 'number' ? numberProblem(items, item) : typeof item === 'string' ? stringProblem(items, item) : undefined;
      if (problem) return problem;
    }
  }
  return undefined;
}

/**
 * The schema's rules the form checks before it sends (JSON Schema's bounds, lengths, pattern,
 * enum and item counts, as the server's validator applies them), by key, for the values it
 * would send: a hidden, locked-on-update or paid-only-on-free field is not sent, so not checked.
 * A required field left empty is not here: the server says so, beside the field.
 */
export function metadataProblems(
  schema: MetadataSchema,
  values: FormValues,
  mode: Mode,
  context: FormContext = {},
): Record<string, string> {
  const problems: Record<string, string> = {};
  for (const [key, value] of Object.entries(toMetadata(schema, values, mode, context))) {
    const problem = valueProblem(schema.properties[key]!, value);
    if (problem) problems[key] = problem;
  }
  return problems;
}
