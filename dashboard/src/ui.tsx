/** Pieces every page uses: loading what a page shows, its errors, confirmations and copying. */
import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.ts';

export interface Loaded<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => Promise<void>;
}

/** Runs `load` when `deps` change (and on `reload`); a refusal becomes `error`, shown by the page. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const reload = useCallback(async () => {
    const mine = ++generation.current;
    setLoading(true);
    try {
      const value = await load();
      if (mine !== generation.current) return;
      setData(value);
      setError(undefined);
    } catch (caught) {
      if (mine !== generation.current) return;
      setError(caught as Error);
    } finally {
      if (mine === generation.current) setLoading(false);
    }
  }, deps);
  useEffect(() => {
    void reload();
  }, [reload]);
  return { data, error, loading, reload };
}

/**
 * What a form or button does when used: `busy` while it runs, and the API's refusal kept in
 * `error` for the page to show beside it. A second use while the first still runs does nothing
 * (a double click or Enter pressed twice comes before the disabled button has rendered).
 */
export function useAction() {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  const running = useRef(false);
  const run = async (action: () => Promise<unknown>) => {
    if (running.current) return;
    running.current = true;
    setBusy(true);
    setError(undefined);
    try {
      await action();
    } catch (caught) {
      setError(caught as Error);
    } finally {
      running.current = false;
      setBusy(false);
    }
  };
  /** A form's onSubmit: the page stays where it is, and `action` runs. */
  const submit = (action: () => Promise<unknown>) => (event: Event) => {
    event.preventDefault();
    void run(action);
  };
  return { busy, error, setError, run, submit };
}

/** A refusal's message (the API's own words), announced to screen readers. */
export function ErrorNotice({ error, title }: { error: Error | undefined; title?: string }) {
  if (!error) return null;
  const code = error instanceof ApiError ? error.code : undefined;
  return (
    <div class="notice error" role="alert">
      {title && <strong>{title}: </strong>}
      {error.message}
      {code && code !== 'http_error' && <span class="muted"> ({code})</span>}
    </div>
  );
}

export function Loading({ what }: { what: string }) {
  return (
    <p class="muted" role="status" aria-live="polite">
      Loading {what}…
    </p>
  );
}

/** What a page shows while loading, on error, and once loaded. */
export function Show<T>({ loaded, what, children }: { loaded: Loaded<T>; what: string; children: (data: T) => ComponentChildren }) {
  if (loaded.error && loaded.data === undefined) return <ErrorNotice error={loaded.error} title={`Cannot load ${what}`} />;
  if (loaded.data === undefined) return <Loading what={what} />;
  return (
    <>
      <ErrorNotice error={loaded.error} title={`Cannot refresh ${what}`} />
      {children(loaded.data)}
    </>
  );
}

/** Calls `tick` every `ms` while `active`: for what changes by itself (a store initializing). */
export function useInterval(tick: () => void, ms: number, active: boolean) {
  const saved = useRef(tick);
  saved.current = tick;
  useEffect(() => {
    if (!active) return;
    const timer = setInterval(() => saved.current(), ms);
    return () => clearInterval(timer);
  }, [ms, active]);
}

/** A button that runs an action, disabled while it runs, with its error beside it. */
export function ActionButton(props: {
  action: () => Promise<unknown>;
  children: ComponentChildren;
  class?: string;
  disabled?: boolean;
  label?: string;
}) {
  const { busy, error, run } = useAction();
  return (
    <span class="action">
      <button
        type="button"
        class={props.class}
        aria-label={props.label}
        disabled={busy || props.disabled}
        onClick={() => run(props.action)}
      >
        {props.children}
      </button>
      <ErrorNotice error={error} />
    </span>
  );
}

/** A modal confirmation (the native <dialog>: focus moves into it and Escape closes it). */
export function Confirm(props: {
  open: boolean;
  title: string;
  children: ComponentChildren;
  confirm: string;
  onConfirm: () => Promise<void>;
  onClose: () => void;
}) {
  const dialog = useRef<HTMLDialogElement>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<Error>();
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (props.open && !element.open) element.showModal();
    if (!props.open && element.open) element.close();
  }, [props.open]);
  return (
    <dialog ref={dialog} aria-labelledby="confirm-title" onClose={props.onClose}>
      <h2 id="confirm-title">{props.title}</h2>
      {props.children}
      <ErrorNotice error={error} />
      <div class="row">
        <button
          type="button"
          class="danger"
          disabled={busy}
          onClick={async () => {
            setBusy(true);
            setError(undefined);
            try {
              await props.onConfirm();
            } catch (caught) {
              setError(caught as Error);
            } finally {
              setBusy(false);
            }
          }}
        >
          {props.confirm}
        </button>
        <button type="button" onClick={() => props.onClose()}>
          Cancel
        </button>
      </div>
    </dialog>
  );
}

/** Copies `value` to the clipboard, saying so (or why not). */
export function CopyButton({ value, label }: { value: string; label: string }) {
  const [state, setState] = useState<'idle' | 'copied' | 'failed'>('idle');
  return (
    <button
      type="button"
      aria-label={label}
      onClick={async () => {
        try {
          await navigator.clipboard.writeText(value);
          setState('copied');
        } catch {
          setState('failed');
        }
      }}
    >
      {state === 'copied' ? 'Copied' : state === 'failed' ? 'Copy failed: select and copy' : 'Copy'}
    </button>
  );
}

export function StatusBadge({ status }: { status: string }) {
  const tone = status === 'available' ? 'ok' : status === 'initializing' || status === 'onboarding' ? 'busy' : 'bad';
  return <span class={`badge ${tone}`}>{status}</span>;
}

export const formatDate = (millis: number | string | undefined) => (millis === undefined ? '' : new Date(millis).toLocaleString());

/** The environments a variable or a connected project can be given to, in Vercel's order. */
export const ENVIRONMENTS = ['production', 'preview', 'development'] as const;

/** A fieldset of one checkbox per environment; `chosen` is the environments ticked. */
export function EnvironmentsField({ chosen, onChange }: { chosen: string[]; onChange: (chosen: string[]) => void }) {
  return (
    <fieldset>
      <legend>Environments</legend>
      {ENVIRONMENTS.map((environment) => (
        <label key={environment} class="inline">
          <input
            type="checkbox"
            checked={chosen.includes(environment)}
            onChange={(event) =>
              onChange((event.target as HTMLInputElement).checked ? [...chosen, environment] : chosen.filter((e) => e !== environment))
            }
          />{' '}
          {environment}
        </label>
      ))}
    </fieldset>
  );
}
