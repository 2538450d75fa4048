/**
 * What the team is billed through its installations, as partners reported it and Storehouse
 * charged it (src/http/routes/team-billing.ts): invoices with their charge attempts and refunds
 * (owners and billing members), and balances with their top-ups and usage (every member).
 */
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import type { Configuration } from '../types.ts';
import { Show, formatDate, useLoad } from '../ui.tsx';

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

interface Balance {
  reportId: string;
  installationId: string;
  resourceId?: string | null;
  storeId?: string | null;
  currencyValueInCents: number;
  credit?: string;
  nameLabel?: string;
  timestamp: string;
}

interface TopUp {
  id: string;
  installationId: string;
  storeId: string | null;
  balanceInCents: number;
  minimumAmountInCents: number;
  purchaseAmountInCents: number;
  outcome: string;
  createdAt: number;
}

interface UsageReport {
  id: string;
  installationId: string;
  timestamp: string;
  period?: { start: string; end: string };
  billing?: InvoiceLine[] | { items?: InvoiceLine[] };
  usage?: Array<{
    resourceId?: string;
    name: string;
    type?: string;
    units?: string;
    dayValue?: number;
    periodValue?: number;
    planValue?: number;
  }>;
}

const STATE_LABELS: Record<Invoice['state'], string> = {
  pending: 'pending',
  paid: 'paid',
  notpaid: 'not paid',
  overdue: 'overdue',
  refunded: 'refunded',
};
const STATE_TONES: Record<Invoice['state'], string> = { pending: 'busy', paid: 'ok', notpaid: 'bad', overdue: 'bad', refunded: 'busy' };

export const dollars = (amount: string | undefined) => (amount === undefined ? '' : `$${amount}`);
export const cents = (value: number) => `$${(value / 100).toFixed(2)}`;
/** Rows per page of a list. */
export const PAGE = 50;
const day = (iso: string) => new Date(iso).toLocaleDateString();

export interface IntegrationNames {
  installation(id: string | null | undefined): string;
  integration(id: string): string;
}

/** The team's installations' integration names, by installation (icfg_...) and by integration id (the id itself until loaded). */
export function useIntegrationNames(): IntegrationNames {
  const loaded = useLoad(() => api.get<Configuration[]>('/v1/integrations/configurations', { query: { view: 'account' } }), []);
  const byInstallation = new Map((loaded.data ?? []).map((configuration) => [configuration.id, configuration.integration.name]));
  const byIntegration = new Map((loaded.data ?? []).map((configuration) => [configuration.integrationId, configuration.integration.name]));
  return {
    installation: (id) => (id ? (byInstallation.get(id) ?? id) : ''),
    integration: (id) => byIntegration.get(id) ?? id,
  };
}

/** Pages of a list the API answers newest first with a cursor (`next`, null on the last page). */
export interface Paged<T> {
  items: T[];
  more: boolean;
}

/**
 * Loads the first `pages` pages of a list (a reload, for rows that change, loads as many as were
 * shown), following each page's cursor.
 */
export async function loadPages<T>(
  page: (cursor: number | undefined) => Promise<{ items: T[]; next: number | null }>,
  pages: number,
): Promise<Paged<T>> {
  const items: T[] = [];
  let cursor: number | undefined;
  for (let loaded = 0; loaded < pages; loaded++) {
    const answer = await page(cursor);
    items.push(...answer.items);
    if (answer.next === null) return { items, more: false };
    cursor = answer.next;
  }
  return { items, more: true };
}

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

/** Each resource's latest prepaid balance (the API lists every report, newest first) and its top-ups. */
export function Balances({ names }: { names: IntegrationNames }) {
  const { team } = useSession();
  const loaded = useLoad(
    () =>
      api.get<{ balances: Balance[]; topUps: TopUp[] }>(`/_storehouse/teams/${encodeURIComponent(team.id)}/billing/balances`, {
        noTeam: true,
      }),
    [team.id],
  );
  return (
    <section aria-labelledby="balances-title">
      <h2 id="balances-title">Prepaid balances</h2>
      <Show loaded={loaded} what="balances">
        {({ balances, topUps }) => {
          const latest = new Map<string, Balance>();
          for (const balance of balances) {
            const key = `${balance.installationId}/${balance.resourceId ?? balance.storeId ?? ''}`;
            if (!latest.has(key)) latest.set(key, balance);
          }
          if (latest.size === 0) return <p class="muted">No balance reported yet.</p>;
          return (
            <ul class="list balances">
              {[...latest.values()].map((balance) => {
                const resource = balance.nameLabel ?? balance.resourceId ?? balance.storeId ?? 'the installation';
                const mine = topUps.filter(
                  (topUp) =>
                    topUp.installationId === balance.installationId && (balance.storeId == null || topUp.storeId === balance.storeId),
                );
                return (
                  <li key={`${balance.installationId}/${resource}`} data-resource={balance.resourceId ?? ''}>
                    <p>
                      <strong>{resource}</strong> <span class="muted">({names.installation(balance.installationId)})</span>:{' '}
                      <span class="amount">{cents(balance.currencyValueInCents)}</span>
                      {balance.credit && <span class="muted"> · credit {balance.credit}</span>}{' '}
                      <span class="muted">as of {formatDate(balance.timestamp)}</span>
                    </p>
                    {mine.length > 0 && (
                      <details>
                        <summary>Top-ups ({mine.length})</summary>
                        <ul>
                          {mine.map((topUp) => (
                            <li key={topUp.id}>
                              {formatDate(topUp.createdAt)}: {cents(topUp.purchaseAmountInCents)} when the balance was{' '}
                              {cents(topUp.balanceInCents)} (below {cents(topUp.minimumAmountInCents)}), <strong>{topUp.outcome}</strong>
                            </li>
                          ))}
                        </ul>
                      </details>
                    )}
                  </li>
                );
              })}
            </ul>
          );
        }}
      </Show>
    </section>
  );
}

/** The newest billing and usage report of each installation: what partners say the team used and owes. */
export function Usage({ names }: { names: IntegrationNames }) {
  const { team } = useSession();
  const loaded = useLoad(
    () =>
      api
        .get<{ reports: UsageReport[] }>(`/_storehouse/teams/${encodeURIComponent(team.id)}/billing/usage`, { noTeam: true })
        .then((body) => body.reports),
    [team.id],
  );
  return (
    <section aria-labelledby="usage-title">
      <h2 id="usage-title">Usage</h2>
      <Show loaded={loaded} what="usage">
        {(reports) => {
          const newest = new Map<string, UsageReport>();
          for (const report of reports) if (!newest.has(report.installationId)) newest.set(report.installationId, report);
          if (newest.size === 0) return <p class="muted">No usage reported yet.</p>;
          return [...newest.values()].map((report) => (
            <div key={report.id}>
              <p>
                <strong>{names.installation(report.installationId)}</strong>{' '}
                <span class="muted">
                  {report.period && `${day(report.period.start)} – ${day(report.period.end)}, `}reported {formatDate(report.timestamp)}
                </span>
              </p>
              {(report.usage ?? []).length === 0 ? (
                <p class="muted">No usage in this report.</p>
              ) : (
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Metric</th>
                        <th scope="col">Resource</th>
                        <th scope="col">Today</th>
                        <th scope="col">This period</th>
                        <th scope="col">Plan</th>
                      </tr>
                    </thead>
                    <tbody>
                      {(report.usage ?? []).map((metric, index) => (
                        <tr key={index}>
                          <td>{metric.name}</td>
                          <td>
                            <code>{metric.resourceId ?? ''}</code>
                          </td>
                          <td>
                            {metric.dayValue ?? ''} {metric.units ?? ''}
                          </td>
                          <td>
                            {metric.periodValue ?? ''} {metric.units ?? ''}
                          </td>
                          <td>{metric.planValue ?? ''}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              )}
            </div>
          ));
        }}
      </Show>
    </section>
  );
}
