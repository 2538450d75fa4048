import type { FastifyInstance } from 'fastify';
import { listAuditEvents } from '../../audit/audit-log.ts';
import { listAuthorizations } from '../../billing/authorizations.ts';
import {
  addPaymentMethod,
  assertBillingManager,
  listPaymentMethods,
  removePaymentMethod,
  setDefaultPaymentMethod,
  type PaymentMethod,
} from '../../billing/payment-methods.ts';
import type { Database } from '../../db/database.ts';
import { badRequest, forbidden } from '../../errors.ts';
import type { Actor } from '../../tenancy/access.ts';
import { errorResponses, teamQuery, type TeamQuery } from './common.ts';
import { str } from '../vercel-shapes.ts';

const tags = ['storehouse'];

const paymentMethodSchema = {
  $id: 'PaymentMethod',
  type: 'object',
  required: ['id', 'type', 'brand', 'last4', 'default', 'behavior', 'createdAt'],
  properties: {
    id: str,
    type: { type: 'string', enum: ['card'] },
    brand: str,
    last4: str,
    default: { type: 'boolean' },
    behavior: { type: 'string', enum: ['succeed', 'decline'], description: 'Test card: always succeeds or always declines' },
    createdAt: { type: 'number' },
  },
};

export const toPaymentMethodJson = (method: PaymentMethod) => ({
  id: method.id,
  type: method.type,
  brand: method.brand,
  last4: method.last4,
  default: method.isDefault,
  behavior: method.behavior,
  createdAt: method.createdAt.getTime(),
});

const changeBy = (actor: Actor) => ({ teamId: actor.team.id, actorId: actor.userId });

const teamOnly = { type: 'object', properties: teamQuery };
const pmParams = { type: 'object', required: ['id'], properties: { id: str } };

/** Storehouse's own API (not Vercel's): payment methods, billing records and the audit log. */
export default async function storehouseRoutes(app: FastifyInstance, options: { db: Database }) {
  const { db } = options;
  app.addSchema(paymentMethodSchema);

  app.get<{ Querystring: TeamQuery }>(
    '/_storehouse/payment-methods',
    {
      schema: {
        operationId: 'listPaymentMethods',
        summary: "The team's payment methods (owners and billing members)",
        tags,
        querystring: teamOnly,
        response: {
          200: {
            type: 'object',
            required: ['paymentMethods'],
            properties: { paymentMethods: { type: 'array', items: { $ref: 'PaymentMethod#' } } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      assertBillingManager(request.actor);
      return { paymentMethods: (await listPaymentMethods(db, request.actor.team.id)).map(toPaymentMethodJson) };
    },
  );

  app.post<{ Querystring: TeamQuery; Body: { cardNumber: string; default?: boolean } }>(
    '/_storehouse/payment-methods',
    {
      schema: {
        operationId: 'addPaymentMethod',
        summary: 'Add a test card (4242424242424242 always succeeds, 4000000000000002 always declines)',
        tags,
        querystring: teamOnly,
        body: {
          type: 'object',
          required: ['cardNumber'],
          additionalProperties: false,
          properties: { cardNumber: str, default: { type: 'boolean' } },
        },
        response: { 200: { $ref: 'PaymentMethod#' }, ...errorResponses(400, 401, 403) },
      },
    },
    async (request) => {
      assertBillingManager(request.actor);
      return toPaymentMethodJson(
        await addPaymentMethod(db, changeBy(request.actor), { cardNumber: request.body.cardNumber, makeDefault: request.body.default }),
      );
    },
  );

  app.patch<{ Params: { id: string }; Querystring: TeamQuery; Body: { default: true } }>(
    '/_storehouse/payment-methods/:id',
    {
      schema: {
        operationId: 'updatePaymentMethod',
        summary: "Make a payment method the team's default",
        tags,
        params: pmParams,
        querystring: teamOnly,
        body: {
          type: 'object',
          required: ['default'],
          additionalProperties: false,
          properties: { default: { type: 'boolean', enum: [true] } },
        },
        response: { 200: { $ref: 'PaymentMethod#' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => {
      assertBillingManager(request.actor);
      return toPaymentMethodJson(await setDefaultPaymentMethod(db, changeBy(request.actor), request.params.id));
    },
  );

  app.delete<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/_storehouse/payment-methods/:id',
    {
      schema: {
        operationId: 'removePaymentMethod',
        summary: 'Remove a payment method',
        tags,
        params: pmParams,
        querystring: teamOnly,
        response: { 204: { type: 'null', description: 'Removed' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request, reply) => {
      assertBillingManager(request.actor);
      await removePaymentMethod(db, changeBy(request.actor), request.params.id);
      return reply.code(204).send();
    },
  );

  app.get<{ Querystring: TeamQuery & { storeId?: string } }>(
    '/_storehouse/billing/authorizations',
    {
      schema: {
        operationId: 'listBillingAuthorizations',
        summary: "The team's billing authorizations and prepayments (owners and billing members)",
        tags,
        querystring: { type: 'object', properties: { storeId: str, ...teamQuery } },
        response: {
          200: {
            type: 'object',
            required: ['authorizations'],
            properties: { authorizations: { type: 'array', items: { type: 'object', additionalProperties: true } } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      assertBillingManager(request.actor);
      const found = await listAuthorizations(db, request.actor.team.id, { storeId: request.query.storeId });
      return { authorizations: found.map((a) => ({ ...a, createdAt: a.createdAt.getTime() })) };
    },
  );

  app.get<{ Querystring: TeamQuery & { limit?: number; before?: string } }>(
    '/_storehouse/audit',
    {
      schema: {
        operationId: 'listAuditEvents',
        summary: "The team's audit log, newest first (team owners)",
        tags,
        querystring: {
          type: 'object',
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
            before: { type: 'string', maxLength: 100, description: 'An event id (`aud_...`): the events older than it' },
            ...teamQuery,
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['events'],
            properties: {
              events: {
                type: 'array',
                items: {
                  type: 'object',
                  required: ['id', 'actorId', 'action', 'targetType', 'targetId', 'details', 'createdAt'],
                  properties: {
                    id: str,
                    actorId: { type: ['string', 'null'] },
                    action: str,
                    targetType: str,
                    targetId: str,
                    details: { type: 'object', additionalProperties: true },
                    createdAt: { type: 'number' },
                  },
                },
              },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      if (request.actor.role !== 'OWNER') throw forbidden("Only the team's owners may read its audit log");
      const events = await listAuditEvents(db, request.actor.team.id, { limit: request.query.limit ?? 100, before: request.query.before });
      if (!events) throw badRequest(`Invalid query parameter "before": no event of the team has the id ${request.query.before}`);
      return { events: events.map(({ teamId: _team, createdAt, ...event }) => ({ ...event, createdAt: createdAt.getTime() })) };
    },
  );
}
