/**
 * The test-mode card processor invoices and top-ups are charged through. A real processor is a
 * server Storehouse does not run, which keeps its own record of what it charged under each
 * idempotency key; this one keeps the same record (card_charges), so callers are written as
 * against a real one: they record their attempt before asking, ask under a key of the attempt's
 * own, and record the answer after. Asked again under a key it already charged, it answers what
 * it did then, and charges nothing more.
 *
 * The card decides the outcome (payment-methods.ts: numbers that always succeed or always
 * decline); a card removed since the attempt began declines.
 */
import type { Queryable } from '../db/database.ts';

export type ChargeOutcome = 'succeeded' | 'declined';

export async function chargeCard(
  db: Queryable,
  charge: { idempotencyKey: string; teamId: string; paymentMethodId: string; amountCents: number },
): Promise<ChargeOutcome> {
  // One statement: a repeat under the key inserts nothing and reads what the first one decided.
  const { rows } = await db.query<{ outcome: ChargeOutcome }>(
    `WITH charged AS (
       INSERT INTO card_charges (idempotency_key, team_id, payment_method_id, amount_cents, outcome)
       SELECT $1, $2, id, $4, CASE WHEN behavior = 'succeed' AND removed_at IS NULL THEN 'succeeded' ELSE 'declined' END
         FROM payment_methods WHERE id = $3 AND team_id = $2
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING outcome)
     SELECT outcome FROM charged UNION ALL SELECT outcome FROM card_charges WHERE idempotency_key = $1`,
    [charge.idempotencyKey, charge.teamId, charge.paymentMethodId, charge.amountCents],
  );
  if (rows[0]) return rows[0].outcome;
  // A concurrent charge under the key committed after this statement's snapshot: read it now.
  const { rows: again } = await db.query<{ outcome: ChargeOutcome }>('SELECT outcome FROM card_charges WHERE idempotency_key = $1', [
    charge.idempotencyKey,
  ]);
  // No card of the team's by that id (it cannot be: the caller read it) declines.
  return again[0]?.outcome ?? 'declined';
}
