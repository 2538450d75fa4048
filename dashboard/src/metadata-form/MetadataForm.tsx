/** @jsxRuntime automatic */
/** @jsxImportSource preact */
/**
 * The creation and settings form generated from a product's `metadataSchema`: one control per
 * property, of the twelve (type, ui:control) variants the catalog allows, with its label,
 * description, placeholder, formatted value and the server's validation message, each control
 * shown, locked or left out as `ui:hidden`, `ui:disabled`, `ui:read-only` and `ui:paid-only` say
 * for this form's mode, plan and current values.
 *
 * Controlled: the caller holds the values (initialValues() gives the first ones) and sends
 * toMetadata(schema, values, mode, { paidPlan }). Native controls only, so every one is
 * keyboard operable and labelled by a <label> or a <legend>; descriptions, formatted values and
 * errors are tied to their controls with aria-describedby. The look is metadata-form.css's,
 * which Vite bundles with it.
 */
import type { ComponentChildren } from 'preact';
import { useEffect, useId, useRef, useState } from 'preact/hooks';
import { evaluateText, holds, type Scope } from './expressions.ts';
import {
  expressionScope,
  type FieldState,
  type FieldValue,
  fieldState,
  type MetadataFormProps,
  metadataProblems,
  type MetadataProperty,
  type Mode,
  normalizeOption,
  orderedKeys,
} from './metadata.ts';
import { countryName, regionName } from './places.ts';
import './metadata-form.css';

export type { MetadataFormProps };

const PROVIDERS = { github: 'GitHub', gitlab: 'GitLab', bitbucket: 'Bitbucket' };

/** What one field's parts need: ids that tie them together, its state, and how it sets its value. */
interface Field {
  key: string;
  /** The control's id and its name: unique on the page, so a radio group never joins one of the page's own (its plan radios). */
  id: string;
  property: MetadataProperty;
  value: FieldValue | undefined;
  state: FieldState;
  locked: boolean;
  required: boolean;
  error: string | undefined;
  describedBy: string | undefined;
  mode: Mode;
  scope: Scope;
  set: (value: FieldValue) => void;
}

/** Text as part of an id: letters, digits, _ and - as they are, anything else (spaces, which would split aria-describedby) by its code. */
const idPart = (text: string) => text.replace(/[^A-Za-z0-9_-]/g, (c) => `.${c.codePointAt(0)!.toString(16)}.`);

/**
 * Keeps the form around it from being sent while a value breaks its schema's rules: a submit
 * listener on the <form> that runs before the page's own (a capturing listener on the target
 * runs first) stops the submit, shows every such field's message and moves focus to the first.
 * The page's form is noValidate (the server's validation_error lands beside each field, and
 * native bubbles would say it differently), so the browser's own checks do not do this.
 */
function useSubmitGuard(problems: Record<string, string>, showAll: () => void) {
  const root = useRef<HTMLDivElement>(null);
  const current = useRef({ problems, showAll });
  current.current = { problems, showAll };
  useEffect(() => {
    const form = root.current?.closest('form');
    if (!form) return;
    const guard = (event: Event) => {
      const keys = Object.keys(current.current.problems);
      if (keys.length === 0) return;
      event.preventDefault();
      event.stopImmediatePropagation();
      current.current.showAll();
      const first = root.current?.querySelector<HTMLElement>(`.mf-field[data-problem] :is(input, select):not(:disabled)`);
      first?.focus();
    };
    form.addEventListener('submit', guard, true);
    return () => form.removeEventListener('submit', guard, true);
  }, []);
  return root;
}

export function MetadataForm({ schema, mode, values, onChange, errors = {}, paidPlan, disabled = false }: MetadataFormProps) {
  const prefix = useId();
  const scope = expressionScope(schema, values);
  const required = new Set(schema.required ?? []);
  // A field's own check shows once it has been left (or a submit was stopped), not while the first characters are typed.
  const [touched, setTouched] = useState<ReadonlySet<string> | 'all'>(new Set());
  const problems = metadataProblems(schema, values, mode, { paidPlan });
  const root = useSubmitGuard(problems, () => setTouched('all'));
  const leave = (key: string) => setTouched((old) => (old === 'all' || old.has(key) ? old : new Set([...old, key])));
  return (
    <div class="mf" ref={root}>
      {orderedKeys(schema).map((key) => {
        const property = schema.properties[key]!;
        const state = fieldState(property, mode, scope, { paidPlan });
        if (state.hidden) return null;
        const id = `${prefix}-${idPart(key)}`;
        const problem = touched === 'all' || touched.has(key) ? problems[key] : undefined;
        const error = errors[`metadata.${key}`] ?? errors[key] ?? problem;
        const description = describe(property, scope);
        const hint = bounds(property);
        const formatted = property['ui:formatted-value'] ? evaluateText(property['ui:formatted-value'].expr, scope) : undefined;
        const notes = [
          description && `${id}-description`,
          hint && `${id}-hint`,
          formatted && `${id}-value`,
          state.paidOnly && `${id}-paid`,
          error && `${id}-error`,
        ];
        const field: Field = {
          key,
          id,
          property,
          value: values[key],
          state,
          locked: disabled || state.locked,
          required: required.has(key),
          error,
          describedBy: notes.filter(Boolean).join(' ') || undefined,
          mode,
          scope,
          set: (value) => onChange({ ...values, [key]: value }),
        };
        return (
          <div
            class="mf-field"
            key={key}
            data-key={key}
            data-control={property['ui:control']}
            data-invalid={error ? '' : undefined}
            data-problem={problems[key] ? '' : undefined}
            onBlurCapture={() => leave(key)}
          >
            {renderControl(field, formatted)}
            {description && (
              <p class="mf-description" id={`${id}-description`}>
                {description}
              </p>
            )}
            {hint && (
              <p class="mf-hint" id={`${id}-hint`}>
                {hint}
              </p>
            )}
            {state.paidOnly && (
              <p class="mf-paid-only" id={`${id}-paid`}>
                Available on paid plans: choose a paid plan to change it.
              </p>
            )}
            {error && (
              <p class="mf-error" id={`${id}-error`} role="alert">
                {error}
              </p>
            )}
          </div>
        );
      })}
    </div>
  );
}

/** `ui:description` (text or an expression's), else `description`; a git namespace says which providers it takes. */
function describe(property: MetadataProperty, scope: Scope): string {
  const own = property['ui:description'];
  const text = typeof own === 'object' ? evaluateText(own.expr, scope) : (own ?? property.description ?? '');
  if (text || property['ui:control'] !== 'git-namespace') return text;
  const providers = (property['git:providers'] ?? ['github', 'gitlab', 'bitbucket']).map((p) => PROVIDERS[p]);
  return `A ${providers.join(', ')} user or organization.`;
}

const list = (n: number, one: string) => `${n} ${one}${n === 1 ? '' : 's'}`;

/** The schema's bounds as a line under the control ("From 1 to 64."), so they are known before a value breaks them. */
function bounds(property: MetadataProperty): string {
  if (property.type === 'number') {
    const low = property.minimum ?? property.exclusiveMinimum;
    const high = property.maximum ?? property.exclusiveMaximum;
    const above = property.minimum !== undefined ? `at least ${low}` : `more than ${low}`;
    const below = property.maximum !== undefined ? `at most ${high}` : `less than ${high}`;
    if (low !== undefined && high !== undefined) return `A number, ${above} and ${below}.`;
    if (low !== undefined) return `A number, ${above}.`;
    return high !== undefined ? `A number, ${below}.` : '';
  }
  if (property.type === 'string' && property['ui:control'] !== 'git-namespace' && !property['ui:options']) {
    const { minLength: min, maxLength: max } = property;
    if (min !== undefined && max !== undefined) return `${min} to ${list(max, 'character')}.`;
    if (min !== undefined) return `At least ${list(min, 'character')}.`;
    return max !== undefined ? `At most ${list(max, 'character')}.` : '';
  }
  if (property.type === 'array' && property['ui:control'] !== 'slider') {
    const { minItems: min, maxItems: max } = property;
    if (min !== undefined && max !== undefined) return `Choose ${min} to ${max}.`;
    if (min !== undefined) return `Choose at least ${min}.`;
    return max !== undefined ? `Choose at most ${max}.` : '';
  }
  return '';
}

function Label({ field, id, children }: { field: Field; id?: string; children?: ComponentChildren }) {
  return (
    <label class="mf-label" for={id ?? field.id}>
      {children ?? field.property['ui:label'] ?? field.key}
      {field.required && <span class="mf-required"> (required)</span>}
    </label>
  );
}

function Legend({ field }: { field: Field }) {
  return (
    <legend class="mf-label">
      {field.property['ui:label'] ?? field.key}
      {field.required && <span class="mf-required"> (required)</span>}
    </legend>
  );
}

/** What every control of a field carries: its description and error, whether it is required or invalid. */
function aria(field: Field) {
  return {
    'aria-describedby': field.describedBy,
    'aria-invalid': field.error ? ('true' as const) : undefined,
    'aria-required': field.required ? ('true' as const) : undefined,
  };
}

/** The formatted value (`ui:formatted-value`), or a slider's own value when it has none, beside the control. */
function Output({ field, text }: { field: Field; text: string | undefined }) {
  if (!text) return null;
  return (
    <output class="mf-value" id={`${field.id}-value`} for={field.id}>
      {text}
    </output>
  );
}

/** Options of a select, radio group or checkbox group on this form: those not hidden, each disabled when its own rule says. */
function options(field: Field) {
  const control = field.property['ui:control'];
  const name = control === 'vercel-country' ? countryName : control.includes('vercel-region') ? regionName : undefined;
  return (field.property['ui:options'] ?? [])
    .map((option) => normalizeOption(option, name))
    .filter((option) => !holds(option.hidden, field.mode, field.scope))
    .map((option) => ({ ...option, disabled: holds(option.disabled, field.mode, field.scope) }));
}

function renderControl(field: Field, formatted: string | undefined) {
  const { property } = field;
  switch (property['ui:control']) {
    case 'toggle':
      return <Toggle field={field} formatted={formatted} />;
    case 'slider':
      return <Slider field={field} formatted={formatted} />;
    case 'select':
    case 'vercel-region':
    case 'vercel-country':
      return <Select field={field} formatted={formatted} />;
    case 'radio-button':
      return <Choices field={field} formatted={formatted} multiple={false} />;
    case 'multi-select':
    case 'multi-vercel-region':
      return <Choices field={field} formatted={formatted} multiple={true} />;
    default:
      return <TextInput field={field} formatted={formatted} />;
  }
}

/** String and number inputs, domains and git namespaces: a text box (read-only ones stay focusable and selectable). */
function TextInput({ field, formatted }: { field: Field; formatted: string | undefined }) {
  const { property } = field;
  const control = property['ui:control'];
  const common = {
    id: field.id,
    name: field.id,
    class: 'mf-input',
    placeholder: property['ui:placeholder'],
    autocomplete: 'off',
    value: typeof field.value === 'string' ? field.value : '',
    readOnly: field.state.readOnly,
    disabled: field.locked && !field.state.readOnly,
    onInput: (event: { currentTarget: HTMLInputElement }) => field.set(event.currentTarget.value),
    ...aria(field),
  };
  return (
    <>
      <Label field={field} />
      <span class="mf-row">
        {property.type === 'number' ? (
          // Text, not type="number": a number input's value is "" while its text is not a number ("1e",
          // "1,5"), which would send nothing and let the server fill the default in; as text, what
          // was typed is kept and checked (bounds() says the range, metadataProblems() enforces it).
          <input {...common} type="text" inputMode="decimal" spellcheck={false} />
        ) : (
          <input
            {...common}
            type="text"
            inputMode={control === 'domain' ? 'url' : undefined}
            spellcheck={control === 'input'}
            minLength={property.minLength}
            maxLength={property.maxLength}
          />
        )}
        <Output field={field} text={formatted} />
      </span>
    </>
  );
}

function Toggle({ field, formatted }: { field: Field; formatted: string | undefined }) {
  return (
    <span class="mf-row">
      <input
        id={field.id}
        name={field.id}
        class="mf-toggle"
        type="checkbox"
        role="switch"
        checked={field.value === true}
        aria-checked={field.value === true ? 'true' : 'false'}
        disabled={field.locked}
        onChange={(event) => field.set(event.currentTarget.checked)}
        {...aria(field)}
      />
      <Label field={field} />
      <Output field={field} text={formatted} />
    </span>
  );
}

/**
 * A select of the options; with nothing chosen yet, the placeholder (or "Choose…") is the first
 * entry. A value whose option is hidden now shows as nothing chosen (it is not sent); one the
 * options do not name at all (a store's value from an older catalog) is shown as it is.
 */
function Select({ field, formatted }: { field: Field; formatted: string | undefined }) {
  const choices = options(field);
  const own = typeof field.value === 'string' ? field.value : '';
  const named = (field.property['ui:options'] ?? []).some((option) => (typeof option === 'string' ? option : option.value) === own);
  const value = named && !choices.some((option) => option.value === own) ? '' : own;
  if (value !== '' && !named) choices.push({ value, label: value, disabled: false });
  return (
    <>
      <Label field={field} />
      <span class="mf-row">
        <select
          id={field.id}
          name={field.id}
          class="mf-select"
          value={value}
          disabled={field.locked}
          onChange={(event) => field.set(event.currentTarget.value)}
          {...aria(field)}
        >
          {(value === '' || !field.required) && <option value="">{field.property['ui:placeholder'] ?? 'Choose…'}</option>}
          {choices.map((option) => (
            <option key={option.value} value={option.value} disabled={option.disabled} title={option.description}>
              {option.label}
            </option>
          ))}
        </select>
        <Output field={field} text={formatted} />
      </span>
    </>
  );
}

/** Radio buttons (one value) or checkboxes (a list of values) in a fieldset named by its legend. */
function Choices({ field, formatted, multiple }: { field: Field; formatted: string | undefined; multiple: boolean }) {
  const chosen = Array.isArray(field.value) ? (field.value as string[]) : [field.value];
  const toggle = (value: string, on: boolean) => {
    if (!multiple) return field.set(value);
    const rest = (field.value as string[]).filter((v) => v !== value);
    field.set(on ? [...rest, value] : rest);
  };
  const choices = (
    <>
      <Legend field={field} />
      {options(field).map((option) => {
        const id = `${field.id}-${idPart(option.value)}`;
        return (
          <span class="mf-choice" key={option.value}>
            <input
              id={id}
              name={field.id}
              type={multiple ? 'checkbox' : 'radio'}
              value={option.value}
              checked={chosen.includes(option.value)}
              disabled={field.locked || option.disabled}
              onChange={(event) => toggle(option.value, event.currentTarget.checked)}
              aria-invalid={field.error ? 'true' : undefined}
            />
            <Label field={{ ...field, required: false }} id={id}>
              {option.label}
              {option.description && <span class="mf-option-description"> {option.description}</span>}
            </Label>
          </span>
        );
      })}
      <Output field={field} text={formatted} />
    </>
  );
  // A fieldset and its legend name the group (its "(required)" says so); the group is described by
  // the field's notes and each of its inputs is marked invalid, as ARIA supports on checkboxes and radios.
  return (
    <fieldset class="mf-group" id={field.id} aria-describedby={field.describedBy}>
      {choices}
    </fieldset>
  );
}

/**
 * A slider moves over `ui:steps` only: its range input runs over the steps' positions and
 * announces the step's value (aria-valuetext). The value is a list (one number per thumb).
 */
function Slider({ field, formatted }: { field: Field; formatted: string | undefined }) {
  const steps = [...(field.property['ui:steps'] ?? [])].sort((a, b) => a - b);
  const numbers = Array.isArray(field.value) ? (field.value as number[]) : [];
  const nearest = (n: number) => steps.reduce((best, step, i) => (Math.abs(step - n) < Math.abs(steps[best]! - n) ? i : best), 0);
  const text = formatted || numbers.join(' – ');
  const thumb = (n: number, index: number) => {
    const id = numbers.length > 1 ? `${field.id}-${index}` : field.id;
    const position = nearest(n);
    return (
      <span class="mf-row" key={index}>
        {numbers.length > 1 && (
          <Label field={{ ...field, required: false }} id={id}>
            {`${field.property['ui:label'] ?? field.key} ${index + 1} of ${numbers.length}`}
          </Label>
        )}
        <input
          id={id}
          name={field.id}
          class="mf-slider"
          type="range"
          min={0}
          max={Math.max(0, steps.length - 1)}
          step={1}
          value={position}
          aria-valuetext={String(steps[position] ?? n)}
          disabled={field.locked}
          onInput={(event) => {
            const next = [...numbers];
            next[index] = steps[Number(event.currentTarget.value)] ?? n;
            field.set(next);
          }}
          {...aria(field)}
        />
        {numbers.length === 1 && <Output field={field} text={text} />}
      </span>
    );
  };
  if (numbers.length <= 1) {
    return (
      <>
        <Label field={field} />
        {numbers.map(thumb)}
      </>
    );
  }
  return (
    <fieldset class="mf-group" aria-describedby={field.describedBy}>
      <Legend field={field} />
      {numbers.map(thumb)}
      <Output field={field} text={text} />
    </fieldset>
  );
}
