/**
 * What the team is billed through its installations, as partners reported it and Storehouse
 * charged it (src/http/routes/team-billing.ts): invoices with their charge attempts and refunds,
 * for the team's owners and billing members.
 */
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import { Show, formatDate, useLoad } from '../ui.tsx';
import { type IntegrationNames, PAGE, day, dollars, loadPages } from './billing-lists.ts';

interface InvoiceLine {
  name?: string;
  details?: string;
  resourceId?: string;
  billingPlanId?: string;
  price?: string;
  quantity?: number;
  units?: string;
  total?: string;
  amount?: string;
}

interface Invoice {
  invoiceId: string;
  installationId: string;
  externalId?: string;
  invoiceNumber?: string;
  invoiceDate: string;
  period: { start: string; end: string };
  items: InvoiceLine[];
  discounts?: InvoiceLine[];
  memo?: string;
  state: 'pending' | 'paid' | 'notpaid' | 'overdue' | 'refunded';
  total: string;
  refundTotal?: string;
  refundReason?: string;
  paidAt?: string;
  test?: boolean;
}

interface InvoiceDetail extends Invoice {
  charges: Array<{ attempt: number; paymentMethodId: string | null; amount: string; outcome: string; message?: string; startedAt: number }>;
  refunds: Array<{ amount: string; reason: string; createdAt: number }>;
}

const STATE_LABELS: Record<Invoice['state'], string> = {
  pending: 'pending',
  paid: 'paid',
  notpaid: 'not paid',
  overdue: 'overdue',
  refunded: 'refunded',
};
const STATE_TONES: Record<Invoice['state'], string> = { pending: 'busy', paid: 'ok', notpaid: 'bad', overdue: 'bad', refunded: 'busy' };
/** The resources an invoice's lines are for (most invoices have one). */
const resourcesOf = (invoice: Invoice) => [...new Set(invoice.items.map((item) => item.resourceId).filter(Boolean))].join(', ');

export function Invoices({ names }: { names: IntegrationNames }) {
  const { team } = useSession();
  const [pages, setPages] = useState(1);
  const invoices = useLoad(
    () =>
      loadPages(
        (before) =>
          api
            .get<{ invoices: Invoice[]; next: number | null }>(`/_storehouse/teams/${encodeURIComponent(team.id)}/invoices`, {
              noTeam: true,
              query: { limit: PAGE, before },
            })
            .then((body) => ({ items: body.invoices, next: body.next })),
        pages,
      ),
    [team.id, pages],
  );
  const [open, setOpen] = useState<string>();
  return (
    <section aria-labelledby="invoices-title">
      <h2 id="invoices-title">Invoices</h2>
      <Show loaded={invoices} what="invoices">
        {({ items: list, more }) =>
          list.length === 0 ? (
            <p class="muted">No invoice yet.</p>
          ) : (
            <>
              <div class="table-wrap">
                <table aria-labelledby="invoices-title">
                  <thead>
                    <tr>
                      <th scope="col">Invoice</th>
                      <th scope="col">State</th>
                      <th scope="col">Total</th>
                      <th scope="col">Period</th>
                      <th scope="col">Integration</th>
                      <th scope="col">Resource</th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((invoice) => (
                      <InvoiceRow
                        key={invoice.invoiceId}
                        invoice={invoice}
                        integration={names.installation(invoice.installationId)}
                        open={open === invoice.invoiceId}
                        toggle={() => setOpen(open === invoice.invoiceId ? undefined : invoice.invoiceId)}
                      />
                    ))}
                  </tbody>
                </table>
              </div>
              {more && (
                <button type="button" disabled={invoices.loading} onClick={() => setPages(pages + 1)}>
                  Show older invoices
                </button>
              )}
            </>
          )
        }
      </Show>
    </section>
  );
}

function InvoiceRow(props: { invoice: Invoice; integration: string; open: boolean; toggle: () => void }) {
  const { invoice } = props;
  const detailId = `invoice-${invoice.invoiceId}`;
  return (
    <>
      <tr data-invoice={invoice.invoiceId}>
        <td>
          <button type="button" class="link" aria-expanded={props.open} aria-controls={detailId} onClick={props.toggle}>
            {invoice.invoiceNumber ?? invoice.invoiceId}
          </button>
          {invoice.test && <span class="muted"> (test)</span>}
        </td>
        <td>
          <span class={`badge ${STATE_TONES[invoice.state]}`}>{STATE_LABELS[invoice.state]}</span>
        </td>
        <td>{dollars(invoice.total)}</td>
        <td>
          {day(invoice.period.start)} – {day(invoice.period.end)}
        </td>
        <td>{props.integration}</td>
        <td>
          <code>{resourcesOf(invoice)}</code>
        </td>
      </tr>
      {props.open && (
        <tr>
          <td colSpan={6} id={detailId}>
            <InvoiceDetails invoiceId={invoice.invoiceId} />
          </td>
        </tr>
      )}
    </>
  );
}

function InvoiceDetails({ invoiceId }: { invoiceId: string }) {
  const { team } = useSession();
  const detail = useLoad(
    () =>
      api.get<InvoiceDetail>(`/_storehouse/teams/${encodeURIComponent(team.id)}/invoices/${encodeURIComponent(invoiceId)}`, {
        noTeam: true,
      }),
    [team.id, invoiceId],
  );
  return (
    <Show loaded={detail} what="the invoice">
      {(invoice) => (
        <section class="invoice-detail" aria-label={`Invoice ${invoice.invoiceNumber ?? invoice.invoiceId}`}>
          <dl class="details">
            <div>
              <dt>Invoice date</dt>
              <dd>{day(invoice.invoiceDate)}</dd>
            </div>
            {invoice.externalId && (
              <div>
                <dt>Partner's id</dt>
                <dd>
                  <code>{invoice.externalId}</code>
                </dd>
              </div>
            )}
            {invoice.paidAt && (
              <div>
                <dt>Paid</dt>
                <dd>{formatDate(invoice.paidAt)}</dd>
              </div>
            )}
            {invoice.refundTotal && (
              <div>
                <dt>Refunded</dt>
                <dd>
                  {dollars(invoice.refundTotal)} {invoice.refundReason && `(${invoice.refundReason})`}
                </dd>
              </div>
            )}
            {invoice.memo && (
              <div>
                <dt>Memo</dt>
                <dd>{invoice.memo}</dd>
              </div>
            )}
          </dl>
          <h3>Items</h3>
          <div class="table-wrap">
            <table>
              <thead>
                <tr>
                  <th scope="col">Item</th>
                  <th scope="col">Resource</th>
                  <th scope="col">Quantity</th>
                  <th scope="col">Price</th>
                  <th scope="col">Total</th>
                </tr>
              </thead>
              <tbody>
                {invoice.items.map((item, index) => (
                  <tr key={index}>
                    <td>
                      {item.name}
                      {item.details && <div class="muted">{item.details}</div>}
                    </td>
                    <td>
                      <code>{item.resourceId ?? ''}</code>
                    </td>
                    <td>
                      {item.quantity ?? ''} {item.units ?? ''}
                    </td>
                    <td>{dollars(item.price)}</td>
                    <td>{dollars(item.total)}</td>
                  </tr>
                ))}
                {(invoice.discounts ?? []).map((discount, index) => (
                  <tr key={`discount-${index}`}>
                    <td>{discount.name} (discount)</td>
                    <td>
                      <code>{discount.resourceId ?? ''}</code>
                    </td>
                    <td />
                    <td />
                    <td>−{dollars(discount.amount)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <h3>Charge attempts</h3>
          {invoice.charges.length === 0 ? (
            <p class="muted">Not charged yet.</p>
          ) : (
            <ol class="attempts">
              {invoice.charges.map((charge) => (
                <li key={charge.attempt}>
                  {formatDate(charge.startedAt)}: {dollars(charge.amount)}, <strong>{charge.outcome}</strong>
                  {charge.message && ` (${charge.message})`}
                </li>
              ))}
            </ol>
          )}
          <h3>Refunds</h3>
          {invoice.refunds.length === 0 ? (
            <p class="muted">None.</p>
          ) : (
            <ul>
              {invoice.refunds.map((refund) => (
                <li key={refund.createdAt}>
                  {formatDate(refund.createdAt)}: {dollars(refund.amount)} ({refund.reason})
                </li>
              ))}
            </ul>
          )}
        </section>
      )}
    </Show>
  );
}
