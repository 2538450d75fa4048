/**
 * The response bodies of the marketplace API partners call back, as @vercel/sdk's `marketplace.*`
 * functions parse them (getAccountInfo, getMember, getIntegrationResource(s), importResource,
 * updateResource). Fastify serializes with these, dropping what they do not name, so each
 * describes the whole body the service returns. Also the billing bodies partners send.
 */
import { RESOURCE_STATUSES } from '../providers/provider.ts';
import { freeObject, str } from './vercel-shapes.ts';

export const accountInfoSchema = {
  type: 'object',
  required: ['url', 'contact'],
  properties: {
    name: { ...str, description: "The team's name" },
    url: { ...str, description: 'Where the installation is shown' },
    contact: {
      type: ['object', 'null'],
      required: ['email'],
      properties: { email: str, name: str },
      description: 'The installing user, else an owner (null when the team has neither)',
    },
  },
};

export const memberSchema = {
  type: 'object',
  required: ['id', 'role'],
  properties: {
    id: str,
    role: { type: 'string', enum: ['ADMIN', 'USER'], description: 'ADMIN may manage the installation; USER only reads' },
    globalUserId: str,
    userEmail: str,
  },
};

const notification = {
  type: 'object',
  required: ['level', 'title'],
  properties: { level: { type: 'string', enum: ['info', 'warn', 'error'] }, title: str, message: str, href: str },
};

/** A resource as the partner sees it: its own id, the product by slug, Storehouse's store id as `internalId`. */
const resourceProperties = {
  internalId: { ...str, description: "Storehouse's id of the store" },
  name: str,
  productId: { ...str, description: "The product's slug" },
  billingPlanId: str,
  metadata: freeObject,
  status: { type: 'string', enum: [...RESOURCE_STATUSES] },
  notification,
  protocolSettings: freeObject,
};

export const resourceSchema = {
  type: 'object',
  required: ['id', 'internalId', 'name', 'productId', 'status'],
  properties: { id: { ...str, description: "The partner's id of the resource" }, ...resourceProperties },
};

export const resourceListSchema = {
  type: 'object',
  required: ['resources'],
  properties: {
    resources: {
      type: 'array',
      items: {
        type: 'object',
        required: ['partnerId', 'internalId', 'name', 'productId', 'status'],
        properties: { partnerId: { ...str, description: "The partner's id of the resource" }, ...resourceProperties },
      },
    },
  },
};

/** What an import or an update answers: the resource's name. */
export const resourceNameSchema = { type: 'object', required: ['name'], properties: { name: str } };

// The bodies partners send with billing data, invoices and prepayment balances (kept as sent).
const text = { type: 'string', minLength: 1 };
const period = { type: 'object', required: ['start', 'end'], properties: { start: { type: 'string', format: 'date-time' }, end: { type: 'string', format: 'date-time' } } };
const billingItem = {
  type: 'object',
  required: ['billingPlanId', 'name', 'price', 'quantity', 'units', 'total'],
  properties: {
    billingPlanId: text, resourceId: { type: 'string' }, start: { type: 'string', format: 'date-time' }, end: { type: 'string', format: 'date-time' },
    name: { type: 'string' }, details: { type: 'string' }, price: { type: 'string' }, quantity: { type: 'number' }, units: { type: 'string' }, total: { type: 'string' },
  },
};
const discount = {
  type: 'object',
  required: ['billingPlanId', 'name', 'amount'],
  properties: { billingPlanId: text, resourceId: { type: 'string' }, name: { type: 'string' }, details: { type: 'string' }, amount: { type: 'string' } },
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
        { type: 'object', required: ['items'], properties: { items: { type: 'array', items: billingItem }, discounts: { type: 'array', items: discount } } },
      ],
    },
    usage: {
      type: 'array',
      items: {
        type: 'object',
        required: ['name', 'type', 'units', 'dayValue', 'periodValue'],
        properties: {
          resourceId: { type: 'string' }, name: { type: 'string' }, type: { enum: ['total', 'interval', 'rate'] }, units: { type: 'string' },
          dayValue: { type: 'number' }, periodValue: { type: 'number' }, planValue: { type: 'number' },
        },
      },
    },
  },
};

export const invoiceBody = {
  type: 'object',
  required: ['invoiceDate', 'period', 'items'],
  properties: {
    externalId: { type: 'string' }, invoiceDate: { type: 'string', format: 'date-time' }, memo: { type: 'string' }, period,
    items: { type: 'array', minItems: 1, items: billingItem }, discounts: { type: 'array', items: discount }, final: { type: 'boolean' },
    test: { type: 'object', properties: { validate: { type: 'boolean' }, result: { enum: ['paid', 'notpaid', 'overdue'] } } },
  },
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
        properties: { resourceId: { type: 'string' }, credit: { type: 'string' }, nameLabel: { type: 'string' }, currencyValueInCents: { type: 'number', minimum: 0 } },
      },
    },
  },
};
