/**
 * What partners reported of the team's prepaid balances (with the top-ups their thresholds
 * bought) and usage (src/http/routes/team-billing.ts): every member's to see, viewers included.
 */
import { api } from '../api.ts';
import { useSession } from '../session.tsx';
import { Show, formatDate, useLoad } from '../ui.tsx';
import { type IntegrationNames, cents, day } from './billing-lists.ts';

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
  /** The partner's billing items (not shown: the invoices are what is charged). */
  billing?: unknown;
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
