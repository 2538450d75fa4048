/**
 * Billing for paid plans, done inline when a store is created: a subscription plan that needs a
 * payment method has its pre-authorization amount authorized on the card; a prepayment plan has
 * its amount paid, which becomes the store's prepaid balance. Both are recorded in the same
 * transaction as the store, and released (or refunded) if the store cannot be provisioned or is
 * deleted.
 */
import type { BillingPlan } from '../catalog/catalog.ts';
import type { MappedRow, Queryable } from '../db/database.ts';
import { AppError, validationError } from '../errors.ts';
import { newId } from '../ids.ts';
import { usd } from './dollars.ts';
import { describeCard, paymentMethodFor, type PaymentMethod } from './payment-methods.ts';

/** The least a prepayment may be, as Vercel's API documents (`prepaymentAmountCents` minimum). */
const MIN_PREPAYMENT_CENTS = 50;

export interface Charge {
  kind: 'preauthorization' | 'prepayment';
  amountCents: number;
  paymentMethod: PaymentMethod;
}

const invalidAmount = (message: string) => validationError([{ key: 'prepaymentAmountCents', message }], message);

/** The prepayment a plan takes: the amount asked for, within the plan's bounds; a fixed-amount plan's own. */
function prepaymentAmount(plan: BillingPlan, requested: number | undefined): number {
  const min = plan.minimumAmountCents;
  const max = plan.maximumAmountCents;
  if (requested === undefined) {
    if (min !== null && min === max) return min;
    throw invalidAmount(
      `The plan ${plan.id} is a prepayment plan: prepaymentAmountCents is required${min !== null ? `, from ${min}` : ''}${max !== null ? ` to ${max}` : ''}`,
    );
  }
  if (!Number.isInteger(requested)) throw invalidAmount('prepaymentAmountCents must be a whole number of cents');
  if (requested < MIN_PREPAYMENT_CENTS) throw invalidAmount(`prepaymentAmountCents must be at least ${MIN_PREPAYMENT_CENTS}`);
  if (min !== null && requested < min) throw invalidAmount(`The plan ${plan.id} takes a prepayment of at least ${min} cents (${usd(min)})`);
  if (max !== null && requested > max) throw invalidAmount(`The plan ${plan.id} takes a prepayment of at most ${max} cents (${usd(max)})`);
  return requested;
}

/**
 * What creating a store on `plan` costs, checked against the team's payment method: undefined for
 * a free plan; 400 for a bad amount, 402 without a payment method or when the card declines.
 */
export async function chargeFor(
  db: Queryable,
  teamId: string,
  plan: BillingPlan,
  request: { paymentMethodId?: string | undefined; prepaymentAmountCents?: number | undefined },
): Promise<Charge | undefined> {
  const prepayment = plan.type === 'prepayment';
  if (!prepayment && request.prepaymentAmountCents !== undefined) {
    throw invalidAmount(`prepaymentAmountCents applies to prepayment plans only, and ${plan.id} is a subscription plan`);
  }
  if (!prepayment && !plan.paymentMethodRequired) return undefined;
  const amountCents = prepayment ? prepaymentAmount(plan, request.prepaymentAmountCents) : (plan.preauthorizationAmountCents ?? 0);
  const paymentMethod = await paymentMethodFor(db, teamId, request.paymentMethodId);
  if (!paymentMethod) {
    throw new AppError(
      402,
      'payment_method_required',
      `The plan ${plan.id} is paid and the team has no default payment method: add one (POST /_storehouse/payment-methods) or pass paymentMethodId`,
    );
  }
  if (paymentMethod.behavior === 'decline') {
    throw new AppError(
      402,
      'payment_declined',
      `The payment method ${paymentMethod.id} (${describeCard(paymentMethod)}) was declined for ${usd(amountCents)}`,
    );
  }
  return { kind: prepayment ? 'prepayment' : 'preauthorization', amountCents, paymentMethod };
}

/** Records the charge for a store being created or changing plans (in its transaction); returns the authorization's id. */
export async function recordCharge(
  tx: Queryable,
  input: { teamId: string; storeId: string; plan: BillingPlan; charge: Charge },
): Promise<string> {
  const id = newId('auth');
  await tx.query(
    `INSERT INTO billing_authorizations (id, team_id, store_id, payment_method_id, product_id, billing_plan_id, kind, amount_cents, state)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [
      id,
      input.teamId,
      input.storeId,
      input.charge.paymentMethod.id,
      input.plan.productId,
      input.plan.id,
      input.charge.kind,
      input.charge.amountCents,
      input.charge.kind === 'prepayment' ? 'paid' : 'authorized',
    ],
  );
  return id;
}

/**
 * Releases a store's authorizations and refunds its prepayments; returns what was released. A plan
 * change releases those of the old plan (`except` the new plan's), or, refused, only the new one's.
 */
export async function releaseCharges(
  tx: Queryable,
  storeId: string,
  which: { only?: string | undefined; except?: string | undefined } = {},
): Promise<Array<{ id: string; state: string; amountCents: number }>> {
  const { rows } = await tx.query<{ id: string; state: string; amount_cents: string }>(
    `UPDATE billing_authorizations SET state = CASE state WHEN 'paid' THEN 'refunded' ELSE 'released' END, updated_at = now()
      WHERE store_id = $1 AND state IN ('authorized', 'paid') AND ($2::text IS NULL OR id = $2) AND ($3::text IS NULL OR id <> $3)
      RETURNING id, state, amount_cents`,
    [storeId, which.only ?? null, which.except ?? null],
  );
  return rows.map((row) => ({ id: row.id, state: row.state, amountCents: Number(row.amount_cents) }));
}

export interface BillingAuthorization {
  id: string;
  storeId: string;
  paymentMethodId: string;
  productId: string;
  billingPlanId: string;
  kind: 'preauthorization' | 'prepayment';
  amountCents: number;
  state: 'authorized' | 'paid' | 'released' | 'refunded';
  createdAt: Date;
}

export async function listAuthorizations(
  db: Queryable,
  teamId: string,
  options: { storeId?: string | undefined } = {},
): Promise<BillingAuthorization[]> {
  const { rows } = await db.query<MappedRow>(
    'SELECT * FROM billing_authorizations WHERE team_id = $1 AND ($2::text IS NULL OR store_id = $2) ORDER BY created_at DESC, id',
    [teamId, options.storeId ?? null],
  );
  return rows.map((row) => ({
    id: row.id,
    storeId: row.store_id,
    paymentMethodId: row.payment_method_id,
    productId: row.product_id,
    billingPlanId: row.billing_plan_id,
    kind: row.kind,
    amountCents: Number(row.amount_cents),
    state: row.state,
    createdAt: row.created_at,
  }));
}
