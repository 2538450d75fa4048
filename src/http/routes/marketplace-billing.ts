import type { FastifyInstance } from 'fastify';
import type { BillingHistory } from '../../billing/billing-history.ts';
import type { InvoiceInput } from '../../billing/invoice-input.ts';
import { invoiceJson, type Invoices } from '../../billing/invoices.ts';
import type { MarketplaceRateLimit } from '../../config.ts';
import { balanceBody, billingDataBody, invoiceActionBody, invoiceBody } from '../marketplace-bodies.ts';
import { errorResponses } from './common.ts';

const tags = ['marketplace'];
// As marketplace.ts's: 401 for a token that is not an installation's, 403 for another installation's.
const errors = (...statuses: number[]) => errorResponses(401, 403, ...statuses);
const recorded = { type: 'null', description: 'Recorded' };
const text = { type: 'string', minLength: 1 };
const installationParams = { type: 'object', required: ['installationId'], properties: { installationId: text } };
const invoiceParams = {
  type: 'object',
  required: ['installationId', 'invoiceId'],
  properties: { installationId: text, invoiceId: text },
};
type Params = { installationId: string; invoiceId: string };

const str = { type: 'string' };
const line = {
  billingPlanId: str,
  resourceId: str,
  start: str,
  end: str,
  name: str,
  details: str,
};
/** An invoice as Get Invoice answers it (the SDK's GetInvoiceResponseBody). */
export const invoiceSchema = {
  type: 'object',
  required: ['invoiceId', 'invoiceDate', 'period', 'items', 'state', 'total', 'created', 'updated'],
  properties: {
    invoiceId: str,
    externalId: str,
    invoiceNumber: str,
    invoiceDate: str,
    period: { type: 'object', required: ['start', 'end'], properties: { start: str, end: str } },
    items: {
      type: 'array',
      items: { type: 'object', properties: { ...line, price: str, quantity: { type: 'number' }, units: str, total: str } },
    },
    discounts: { type: 'array', items: { type: 'object', properties: { ...line, amount: str } } },
    memo: str,
    state: { type: 'string', enum: ['pending', 'paid', 'notpaid', 'overdue', 'refunded'] },
    total: { ...str, description: 'Dollars, a decimal string' },
    refundTotal: str,
    refundReason: str,
    paidAt: str,
    test: { type: 'boolean' },
    created: str,
    updated: str,
  },
};

/**
 * The partner's billing calls (docs/partner-api.md §3): billing data and balances (kept as a
 * history), and invoices (checked, charged, refunded). Registered inside marketplace.ts's routes,
 * whose hook has authenticated the installation's token (`request.partner`).
 */
export default async function marketplaceBillingRoutes(
  app: FastifyInstance,
  options: {
    invoices: Invoices;
    history: BillingHistory;
    /** marketplace.ts's route config: public to users' tokens, with the installation's limit when named. */
    limited: (name?: MarketplaceRateLimit) => Record<string, unknown>;
  },
) {
  const { invoices, history, limited } = options;

  app.post<{ Params: Params; Body: Record<string, unknown> & { timestamp: string; eod: string; period: { start: string; end: string } } }>(
    '/v1/installations/:installationId/billing',
    {
      config: limited('marketplace.billing'),
      schema: {
        operationId: 'submitBillingData',
        summary: 'Billing and usage data for the installation, kept as a history',
        tags,
        params: installationParams,
        body: billingDataBody,
        response: { 201: recorded, ...errors() },
      },
    },
    async (request, reply) => {
      await history.recordBilling(request.partner, request.body);
      return reply.code(201).send();
    },
  );

  app.post<{ Params: Params; Body: InvoiceInput }>(
    '/v1/installations/:installationId/billing/invoices',
    {
      config: limited(),
      schema: {
        operationId: 'submitInvoice',
        summary: 'An invoice for subscription plans: checked, kept, and charged to the team (test.validate: checked only)',
        tags,
        params: installationParams,
        body: invoiceBody,
        response: {
          200: {
            type: 'object',
            properties: { invoiceId: str, test: { type: 'boolean' }, validationErrors: { type: 'array', items: str } },
          },
          // 404: a resource not of this installation; 409: the resource already billed for the period, or the externalId used.
          ...errors(404, 409),
        },
      },
    },
    async (request) => invoices.submit(request.partner, request.body),
  );

  app.get<{ Params: Params }>(
    '/v1/installations/:installationId/billing/invoices/:invoiceId',
    {
      config: limited(),
      schema: {
        operationId: 'getInvoice',
        summary: 'An invoice of the installation, with its state',
        tags,
        params: invoiceParams,
        response: { 200: invoiceSchema, ...errors(404) },
      },
    },
    async (request) => invoiceJson(await invoices.get(request.partner, request.params.invoiceId)),
  );

  app.post<{ Params: Params; Body: { action: 'refund'; total: string; reason: string } }>(
    '/v1/installations/:installationId/billing/invoices/:invoiceId/actions',
    {
      config: limited(),
      schema: {
        operationId: 'updateInvoice',
        summary: 'Refund part or all of a paid invoice',
        tags,
        params: invoiceParams,
        body: invoiceActionBody,
        // 409: the invoice is not paid.
        response: { 204: { type: 'null', description: 'Refunded' }, ...errors(404, 409) },
      },
    },
    async (request, reply) => {
      await invoices.refund(request.partner, request.params.invoiceId, request.body);
      return reply.code(204).send();
    },
  );

  app.post<{ Params: Params; Body: { timestamp: string; balances: Array<{ currencyValueInCents: number }> } }>(
    '/v1/installations/:installationId/billing/balance',
    {
      config: limited(),
      schema: {
        operationId: 'submitPrepaymentBalances',
        summary: "Prepayment credit balances, kept as a history; a store's below its threshold is topped up",
        tags,
        params: installationParams,
        body: balanceBody,
        response: { 201: recorded, ...errors() },
      },
    },
    async (request, reply) => {
      await history.recordBalances(request.partner, request.body);
      return reply.code(201).send();
    },
  );
}
