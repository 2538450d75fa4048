/**
 * The team's webhook deliveries (src/http/routes/webhook-deliveries.ts, team owners only): what
 * Storehouse sent its installations' integrations, each attempt, and sending one again.
 */
import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { ActionButton, Show, formatDate, useInterval, useLoad } from '../ui.tsx';
import { PAGE, loadPages, useIntegrationNames } from './billing-lists.ts';

type DeliveryStatus = 'pending' | 'delivered' | 'failed';

interface Delivery {
  id: string;
  type: string;
  integrationId: string;
  installationId: string | null;
  status: DeliveryStatus;
  attempts: number;
  lastStatus: number | null;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
  nextAttemptAt: number | null;
}

interface DeliveryDetail extends Delivery {
  event: Record<string, unknown>;
  history: Array<{ number: number; startedAt: number; durationMs: number; status: number | null; error: string | null }>;
}

const TONES: Record<DeliveryStatus, string> = { pending: 'busy', delivered: 'ok', failed: 'bad' };
const PENDING_NOTE = 'Sending: it can be sent again once delivered or failed.';

const deliveryPath = (id: string) => `/_storehouse/webhooks/deliveries/${encodeURIComponent(id)}`;

export function WebhookDeliveries() {
  const names = useIntegrationNames();
  const [status, setStatus] = useState<'' | DeliveryStatus>('');
  const [pages, setPages] = useState(1);
  const deliveries = useLoad(
    () =>
      loadPages(
        (until) =>
          api
            .get<{ deliveries: Delivery[]; pagination: { next: number | null } }>('/_storehouse/webhooks/deliveries', {
              query: { limit: PAGE, status: status || undefined, until },
            })
            .then((body) => ({ items: body.deliveries, next: body.pagination.next })),
        pages,
      ),
    [status, pages],
  );
  const [open, setOpen] = useState<string>();
  // A pending delivery is being sent (or waits for its next try): its row follows it until it settles.
  useInterval(
    () => void deliveries.reload(),
    2000,
    (deliveries.data?.items ?? []).some((delivery) => delivery.status === 'pending'),
  );
  return (
    <section aria-labelledby="webhooks-title">
      <h2 id="webhooks-title">Webhook deliveries</h2>
      <p class="muted">What Storehouse sent your installations' integrations, newest first.</p>
      <div class="filters">
        <label>
          Status{' '}
          <select
            value={status}
            onChange={(event) => {
              setStatus((event.target as HTMLSelectElement).value as '' | DeliveryStatus);
              setPages(1);
            }}
          >
            <option value="">All</option>
            <option value="pending">Pending</option>
            <option value="delivered">Delivered</option>
            <option value="failed">Failed</option>
          </select>
        </label>
      </div>
      <Show loaded={deliveries} what="webhook deliveries">
        {({ items: list, more }) =>
          list.length === 0 ? (
            <p class="muted">No deliveries{status ? ` ${status}` : ''}.</p>
          ) : (
            <>
              <div class="table-wrap">
                <table aria-labelledby="webhooks-title">
                  <thead>
                    <tr>
                      <th scope="col">Event</th>
                      <th scope="col">Integration</th>
                      <th scope="col">Status</th>
                      <th scope="col">Attempts</th>
                      <th scope="col">Last answer</th>
                      <th scope="col">Next try</th>
                      <th scope="col">
                        <span class="visually-hidden">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {list.map((delivery) => (
                      <DeliveryRow
                        key={delivery.id}
                        delivery={delivery}
                        integration={names.integration(delivery.integrationId)}
                        open={open === delivery.id}
                        toggle={() => setOpen(open === delivery.id ? undefined : delivery.id)}
                        resent={() => deliveries.reload()}
                      />
                    ))}
                  </tbody>
                </table>
              </div>
              {more && (
                <button type="button" disabled={deliveries.loading} onClick={() => setPages(pages + 1)}>
                  Show older deliveries
                </button>
              )}
            </>
          )
        }
      </Show>
    </section>
  );
}

function DeliveryRow(props: { delivery: Delivery; integration: string; open: boolean; toggle: () => void; resent: () => Promise<void> }) {
  const { delivery } = props;
  const detailId = `delivery-${delivery.id}`;
  const pending = delivery.status === 'pending';
  return (
    <>
      <tr data-delivery={delivery.id}>
        <td>
          <button type="button" class="link" aria-expanded={props.open} aria-controls={detailId} onClick={props.toggle}>
            {delivery.type}
          </button>
          <div class="muted">{formatDate(delivery.createdAt)}</div>
        </td>
        <td>{props.integration}</td>
        <td>
          <span class={`badge ${TONES[delivery.status]}`}>{delivery.status}</span>
        </td>
        <td>{delivery.attempts}</td>
        <td>
          {delivery.lastStatus ?? (delivery.attempts > 0 ? 'no answer' : '')}
          {delivery.lastError && <div class="muted">{delivery.lastError}</div>}
        </td>
        <td>{delivery.nextAttemptAt === null ? '' : formatDate(delivery.nextAttemptAt)}</td>
        <td>
          <ActionButton
            label={`Send ${delivery.type} again`}
            disabled={pending}
            action={async () => {
              await api.post(`${deliveryPath(delivery.id)}/redeliver`);
              await props.resent();
            }}
          >
            Send again
          </ActionButton>
          {pending && <div class="muted">{PENDING_NOTE}</div>}
        </td>
      </tr>
      {props.open && (
        <tr>
          <td colSpan={7} id={detailId}>
            <DeliveryDetails id={delivery.id} attempts={delivery.attempts} status={delivery.status} />
          </td>
        </tr>
      )}
    </>
  );
}

/** An event as sent and its attempts; reloaded when its row changes (a new attempt, a new status). */
function DeliveryDetails({ id, attempts, status }: { id: string; attempts: number; status: DeliveryStatus }) {
  const detail = useLoad(() => api.get<DeliveryDetail>(deliveryPath(id)), [id, attempts, status]);
  return (
    <Show loaded={detail} what="the delivery">
      {(delivery) => (
        <section aria-label={`Delivery ${delivery.id}`}>
          <p>
            <span class="label">Event id:</span> <code>{delivery.id}</code>
            {delivery.deliveredAt !== null && <> · delivered {formatDate(delivery.deliveredAt)}</>}
          </p>
          <h3>Attempts</h3>
          {delivery.history.length === 0 ? (
            <p class="muted">Not sent yet.</p>
          ) : (
            <ol class="attempts">
              {delivery.history.map((attempt) => (
                <li key={attempt.number}>
                  {formatDate(attempt.startedAt)}: {attempt.status === null ? 'no answer' : `HTTP ${attempt.status}`} in{' '}
                  {attempt.durationMs} ms
                  {attempt.error && <span class="muted"> ({attempt.error})</span>}
                </li>
              ))}
            </ol>
          )}
          <details>
            <summary>The event as sent</summary>
            <pre class="event">{JSON.stringify(delivery.event, null, 2)}</pre>
          </details>
        </section>
      )}
    </Show>
  );
}
