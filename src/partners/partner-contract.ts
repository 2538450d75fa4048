/**
 * What a partner server's answers must hold (docs/partner-api.md §1.1–1.4), as JSON
 * Schemas checked by Ajv. Liberal where the sources disagree: extra fields are ignored, optional
 * fields may be absent, and only what Storehouse relies on is required. A violation names the
 * field and what was expected, so a provider developer sees exactly what to fix.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { createAjv } from '../catalog/metadata-schema.ts';
import { AppError } from '../errors.ts';
import { RESOURCE_STATUSES } from '../providers/provider.ts';

const text = { type: 'string', minLength: 1 };
const detail = { type: 'object', required: ['label'], properties: { label: { type: 'string' }, value: { type: 'string' } } };
const decimal = { type: 'string', pattern: '^\\d+(\\.\\d+)?$' };

/** A billing plan (§1.1); the marketplace API's bodies use it too. */
export const billingPlanSchema = {
  type: 'object',
  required: ['id', 'type', 'name'],
  properties: {
    id: text,
    type: { enum: ['prepayment', 'subscription'] },
    name: { type: 'string' },
    description: { type: 'string' },
    scope: { enum: ['installation', 'resource'] },
    paymentMethodRequired: { type: 'boolean' },
    preauthorizationAmount: { type: 'number', minimum: 0 },
    initialCharge: { type: 'string' },
    minimumAmount: decimal,
    maximumAmount: decimal,
    cost: { type: 'string' },
    details: { type: 'array', items: detail },
    highlightedDetails: { type: 'array', items: detail },
    disabled: { type: 'boolean' },
  },
};

/** A notification (§1.1). */
export const notificationSchema = {
  type: 'object',
  required: ['level', 'title'],
  properties: {
    level: { enum: ['info', 'warn', 'error'] },
    title: { type: 'string' },
    message: { type: 'string' },
    href: { type: 'string' },
  },
};

/** A secret (§1.1): its name becomes an environment variable's, so it must be one. */
export const secretSchema = {
  type: 'object',
  required: ['name', 'value'],
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 256, pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
    value: { type: 'string' },
    prefix: { type: 'string' },
    environmentOverrides: {
      type: 'object',
      properties: { development: { type: 'string' }, preview: { type: 'string' }, production: { type: 'string' } },
      additionalProperties: false,
    },
  },
};

const resourceProperties = {
  id: text,
  productId: { type: 'string' },
  name: { type: 'string' },
  metadata: { type: 'object' },
  status: { enum: [...RESOURCE_STATUSES] },
  billingPlan: billingPlanSchema,
  // null clears a notification shown before.
  notification: { ...notificationSchema, type: ['object', 'null'] },
  protocolSettings: { type: 'object' },
};

export const CONTRACT = {
  resource: { type: 'object', required: ['id', 'status'], properties: resourceProperties },
  provisioned: {
    type: 'object',
    required: ['id', 'status', 'secrets'],
    properties: { ...resourceProperties, secrets: { type: 'array', items: secretSchema } },
  },
  plans: { type: 'object', required: ['plans'], properties: { plans: { type: 'array', items: billingPlanSchema } } },
  installation: { type: 'object', properties: { billingPlan: billingPlanSchema, notification: resourceProperties.notification } },
  rotation: {
    type: 'object',
    required: ['sync'],
    properties: { sync: { type: 'boolean' }, secrets: { type: 'array', items: secretSchema }, partial: { type: 'boolean' } },
    if: { properties: { sync: { const: true } } },
    then: { required: ['secrets'] },
  },
} as const;

export type ContractName = keyof typeof CONTRACT;

let compiled: Map<ContractName, ValidateFunction> | undefined;

/** The contract's validators, compiled on the first partner answer, not at start-up. */
function validator(name: ContractName): ValidateFunction {
  if (!compiled) {
    const ajv = createAjv({ allErrors: true, strict: false });
    compiled = new Map(Object.entries(CONTRACT).map(([key, schema]) => [key as ContractName, ajv.compile(schema)]));
  }
  return compiled.get(name)!;
}

/** One Ajv error as a provider developer reads it: the field, then what was expected of it. */
function describeError(error: ErrorObject): string {
  const at = error.instancePath ? error.instancePath.slice(1).replaceAll('/', '.') : '';
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return `"${at ? `${at}.` : ''}${String(params.missingProperty)}" is required`;
    case 'enum':
      return `"${at}" must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`;
    case 'type':
      return `"${at || '(body)'}" must be ${String(params.type).replace(',', ' or ')}`;
    default:
      return `"${at || '(body)'}" ${error.message ?? 'is invalid'}`;
  }
}

/**
 * Checks a partner's answer; a violation is 502 `provider_invalid_response` naming the call, the
 * field and what was expected.
 */
export function checkAnswer<T>(name: ContractName, body: unknown, call: string): T {
  const validate = validator(name);
  if (validate(body)) return body as T;
  const problems = [...new Set((validate.errors ?? []).filter((e) => e.keyword !== 'if').map(describeError))];
  throw new AppError(
    502,
    'provider_invalid_response',
    `The partner server's answer to ${call} breaks the partner API: ${problems.join('; ')}`,
    {
      fields: problems,
    },
  );
}
