import { useMemo, useRef, useState } from 'preact/hooks';
import { api, ApiError, newIdempotencyKey } from '../api.ts';
import { loadOfferings, loadPlans, planUnavailable } from '../catalog.ts';
import { MetadataForm } from '../metadata-form/MetadataForm.tsx';
import { initialValues, toMetadata, type FormValues } from '../metadata-form/metadata.ts';
import { Link, navigate } from '../router.tsx';
import { useSession } from '../session.tsx';
import { mayChange, type BillingPlan, type Store } from '../types.ts';
import { ErrorNotice, Show, useAction, useLoad } from '../ui.tsx';
import { centsOfTyped, PaymentMethodPicker, PrepaymentField } from './payment.tsx';
import { PlanDetails } from './plans.tsx';

/** A paid plan: what `ui:paid-only` settings and a payment method go with. */
export const isPaid = (plan: BillingPlan | undefined) => plan !== undefined && (plan.paymentMethodRequired || plan.type === 'prepayment');

/** The validation_error fields by key, for the inputs to show beside them. */
export const fieldErrors = (error: Error | undefined): Record<string, string> =>
  error instanceof ApiError ? Object.fromEntries(error.fields.map((field) => [field.key, field.message])) : {};

export function CreateStore({ configurationId, productId }: { configurationId: string; productId: string }) {
  const { role } = useSession();
  const loaded = useLoad(async () => {
    const offering = (await loadOfferings()).find((candidate) => candidate.configuration.id === configurationId);
    const product = offering?.products.find((candidate) => candidate.id === productId || candidate.slug === productId);
    if (!offering || !product) throw new Error('This product is not offered to this team (its integration is not installed here).');
    const plans = await loadPlans(offering.integration.id, product.id, configurationId);
    return { offering, product, plans };
  }, [configurationId, productId]);
  if (!mayChange(role)) {
    return (
      <section>
        <h1>Create a store</h1>
        <p>Your role ({role.toLowerCase()}) does not create stores.</p>
      </section>
    );
  }
  return (
    <Show loaded={loaded} what="the product">
      {({ offering, product, plans }) => (
        <CreateForm configurationId={configurationId} product={product} integrationName={offering.integration.name} plans={plans} />
      )}
    </Show>
  );
}

function CreateForm(props: {
  configurationId: string;
  product: import('../types.ts').Product;
  integrationName: string;
  plans: BillingPlan[];
}) {
  const { product, plans } = props;
  const schema = product.metadataSchema;
  const selectable = plans.filter((plan) => !plan.disabled);
  const [name, setName] = useState('');
  const [planId, setPlanId] = useState<string | undefined>(selectable[0]?.id);
  const [paymentMethodId, setPaymentMethodId] = useState<string>();
  const [amount, setAmount] = useState('');
  const [values, setValues] = useState<FormValues>(() => initialValues(schema, 'create'));
  const { busy, error, submit: sending } = useAction();
  // One key per request body: a second click (or a retry of the same form) sends the same key,
  // so the server makes one store; a changed form is a new request with a new key.
  const keys = useRef(new Map<string, string>());
  const plan = plans.find((candidate) => candidate.id === planId);
  const paid = isPaid(plan);
  const errors = useMemo(() => fieldErrors(error), [error]);

  const body = () => ({
    name: name.trim(),
    integrationConfigurationId: props.configurationId,
    integrationProductIdOrSlug: product.id,
    metadata: toMetadata(schema, values, 'create', { paidPlan: paid }),
    ...(planId && { billingPlanId: planId }),
    ...(plan?.paymentMethodRequired && paymentMethodId && { paymentMethodId }),
    ...(plan?.type === 'prepayment' && amount.trim() !== '' && { prepaymentAmountCents: centsOfTyped(amount) }),
  });

  const submit = sending(async () => {
    const request = body();
    const text = JSON.stringify(request);
    let key = keys.current.get(text);
    if (!key) keys.current.set(text, (key = newIdempotencyKey()));
    const { store } = await api.post<{ store: Store }>('/v1/storage/stores/integration/direct', request, { idempotencyKey: key });
    navigate(`/stores/${encodeURIComponent(store.id)}`);
  });

  const generalError = error && !(error instanceof ApiError && error.code === 'validation_error') ? error : undefined;
  const otherFields = Object.entries(errors).filter(
    ([key]) => !key.startsWith('metadata.') && !['name', 'billingPlanId', 'paymentMethodId', 'prepaymentAmountCents'].includes(key),
  );
  return (
    <section>
      <p class="crumbs">
        <Link href="/">Marketplace</Link> / {props.integrationName}
      </p>
      <h1>Create a {product.name} store</h1>
      {/* The server decides what is valid (noValidate): its validation_error lands beside each field. */}
      <form class="create" noValidate onSubmit={submit} aria-describedby={generalError ? 'create-error' : undefined}>
        <div class="field">
          <label for="store-name">Name</label>
          <input
            id="store-name"
            name="name"
            required
            maxLength={128}
            value={name}
            disabled={busy}
            onInput={(event) => setName((event.target as HTMLInputElement).value)}
            aria-invalid={errors.name ? true : undefined}
            aria-describedby={errors.name ? 'store-name-error' : undefined}
          />
          {errors.name && (
            <p id="store-name-error" class="field-error">
              {errors.name}
            </p>
          )}
        </div>

        <fieldset class="plan-picker" aria-describedby={errors.billingPlanId ? 'plan-error' : undefined}>
          <legend>Plan</legend>
          {plans.length === 0 && <p class="muted">This product has no plans: the integration picks one.</p>}
          {plans.map((candidate) => (
            <label key={candidate.id} class={`plan-choice${candidate.disabled ? ' disabled' : ''}`}>
              <input
                type="radio"
                name="plan"
                value={candidate.id}
                checked={candidate.id === planId}
                disabled={candidate.disabled || busy}
                onChange={() => setPlanId(candidate.id)}
              />
              <PlanDetails plan={candidate} unavailable={planUnavailable(candidate, product)} />
            </label>
          ))}
          {errors.billingPlanId && (
            <p id="plan-error" class="field-error">
              {errors.billingPlanId}
            </p>
          )}
        </fieldset>

        {plan?.paymentMethodRequired && (
          <PaymentMethodPicker value={paymentMethodId} onChange={setPaymentMethodId} error={errors.paymentMethodId} />
        )}

        {plan?.type === 'prepayment' && (
          <PrepaymentField
            id="prepayment"
            plan={plan}
            value={amount}
            onChange={setAmount}
            disabled={busy}
            error={errors.prepaymentAmountCents}
          />
        )}

        {Object.keys(schema.properties ?? {}).length > 0 && (
          <fieldset class="settings">
            <legend>Settings</legend>
            <MetadataForm
              schema={schema}
              mode="create"
              values={values}
              onChange={setValues}
              errors={errors}
              paidPlan={paid}
              disabled={busy}
            />
          </fieldset>
        )}

        {otherFields.length > 0 && (
          <ul class="field-error" role="alert">
            {otherFields.map(([key, message]) => (
              <li key={key}>
                {key}: {message}
              </li>
            ))}
          </ul>
        )}
        {error instanceof ApiError && error.code === 'validation_error' && (
          <p class="notice error" role="alert">
            Some settings need a change: see the messages beside them.
          </p>
        )}
        <div id="create-error">
          <ErrorNotice error={generalError} title="The store was not created" />
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Creating…' : 'Create store'}
        </button>
      </form>
    </section>
  );
}
