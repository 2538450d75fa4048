import type { FastifyInstance } from 'fastify';
import type { Database } from '../../db/database.ts';
import {
  DELIVERY_STATUSES,
  getDelivery,
  listDeliveries,
  redeliver,
  teamScope,
  type Delivery,
  type DeliveryDetail,
  type DeliveryStatus,
} from '../../webhooks/deliveries.ts';
import { errorResponses, pageQuery, teamQuery, type PageQuery, type TeamQuery } from './common.ts';
import { str } from '../vercel-shapes.ts';

const tags = ['storehouse'];
const nullableNumber = { type: ['number', 'null'] };
const nullableString = { type: ['string', 'null'] };

const deliverySchema = {
  $id: 'WebhookDelivery',
  type: 'object',
  required: ['id', 'type', 'integrationId', 'status', 'attempts', 'createdAt'],
  properties: {
    id: { type: 'string', description: "The event's id (the envelope's `id`), the same on every attempt" },
    type: str,
    integrationId: str,
    installationId: nullableString,
    status: { type: 'string', enum: [...DELIVERY_STATUSES] },
    attempts: { type: 'number' },
    lastStatus: { ...nullableNumber, description: "The last attempt's HTTP status (null: no answer)" },
    lastError: nullableString,
    createdAt: { type: 'number' },
    deliveredAt: nullableNumber,
    nextAttemptAt: { ...nullableNumber, description: 'When the next attempt is due (null once delivered or failed)' },
  },
};

const detailSchema = {
  $id: 'WebhookDeliveryDetail',
  type: 'object',
  required: [...deliverySchema.required, 'event', 'history'],
  properties: {
    ...deliverySchema.properties,
    event: { type: 'object', additionalProperties: true, description: 'The envelope as sent: {id, type, createdAt, payload}' },
    history: {
      type: 'array',
      items: {
        type: 'object',
        required: ['number', 'startedAt', 'durationMs', 'status', 'error'],
        properties: {
          number: { type: 'number' },
          startedAt: { type: 'number' },
          durationMs: { type: 'number' },
          status: nullableNumber,
          error: nullableString,
        },
      },
    },
  },
};

const time = (date: Date | null) => (date === null ? null : date.getTime());

export const toDeliveryJson = (delivery: Delivery) => ({
  id: delivery.id,
  type: delivery.type,
  integrationId: delivery.integrationId,
  installationId: delivery.installationId,
  status: delivery.status,
  attempts: delivery.attempts,
  lastStatus: delivery.lastStatus,
  lastError: delivery.lastError,
  createdAt: delivery.createdAt.getTime(),
  deliveredAt: time(delivery.deliveredAt),
  nextAttemptAt: time(delivery.nextAttemptAt),
});

const toDetailJson = (delivery: DeliveryDetail) => ({
  ...toDeliveryJson(delivery),
  event: delivery.event,
  history: delivery.history.map((attempt) => ({
    number: attempt.number,
    startedAt: attempt.startedAt.getTime(),
    durationMs: attempt.durationMs,
    status: attempt.status,
    error: attempt.error,
  })),
});

const idParams = { type: 'object', required: ['id'], properties: { id: str } };

/**
 * The team's webhook deliveries (Storehouse's own API, for the team's owners): what was sent to
 * its installations' integrations, each attempt, and sending one again. The operator sees every
 * team's through the CLI (`storehouse webhooks ...`).
 */
export default async function webhookDeliveryRoutes(app: FastifyInstance, options: { db: Database; wake: () => void }) {
  const { db } = options;
  app.addSchema(deliverySchema);
  app.addSchema(detailSchema);

  app.get<{ Querystring: TeamQuery & PageQuery & { integrationId?: string; status?: DeliveryStatus } }>(
    '/_storehouse/webhooks/deliveries',
    {
      schema: {
        operationId: 'listWebhookDeliveries',
        summary: "The team's webhook deliveries, newest first (team owners)",
        tags,
        querystring: {
          type: 'object',
          properties: {
            integrationId: { type: 'string', maxLength: 100 },
            status: { type: 'string', enum: [...DELIVERY_STATUSES] },
            ...pageQuery(20, 100),
            ...teamQuery,
          },
        },
        response: {
          200: {
            type: 'object',
            required: ['deliveries', 'pagination'],
            properties: {
              deliveries: { type: 'array', items: { $ref: 'WebhookDelivery#' } },
              pagination: { $ref: 'Pagination#' },
            },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const { integrationId, status, limit = 20, until, from } = request.query;
      const page = await listDeliveries(db, teamScope(request.actor), { integrationId, status, limit, until: until ?? from });
      return {
        deliveries: page.deliveries.map(toDeliveryJson),
        pagination: { count: page.deliveries.length, next: page.next, prev: null },
      };
    },
  );

  app.get<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/_storehouse/webhooks/deliveries/:id',
    {
      schema: {
        operationId: 'getWebhookDelivery',
        summary: 'A webhook delivery: the event, every attempt, the last status and the next try (team owners)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: { $ref: 'WebhookDeliveryDetail#' }, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (request) => toDetailJson(await getDelivery(db, teamScope(request.actor), request.params.id)),
  );

  app.post<{ Params: { id: string }; Querystring: TeamQuery }>(
    '/_storehouse/webhooks/deliveries/:id/redeliver',
    {
      schema: {
        operationId: 'redeliverWebhook',
        summary: 'Send a delivered or failed event again: same id and body, a new attempt (team owners)',
        tags,
        params: idParams,
        querystring: { type: 'object', properties: teamQuery },
        response: { 200: { $ref: 'WebhookDelivery#' }, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (request) => {
      const delivery = await redeliver(db, teamScope(request.actor), request.params.id);
      options.wake();
      return toDeliveryJson(delivery);
    },
  );
}
