import { useState } from 'preact/hooks';
import { api, ApiError } from '../api.ts';
import type { BillingPlan, PaymentMethod } from '../types.ts';
import { ErrorNotice, useAction, useLoad } from '../ui.tsx';

export const loadPaymentMethods = () =>
  api.get<{ paymentMethods: PaymentMethod[] }>('/_storehouse/payment-methods').then((b) => b.paymentMethods);

export const addTestCard = (cardNumber: string, makeDefault: boolean) =>
  api.post<PaymentMethod>('/_storehouse/payment-methods', { cardNumber: cardNumber.replace(/\s+/g, ''), default: makeDefault });

/** Adding a test card: 4242 4242 4242 4242 succeeds, 4000 0000 0000 0002 declines. */
export function AddCardForm({ onAdded, makeDefault = false }: { onAdded: (method: PaymentMethod) => void; makeDefault?: boolean }) {
  const [number, setNumber] = useState('');
  const [asDefault, setAsDefault] = useState(makeDefault);
  const { busy, error, run } = useAction();
  const add = () =>
    run(async () => {
      const method = await addTestCard(number, asDefault);
      setNumber('');
      onAdded(method);
    });
  return (
    <fieldset class="add-card">
      <legend>Add a test card</legend>
      <label for="card-number">Card number</label>
      <input
        id="card-number"
        inputMode="numeric"
        autoComplete="off"
        placeholder="4242 4242 4242 4242"
        value={number}
        onInput={(event) => setNumber((event.target as HTMLInputElement).value)}
        aria-describedby="card-help"
        onKeyDown={(event) => {
          // Inside the create form, Enter adds the card rather than sending the form.
          if (event.key === 'Enter') {
            event.preventDefault();
            void add();
          }
        }}
      />
      <p id="card-help" class="muted">
        Test cards only: 4242 4242 4242 4242 is accepted, 4000 0000 0000 0002 is declined.
      </p>
      <label class="inline">
        <input type="checkbox" checked={asDefault} onChange={(event) => setAsDefault((event.target as HTMLInputElement).checked)} /> Make it
        the team's default
      </label>
      <ErrorNotice error={error} />
      <button type="button" disabled={busy || number.trim() === ''} onClick={add}>
        {busy ? 'Adding…' : 'Add card'}
      </button>
    </fieldset>
  );
}

/**
 * Choosing how a paid plan is paid: one of the team's cards, or a new test card. Someone who may
 * not see the team's cards (only owners and billing members may) is told the default is used.
 */
export function PaymentMethodPicker(props: { value: string | undefined; onChange: (id: string | undefined) => void; error?: string }) {
  const methods = useLoad(loadPaymentMethods, []);
  const [adding, setAdding] = useState(false);
  const forbidden = methods.error instanceof ApiError && methods.error.status === 403;
  if (forbidden) {
    return <p class="muted">The team's default payment method is charged (only owners and billing members manage the team's cards).</p>;
  }
  const list = methods.data ?? [];
  const none = methods.data !== undefined && list.length === 0;
  return (
    <fieldset aria-describedby={props.error ? 'payment-error' : undefined}>
      <legend>Payment method</legend>
      <ErrorNotice error={methods.error} />
      {none && <p>This plan needs a payment method and the team has none yet: add a test card.</p>}
      {list.map((method) => (
        <label key={method.id} class="inline choice">
          <input
            type="radio"
            name="paymentMethod"
            value={method.id}
            checked={props.value === method.id || (props.value === undefined && method.default)}
            onChange={() => props.onChange(method.id)}
          />
          {method.brand} ending in {method.last4}
          {method.default && ' (default)'}
          {method.behavior === 'decline' && <span class="muted"> (test card that declines)</span>}
        </label>
      ))}
      {props.error && (
        <p id="payment-error" class="field-error">
          {props.error}
        </p>
      )}
      {none || adding ? (
        <AddCardForm
          makeDefault={none}
          onAdded={(method) => {
            setAdding(false);
            props.onChange(method.id);
            void methods.reload();
          }}
        />
      ) : (
        <button type="button" onClick={() => setAdding(true)}>
          Add a test card
        </button>
      )}
    </fieldset>
  );
}

/** Dollars as typed (`"20.5"`) in the cents the API takes. */
export const centsOfTyped = (dollars: string) => Math.round(Number(dollars) * 100);

/** A prepayment plan's amount, in dollars, with the plan's bounds said beside it and its field error under it. */
export function PrepaymentField(props: {
  id: string;
  plan: BillingPlan;
  value: string;
  onChange: (value: string) => void;
  disabled: boolean;
  error?: string | undefined;
}) {
  const { id, plan } = props;
  return (
    <div class="field">
      <label for={id}>Prepayment amount (USD)</label>
      <input
        id={id}
        type="number"
        inputMode="decimal"
        step="0.01"
        min={plan.minimumAmount}
        max={plan.maximumAmount}
        value={props.value}
        disabled={props.disabled}
        onInput={(event) => props.onChange((event.target as HTMLInputElement).value)}
        aria-describedby={`${id}-help ${id}-error`}
        aria-invalid={props.error ? true : undefined}
      />
      <p id={`${id}-help`} class="muted">
        {plan.minimumAmount && `At least $${plan.minimumAmount}`}
        {plan.minimumAmount && plan.maximumAmount && ', '}
        {plan.maximumAmount && `at most $${plan.maximumAmount}`}
      </p>
      {props.error && (
        <p id={`${id}-error`} class="field-error">
          {props.error}
        </p>
      )}
    </div>
  );
}
