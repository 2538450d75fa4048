/**
 * What makes a partner's invoice acceptable (docs/partner-api.md §3, Vercel's Submit Invoice):
 * items, each for a subscription plan of the installation's integration, whose totals are price ×
 * quantity to the cent; discounts no larger than what they discount; a period that runs forwards
 * with the invoice date inside it; resources of this installation only. Amounts are decimal
 * strings of dollars, checked here and kept as cents.
 */
import type { BillingPlan, Catalog } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { type FieldError, notFound } from '../errors.ts';
import { dollarsOf } from './dollars.ts';

/** What an item and a discount both name: the plan, the resource (none: the installation), the stretch of the period. */
interface InvoiceLineInput {
  billingPlanId: string;
  resourceId?: string;
  start?: string;
  end?: string;
  name: string;
  details?: string;
}

export interface InvoiceItemInput extends InvoiceLineInput {
  price: string;
  quantity: number;
  units: string;
  total: string;
}

export interface InvoiceDiscountInput extends InvoiceLineInput {
  amount: string;
}

export type TestResult = 'paid' | 'notpaid' | 'overdue';

export interface InvoiceInput {
  externalId?: string;
  invoiceDate: string;
  memo?: string;
  period: { start: string; end: string };
  items: InvoiceItemInput[];
  discounts?: InvoiceDiscountInput[];
  final?: boolean;
  test?: { validate?: boolean; result?: TestResult };
}

/** What an item or a discount bills: a resource (or the installation, `resourceId` null) on a plan over a stretch of time. */
export interface BilledStretch {
  resourceId: string | null;
  /** The resource's store, when the line names one. */
  storeId: string | null;
  billingPlanId: string;
  start: Date;
  end: Date;
  /** Where in the body the line is (`items[2]`), for messages. */
  key: string;
}

export interface CheckedInvoice {
  input: InvoiceInput;
  invoiceDate: Date;
  periodStart: Date;
  periodEnd: Date;
  totalCents: number;
  /** Every item's stretch (discounts bill nothing). */
  stretches: BilledStretch[];
}

/** The most an amount (and so an invoice's total) may be: $9,999,999,999.99. */
const MAX_CENTS = 999_999_999_999;

/**
 * A dollar amount written with at most 2 decimals (`"20.00"`, `"3"`), in cents; undefined if it is
 * not one. Below ten billion dollars: a thousand items of it still add up exactly in a number.
 */
export function centsOf(value: string): number | undefined {
  const match = /^(\d{1,10})(?:\.(\d{1,2}))?$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * 100 + Number((match[2] ?? '').padEnd(2, '0'));
}

/** A unit price: up to 6 decimals (usage is priced per request, per GB-hour...), in millionths of a dollar; below $100M, so exact. */
function microsOf(value: string): number | undefined {
  const match = /^(\d{1,8})(?:\.(\d{1,6}))?$/.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * 1_000_000 + Number((match[2] ?? '').padEnd(6, '0'));
}

/** A date-time as sent, or undefined if none or not a time JavaScript can hold (`23:59:60` passes the schema's format, say). */
export const time = (value: string | undefined): Date | undefined => {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
};

/**
 * Checks `input` for the installation: the refusals as fields (key and message, each naming what
 * is wrong), or the invoice as it will be kept. A resource that is not one of this installation's
 * (another's, or none) is a 404, thrown: what another installation holds is never confirmed.
 */
export async function checkInvoice(
  db: Queryable,
  catalog: Catalog,
  installation: { installationId: string; integrationId: string },
  input: InvoiceInput,
): Promise<{ fields: FieldError[]; invoice?: CheckedInvoice }> {
  const fields: FieldError[] = [];
  const refuse = (key: string, message: string) => fields.push({ key, message });

  const periodStart = time(input.period.start);
  const periodEnd = time(input.period.end);
  const invoiceDate = time(input.invoiceDate);
  if (!periodStart) refuse('period.start', 'must be an ISO 8601 date-time');
  if (!periodEnd) refuse('period.end', 'must be an ISO 8601 date-time');
  if (!invoiceDate) refuse('invoiceDate', 'must be an ISO 8601 date-time');
  if (periodStart && periodEnd && periodStart >= periodEnd) refuse('period.end', 'must be after period.start');
  if (invoiceDate && periodStart && periodEnd && (invoiceDate < periodStart || invoiceDate > periodEnd)) {
    refuse('invoiceDate', `must be inside the period (${input.period.start} to ${input.period.end})`);
  }
  if (input.items.length === 0) refuse('items', 'must hold at least one item');

  const plans = subscriptionPlans(catalog, installation.integrationId);
  const stores = await storesNamed(db, installation.installationId, [
    ...input.items.map((item) => item.resourceId),
    ...(input.discounts ?? []).map((discount) => discount.resourceId),
  ]);

  /** The plan, resource and stretch of an item or a discount, refusing what is wrong with them. */
  const line = (key: string, entry: InvoiceItemInput | InvoiceDiscountInput): BilledStretch | undefined => {
    const plan = plans.get(entry.billingPlanId);
    if (!plan) {
      const known = [...plans.keys()].join(', ');
      refuse(
        `${key}.billingPlanId`,
        `${entry.billingPlanId} is not a subscription plan of this integration (its plans: ${known || 'none'})`,
      );
    }
    const store = entry.resourceId === undefined ? undefined : stores.get(entry.resourceId);
    if (plan && store && store.productId !== plan.productId) {
      refuse(`${key}.billingPlanId`, `${entry.billingPlanId} is not a plan of the resource ${entry.resourceId}'s product`);
    }
    const start = entry.start === undefined ? periodStart : time(entry.start);
    const end = entry.end === undefined ? periodEnd : time(entry.end);
    if (!start) refuse(`${key}.start`, 'must be an ISO 8601 date-time');
    if (!end) refuse(`${key}.end`, 'must be an ISO 8601 date-time');
    if (start && end && start >= end) refuse(`${key}.end`, `must be after ${key}.start`);
    if (periodStart && periodEnd && ((start && start < periodStart) || (end && end > periodEnd))) {
      refuse(entry.start !== undefined ? `${key}.start` : `${key}.end`, 'must be inside the period');
    }
    if (!plan || !start || !end) return undefined;
    return { resourceId: entry.resourceId ?? null, storeId: store?.id ?? null, billingPlanId: plan.id, start, end, key };
  };

  let itemsCents = 0;
  const stretches: BilledStretch[] = [];
  for (const [index, item] of input.items.entries()) {
    const key = `items[${index}]`;
    const stretch = line(key, item);
    if (stretch) stretches.push(stretch);
    const price = microsOf(item.price);
    const total = centsOf(item.total);
    if (price === undefined) refuse(`${key}.price`, `"${item.price}" is not a dollar amount (digits, up to 6 decimals)`);
    if (total === undefined) refuse(`${key}.total`, `"${item.total}" is not a dollar amount (digits, up to 2 decimals)`);
    if (!Number.isFinite(item.quantity) || item.quantity < 0) refuse(`${key}.quantity`, 'must be a number, 0 or more');
    if (price !== undefined && total !== undefined && Number.isFinite(item.quantity)) {
      // In cents; a product that falls on half a cent may be rounded either way.
      const exact = (price * item.quantity) / 10_000;
      if (Math.abs(exact - total) > 0.5 + 1e-6) {
        refuse(
          `${key}.total`,
          `is ${item.total}, but price × quantity (${item.price} × ${item.quantity}) is ${dollarsOf(Math.round(exact))}`,
        );
      }
    }
    if (total !== undefined) itemsCents += total;
  }
  let discountCents = 0;
  for (const [index, discount] of (input.discounts ?? []).entries()) {
    const key = `discounts[${index}]`;
    line(key, discount);
    const amount = centsOf(discount.amount);
    if (amount === undefined) refuse(`${key}.amount`, `"${discount.amount}" is not a dollar amount (digits, up to 2 decimals)`);
    else discountCents += amount;
  }
  if (discountCents > itemsCents) {
    refuse('discounts', `come to ${dollarsOf(discountCents)}, more than the items' ${dollarsOf(itemsCents)}: the total cannot be negative`);
  } else if (itemsCents - discountCents > MAX_CENTS) {
    // Below the bound of any amount, so the whole total can be refunded (a refund's total is one amount).
    refuse('items', `come to ${dollarsOf(itemsCents - discountCents)}: an invoice's total must be below 10000000000.00`);
  }
  if (fields.length > 0 || !periodStart || !periodEnd || !invoiceDate) return { fields };
  return { fields, invoice: { input, invoiceDate, periodStart, periodEnd, totalCents: itemsCents - discountCents, stretches } };
}

/** The subscription plans of the integration's products, by id. */
function subscriptionPlans(catalog: Catalog, integrationId: string): Map<string, BillingPlan> {
  const plans = new Map<string, BillingPlan>();
  for (const product of catalog.productsOf(integrationId))
    for (const plan of product.plans) if (plan.type === 'subscription') plans.set(plan.id, plan);
  return plans;
}

/**
 * The installation's stores for the partner resource ids named; 404 for the first id that is not
 * one of them, whether another installation holds it or nobody does.
 */
async function storesNamed(
  db: Queryable,
  installationId: string,
  resourceIds: Array<string | undefined>,
): Promise<Map<string, { id: string; productId: string }>> {
  const wanted = [...new Set(resourceIds.filter((id): id is string => id !== undefined))];
  const found = new Map<string, { id: string; productId: string }>();
  if (wanted.length === 0) return found;
  const { rows } = await db.query<{ id: string; product_id: string; external_resource_id: string }>(
    'SELECT id, product_id, external_resource_id FROM stores WHERE installation_id = $1 AND external_resource_id = ANY($2::text[])',
    [installationId, wanted],
  );
  for (const row of rows) found.set(row.external_resource_id, { id: row.id, productId: row.product_id });
  const missing = wanted.find((id) => !found.has(id));
  if (missing !== undefined) throw notFound('resource', missing);
  return found;
}
