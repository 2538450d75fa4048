import { api } from '../api.ts';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { mayChange, type Store } from '../types.ts';
import { Show, StatusBadge, useInterval, useLoad } from '../ui.tsx';

/** A store whose status changes by itself: its page refreshes until it settles. */
export const settling = (store: Store) => store.status === 'initializing' || store.status === 'onboarding';

export const loadStores = () => api.get<{ stores: Store[] }>('/v1/storage/stores', { query: { limit: 100 } }).then((b) => b.stores);

export function Stores() {
  const { role } = useSession();
  const stores = useLoad(loadStores, []);
  useInterval(() => void stores.reload(), 2000, stores.data?.some(settling) ?? false);
  return (
    <section>
      <div class="page-head">
        <h1>Stores</h1>
        {mayChange(role) && (
          <Link class="button primary" href="/">
            Create a store
          </Link>
        )}
      </div>
      <Show loaded={stores} what="stores">
        {(list) =>
          list.length === 0 ? (
            <p>No stores yet.{mayChange(role) && ' Create one from the marketplace.'}</p>
          ) : (
            <div class="table-wrap">
              <table>
                <caption class="visually-hidden">The team's stores</caption>
                <thead>
                  <tr>
                    <th scope="col">Name</th>
                    <th scope="col">Status</th>
                    <th scope="col">Product</th>
                    <th scope="col">Plan</th>
                    <th scope="col">Projects</th>
                  </tr>
                </thead>
                <tbody>
                  {list.map((store) => (
                    <tr key={store.id} data-store={store.id}>
                      <th scope="row">
                        <Link href={`/stores/${encodeURIComponent(store.id)}`}>{store.name}</Link>
                      </th>
                      <td>
                        <StatusBadge status={store.status} />
                      </td>
                      <td>
                        {store.product.integration.name} {store.product.name}
                      </td>
                      <td>
                        {store.billingPlan?.name ?? '—'}
                        {store.billingPlan?.cost && <span class="muted"> ({store.billingPlan.cost})</span>}
                      </td>
                      <td>{store.projectsMetadata.length === 0 ? 'None' : store.projectsMetadata.map((p) => p.name).join(', ')}</td>
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
