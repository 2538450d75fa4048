import { useMemo, useState } from 'preact/hooks';
import { api, ApiError } from '../api.ts';
import { MetadataForm } from '../metadata-form/MetadataForm.tsx';
import { initialValues, toMetadata, type FormValues, type MetadataSchema } from '../metadata-form/metadata.ts';
import type { BillingPlan, Store } from '../types.ts';
import { ErrorNotice, Show, useAction, useLoad } from '../ui.tsx';
import { fieldErrors, isPaid } from './create-store.tsx';
import { centsOfTyped, PaymentMethodPicker, PrepaymentField } from './payment.tsx';
import { PlanDetails } from './plans.tsx';

const EMPTY_SCHEMA: MetadataSchema = { type: 'object', properties: {} };

/** A store's name, settings (the product's form, with its `update` rules) and plan, changed with PATCH. */
export function StoreSettings({ store, onSaved }: { store: Store; onSaved: () => Promise<void> }) {
  const plans = useLoad(
    () => api.get<{ plans: BillingPlan[] }>(`/v1/storage/stores/${encodeURIComponent(store.id)}/plans`).then((b) => b.plans),
    [store.id],
  );
  return (
    <section aria-labelledby="settings-title">
      <h2 id="settings-title">Settings and plan</h2>
      <Show loaded={plans} what="the plans this store may change to">
        {(list) => <SettingsForm store={store} plans={list} onSaved={onSaved} />}
      </Show>
    </section>
  );
}

function SettingsForm({ store, plans, onSaved }: { store: Store; plans: BillingPlan[]; onSaved: () => Promise<void> }) {
  const schema = store.product.metadataSchema ?? EMPTY_SCHEMA;
  const [name, setName] = useState(store.name);
  const [values, setValues] = useState<FormValues>(() => initialValues(schema, 'update', store.metadata ?? {}));
  const [planId, setPlanId] = useState(store.billingPlan?.id);
  const [paymentMethodId, setPaymentMethodId] = useState<string>();
  const [amount, setAmount] = useState('');
  const { busy, error, submit } = useAction();
  const [saved, setSaved] = useState(false);
  const plan = plans.find((candidate) => candidate.id === planId) ?? store.billingPlan;
  const changingPlan = planId !== undefined && planId !== store.billingPlan?.id;
  const errors = useMemo(() => fieldErrors(error), [error]);
  return (
    <form
      noValidate
      onSubmit={submit(async () => {
        setSaved(false);
        await api.patch(`/v1/storage/stores/${encodeURIComponent(store.id)}`, {
          ...(name.trim() !== store.name && { name: name.trim() }),
          metadata: toMetadata(schema, values, 'update', { paidPlan: isPaid(plan) }),
          ...(changingPlan && { billingPlanId: planId }),
          ...(changingPlan && plan?.paymentMethodRequired && paymentMethodId && { paymentMethodId }),
          ...(changingPlan && plan?.type === 'prepayment' && amount.trim() !== '' && { prepaymentAmountCents: centsOfTyped(amount) }),
        });
        setSaved(true);
        await onSaved();
      })}
    >
      <div class="field">
        <label for="settings-name">Name</label>
        <input
          id="settings-name"
          value={name}
          disabled={busy}
          onInput={(event) => setName((event.target as HTMLInputElement).value)}
          aria-invalid={errors.name ? true : undefined}
          aria-describedby={errors.name ? 'settings-name-error' : undefined}
        />
        {errors.name && (
          <p id="settings-name-error" class="field-error">
            {errors.name}
          </p>
        )}
      </div>
      {plans.length > 0 && (
        <fieldset class="plan-picker" aria-describedby={errors.billingPlanId ? 'settings-plan-error' : undefined}>
          <legend>Plan</legend>
          {plans.map((candidate) => (
            <label key={candidate.id} class={`plan-choice${candidate.disabled ? ' disabled' : ''}`}>
              <input
                type="radio"
                name="settings-plan"
                checked={candidate.id === planId}
                disabled={candidate.disabled || busy}
                onChange={() => setPlanId(candidate.id)}
              />
              <PlanDetails plan={candidate} unavailable={candidate.disabled ? 'This plan cannot be chosen for this store.' : undefined} />
              {candidate.id === store.billingPlan?.id && <span class="badge ok">current</span>}
            </label>
          ))}
          {errors.billingPlanId && (
            <p id="settings-plan-error" class="field-error">
              {errors.billingPlanId}
            </p>
          )}
        </fieldset>
      )}
      {changingPlan && plan?.paymentMethodRequired && (
        <PaymentMethodPicker value={paymentMethodId} onChange={setPaymentMethodId} error={errors.paymentMethodId} />
      )}
      {changingPlan && plan?.type === 'prepayment' && (
        <PrepaymentField
          id="settings-prepayment"
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
            mode="update"
            values={values}
            onChange={setValues}
            errors={errors}
            paidPlan={isPaid(plan)}
            disabled={busy}
          />
        </fieldset>
      )}
      <ErrorNotice error={error instanceof ApiError && error.code === 'validation_error' ? undefined : error} title="Not saved" />
      {error instanceof ApiError && error.code === 'validation_error' && (
        <p class="notice error" role="alert">
          Some settings need a change: see the messages beside them.
        </p>
      )}
      {saved && (
        <p role="status" class="notice ok">
          Saved.
        </p>
      )}
      <button type="submit" class="primary" disabled={busy}>
        {busy ? 'Saving…' : 'Save changes'}
      </button>
    </form>
  );
}
