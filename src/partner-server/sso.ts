/**
 * The reference partner's login side of SSO, "Open in provider": its Redirect Login URL
 * (`GET /sso`, the catalog's `redirectLoginUrl`). The marketplace sends the user here with
 * `mode=sso`, a one-time `code`, a `state` and the context (resource, invoice...); the partner
 * exchanges the code at the marketplace's `POST /v1/integrations/sso/token` with its client id
 * and secret, verifies the id_token it gets against the marketplace's JWKS exactly as it verifies
 * the marketplace's calls (auth.ts: RS256, issuer, its client id as audience), and signs the user
 * in. A real provider would set a session and redirect into its dashboard; this one answers who
 * signed in and what they opened (JSON when asked, else a small page), and never keeps the token.
 */
import type { FastifyInstance } from 'fastify';
import { AppError, badRequest } from '../errors.ts';
import { DEFAULT_MAX_BODY_BYTES, excerpt, OutboundFailure, send } from '../outbound/outbound-http.ts';
import type { PartnerClaims, Verify } from './auth.ts';
import type { PartnerState } from './state.ts';

/** The context parameters the marketplace may send beside the code (Vercel's names). */
const CONTEXT_PARAMETERS = [
  'resource_id',
  'product_id',
  'project_id',
  'invoice_id',
  'check_id',
  'experimentation_item_id',
  'pr',
  'path',
  'url',
  'support',
] as const;

const EXCHANGE_TIMEOUT_MS = 10_000;

export interface SsoLoginOptions {
  /** The marketplace's base URL: the exchange is `${marketplaceUrl}/v1/integrations/sso/token`. */
  marketplaceUrl: string;
  clientId: string;
  /** The integration's client secret (PARTNER_CLIENT_SECRET); without one the partner cannot sign anyone in. */
  clientSecret: string | undefined;
  /** The verifier of the marketplace's tokens (auth.ts): the id_token is one of them. */
  verify: Verify;
  state: PartnerState;
  signal: AbortSignal;
}

/** Who signed in, and what they opened: the answer of `GET /sso`. */
export interface SsoLogin {
  user: { id: string; role: string; email?: string | undefined; name?: string | undefined };
  accountId: string | null | undefined;
  installationId: string | null | undefined;
  /** The context parameters as received. */
  context: Record<string, string>;
  /** The resource opened, as this partner holds it; null when none was named. */
  resource: { id: string; status: string } | null;
}

/** The marketplace refused the code (or could not be asked): nobody signs in. */
const loginFailed = (message: string) => new AppError(401, 'sso_failed', message);

export async function ssoLoginRoutes(app: FastifyInstance, options: SsoLoginOptions): Promise<void> {
  const { marketplaceUrl, clientId, clientSecret, verify, state } = options;

  /** The code's id_token, from the marketplace's exchange. */
  const exchange = async (code: string, loginState: string | undefined): Promise<string> => {
    if (!clientSecret)
      throw new AppError(503, 'sso_unavailable', 'The partner has no client secret (PARTNER_CLIENT_SECRET): it cannot exchange SSO codes');
    const url = `${marketplaceUrl.replace(/\/+$/, '')}/v1/integrations/sso/token`;
    const body = {
      code,
      ...(loginState !== undefined && { state: loginState }),
      client_id: clientId,
      client_secret: clientSecret,
      grant_type: 'authorization_code',
    };
    let answer: { status: number; text: string };
    try {
      // Through the outbound module: a redirect would carry the client secret elsewhere.
      answer = await send(
        url,
        { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(body) },
        { timeoutMs: EXCHANGE_TIMEOUT_MS, maxBodyBytes: DEFAULT_MAX_BODY_BYTES, signal: options.signal },
      );
    } catch (error) {
      if (!(error instanceof OutboundFailure)) throw error;
      throw new AppError(503, 'marketplace_unavailable', `Cannot exchange the SSO code at ${url}: ${error.message}`);
    }
    let parsed: { id_token?: unknown; error?: { code?: unknown; message?: unknown } } | undefined;
    try {
      parsed = JSON.parse(answer.text);
    } catch {
      parsed = undefined;
    }
    if (answer.status !== 200) {
      const said = parsed?.error ? `${String(parsed.error.code)}: ${String(parsed.error.message)}` : answer.text;
      throw loginFailed(`The marketplace refused the SSO code (${answer.status} ${excerpt(said)})`);
    }
    if (typeof parsed?.id_token !== 'string') throw loginFailed('The marketplace answered the SSO exchange without an id_token');
    return parsed.id_token;
  };

  app.get<{ Querystring: Record<string, string | string[] | undefined> }>('/sso', async (request, reply) => {
    const query = request.query;
    const one = (name: string): string | undefined => {
      const value = query[name];
      if (Array.isArray(value)) throw badRequest(`The query parameter ${name} is sent more than once`);
      return value === '' ? undefined : value;
    };
    if (one('mode') !== 'sso') throw badRequest('This is the SSO login: mode=sso is required');
    const code = one('code');
    if (!code) throw badRequest('The SSO login needs the code the marketplace sent');
    // Read before the exchange: a bad parameter must be refused while the code is still unspent.
    const context: Record<string, string> = {};
    for (const name of CONTEXT_PARAMETERS) {
      const value = one(name);
      if (value !== undefined) context[name] = value;
    }
    const idToken = await exchange(code, one('state'));
    let claims: PartnerClaims;
    try {
      claims = await verify(`Bearer ${idToken}`);
    } catch (error) {
      if (error instanceof AppError && error.status === 503) throw error;
      throw loginFailed(`The id_token is not valid: ${(error as Error).message}`);
    }
    if (claims.type !== 'id_token' || typeof claims.user_id !== 'string' || typeof claims.user_role !== 'string') {
      throw loginFailed('The id_token carries no user (user_id, user_role, type id_token)');
    }
    // A resource is looked up in the token's installation only: the context is the user's to open, not to choose.
    let resource: SsoLogin['resource'] = null;
    if (context.resource_id !== undefined) {
      const found = claims.installation_id ? await state.resource(claims.installation_id, context.resource_id) : undefined;
      if (!found || found.deleted)
        throw new AppError(404, 'not_found', `No resource ${context.resource_id} in installation ${claims.installation_id}`);
      resource = { id: found.id, status: found.status };
    }
    const login: SsoLogin = {
      user: { id: claims.user_id, role: claims.user_role, email: claims.user_email, name: claims.user_name },
      accountId: claims.account_id,
      installationId: claims.installation_id,
      context,
      resource,
    };
    reply.header('cache-control', 'no-store');
    if (request.headers.accept?.includes('application/json')) return login;
    return reply.type('text/html; charset=utf-8').send(page(login));
  });
}

const escapeHtml = (value: string) =>
  value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** The signed-in page: who, and what they opened. */
function page(login: SsoLogin): string {
  const who = login.user.name ? `${login.user.name} (${login.user.email ?? login.user.id})` : (login.user.email ?? login.user.id);
  const rows = Object.entries(login.context)
    .map(([name, value]) => `<li>${escapeHtml(name)}: ${escapeHtml(value)}</li>`)
    .join('');
  return (
    `<!doctype html><html><head><meta charset="utf-8"><title>Signed in</title></head><body>` +
    `<h1>Signed in as ${escapeHtml(who)}</h1><p>Role ${escapeHtml(login.user.role)}, installation ${escapeHtml(String(login.installationId))}</p>` +
    (rows ? `<ul>${rows}</ul>` : '') +
    `</body></html>`
  );
}
