/**
 * The dashboard's only way to Storehouse: its public API, with the session cookie the browser
 * sends by itself (HttpOnly: this code never sees it), the session's CSRF token on every write,
 * and the team the person is looking at as `?teamId=`, as Vercel's clients send it.
 */

/** A refusal from the API, in Vercel's error format: its message is what the page shows. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** `validation_error`'s fields: which metadata key is wrong and why. */
    readonly fields: Array<{ key: string; message: string }> = [],
  ) {
    super(message);
  }
}

let csrfToken: string | undefined;
let teamId: string | undefined;
let onSignedOut: () => void = () => {};

export const setCsrfToken = (token: string | undefined) => {
  csrfToken = token;
};
export const setTeam = (id: string | undefined) => {
  teamId = id;
};
/** Called when the API answers 401: the session ended (signed out elsewhere, expired). */
export const whenSignedOut = (handler: () => void) => {
  onSignedOut = handler;
};

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  /** Sent as Idempotency-Key: a retry (or a second click) with the same key makes nothing twice. */
  idempotencyKey?: string;
  /** Leave the team out (the session endpoints, /v2/user, /v2/teams). */
  noTeam?: boolean;
}

export async function request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
  const url = new URL(path, location.origin);
  if (!options.noTeam && teamId) url.searchParams.set('teamId', teamId);
  for (const [key, value] of Object.entries(options.query ?? {})) if (value !== undefined) url.searchParams.set(key, String(value));
  const headers: Record<string, string> = { accept: 'application/json' };
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-storehouse-csrf'] = csrfToken;
  if (options.idempotencyKey) headers['idempotency-key'] = options.idempotencyKey;
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers,
      credentials: 'same-origin',
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, 'network_error', 'Storehouse cannot be reached: check that the server is running, then try again.');
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!response.ok) {
    const error = (body as { error?: { code?: string; message?: string; fields?: Array<{ key: string; message: string }> } })?.error;
    if (response.status === 401 && !path.startsWith('/_storehouse/dashboard/session')) onSignedOut();
    throw new ApiError(
      response.status,
      error?.code ?? 'http_error',
      error?.message ?? `Storehouse answered ${response.status} ${response.statusText}`,
      error?.fields ?? [],
    );
  }
  return body as T;
}

export const api = {
  get: <T>(path: string, options?: RequestOptions) => request<T>('GET', path, options),
  post: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('POST', path, { ...options, body }),
  patch: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('PATCH', path, { ...options, body }),
  delete: <T>(path: string, body?: unknown, options?: RequestOptions) => request<T>('DELETE', path, { ...options, body }),
};

/** A new Idempotency-Key: one per form submission, kept while the same submission is retried. */
export const newIdempotencyKey = () => crypto.randomUUID();
