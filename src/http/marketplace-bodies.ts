/**
 * The bodies partner servers send to the marketplace API (docs/partner-api.md §5), as JSON
 * Schemas the routes validate them with, exactly as sent (no coercion), and /openapi.json shows.
 */
import { billingPlanSchema, notificationSchema, secretSchema } from '../partners/partner-contract.ts';
import { RESOURCE_STATUSES } from '../providers/provider.ts';
import { NO_CONTROL_PATTERN, STORE_NAME_SCHEMA } from '../stores/store-input.ts';

const text = { type: 'string', minLength: 1 };
// The partner contract's shapes, closed: what a partner sends here is checked strictly.
const secret = { ...secretSchema, additionalProperties: false };
const secrets = { type: 'array', items: secret, maxItems: 1000 };
const notification = {
  ...notificationSchema,
  properties: { ...notificationSchema.properties, title: { type: 'string', maxLength: 100 } },
  additionalProperties: false,
};
/** A notification, or `""` / null to clear one (the SDK sends either). */
const notificationOrClear = { anyOf: [notification, { type: 'string' }, { type: 'null' }] };
/** What a partner may say of a resource it imports or changes (docs/partner-api.md §5), besides the product and secrets. */
const resourceFields = {
  ownership: { enum: ['owned', 'linked', 'sandbox'] },
  name: STORE_NAME_SCHEMA,
  status: { enum: [...RESOURCE_STATUSES] },
  metadata: { type: 'object' },
  billingPlan: billingPlanSchema,
  notification: notificationOrClear,
  extras: { type: 'object' },
};
/** An installation's notification: `""` or null clears it; any other string is refused (it would say nothing). */
const notificationOrNone = { anyOf: [notification, { const: '' }, { type: 'null' }] };

/** An installation-level plan, as the SDK sends it (its extra fields spread into the object). */
const installationPlan = { ...billingPlanSchema, properties: { ...billingPlanSchema.properties, effectiveDate: { type: 'string' } } };
/** The client credentials rotation and revocation take besides the token (snake_case, as the SDK sends them). */
const clientCredentials = {
  client_secret: { type: 'string', minLength: 1, maxLength: 1000 },
  client_id: { type: 'string', minLength: 1, maxLength: 200 },
};

export const installationChangeBody = {
  type: 'object',
  properties: {
    status: { enum: [...RESOURCE_STATUSES] },
    externalId: { type: 'string', maxLength: 256, pattern: NO_CONTROL_PATTERN },
    billingPlan: installationPlan,
    notification: notificationOrNone,
  },
  additionalProperties: false,
};

export const rotateBody = { type: 'object', required: ['client_secret'], properties: clientCredentials, additionalProperties: false };

export const revokeBody = {
  type: 'object',
  required: ['token', 'client_secret'],
  properties: { token: { type: 'string', minLength: 1, maxLength: 1000 }, ...clientCredentials },
  additionalProperties: false,
};

export const eventBody = {
  type: 'object',
  required: ['event'],
  properties: {
    event: {
      type: 'object',
      required: ['type'],
      properties: {
        type: { enum: ['resource.updated', 'installation.updated'] },
        resourceId: text,
        productId: { type: 'string' },
        billingPlanId: { type: 'string' },
      },
      // resource.updated names its resource (anyOf rather than if/then, which OpenAPI 3.0 lacks;
      // the required branch first, so a refusal names the missing field).
      anyOf: [{ required: ['resourceId'] }, { properties: { type: { enum: ['installation.updated'] } } }],
    },
  },
};

export const importBody = {
  type: 'object',
  required: ['productId', 'name', 'status'],
  properties: { ...resourceFields, productId: text, secrets },
  additionalProperties: false,
};

export const resourceChangeBody = {
  type: 'object',
  properties: {
    ...resourceFields,
    secrets: {
      anyOf: [
        secrets,
        {
          type: 'object',
          required: ['secrets'],
          properties: { secrets, partial: { type: 'boolean' } },
          additionalProperties: false,
        },
      ],
    },
  },
  additionalProperties: false,
};

export const secretsBody = {
  type: 'object',
  required: ['secrets'],
  properties: { secrets, partial: { type: 'boolean' } },
  additionalProperties: false,
};

// Billing data, invoices and prepayment balances (src/billing/: kept as a history; invoices checked and charged).
const period = {
  type: 'object',
  required: ['start', 'end'],
  properties: { start: { type: 'string', format: 'date-time' }, end: { type: 'string', format: 'date-time' } },
};
const billingItem = {
  type: 'object',
  required: ['billingPlanId', 'name', 'price', 'quantity', 'units', 'total'],
  properties: {
    billingPlanId: text,
    resourceId: { type: 'string' },
    start: { type: 'string', format: 'date-time' },
    end: { type: 'string', format: 'date-time' },
    name: { type: 'string' },
    details: { type: 'string' },
    price: { type: 'string' },
    quantity: { type: 'number' },
    units: { type: 'string' },
    total: { type: 'string' },
  },
};
const discount = {
  type: 'object',
  required: ['billingPlanId', 'name', 'amount'],
  properties: {
    billingPlanId: text,
    resourceId: { type: 'string' },
    start: { type: 'string', format: 'date-time' },
    end: { type: 'string', format: 'date-time' },
    name: { type: 'string' },
    details: { type: 'string' },
    amount: { type: 'string' },
  },
};

export const billingDataBody = {
  type: 'object',
  required: ['timestamp', 'eod', 'period', 'billing', 'usage'],
  properties: {
    timestamp: { type: 'string', format: 'date-time' },
    eod: { type: 'string', format: 'date-time' },
    period,
    billing: {
      anyOf: [
        { type: 'array', items: billingItem },
        {
          type: 'object',
          required: ['items'],
          properties: { items: { type: 'array', items: billingItem }, discounts: { type: 'array', items: discount } },
        },
      ],
    },
    usage: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type', 'units', 'dayValue', 'periodValue'],
        properties: {
          resourceId: { type: 'string' },
          name: { type: 'string' },
          type: { enum: ['total', 'interval', 'rate'] },
          units: { type: 'string' },
          dayValue: { type: 'number' },
          periodValue: { type: 'number' },
          planValue: { type: 'number' },
        },
      },
    },
  },
};

export const invoiceBody = {
  type: 'object',
  required: ['invoiceDate', 'period', 'items'],
  properties: {
    externalId: { type: 'string', minLength: 1, maxLength: 256, pattern: NO_CONTROL_PATTERN },
    invoiceDate: { type: 'string', format: 'date-time' },
    memo: { type: 'string' },
    period,
    items: { type: 'array', minItems: 1, maxItems: 1000, items: billingItem },
    discounts: { type: 'array', maxItems: 1000, items: discount },
    final: { type: 'boolean' },
    test: { type: 'object', properties: { validate: { type: 'boolean' }, result: { enum: ['paid', 'notpaid', 'overdue'] } } },
  },
};

/** An invoice action: a refund of part or all of a paid invoice (the SDK's UpdateInvoiceRequestBody). */
export const invoiceActionBody = {
  type: 'object',
  required: ['action', 'total', 'reason'],
  properties: {
    action: { enum: ['refund'] },
    total: { type: 'string', description: 'The amount refunded, a decimal string of dollars' },
    reason: { type: 'string', minLength: 1, maxLength: 1000 },
  },
  additionalProperties: false,
};

export const balanceBody = {
  type: 'object',
  required: ['timestamp', 'balances'],
  properties: {
    timestamp: { type: 'string', format: 'date-time' },
    balances: {
      type: 'array',
      items: {
        type: 'object',
        required: ['currencyValueInCents'],
        properties: {
          resourceId: { type: 'string' },
          credit: { type: 'string' },
          nameLabel: { type: 'string' },
          currencyValueInCents: { type: 'number', minimum: 0 },
        },
      },
    },
  },
};
