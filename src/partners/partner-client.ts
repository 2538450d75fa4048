/**
 * Calls to one partner server (docs/partner-api.md §1): each carries an OIDC JWT
 * signed by Storehouse (user or system style, §2.1) and, when it changes something, an
 * Idempotency-Key that stays the same across retries. Network errors, timeouts and 5xx answers
 * are retried a bounded number of times with exponential backoff and jitter; any 2xx is success,
 * a body is parsed only when there is one, and what it must hold is checked against the partner
 * contract (partner-contract.ts). Calls go through src/outbound/outbound-http.ts: a redirect is
 * never followed (502 `provider_redirect`), an answer past STOREHOUSE_OUTBOUND_MAX_BODY_BYTES is
 * not read, and what the partner says goes into Storehouse's messages as a short excerpt only.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { AppError } from '../errors.ts';
import { excerpt, OutboundFailure, send, type OutboundAnswer } from '../outbound/outbound-http.ts';
import { checkAnswer, type ContractName } from './partner-contract.ts';
import type { SigningKeys } from './signing-keys.ts';

/** Who a call is made for: a user (user-style token) or, without one, the installation (system style). */
export interface CallIdentity {
  /** The team (Vercel's account); absent only for plans asked before any installation exists. */
  accountId: string | null;
  installationId: string | null;
  user?: { id: string; role: 'ADMIN' | 'USER'; email?: string | undefined; name?: string | undefined } | undefined;
}

export interface PartnerCall {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string> | undefined;
  body?: unknown;
  /** Required on every mutating call, the same on every retry. */
  idempotencyKey?: string | undefined;
  identity: CallIdentity;
  /** The contract the answer's body is checked against; without one the body is ignored. */
  answer?: ContractName | undefined;
}

export interface PartnerClientOptions {
  baseUrl: string;
  /** The integration's client id: the tokens' audience. */
  clientId: string;
  keys: SigningKeys;
  issuer: () => string;
  /** How long one attempt may take. */
  timeoutMs: number;
  /** The most bytes of an answer read (STOREHOUSE_OUTBOUND_MAX_BODY_BYTES). */
  maxBodyBytes: number;
  /** Attempts after the first, on network errors, timeouts and 5xx. */
  retries: number;
  /** The first backoff; each retry doubles it (with jitter). */
  backoffMs: number;
}

/**
 * A token's `sub` names the account (and user) in hex, as Vercel documents its pattern
 * (`account:<hex>:user:<hex>`, docs/partner-api.md §2.1): Storehouse's ids (`team_...`) are not
 * hex, so their bytes are written in hex; `account_id` and `user_id` carry the ids as they are.
 */
export const subject = (accountId: string | null, userId?: string) => {
  const hex = (id: string | null) => (id === null ? '' : Buffer.from(id).toString('hex'));
  return `account:${hex(accountId)}${userId === undefined ? '' : `:user:${hex(userId)}`}`;
};

/**
 * The claims of a user-style token (docs/partner-api.md §2.1) for the integration `clientId`: the
 * ones partner calls made for a user carry, and the id_token of an SSO login (src/partners/sso.ts).
 */
export function userTokenClaims(clientId: string, identity: CallIdentity & { user: NonNullable<CallIdentity['user']> }) {
  const { accountId, installationId, user } = identity;
  return {
    aud: clientId,
    account_id: accountId,
    installation_id: installationId,
    sub: subject(accountId, user.id),
    user_id: user.id,
    user_role: user.role,
    ...(user.email && { user_email: user.email }),
    ...(user.name && { user_name: user.name }),
    type: 'id_token',
  };
}

/** The partner answered with an error status (after retries, for 5xx). */
export class PartnerError extends AppError {
  constructor(
    status: number,
    code: string,
    message: string,
    readonly partnerStatus: number,
    extra: Record<string, unknown> = {},
  ) {
    super(status, code, message, extra);
  }
}

export class PartnerClient {
  constructor(private readonly options: PartnerClientOptions) {}

  /** Signs the token a call carries: user style when a user is behind it, else system style. */
  private async token(identity: CallIdentity): Promise<{ token: string; style: 'user' | 'system' }> {
    const { accountId, installationId, user } = identity;
    if (user) {
      const claims = userTokenClaims(this.options.clientId, { accountId, installationId, user });
      return { token: await this.options.keys.sign(claims, this.options.issuer()), style: 'user' };
    }
    const common = { aud: this.options.clientId, account_id: accountId, installation_id: installationId };
    const claims = { ...common, sub: accountId ? subject(accountId) : null, type: 'access_token' };
    return { token: await this.options.keys.sign(claims, this.options.issuer()), style: 'system' };
  }

  /** Makes the call; the answer's body when there is one (checked if `answer` names a contract). */
  async call<T = unknown>(call: PartnerCall): Promise<T> {
    const url = new URL(this.options.baseUrl.replace(/\/+$/, '') + call.path);
    for (const [name, value] of Object.entries(call.query ?? {})) url.searchParams.set(name, value);
    const label = `${call.method} ${call.path}`;
    const headers: Record<string, string> = { accept: 'application/json' };
    if (call.idempotencyKey) headers['idempotency-key'] = call.idempotencyKey;
    if (call.body !== undefined) headers['content-type'] = 'application/json';
    const body = call.body === undefined ? undefined : JSON.stringify(call.body);

    let lastFailure = '';
    for (let attempt = 0; attempt <= this.options.retries; attempt++) {
      if (attempt > 0) {
        const backoff = this.options.backoffMs * 2 ** (attempt - 1);
        await sleep(backoff / 2 + Math.random() * backoff);
      }
      // Signed for each attempt: retries may outlast a token's five minutes.
      const { token, style } = await this.token(call.identity);
      headers.authorization = `Bearer ${token}`;
      headers['x-vercel-auth'] = style;
      let answer: OutboundAnswer;
      try {
        answer = await send(url, { method: call.method, headers, body }, this.options);
      } catch (error) {
        if (!(error instanceof OutboundFailure)) throw error;
        if (error.kind === 'redirect') throw redirected(label, error);
        if (error.kind === 'too_large') {
          // A success too large to read took effect all the same: a contract fault, as an unreadable
          // answer is, unless the call needs no answer. An error's status is enough without its body.
          if (error.status < 300 && !call.answer) return undefined as T;
          if (error.status < 300) throw tooLarge(label, this.options.maxBodyBytes);
          answer = { status: error.status, headers: new Headers(), text: '' };
        } else {
          lastFailure = error.message;
          continue;
        }
      }
      const { status: answered, text } = answer;
      if (answered >= 500) {
        lastFailure = `${answered}${errorDetail(text)}`;
        if (attempt < this.options.retries) continue;
        throw new PartnerError(502, 'provider_error', `The partner server answered ${label} with ${lastFailure}`, answered);
      }
      if (answered >= 300) throw refusal(label, answered, text);
      if (!call.answer) return undefined as T;
      let parsed: unknown;
      try {
        parsed = text === '' ? undefined : JSON.parse(text);
      } catch {
        // Not quoted: a provision's answer carries secrets, and this message is logged and shown.
        throw new AppError(502, 'provider_invalid_response', `The partner server's answer to ${label} is not JSON (${text.length} bytes)`);
      }
      if (parsed === undefined && call.answer === 'installation') return undefined as T; // 204, or 200 without a body
      if (parsed === undefined) {
        throw new AppError(
          502,
          'provider_invalid_response',
          `The partner server answered ${label} with ${answered} and no body; the partner API expects a JSON body`,
        );
      }
      return checkAnswer<T>(call.answer, parsed, label);
    }
    throw new PartnerError(
      503,
      'provider_unavailable',
      `Cannot reach the partner server at ${this.options.baseUrl} (${label}): ${lastFailure}`,
      0,
    );
  }
}

/** The partner's error body, `{error:{code,message,fields?}}`, when it sent one. */
function parseError(text: string): { code?: unknown; message?: unknown; fields?: unknown } | undefined {
  try {
    const body = JSON.parse(text) as { error?: unknown };
    return typeof body.error === 'object' && body.error !== null ? (body.error as { code?: unknown; message?: unknown }) : undefined;
  } catch {
    return undefined;
  }
}

/** A partner's error code, when it is one (letters, digits, `_`, `.`, `-`): it may become Storehouse's own answer's code. */
function codeOf(error: { code?: unknown } | undefined): string | undefined {
  return typeof error?.code === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(error.code) ? error.code : undefined;
}

/** What the partner said, for a message: its code and message, or its text, as a short sanitised excerpt. */
function errorDetail(text: string): string {
  const error = parseError(text);
  const said = error ? [codeOf(error), typeof error.message === 'string' ? error.message : undefined].filter(Boolean).join(': ') : '';
  if (said) return ` (${excerpt(said)})`;
  const quoted = excerpt(text);
  return quoted ? ` (${JSON.stringify(quoted)})` : '';
}

/** The partner's `fields` of a 400, passed on to the caller: `{key, message}` pairs only, a few, each excerpted. */
function fieldsOf(error: { fields?: unknown } | undefined): Array<{ key: string; message: string }> | undefined {
  if (!Array.isArray(error?.fields)) return undefined;
  return error.fields
    .filter((field): field is { key: string; message?: unknown } => typeof field?.key === 'string')
    .slice(0, MAX_FIELDS)
    .map((field) => ({ key: excerpt(field.key, 100), message: typeof field.message === 'string' ? excerpt(field.message) : '' }));
}

const MAX_FIELDS = 20;

/**
 * A 4xx answer. What the caller can act on keeps its status: 400 (with the partner's `fields`),
 * 404 (gone) and 409 (conflict). Anything else (the partner refusing Storehouse's own token,
 * say) is the provider's failure, 502, never a 401 or 403 to a caller whose own token is fine.
 */
function refusal(label: string, status: number, text: string): PartnerError {
  const error = parseError(text);
  const code = codeOf(error) ?? (status === 404 ? 'not_found' : 'provider_refused');
  const message = `The partner server answered ${label} with ${status}${errorDetail(text)}`;
  const kept = status === 400 || status === 404 || status === 409;
  const fields = fieldsOf(error);
  return new PartnerError(kept ? status : 502, kept ? code : 'provider_refused', message, status, fields ? { fields } : {});
}

/**
 * A 3xx answer: the partner API documents none (docs/partner-api.md §1), and following one would
 * send the call, its token and its body (an upsert's access token) wherever the partner points,
 * Storehouse's own network included. A definite refusal: it is not retried.
 */
function redirected(label: string, failure: OutboundFailure): PartnerError {
  return new PartnerError(
    502,
    'provider_redirect',
    `The partner server answered ${label} with ${failure.message}: the partner API has no redirects, and Storehouse follows none`,
    failure.status,
  );
}

function tooLarge(label: string, max: number): AppError {
  return new AppError(
    502,
    'provider_invalid_response',
    `The partner server's answer to ${label} is larger than ${max} bytes (STOREHOUSE_OUTBOUND_MAX_BODY_BYTES); Storehouse stopped reading it`,
  );
}
