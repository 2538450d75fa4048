/**
 * Charging invoices: a pending invoice is charged to the team's default card at once, a `notpaid`
 * one again every retry interval (Vercel retries up to 9 times), and one whose retries are spent
 * becomes `overdue`. Each attempt sends its webhook (`paid`, or `notpaid` for every decline). A
 * new default card is what the next attempt uses, so a card change makes it succeed.
 *
 * Charging touches the outside world (the card processor), so each attempt is written down
 * before and after: the claim records the attempt (`started`, with the card) and this node in
 * one transaction; the processor is asked under the attempt's key (`<invoice>:<attempt>`); the
 * outcome is recorded in another transaction, only while the attempt is still `started`. A node
 * killed between the two leaves a started attempt: whoever claims the invoice next (when the
 * claim runs out, or at once when that node's lease has) asks the processor again under the same
 * key and gets the first answer, so an invoice is never charged twice and never lost. Nodes claim
 * invoices with SKIP LOCKED, one at a time each.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database } from '../db/database.ts';
import { type NodeLease, ownerGone } from '../db/node-lease.ts';
import { msUntil, Schedule, untilDue } from '../stores/schedule.ts';
import { chargeCard, type ChargeOutcome } from './card-processor.ts';
import { paymentMethodFor } from './payment-methods.ts';
import { recordInvoiceEvent, toInvoice } from './invoices.ts';

export interface InvoiceChargeOptions {
  lease: NodeLease;
  /** Retries after the first attempt before an invoice is `overdue` (STOREHOUSE_INVOICE_RETRIES). */
  retries: number;
  /** Time between attempts (STOREHOUSE_INVOICE_RETRY_INTERVAL_MS). */
  retryIntervalMs: number;
}

/** How long a claim holds an invoice while its node lives; a dead node's is taken at once. */
const CLAIM_MS = 60_000;

interface Attempt {
  invoiceId: string;
  teamId: string;
  attempt: number;
  paymentMethodId: string | null;
  amountCents: number;
}

export class InvoiceCharges {
  private schedule: Schedule | undefined;

  constructor(
    private readonly db: Database,
    private readonly options: InvoiceChargeOptions,
  ) {}

  /** Charges due invoices in the background until the returned stop is called (it waits for the attempt under way). */
  startHousekeeping(onError: (error: Error) => void): () => Promise<void> {
    // Idle, it looks again every lease period: a node that died mid-charge leaves work nothing wakes this one for.
    this.schedule = new Schedule(() => this.chargeDue(), Math.min(60_000, this.options.lease.leaseMs), onError).start(0);
    return () => this.schedule!.stop();
  }

  /** An invoice became due (a new one): charged now rather than at the next look. */
  wake(): void {
    this.schedule?.wake();
  }

  /** Charges the invoices due, one claim at a time; the ms until the next is due. */
  async chargeDue(): Promise<number | undefined> {
    for (let charged = 0; charged < 100 && !this.schedule?.isStopped; charged++) {
      const attempt = await this.claim();
      if (!attempt) break;
      const outcome = await this.charge(attempt);
      await this.finish(attempt, outcome);
    }
    const { rows } = await this.db.query<{ ms: number | null }>(
      `SELECT ${msUntil('min(next_attempt_at)')} AS ms FROM invoices WHERE next_attempt_at IS NOT NULL AND state IN ('pending', 'notpaid')`,
    );
    return untilDue(rows);
  }

  /**
   * Claims the next due invoice: its started attempt if a node left one (the same number, card and
   * amount), else a new one on the team's default card. Undefined when nothing is due.
   */
  private claim(): Promise<Attempt | undefined> {
    const { lease } = this.options;
    return this.db.transaction(async (tx) => {
      const { rows } = await tx.query(
        `SELECT * FROM invoices
          WHERE next_attempt_at IS NOT NULL AND state IN ('pending', 'notpaid') AND NOT test
            AND (next_attempt_at <= now() OR (charging_node IS NOT NULL AND ${ownerGone('charging_node')}))
          ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED`,
      );
      if (!rows[0]) return undefined;
      const invoice = toInvoice(rows[0]);
      await tx.query('UPDATE invoices SET charging_node = $2, next_attempt_at = now() + make_interval(secs => $3) WHERE id = $1', [
        invoice.id,
        lease.nodeId,
        CLAIM_MS / 1000,
      ]);
      const { rows: left } = await tx.query<{ attempt: number; payment_method_id: string | null; amount_cents: string }>(
        `UPDATE invoice_charges SET node_id = $2 WHERE invoice_id = $1 AND outcome = 'started'
         RETURNING attempt, payment_method_id, amount_cents`,
        [invoice.id, lease.nodeId],
      );
      if (left[0]) {
        return {
          invoiceId: invoice.id,
          teamId: invoice.teamId,
          attempt: left[0].attempt,
          paymentMethodId: left[0].payment_method_id,
          amountCents: Number(left[0].amount_cents),
        };
      }
      const card = await paymentMethodFor(tx, invoice.teamId, undefined);
      const attempt = invoice.attempts + 1;
      await tx.query(
        `INSERT INTO invoice_charges (invoice_id, attempt, payment_method_id, amount_cents, outcome, node_id)
         VALUES ($1, $2, $3, $4, 'started', $5)`,
        [invoice.id, attempt, card?.id ?? null, invoice.totalCents, lease.nodeId],
      );
      return { invoiceId: invoice.id, teamId: invoice.teamId, attempt, paymentMethodId: card?.id ?? null, amountCents: invoice.totalCents };
    });
  }

  /** Asks the processor under the attempt's own key; without a card the attempt declines. */
  private async charge(attempt: Attempt): Promise<ChargeOutcome> {
    if (attempt.paymentMethodId === null) return 'declined';
    return chargeCard(this.db, {
      idempotencyKey: `${attempt.invoiceId}:${attempt.attempt}`,
      teamId: attempt.teamId,
      paymentMethodId: attempt.paymentMethodId,
      amountCents: attempt.amountCents,
    });
  }

  /**
   * Records the outcome, if the attempt is still started (another node that took it over may
   * have recorded the same answer first): `paid`, or `notpaid` with the next attempt scheduled,
   * or `overdue` when that was the last. Its webhooks go in the same transaction.
   */
  private async finish(attempt: Attempt, outcome: ChargeOutcome): Promise<void> {
    const { retries, retryIntervalMs } = this.options;
    const message =
      outcome === 'succeeded'
        ? null
        : attempt.paymentMethodId === null
          ? 'the team has no default payment method'
          : 'the card was declined';
    await this.db.transaction(async (tx) => {
      const { rows: finished } = await tx.query(
        `UPDATE invoice_charges SET outcome = $3, message = $4, finished_at = now()
          WHERE invoice_id = $1 AND attempt = $2 AND outcome = 'started' RETURNING 1`,
        [attempt.invoiceId, attempt.attempt, outcome, message],
      );
      if (!finished[0]) return;
      const spent = attempt.attempt >= 1 + retries;
      const state = outcome === 'succeeded' ? 'paid' : spent ? 'overdue' : 'notpaid';
      const { rows } = await tx.query(
        `UPDATE invoices SET state = $2, attempts = $3, charging_node = NULL, updated_at = now(),
                paid_at = CASE WHEN $2 = 'paid' THEN now() END,
                next_attempt_at = CASE WHEN $2 = 'notpaid' THEN now() + make_interval(secs => $4) END
          WHERE id = $1 RETURNING *`,
        [attempt.invoiceId, state, attempt.attempt, retryIntervalMs / 1000],
      );
      const invoice = toInvoice(rows[0]!);
      await audit(tx, {
        teamId: invoice.teamId,
        actorId: null,
        action: `invoice.${state}`,
        targetType: 'invoice',
        targetId: invoice.id,
        details: { attempt: attempt.attempt, paymentMethodId: attempt.paymentMethodId, ...(message !== null && { reason: message }) },
      });
      if (outcome === 'succeeded') await recordInvoiceEvent(tx, invoice, 'paid');
      else {
        await recordInvoiceEvent(tx, invoice, 'notpaid');
        if (spent) await recordInvoiceEvent(tx, invoice, 'overdue');
      }
    });
  }
}
