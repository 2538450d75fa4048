/**
 * Payment methods: test cards, as a payment processor's test mode has them. A card number from
 * the table below gives a card that always succeeds or always declines; only its brand and last
 * four digits are kept. Team owners and billing members manage them.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { AppError, badRequest, forbidden, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import type { Actor } from '../tenancy/access.ts';

export type CardBehavior = 'succeed' | 'decline';

export interface PaymentMethod {
  id: string;
  teamId: string;
  type: 'card';
  brand: string;
  last4: string;
  behavior: CardBehavior;
  isDefault: boolean;
  createdAt: Date;
}

/** Test card numbers, after the ones card processors publish for their test modes. */
const TEST_CARDS: Record<string, { brand: string; behavior: CardBehavior }> = {
  '4242424242424242': { brand: 'visa', behavior: 'succeed' },
  '5555555555554444': { brand: 'mastercard', behavior: 'succeed' },
  '378282246310005': { brand: 'amex', behavior: 'succeed' },
  '4000000000000002': { brand: 'visa', behavior: 'decline' },
  '4000000000009995': { brand: 'visa', behavior: 'decline' },
};

const toPaymentMethod = (row: MappedRow): PaymentMethod => ({
  id: row.id,
  teamId: row.team_id,
  type: 'card',
  brand: row.brand,
  last4: row.last4,
  behavior: row.behavior,
  isDefault: row.is_default,
  createdAt: row.created_at,
});

/**
 * Who may see and change a team's money (its payment methods, billing authorizations, invoices):
 * its owners and billing members. `doing` names what was refused, for the 403.
 */
export function assertBillingManager(actor: Actor, doing = 'manage its payment methods'): void {
  if (actor.role !== 'OWNER' && actor.role !== 'BILLING') {
    throw forbidden(`Only the team's owners and billing members may ${doing}`);
  }
}

export const describeCard = (method: PaymentMethod) => `${method.brand} ending in ${method.last4}`;

export async function listPaymentMethods(db: Queryable, teamId: string): Promise<PaymentMethod[]> {
  const { rows } = await db.query('SELECT * FROM payment_methods WHERE team_id = $1 AND removed_at IS NULL ORDER BY created_at, id', [
    teamId,
  ]);
  return rows.map(toPaymentMethod);
}

/**
 * The payment method a paid store is billed to: the one named (it must be the team's and not
 * removed), else the team's default; undefined when the team has none.
 */
export async function paymentMethodFor(db: Queryable, teamId: string, id: string | undefined): Promise<PaymentMethod | undefined> {
  const { rows } =
    id === undefined
      ? await db.query('SELECT * FROM payment_methods WHERE team_id = $1 AND is_default AND removed_at IS NULL', [teamId])
      : await db.query('SELECT * FROM payment_methods WHERE id = $1 AND team_id = $2 AND removed_at IS NULL', [id, teamId]);
  if (!rows[0]) {
    if (id !== undefined) throw new AppError(400, 'invalid_payment_method', `The payment method ${id} is not one of this team's`);
    return undefined;
  }
  return toPaymentMethod(rows[0]);
}

export interface NewPaymentMethod {
  /** A test card number (see TEST_CARDS). */
  cardNumber: string;
  /** Make it the team's default; the team's first card is its default anyway. */
  makeDefault?: boolean | undefined;
}

/** Who changes a team's payment methods: a billing manager of the team (checked by the caller), or the operator (no user). */
export interface BillingChange {
  teamId: string;
  actorId: string | null;
}

export async function addPaymentMethod(db: Database, by: BillingChange, input: NewPaymentMethod): Promise<PaymentMethod> {
  const number = input.cardNumber.replace(/[\s-]/g, '');
  const card = TEST_CARDS[number];
  if (!card) {
    throw badRequest(
      `Unknown test card number. Use one of: ${Object.entries(TEST_CARDS)
        .map(([n, c]) => `${n} (${c.brand}, ${c.behavior === 'succeed' ? 'always succeeds' : 'always declines'})`)
        .join(', ')}`,
    );
  }
  return db.transaction(async (tx) => {
    await tx.query('SELECT 1 FROM teams WHERE id = $1 FOR NO KEY UPDATE', [by.teamId]);
    const { rows: existing } = await tx.query('SELECT 1 FROM payment_methods WHERE team_id = $1 AND is_default AND removed_at IS NULL', [
      by.teamId,
    ]);
    const makeDefault = input.makeDefault === true || existing.length === 0;
    if (makeDefault) await tx.query('UPDATE payment_methods SET is_default = false WHERE team_id = $1 AND is_default', [by.teamId]);
    const { rows } = await tx.query(
      'INSERT INTO payment_methods (id, team_id, brand, last4, behavior, is_default) VALUES ($1, $2, $3, $4, $5, $6) RETURNING *',
      [newId('pm'), by.teamId, card.brand, number.slice(-4), card.behavior, makeDefault],
    );
    const method = toPaymentMethod(rows[0]!);
    await audit(tx, {
      teamId: by.teamId,
      actorId: by.actorId,
      action: 'payment_method.added',
      targetType: 'payment_method',
      targetId: method.id,
      details: { brand: method.brand, last4: method.last4, default: method.isDefault },
    });
    return method;
  });
}

async function lockedMethod(tx: Queryable, teamId: string, id: string): Promise<PaymentMethod> {
  await tx.query('SELECT 1 FROM teams WHERE id = $1 FOR NO KEY UPDATE', [teamId]);
  const { rows } = await tx.query('SELECT * FROM payment_methods WHERE id = $1 AND team_id = $2 AND removed_at IS NULL', [id, teamId]);
  if (!rows[0]) throw notFound('payment method', id);
  return toPaymentMethod(rows[0]);
}

export async function setDefaultPaymentMethod(db: Database, by: BillingChange, id: string): Promise<PaymentMethod> {
  return db.transaction(async (tx) => {
    const method = await lockedMethod(tx, by.teamId, id);
    if (method.isDefault) return method;
    await tx.query('UPDATE payment_methods SET is_default = false WHERE team_id = $1 AND is_default', [by.teamId]);
    await tx.query('UPDATE payment_methods SET is_default = true WHERE id = $1', [id]);
    await audit(tx, {
      teamId: by.teamId,
      actorId: by.actorId,
      action: 'payment_method.made_default',
      targetType: 'payment_method',
      targetId: id,
    });
    return { ...method, isDefault: true };
  });
}

/** Removes a card; stores already billed to it keep their records. */
export async function removePaymentMethod(db: Database, by: BillingChange, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    await lockedMethod(tx, by.teamId, id);
    await tx.query('UPDATE payment_methods SET removed_at = now(), is_default = false WHERE id = $1', [id]);
    await audit(tx, {
      teamId: by.teamId,
      actorId: by.actorId,
      action: 'payment_method.removed',
      targetType: 'payment_method',
      targetId: id,
    });
  });
}
