/**
 * Checks what a store is created with against its product: the metadata against the product's
 * metadataSchema (with the schema's defaults filled in), and the protocol settings against the
 * protocols the product supports. Every bad key is reported, as Vercel's `validation_error`
 * with `fields: [{key, message}]`.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import type { Product } from '../catalog/catalog.ts';
import { createAjv } from '../catalog/metadata-schema.ts';
import { validationError, type FieldError } from '../errors.ts';

// Made on first use: building Ajv instances is not free, and a start should not pay for it.
let ajv: ReturnType<typeof createAjv> | undefined;
const validators = new WeakMap<Product['metadataSchema'], ValidateFunction>();

function validatorFor(product: Product): ValidateFunction {
  let validate = validators.get(product.metadataSchema);
  if (!validate) {
    ajv ??= createAjv({ useDefaults: true, strict: false });
    validate = ajv.compile(product.metadataSchema);
    validators.set(product.metadataSchema, validate);
  }
  return validate;
}

function describe(error: ErrorObject): FieldError {
  const [first] = error.instancePath.split('/').filter(Boolean);
  const key = first ?? (error.params as { missingProperty?: string }).missingProperty ?? '';
  switch (error.keyword) {
    case 'required':
      return { key, message: 'is required' };
    case 'enum':
      return { key, message: `must be one of: ${(error.params as { allowedValues: unknown[] }).allowedValues.map(String).join(', ')}` };
    default:
      return { key, message: error.message ?? 'is invalid' };
  }
}

/** A control character in a name would make it unprintable in the CLI and the logs. */
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Text without control characters, as a JSON Schema pattern (for bodies checked by schema). */
export const NO_CONTROL_PATTERN = '^[^\\u0000-\\u001f\\u007f]*$';
/** A store's name, as a JSON Schema: what checkName() allows. */
export const STORE_NAME_SCHEMA = { type: 'string', minLength: 1, maxLength: 128, pattern: NO_CONTROL_PATTERN };

/** A store's name: 1 to 128 characters, none of them control characters; else 400 naming `name`. */
export function checkName(name: string): string {
  if (name.length < 1 || name.length > 128 || CONTROL.test(name)) {
    throw validationError(
      [{ key: 'name', message: 'must be 1 to 128 characters, without control characters' }],
      'name must be 1 to 128 characters, without control characters',
    );
  }
  return name;
}

/** The metadata a store is created with, defaults filled in; 400 `validation_error` naming each bad key. */
export function validateMetadata(product: Product, metadata: Record<string, unknown> | undefined): Record<string, unknown> {
  const value = structuredClone(metadata ?? {});
  const known = new Set(Object.keys(product.metadataSchema.properties ?? {}));
  const fields: FieldError[] = Object.keys(value)
    .filter((key) => !known.has(key))
    .map((key) => ({ key, message: `is not a setting of ${product.slug}${known.size ? ` (it takes ${[...known].join(', ')})` : ''}` }));
  const validate = validatorFor(product);
  if (!validate(value)) {
    for (const error of validate.errors ?? []) {
      const field = describe(error);
      if (!fields.some((f) => f.key === field.key)) fields.push(field);
    }
  }
  if (fields.length > 0) throw validationError(fields.map((f) => ({ key: `metadata.${f.key}`, message: f.message })));
  return value;
}

/** Whether a `ui:read-only` or `ui:disabled` value takes the field off the update form (an expression cannot be judged here: no). */
const offTheUpdateForm = (value: unknown) => value === true || value === 'update';

/**
 * 400 naming each setting the product's schema does not let a store change after its create
 * (`ui:read-only` or `ui:disabled` true or "update"), when `next` changes it.
 */
export function checkChangeable(product: Product, current: Record<string, unknown>, next: Record<string, unknown>): void {
  const fields: FieldError[] = [];
  for (const [key, property] of Object.entries(product.metadataSchema.properties ?? {})) {
    if (!offTheUpdateForm(property['ui:read-only']) && !offTheUpdateForm(property['ui:disabled'])) continue;
    if (!sameValue(current[key], next[key]))
      fields.push({ key: `metadata.${key}`, message: 'cannot be changed once the store is created' });
  }
  if (fields.length > 0) throw validationError(fields);
}

/** Deep equality of JSON values (metadata: scalars, arrays, objects), whatever the order of object keys. */
export function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  return (
    keysA.length === keysB.length &&
    keysA.every((key) => Object.hasOwn(b, key) && sameValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
  );
}

/** What Vercel's API documents of each protocol's settings; other protocols take any object. */
const PROTOCOL_SETTINGS: Record<string, object> = {
  authentication: {
    type: 'object',
    additionalProperties: false,
    properties: {
      appUrls: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['target', 'url'],
          properties: { target: { enum: ['development', 'preview', 'production'] }, url: { type: 'string', format: 'uri' } },
        },
      },
    },
  },
  experimentation: {
    type: 'object',
    additionalProperties: false,
    properties: {
      edgeConfigId: { type: 'string' },
      edgeConfigSyncingEnabled: { type: 'boolean' },
      edgeConfigTokenId: { type: 'string' },
      globalConfigId: { type: 'string' },
      globalConfigSyncingEnabled: { type: 'boolean' },
    },
  },
};
let protocolValidators: Map<string, ValidateFunction> | undefined;
const protocolValidator = (protocol: string) => {
  protocolValidators ??= new Map(
    Object.entries(PROTOCOL_SETTINGS).map(([name, schema]) => [name, createAjv({ strict: false }).compile(schema)]),
  );
  return protocolValidators.get(protocol);
};

/** The protocols a product supports: those its catalog entry lists as enabled. */
export function supportedProtocols(product: Product): string[] {
  return Object.entries(product.protocols as Record<string, { status?: string }>)
    .filter(([, settings]) => settings?.status !== 'disabled')
    .map(([name]) => name);
}

export function validateProtocolSettings(
  product: Product,
  settings: Record<string, unknown> | undefined,
): Record<string, unknown> | undefined {
  if (settings === undefined) return undefined;
  const supported = supportedProtocols(product);
  const fields: FieldError[] = [];
  for (const [protocol, value] of Object.entries(settings)) {
    const key = `protocolSettings.${protocol}`;
    if (!supported.includes(protocol)) {
      fields.push({
        key,
        message: `${product.slug} does not support the ${protocol} protocol (it supports ${supported.join(', ') || 'none'})`,
      });
    } else if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fields.push({ key, message: 'must be an object' });
    } else {
      const validate = protocolValidator(protocol);
      if (validate && !validate(value)) {
        for (const error of validate.errors ?? [])
          fields.push({ key: `${key}${error.instancePath.replaceAll('/', '.')}`, message: error.message ?? 'is invalid' });
      }
    }
  }
  if (fields.length > 0) throw validationError(fields);
  return settings;
}
