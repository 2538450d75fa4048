/**
 * What a partner server's answers must hold (shared/reference/partner-api.md §1.1–1.4), as JSON
 * Schemas checked by Ajv. Liberal where the sources disagree: extra fields are ignored, optional
 * fields may be absent, and only what Storehouse relies on is required. A violation names the
 * field and what was expected, so a provider developer sees exactly what to fix.
 */
import type { ErrorObject, ValidateFunction } from 'ajv';
import { AppError } from '../errors.ts';
import { RESOURCE_STATUSES } from '../providers/provider.ts';


const text = { type: 'string', minLength: 1 };
const detail = { type: 'object', required: ['label'], properties: { label: { type: 'string' }, value: { type: 'string' } } };
const decimal = { type: 'string', pattern: '^\\d+(\\.\\d+)?$' };

const billingPlan = {
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

const notification = {
  type: ['object', 'null'],
  required: ['level', 'title'],
  properties: { level: { enum: ['info', 'warn', 'error'] }, title: { type: 'string' }, message: { type: 'string' }, href: { type: 'string' } },
};

const secret = {
  type: 'object',
  required: ['name', 'value'],
  properties: {
    name: text,
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
  billingPlan,
  notification,
  protocolSettings: { type: 'object' },
};

export const CONTRACT = {
  resource: { type: 'object', required: ['id', 'status'], properties: resourceProperties },
  provisioned: {
    type: 'object',
    required: ['id', 'status', 'secrets'],
    properties: { ...resourceProperties, secrets: { type: 'array', items: secret } },
  },
  plans: { type: 'object', required: ['plans'], properties: { plans: { type: 'array', items: billingPlan } } },
  installation: { type: 'object', properties: { billingPlan, notification } },
  rotation: {
    type: 'object',
    required: ['sync'],
    properties: { sync: { type: 'boolean' }, secrets: { type: 'array', items: secret }, partial: { type: 'boolean' } },
    if: { properties: { sync: { const: true } } },
    then: { required: ['secrets'] },
  },
  /** What the marketplace API accepts as secrets from a partner (PUT .../secrets, PATCH, import). */
  secrets: { type: 'array', items: secret },
} as const;

export type ContractName = keyof typeof CONTRACT;

let compiled: Map<ContractName, ValidateFunction> | undefined;

/** Ajv is loaded on the first partner answer, not at start-up. */
async function validator(name: ContractName): Promise<ValidateFunction> {
  if (!compiled) {
    const { Ajv } = await import('ajv');
    const ajv = new Ajv({ allErrors: true, strict: false });
    compiled = new Map(Object.entries(CONTRACT).map(([key, schema]) => [key as ContractName, ajv.compile(schema)]));
  }
  return compiled.get(name)!;
}

/** One Ajv error as a provider developer reads it: the field, then what was expected of it. */
export function describeError(error: ErrorObject): string {
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
export async function checkAnswer<T>(name: ContractName, body: unknown, call: string): Promise<T> {
  const validate = await validator(name);
  if (validate(body)) return body as T;
  const problems = [...new Set((validate.errors ?? []).filter((e) => e.keyword !== 'if').map(describeError))];
  throw new AppError(502, 'provider_invalid_response', `The partner server's answer to ${call} breaks the partner API: ${problems.join('; ')}`, {
    fields: problems,
  });
}

/** Checks what a partner sends to the marketplace API: 400 `validation_error` naming each bad field. */
export async function checkRequest<T>(name: ContractName, body: unknown, key: string): Promise<T> {
  const validate = await validator(name);
  if (validate(body)) return body as T;
  const fields = (validate.errors ?? []).map((error) => ({ key: `${key}${error.instancePath.replaceAll('/', '.')}`, message: describeError(error) }));
  throw new AppError(400, 'validation_error', `Invalid ${key}: ${fields.map((f) => f.message).join('; ')}`, { fields });
}
