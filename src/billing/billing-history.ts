/**
 * What partners report of an installation's billing, kept as a history: every billing-data report
 * (POST /v1/installations/{id}/billing: interim charges and usage) and every prepayment balance
 * report (POST .../billing/balance), as sent, with the time the partner gave (`timestamp`). A
 * store's current balance is still kept on the store (`prepaid_balance_cents`), as the API shows it.
 *
 * A balance that falls below the threshold the team set for the store (prepayment_thresholds:
 * `vercel integration resource create-threshold`) triggers a top-up: the threshold's purchase
 * amount, charged to the team's default card, unless the purchases this month would pass the
 * threshold's most per period. Once per crossing: only a report that takes the balance from at
 * or above the minimum (or from nothing) to below it triggers; reports while it stays below do
 * not. Every trigger is recorded (balance_top_ups) with what came of it.
 *
 * Not done as Vercel does: Vercel then calls the partner's Provision Purchase
 * (`POST /v1/installations/{id}/billing/provision` with the purchase's invoice), and the partner
 * credits the balance; Storehouse charges and records the purchase but does not call the partner,
 * so the balance rises only when the partner reports it.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database, MappedRow, Queryable } from '../db/database.ts';
import { type FieldError, validationError } from '../errors.ts';
import { newId } from '../ids.ts';
import { chargeCard } from './card-processor.ts';
import { time } from './invoice-input.ts';
import { paymentMethodFor } from './payment-methods.ts';

export interface ReportingInstallation {
  installationId: string;
  teamId: string;
}

interface BalanceInput {
  resourceId?: string;
  credit?: string;
  nameLabel?: string;
  currencyValueInCents: number;
}

/**
 * A report's `timestamp` as a Date: PostgreSQL would read the string by its own rules (it has no
 * year 0000, which the schema's format allows), and refuse some with a message naming no field.
 */
function reportTime(timestamp: string): Date {
  const parsed = time(timestamp);
  if (!parsed) throw validationError([{ key: 'timestamp', message: 'must be an ISO 8601 date-time' }]);
  return parsed;
}

export type TopUpOutcome = 'purchased' | 'declined' | 'no_payment_method' | 'over_period_maximum';

export class BillingHistory {
  constructor(private readonly db: Database) {}

  /**
   * Keeps a billing-data report; its id. Its period must run forwards with `eod` inside it, as
   * Vercel requires (400 naming the field otherwise, keeping nothing).
   */
  async recordBilling(
    installation: ReportingInstallation,
    body: Record<string, unknown> & { timestamp: string; eod: string; period: { start: string; end: string } },
  ): Promise<string> {
    const [start, end, eod] = [time(body.period.start), time(body.period.end), time(body.eod)];
    const fields: FieldError[] = [];
    if (!start) fields.push({ key: 'period.start', message: 'must be an ISO 8601 date-time' });
    if (!end) fields.push({ key: 'period.end', message: 'must be an ISO 8601 date-time' });
    if (!eod) fields.push({ key: 'eod', message: 'must be an ISO 8601 date-time' });
    if (start && end && start >= end) fields.push({ key: 'period.end', message: 'must be after period.start' });
    else if (start && end && eod && (eod < start || eod > end)) {
      fields.push({ key: 'eod', message: `must be inside the period (${body.period.start} to ${body.period.end})` });
    }
    if (fields.length > 0) throw validationError(fields);
    const id = newId('rpt');
    await this.db.transaction(async (tx) => {
      await this.keep(tx, installation, id, 'billing', body);
    });
    return id;
  }

  /** Keeps a balance report, updates the stores' balances, and tops up those that fell below their threshold; its id. */
  async recordBalances(
    installation: ReportingInstallation,
    body: { timestamp: string; balances: BalanceInput[] } & Record<string, unknown>,
  ): Promise<string> {
    const reportedAt = reportTime(body.timestamp);
    const id = newId('rpt');
    await this.db.transaction(async (tx) => {
      await this.keep(tx, installation, id, 'balance', body);
      for (const balance of body.balances) {
        const cents = Math.round(balance.currencyValueInCents);
        // A resource's balance is shown with its store (the installation's own has no store).
        const store =
          balance.resourceId === undefined
            ? undefined
            : (
                await tx.query<{ id: string; prepaid_balance_cents: string | null }>(
                  'SELECT id, prepaid_balance_cents FROM stores WHERE installation_id = $1 AND external_resource_id = $2 FOR UPDATE',
                  [installation.installationId, balance.resourceId],
                )
              ).rows[0];
        await tx.query(
          `INSERT INTO balance_history (report_id, installation_id, resource_id, store_id, currency_value_cents, credit, name_label, reported_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
          [
            id,
            installation.installationId,
            balance.resourceId ?? null,
            store?.id ?? null,
            cents,
            balance.credit ?? null,
            balance.nameLabel ?? null,
            reportedAt,
          ],
        );
        if (!store) continue;
        await tx.query('UPDATE stores SET prepaid_balance_cents = $2, updated_at = now() WHERE id = $1', [store.id, cents]);
        const before = store.prepaid_balance_cents === null ? null : Number(store.prepaid_balance_cents);
        await this.topUpIfCrossed(tx, installation, id, store.id, before, cents);
      }
    });
    return id;
  }

  private async keep(
    tx: Queryable,
    installation: ReportingInstallation,
    id: string,
    kind: 'billing' | 'balance',
    body: { timestamp: string },
  ) {
    await tx.query('INSERT INTO partner_reports (id, installation_id, kind, body, reported_at) VALUES ($1, $2, $3, $4, $5)', [
      id,
      installation.installationId,
      kind,
      JSON.stringify(body),
      reportTime(body.timestamp),
    ]);
    await audit(tx, {
      teamId: installation.teamId,
      actorId: null,
      action: `partner.${kind}`,
      targetType: 'installation',
      targetId: installation.installationId,
      details: { reportId: id },
    });
  }

  /** The top-up a threshold asks for when this report took the store's balance below its minimum. */
  private async topUpIfCrossed(
    tx: Queryable,
    installation: ReportingInstallation,
    reportId: string,
    storeId: string,
    before: number | null,
    after: number,
  ): Promise<void> {
    const { rows } = await tx.query<{ minimum: string; purchase: string; maximum: string | null }>(
      `SELECT minimum_amount_cents AS minimum, purchase_amount_cents AS purchase, maximum_amount_per_period_cents AS maximum
         FROM prepayment_thresholds WHERE store_id = $1`,
      [storeId],
    );
    const threshold = rows[0];
    if (!threshold) return;
    const minimum = Number(threshold.minimum);
    const amount = Number(threshold.purchase);
    if (!(after < minimum && (before === null || before >= minimum))) return;
    // The period is the calendar month (UTC), as Vercel's "auto-purchases per month".
    const { rows: spent } = await tx.query<{ cents: string }>(
      `SELECT coalesce(sum(amount_cents), 0) AS cents FROM balance_top_ups
        WHERE store_id = $1 AND outcome = 'purchased' AND created_at >= date_trunc('month', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'`,
      [storeId],
    );
    const id = newId('topup');
    const card = await paymentMethodFor(tx, installation.teamId, undefined);
    let outcome: TopUpOutcome;
    if (threshold.maximum !== null && Number(spent[0]!.cents) + amount > Number(threshold.maximum)) outcome = 'over_period_maximum';
    else if (!card) outcome = 'no_payment_method';
    else {
      // The test-mode processor's ledger is in this database: the charge commits with the report
      // that triggered it, or neither does (a real processor would need invoice-charges.ts's
      // record-before-and-after instead).
      const charged = await chargeCard(tx, {
        idempotencyKey: id,
        teamId: installation.teamId,
        paymentMethodId: card.id,
        amountCents: amount,
      });
      outcome = charged === 'succeeded' ? 'purchased' : 'declined';
    }
    await tx.query(
      `INSERT INTO balance_top_ups (id, team_id, installation_id, store_id, report_id, balance_cents, minimum_cents, amount_cents,
                                    payment_method_id, outcome)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
      [id, installation.teamId, installation.installationId, storeId, reportId, after, minimum, amount, card?.id ?? null, outcome],
    );
    await audit(tx, {
      teamId: installation.teamId,
      actorId: null,
      action: 'store.balance_top_up',
      targetType: 'store',
      targetId: storeId,
      details: { topUpId: id, balanceInCents: after, minimumAmountInCents: minimum, purchaseAmountInCents: amount, outcome },
    });
  }
}

const iso = (value: Date | null) => (value === null ? null : value.toISOString());

/** A team's billing-data reports, newest first: what each partner sent (interim charges and usage), with when. */
export async function billingDataHistory(
  db: Queryable,
  teamId: string,
  options: { installationId?: string | undefined; limit: number },
): Promise<Array<Record<string, unknown>>> {
  const { rows } = await db.query<MappedRow>(
    `SELECT r.id, r.installation_id, r.body, r.reported_at, r.created_at FROM partner_reports r
       JOIN installations i ON i.id = r.installation_id
      WHERE i.team_id = $1 AND r.kind = 'billing' AND ($2::text IS NULL OR r.installation_id = $2)
      ORDER BY r.created_at DESC, r.id LIMIT $3`,
    [teamId, options.installationId ?? null, options.limit],
  );
  return rows.map((row) => ({
    id: row.id,
    installationId: row.installation_id,
    timestamp: iso(row.reported_at),
    receivedAt: row.created_at.getTime(),
    period: row.body.period,
    eod: row.body.eod,
    billing: row.body.billing,
    usage: row.body.usage,
  }));
}

/** A team's balances over time, newest first, and the top-ups its thresholds triggered. */
export async function balanceHistory(
  db: Queryable,
  teamId: string,
  options: { installationId?: string | undefined; limit: number },
): Promise<{ balances: Array<Record<string, unknown>>; topUps: Array<Record<string, unknown>> }> {
  const { rows } = await db.query<MappedRow>(
    `SELECT b.*, r.id AS report_id FROM balance_history b JOIN partner_reports r ON r.id = b.report_id
       JOIN installations i ON i.id = b.installation_id
      WHERE i.team_id = $1 AND ($2::text IS NULL OR b.installation_id = $2)
      ORDER BY b.created_at DESC, b.report_id LIMIT $3`,
    [teamId, options.installationId ?? null, options.limit],
  );
  const { rows: topUps } = await db.query<MappedRow>(
    `SELECT * FROM balance_top_ups WHERE team_id = $1 AND ($2::text IS NULL OR installation_id = $2) ORDER BY created_at DESC, id LIMIT $3`,
    [teamId, options.installationId ?? null, options.limit],
  );
  return {
    balances: rows.map((row) => ({
      reportId: row.report_id,
      installationId: row.installation_id,
      resourceId: row.resource_id,
      storeId: row.store_id,
      currencyValueInCents: Number(row.currency_value_cents),
      ...(row.credit !== null && { credit: row.credit }),
      ...(row.name_label !== null && { nameLabel: row.name_label }),
      timestamp: row.reported_at.toISOString(),
      receivedAt: row.created_at.getTime(),
    })),
    topUps: topUps.map((row) => ({
      id: row.id,
      installationId: row.installation_id,
      storeId: row.store_id,
      reportId: row.report_id,
      balanceInCents: Number(row.balance_cents),
      minimumAmountInCents: Number(row.minimum_cents),
      purchaseAmountInCents: Number(row.amount_cents),
      paymentMethodId: row.payment_method_id,
      outcome: row.outcome,
      createdAt: row.created_at.getTime(),
    })),
  };
}
