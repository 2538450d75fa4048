import type { FastifyInstance, FastifyRequest } from 'fastify';
import { balanceHistory, billingDataHistory } from '../../billing/billing-history.ts';
import { invoiceJson, listTeamInvoices, teamInvoice } from '../../billing/invoices.ts';
import { assertBillingManager } from '../../billing/payment-methods.ts';
import type { Database } from '../../db/database.ts';
import type { Actor } from '../../tenancy/access.ts';
import { errorResponses } from './common.ts';
import { invoiceSchema } from './marketplace-billing.ts';

const tags = ['storehouse'];
const str = { type: 'string' };
const teamParams = { type: 'object', required: ['teamId'], properties: { teamId: { type: 'string', minLength: 1 } } };
const listQuery = {
  type: 'object',
  properties: {
    installationId: { ...str, description: 'Only this installation (icfg_...)' },
    limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 },
  },
};
type ListQuery = { installationId?: string; limit?: number; before?: number };

/**
 * Who sees what, after Vercel's roles (src/tenancy/teams.ts): money (invoices, their charges and
 * refunds) is for the team's owners and billing members, as its payment methods and billing
 * authorizations are (assertBillingManager); usage and balances, which `vercel integration
 * balance` shows every member, for every member, viewers included.
 */
const assertSeesInvoices = (actor: Actor) => assertBillingManager(actor, 'see its invoices');

const open = { type: 'object', additionalProperties: true };
const teamInvoiceSchema = {
  ...invoiceSchema,
  required: [...invoiceSchema.required, 'installationId'],
  properties: { ...invoiceSchema.properties, installationId: str },
};

/**
 * What a team is billed through its installations, as partners reported it and Storehouse
 * charged it: invoices (with their charge attempts and refunds), billing and usage data over time,
 * and prepaid balances over time with the top-ups their thresholds triggered. Storehouse's own
 * paths: Vercel's REST API has no team-facing counterpart for integration invoices.
 */
export default async function teamBillingRoutes(app: FastifyInstance, options: { db: Database }) {
  const { db } = options;
  /** The caller as a member of the team in the path (403 for a team they are not in). */
  const member = (request: FastifyRequest<{ Params: { teamId: string } }>) =>
    app.access.actor(request.principal, { teamId: request.params.teamId });

  app.get<{ Params: { teamId: string }; Querystring: ListQuery }>(
    '/_storehouse/teams/:teamId/invoices',
    {
      schema: {
        operationId: 'listTeamInvoices',
        summary: "The team's invoices from its integrations, newest first (owners and billing members)",
        tags,
        params: teamParams,
        querystring: {
          ...listQuery,
          properties: { ...listQuery.properties, before: { type: 'integer', description: 'The `next` of the previous page' } },
        },
        response: {
          200: {
            type: 'object',
            required: ['invoices', 'next'],
            properties: { invoices: { type: 'array', items: teamInvoiceSchema }, next: { type: ['integer', 'null'] } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const actor = await member(request);
      assertSeesInvoices(actor);
      const { invoices, next } = await listTeamInvoices(db, actor.team.id, {
        installationId: request.query.installationId,
        limit: request.query.limit ?? 100,
        before: request.query.before,
      });
      return { invoices: invoices.map((invoice) => ({ ...invoiceJson(invoice), installationId: invoice.installationId })), next };
    },
  );

  app.get<{ Params: { teamId: string; invoiceId: string } }>(
    '/_storehouse/teams/:teamId/invoices/:invoiceId',
    {
      schema: {
        operationId: 'getTeamInvoice',
        summary: 'An invoice of the team, with its charge attempts and refunds (owners and billing members)',
        tags,
        params: { type: 'object', required: ['teamId', 'invoiceId'], properties: { teamId: str, invoiceId: str } },
        response: {
          200: {
            ...teamInvoiceSchema,
            required: [...teamInvoiceSchema.required, 'charges', 'refunds'],
            properties: {
              ...teamInvoiceSchema.properties,
              charges: { type: 'array', items: open },
              refunds: { type: 'array', items: open },
            },
          },
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (request) => {
      const actor = await member(request);
      assertSeesInvoices(actor);
      const { invoice, charges, refunds } = await teamInvoice(db, actor.team.id, request.params.invoiceId);
      return { ...invoiceJson(invoice), installationId: invoice.installationId, charges, refunds };
    },
  );

  app.get<{ Params: { teamId: string }; Querystring: ListQuery }>(
    '/_storehouse/teams/:teamId/billing/usage',
    {
      schema: {
        operationId: 'listTeamBillingData',
        summary: 'The billing and usage data partners reported for the team, every report, newest first',
        tags,
        params: teamParams,
        querystring: listQuery,
        response: {
          200: { type: 'object', required: ['reports'], properties: { reports: { type: 'array', items: open } } },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const actor = await member(request);
      const reports = await billingDataHistory(db, actor.team.id, {
        installationId: request.query.installationId,
        limit: request.query.limit ?? 100,
      });
      return { reports };
    },
  );

  app.get<{ Params: { teamId: string }; Querystring: ListQuery }>(
    '/_storehouse/teams/:teamId/billing/balances',
    {
      schema: {
        operationId: 'listTeamBalances',
        summary: "The team's prepaid balances as partners reported them over time, newest first, and the top-ups thresholds triggered",
        tags,
        params: teamParams,
        querystring: listQuery,
        response: {
          200: {
            type: 'object',
            required: ['balances', 'topUps'],
            properties: { balances: { type: 'array', items: open }, topUps: { type: 'array', items: open } },
          },
          ...errorResponses(400, 401, 403),
        },
      },
    },
    async (request) => {
      const actor = await member(request);
      return balanceHistory(db, actor.team.id, { installationId: request.query.installationId, limit: request.query.limit ?? 100 });
    },
  );
}
