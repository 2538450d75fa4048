import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import { mayBill, type PaymentMethod } from '../types.ts';
import { ActionButton, Show, formatDate, useLoad } from '../ui.tsx';
import { useIntegrationNames } from './billing-lists.ts';
import { Balances, Usage } from './billing-usage.tsx';
import { Invoices } from './invoices.tsx';
import { AddCardForm, loadPaymentMethods } from './payment.tsx';

type Authorization = Record<string, unknown> & { id: string; createdAt: number };

/** The team's payment methods (test cards) and what was authorized or charged against them. */
export function Billing() {
  const { role } = useSession();
  // One look-up of the integrations' names for the three sections that name them.
  const names = useIntegrationNames();
  const methods = useLoad(loadPaymentMethods, []);
  const authorizations = useLoad(
    () => api.get<{ authorizations: Authorization[] }>('/_storehouse/billing/authorizations').then((b) => b.authorizations),
    [],
  );
  if (!mayBill(role)) {
    // Balances and usage are every member's (as `vercel integration balance` shows them); money is not.
    return (
      <section>
        <h1>Usage and balances</h1>
        <p class="muted">Only the team's owners and billing members see its payment methods, charges and invoices.</p>
        <Balances names={names} />
        <Usage names={names} />
      </section>
    );
  }
  return (
    <section>
      <h1>Billing</h1>
      <Invoices names={names} />
      <Balances names={names} />
      <Usage names={names} />
      <h2>Payment methods</h2>
      <Show loaded={methods} what="payment methods">
        {(list: PaymentMethod[]) =>
          list.length === 0 ? (
            <p>No payment method yet.</p>
          ) : (
            <ul class="list">
              {list.map((method) => (
                <li key={method.id} class="row">
                  <span>
                    {method.brand} ending in {method.last4}
                    {method.default && <span class="badge ok">default</span>}
                    {method.behavior === 'decline' && <span class="muted"> (declines)</span>}
                  </span>
                  {!method.default && (
                    <ActionButton
                      label={`Make the card ending in ${method.last4} the default`}
                      action={async () => {
                        await api.patch(`/_storehouse/payment-methods/${encodeURIComponent(method.id)}`, { default: true });
                        await methods.reload();
                      }}
                    >
                      Make default
                    </ActionButton>
                  )}
                  <ActionButton
                    class="danger"
                    label={`Remove the card ending in ${method.last4}`}
                    action={async () => {
                      await api.delete(`/_storehouse/payment-methods/${encodeURIComponent(method.id)}`);
                      await methods.reload();
                    }}
                  >
                    Remove
                  </ActionButton>
                </li>
              ))}
            </ul>
          )
        }
      </Show>
      <AddCardForm onAdded={() => void methods.reload()} />
      <h2>Authorizations and charges</h2>
      <Show loaded={authorizations} what="authorizations">
        {(list) =>
          list.length === 0 ? (
            <p class="muted">Nothing authorized or charged yet.</p>
          ) : (
            <div class="table-wrap">
              <table>
                <thead>
                  <tr>
                    <th scope="col">When</th>
                    <th scope="col">Kind</th>
                    <th scope="col">Amount</th>
                    <th scope="col">Status</th>
                    <th scope="col">Store</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((item) => (
                    <tr key={item.id}>
                      <td>{formatDate(item.createdAt)}</td>
                      <td>{String(item.kind ?? '')}</td>
                      <td>{typeof item.amountCents === 'number' ? `$${(item.amountCents / 100).toFixed(2)}` : ''}</td>
                      <td>{String(item.state ?? '')}</td>
                      <td>{String(item.storeId ?? '')}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )
        }
      </Show>
    </section>
  );
}
