import type { BillingPlan } from '../types.ts';

/** A plan's name, cost, kind, description, highlighted details and details, and why it cannot be chosen. */
export function PlanDetails({ plan, unavailable }: { plan: BillingPlan; unavailable?: string | undefined }) {
  return (
    <div class="plan">
      <div class="plan-head">
        <strong>{plan.name}</strong>
        <span class="cost">{plan.cost ?? (plan.type === 'prepayment' ? 'Prepaid' : '')}</span>
      </div>
      <p class="muted">
        {plan.type === 'prepayment'
          ? `Prepayment${plan.minimumAmount ? `: $${plan.minimumAmount}` : ''}${plan.maximumAmount ? ` to $${plan.maximumAmount}` : ''}`
          : 'Subscription'}
        {plan.paymentMethodRequired ? ' · needs a payment method' : ''}
      </p>
      {plan.description && <p>{plan.description}</p>}
      {plan.highlightedDetails && plan.highlightedDetails.length > 0 && (
        <ul class="highlights">
          {plan.highlightedDetails.map((detail) => (
            <li key={detail.label}>
              <strong>{detail.label}</strong>
              {detail.value && `: ${detail.value}`}
            </li>
          ))}
        </ul>
      )}
      {plan.details && plan.details.length > 0 && (
        <dl class="details">
          {plan.details.map((detail) => (
            <div key={detail.label}>
              <dt>{detail.label}</dt>
              <dd>{detail.value ?? ''}</dd>
            </div>
          ))}
        </dl>
      )}
      {unavailable && <p class="notice warn">Not available: {unavailable}</p>}
    </div>
  );
}
