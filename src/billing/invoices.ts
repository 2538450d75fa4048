/**
 * Invoices partners submit for subscription plans (docs/partner-api.md §3): checked
 * (invoice-input.ts), kept `pending`, then charged to the team's default card by whichever node
 * claims them (invoice-charges.ts): `paid`, or `notpaid` and retried, `overdue` once the retries
 * are spent. A paid invoice may be refunded, in parts, up to its total. Each change of state
 * records its webhook (`marketplace.invoice.*`, as Vercel sends them) in the transaction that makes it.
 *
 * Test-mode invoices (`test`): `validate` checks only, keeping nothing; `result` keeps the invoice
 * marked `test`, in the state asked for, charging nothing (its webhooks are sent, for the partner
 * to try its handlers).
 */
import { audit } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import { type Database, isUniqueViolation, type MappedRow, type Queryable } from '../db/database.ts';
import { AppError, conflict, type FieldError, notFound, validationError } from '../errors.ts';
import { newId } from '../ids.ts';
import { recordWebhookEvent } from '../webhooks/outbox.ts';
import { dollarsOf } from './dollars.ts';
import { type CheckedInvoice, centsOf, checkInvoice, type InvoiceInput, type TestResult } from './invoice-input.ts';

export type InvoiceState = 'pending' | 'paid' | 'notpaid' | 'overdue' | 'refunded';

export interface Invoice {
  id: string;
  teamId: string;
  installationId: string;
  integrationId: string;
  externalId: string | null;
  invoiceNumber: string;
  invoiceDate: Date;
  periodStart: Date;
  periodEnd: Date;
  memo: string | null;
  items: unknown[];
  discounts: unknown[] | null;
  test: boolean;
  totalCents: number;
  refundTotalCents: number;
  refundReason: string | null;
  state: InvoiceState;
  attempts: number;
  nextAttemptAt: Date | null;
  paidAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
}

/** The installation a partner's token speaks for (MarketplaceApi's PartnerInstallation). */
export interface InvoicingInstallation {
  installationId: string;
  teamId: string;
  integrationId: string;
}

export const toInvoice = (row: MappedRow): Invoice => ({
  id: row.id,
  teamId: row.team_id,
  installationId: row.installation_id,
  integrationId: row.integration_id,
  externalId: row.external_id,
  invoiceNumber: `SH-${String(row.seq).padStart(6, '0')}`,
  invoiceDate: row.invoice_date,
  periodStart: row.period_start,
  periodEnd: row.period_end,
  memo: row.memo,
  items: row.items,
  discounts: row.discounts,
  test: row.test,
  totalCents: Number(row.total_cents),
  refundTotalCents: Number(row.refund_total_cents),
  refundReason: row.refund_reason,
  state: row.state,
  attempts: row.attempts,
  nextAttemptAt: row.next_attempt_at,
  paidAt: row.paid_at,
  createdAt: row.created_at,
  updatedAt: row.updated_at,
});

/** An invoice as GET /v1/installations/{id}/billing/invoices/{invoiceId} answers it (the SDK's GetInvoiceResponseBody). */
export function invoiceJson(invoice: Invoice) {
  return {
    invoiceId: invoice.id,
    ...(invoice.externalId !== null && { externalId: invoice.externalId }),
    invoiceNumber: invoice.invoiceNumber,
    invoiceDate: invoice.invoiceDate.toISOString(),
    period: { start: invoice.periodStart.toISOString(), end: invoice.periodEnd.toISOString() },
    items: invoice.items,
    ...(invoice.discounts !== null && { discounts: invoice.discounts }),
    ...(invoice.memo !== null && { memo: invoice.memo }),
    state: invoice.state,
    total: dollarsOf(invoice.totalCents),
    ...(invoice.refundTotalCents > 0 && { refundTotal: dollarsOf(invoice.refundTotalCents) }),
    ...(invoice.refundReason !== null && { refundReason: invoice.refundReason }),
    ...(invoice.paidAt !== null && { paidAt: invoice.paidAt.toISOString() }),
    ...(invoice.test && { test: true }),
    created: invoice.createdAt.toISOString(),
    updated: invoice.updatedAt.toISOString(),
  };
}

export type InvoiceEvent = 'created' | 'paid' | 'notpaid' | 'overdue' | 'refunded';

/**
 * Records `marketplace.invoice.<event>` in `tx`, the transaction of the change, with Vercel's
 * payload (installation, invoice and external ids, period, date, total; `refunded` adds the
 * amount and reason). Nothing is recorded for an integration without a webhook URL.
 */
export async function recordInvoiceEvent(
  tx: Queryable,
  invoice: Invoice,
  event: InvoiceEvent,
  refund?: { amountCents: number; reason: string },
): Promise<void> {
  await recordWebhookEvent(tx, {
    integrationId: invoice.integrationId,
    type: `marketplace.invoice.${event}`,
    teamId: invoice.teamId,
    installationId: invoice.installationId,
    payload: {
      installationId: invoice.installationId,
      invoiceId: invoice.id,
      externalInvoiceId: invoice.externalId,
      period: { start: invoice.periodStart.toISOString(), end: invoice.periodEnd.toISOString() },
      invoiceDate: invoice.invoiceDate.toISOString(),
      invoiceTotal: dollarsOf(invoice.totalCents),
      ...(refund && { amount: dollarsOf(refund.amountCents), reason: refund.reason }),
    },
  });
}

/** The state a test invoice is kept in, and the events that take it there after `created`. */
const TEST_OUTCOMES: Record<TestResult, InvoiceEvent[]> = { paid: ['paid'], notpaid: ['notpaid'], overdue: ['notpaid', 'overdue'] };

export class Invoices {
  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    /** Wakes the charging of due invoices (InvoiceCharges), so a new one is charged at once. */
    private readonly charges: { wake(): void },
  ) {}

  /**
   * Submit Invoice: a bad invoice is a 400 naming its fields (`validationErrors` instead, in a
   * `test.validate` submission, which keeps nothing); a resource not of this installation a 404; a
   * resource already billed on the plan for an overlapping period, or an `externalId` already
   * used, a 409.
   */
  async submit(
    installation: InvoicingInstallation,
    input: InvoiceInput,
  ): Promise<{ invoiceId?: string; test?: true; validationErrors?: string[] }> {
    const { fields, invoice } = await checkInvoice(this.db, this.catalog(), installation, input);
    if (input.test?.validate === true) {
      const refusals = invoice ? [...fields, ...(await this.conflicts(this.db, installation, invoice))] : fields;
      return { test: true, ...(refusals.length > 0 && { validationErrors: refusals.map((f) => `${f.key}: ${f.message}`) }) };
    }
    if (!invoice) throw validationError(fields);
    const testResult = input.test?.result;
    const id = newId('inv');
    try {
      await this.db.transaction(async (tx) => {
        // One submission of the installation's at a time: the overlap check below is then exact.
        await tx.query('SELECT 1 FROM installations WHERE id = $1 FOR NO KEY UPDATE', [installation.installationId]);
        if (testResult === undefined) {
          const [refusal] = await this.conflicts(tx, installation, invoice);
          if (refusal) throw conflict('conflict', `${refusal.key}: ${refusal.message}`);
        }
        // Nothing to charge (a test, or a total of $0): decided now. Else pending, due at once.
        const state: InvoiceState = testResult ?? (invoice.totalCents === 0 ? 'paid' : 'pending');
        const { rows } = await tx.query(
          `INSERT INTO invoices (id, team_id, installation_id, integration_id, external_id, invoice_date, period_start, period_end, memo,
                                 items, discounts, final, test, total_cents, state, next_attempt_at, paid_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,
                   CASE WHEN $15 = 'pending' THEN now() END, CASE WHEN $15 = 'paid' THEN now() END)
           RETURNING *`,
          [
            id,
            installation.teamId,
            installation.installationId,
            installation.integrationId,
            input.externalId ?? null,
            invoice.invoiceDate,
            invoice.periodStart,
            invoice.periodEnd,
            input.memo ?? null,
            JSON.stringify(input.items),
            input.discounts === undefined ? null : JSON.stringify(input.discounts),
            input.final ?? false,
            testResult !== undefined,
            invoice.totalCents,
            state,
          ],
        );
        const kept = toInvoice(rows[0]!);
        // The body as sent, beside the other reports (the partner's history of what it submitted).
        await tx.query("INSERT INTO partner_reports (id, installation_id, kind, body, reported_at) VALUES ($1, $2, 'invoice', $3, $4)", [
          id,
          installation.installationId,
          JSON.stringify(input),
          invoice.invoiceDate,
        ]);
        if (testResult === undefined) await this.recordStretches(tx, installation, id, invoice);
        await recordInvoiceEvent(tx, kept, 'created');
        const outcomes: InvoiceEvent[] = testResult !== undefined ? TEST_OUTCOMES[testResult] : state === 'paid' ? ['paid'] : [];
        for (const event of outcomes) await recordInvoiceEvent(tx, kept, event);
        await audit(tx, {
          teamId: installation.teamId,
          actorId: null,
          action: 'invoice.submitted',
          targetType: 'invoice',
          targetId: id,
          details: { installationId: installation.installationId, total: dollarsOf(invoice.totalCents), state, test: kept.test },
        });
      });
    } catch (error) {
      // Another submission took the externalId between the check and the insert (a second node).
      if (isUniqueViolation(error))
        throw conflict('conflict', `externalId: ${input.externalId} is already an invoice of this installation`);
      throw error;
    }
    this.charges.wake();
    return { invoiceId: id, ...(testResult !== undefined && { test: true as const }) };
  }

  /** What makes a checked invoice a duplicate: an `externalId` already used, a resource already billed on the plan for an overlapping time. */
  private async conflicts(db: Queryable, installation: InvoicingInstallation, invoice: CheckedInvoice): Promise<FieldError[]> {
    const found: FieldError[] = [];
    if (invoice.input.externalId !== undefined) {
      const { rows } = await db.query<{ id: string }>(
        'SELECT id FROM invoices WHERE installation_id = $1 AND external_id = $2 AND NOT test',
        [installation.installationId, invoice.input.externalId],
      );
      if (rows[0]) found.push({ key: 'externalId', message: `${invoice.input.externalId} is already the invoice ${rows[0].id}` });
    }
    for (const stretch of invoice.stretches) {
      if (stretch.resourceId === null) continue;
      const { rows } = await db.query<{ invoice_id: string }>(
        `SELECT invoice_id FROM invoice_resource_periods
          WHERE installation_id = $1 AND resource_id = $2 AND billing_plan_id = $3 AND period_start < $5 AND period_end > $4 LIMIT 1`,
        [installation.installationId, stretch.resourceId, stretch.billingPlanId, stretch.start, stretch.end],
      );
      if (rows[0]) {
        found.push({
          key: `${stretch.key}.resourceId`,
          message: `the resource ${stretch.resourceId} is already billed on ${stretch.billingPlanId} for this period, by the invoice ${rows[0].invoice_id} (one invoice per resource per period per plan)`,
        });
      }
    }
    return found;
  }

  private async recordStretches(tx: Queryable, installation: InvoicingInstallation, id: string, invoice: CheckedInvoice): Promise<void> {
    for (const stretch of invoice.stretches) {
      if (stretch.resourceId === null) continue;
      await tx.query(
        `INSERT INTO invoice_resource_periods (invoice_id, installation_id, resource_id, billing_plan_id, period_start, period_end)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [id, installation.installationId, stretch.resourceId, stretch.billingPlanId, stretch.start, stretch.end],
      );
    }
  }

  /** An invoice of the installation; 404 for any other (another installation's included). */
  async get(installation: InvoicingInstallation, invoiceId: string): Promise<Invoice> {
    const { rows } = await this.db.query('SELECT * FROM invoices WHERE id = $1 AND installation_id = $2', [
      invoiceId,
      installation.installationId,
    ]);
    if (!rows[0]) throw notFound('invoice', invoiceId);
    return toInvoice(rows[0]);
  }

  /**
   * Refunds part or all of a paid invoice: `total` more than $0 and no more than what is left
   * unrefunded (400 otherwise, naming it); an invoice not paid is a 409. It becomes `refunded`.
   */
  async refund(installation: InvoicingInstallation, invoiceId: string, request: { total: string; reason: string }): Promise<void> {
    const amountCents = centsOf(request.total);
    if (amountCents === undefined) {
      throw validationError([{ key: 'total', message: `"${request.total}" is not a dollar amount (digits, up to 2 decimals)` }]);
    }
    if (amountCents === 0) throw validationError([{ key: 'total', message: 'must be more than 0.00' }]);
    await this.db.transaction(async (tx) => {
      const { rows } = await tx.query('SELECT * FROM invoices WHERE id = $1 AND installation_id = $2 FOR UPDATE', [
        invoiceId,
        installation.installationId,
      ]);
      if (!rows[0]) throw notFound('invoice', invoiceId);
      const invoice = toInvoice(rows[0]);
      if (invoice.state !== 'paid' && invoice.state !== 'refunded') {
        throw new AppError(409, 'invoice_not_paid', `The invoice ${invoiceId} is ${invoice.state}: only a paid invoice can be refunded`);
      }
      const left = invoice.totalCents - invoice.refundTotalCents;
      if (amountCents > left) {
        throw validationError([
          {
            key: 'total',
            message: `${request.total} is more than what is left to refund of the invoice: ${dollarsOf(left)} of its ${dollarsOf(invoice.totalCents)}`,
          },
        ]);
      }
      const { rows: updated } = await tx.query(
        `UPDATE invoices SET refund_total_cents = refund_total_cents + $2, refund_reason = $3, state = 'refunded', updated_at = now()
          WHERE id = $1 RETURNING *`,
        [invoiceId, amountCents, request.reason],
      );
      await tx.query(
        `INSERT INTO invoice_refunds (invoice_id, number, amount_cents, reason)
         SELECT $1, coalesce(max(number), 0) + 1, $2, $3 FROM invoice_refunds WHERE invoice_id = $1`,
        [invoiceId, amountCents, request.reason],
      );
      await recordInvoiceEvent(tx, toInvoice(updated[0]!), 'refunded', { amountCents, reason: request.reason });
      await audit(tx, {
        teamId: invoice.teamId,
        actorId: null,
        action: 'invoice.refunded',
        targetType: 'invoice',
        targetId: invoiceId,
        details: { amount: dollarsOf(amountCents), reason: request.reason },
      });
    });
  }
}

/** The team's invoices, newest first (`before`: an invoice's number, for the next page). */
export async function listTeamInvoices(
  db: Queryable,
  teamId: string,
  options: { installationId?: string | undefined; limit: number; before?: number | undefined },
): Promise<{ invoices: Invoice[]; next: number | null }> {
  const { rows } = await db.query(
    `SELECT * FROM invoices WHERE team_id = $1 AND ($2::text IS NULL OR installation_id = $2) AND ($3::bigint IS NULL OR seq < $3)
      ORDER BY seq DESC LIMIT $4`,
    [teamId, options.installationId ?? null, options.before ?? null, options.limit + 1],
  );
  const more = rows.length > options.limit;
  const page = (more ? rows.slice(0, options.limit) : rows).map(toInvoice);
  return { invoices: page, next: more ? Number(rows[options.limit - 1]!.seq) : null };
}

/** A team's invoice with its charge attempts and refunds; 404 for another team's. */
export async function teamInvoice(db: Queryable, teamId: string, invoiceId: string) {
  const { rows } = await db.query('SELECT * FROM invoices WHERE id = $1 AND team_id = $2', [invoiceId, teamId]);
  if (!rows[0]) throw notFound('invoice', invoiceId);
  const { rows: charges } = await db.query<MappedRow>('SELECT * FROM invoice_charges WHERE invoice_id = $1 ORDER BY attempt', [invoiceId]);
  const { rows: refunds } = await db.query<MappedRow>('SELECT * FROM invoice_refunds WHERE invoice_id = $1 ORDER BY number', [invoiceId]);
  return {
    invoice: toInvoice(rows[0]),
    charges: charges.map((row) => ({
      attempt: row.attempt as number,
      paymentMethodId: row.payment_method_id as string | null,
      amount: dollarsOf(Number(row.amount_cents)),
      outcome: row.outcome as string,
      ...(row.message !== null && { message: row.message as string }),
      startedAt: (row.started_at as Date).getTime(),
      ...(row.finished_at !== null && { finishedAt: (row.finished_at as Date).getTime() }),
    })),
    refunds: refunds.map((row) => ({
      amount: dollarsOf(Number(row.amount_cents)),
      reason: row.reason as string,
      createdAt: (row.created_at as Date).getTime(),
    })),
  };
}
