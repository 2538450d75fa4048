import { loadOfferings, loadPlans, planUnavailable, protocolsOf, type Offering } from '../catalog.ts';
import { Link } from '../router.tsx';
import { useSession } from '../session.tsx';
import { mayChange, type BillingPlan, type Product } from '../types.ts';
import { Show, useLoad } from '../ui.tsx';
import { PlanDetails } from './plans.tsx';

/** Every integration the team has installed, its products, their protocols, availability and plans. */
export function Marketplace() {
  const offerings = useLoad(loadOfferings, []);
  return (
    <section>
      <h1>Marketplace</h1>
      <Show loaded={offerings} what="the marketplace">
        {(list) =>
          list.length === 0 ? (
            <p>
              No integration is installed for this team. An operator installs one with <code>storehouse installations create</code>.
            </p>
          ) : (
            list.map((offering) => (
              <IntegrationSection
                key={offering.configuration.id}
                offering={offering}
                // A team may hold several installations of one integration: each then says which it is.
                named={list.filter((other) => other.integration.id === offering.integration.id).length > 1}
              />
            ))
          )
        }
      </Show>
    </section>
  );
}

function IntegrationSection({ offering, named }: { offering: Offering; named: boolean }) {
  const { configuration, integration, products } = offering;
  return (
    <section class="integration" aria-labelledby={`integration-${configuration.id}`}>
      <h2 id={`integration-${configuration.id}`} class="with-icon">
        <img src={configuration.integration.icon} alt="" width={28} height={28} />
        {integration.name}
        {named && <span class="muted"> (installation {configuration.id})</span>}
      </h2>
      <div class="cards">
        {products.map((product) => (
          <ProductCard key={product.id} product={product} offering={offering} />
        ))}
      </div>
    </section>
  );
}

function ProductCard({ product, offering }: { product: Product; offering: Offering }) {
  const { role } = useSession();
  const plans = useLoad(() => loadPlans(offering.integration.id, product.id, offering.configuration.id), [product.id]);
  const protocols = protocolsOf(product);
  return (
    <article class="card product" aria-labelledby={`product-${offering.configuration.id}-${product.id}`}>
      <h3 id={`product-${offering.configuration.id}-${product.id}`} class="with-icon">
        <img src={offering.configuration.integration.icon} alt="" width={24} height={24} />
        {product.name}
      </h3>
      {product.shortDescription && <p>{product.shortDescription}</p>}
      {product.description && product.description !== product.shortDescription && <p class="muted">{product.description}</p>}
      {product.tags && product.tags.length > 0 && (
        <ul class="tags" aria-label="Tags">
          {product.tags.map((tag) => (
            <li key={tag}>{tag}</li>
          ))}
        </ul>
      )}
      <p>
        <span class="label">Protocols: </span>
        {protocols.map((protocol, i) => (
          <span key={protocol.name}>
            {i > 0 && ', '}
            {protocol.name}
            {!protocol.enabled && <span class="muted"> (disabled)</span>}
          </span>
        ))}
      </p>
      {product.unavailableReason ? (
        <p class="notice warn">
          <strong>Unavailable: </strong>
          {product.unavailableReason}
        </p>
      ) : (
        <p class="available">Available</p>
      )}
      <details>
        <summary>Plans</summary>
        <Show loaded={plans} what="plans">
          {(list) => <PlanList plans={list} product={product} />}
        </Show>
      </details>
      {mayChange(role) && !product.unavailableReason && (
        <Link class="button primary" href={`/create/${encodeURIComponent(offering.configuration.id)}/${encodeURIComponent(product.id)}`}>
          Create a {product.name} store
        </Link>
      )}
    </article>
  );
}

function PlanList({ plans, product }: { plans: BillingPlan[]; product: Product }) {
  return (
    <ul class="plans">
      {plans.map((plan) => (
        <li key={plan.id} class={plan.disabled ? 'disabled' : undefined}>
          <PlanDetails plan={plan} unavailable={planUnavailable(plan, product)} />
        </li>
      ))}
    </ul>
  );
}
