/**
 * The response bodies of the marketplace API partners call back, as @vercel/sdk's `marketplace.*`
 * functions parse them (getAccountInfo, getMember, getIntegrationResource(s), importResource,
 * updateResource). Fastify serializes with these, dropping what they do not name, so each
 * describes the whole body the service returns. What partners send is in marketplace-bodies.ts.
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
