/**
 * SSO, "Open in provider", as Vercel's marketplace does it: a user who may see an installation
 * opens it (or one of its resources, an invoice...) in the provider's dashboard. Storehouse sends
 * the browser to the integration's Redirect Login URL (the catalog's `redirectLoginUrl`) with
 * `mode=sso`, a one-time `code`, a `state` and the context; the partner's server exchanges the
 * code (`POST /v1/integrations/sso/token`, with its client id and secret) for an `id_token`: an
 * RS256 JWT signed with the keys partner calls are signed with (same `kid`, same JWKS), carrying
 * the user claims of docs/partner-api.md §2.1. The id_token is never kept; the code is kept only
 * as its hash, works once, expires quickly (STOREHOUSE_SSO_CODE_TTL_MS) and only for the client
 * it was issued to.
 */
import { audited } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import { AppError, badRequest, conflict, forbidden, notFound } from '../errors.ts';
import { hashToken, newTokenValue, randomBase62 } from '../ids.ts';
import { verifySecret } from '../secrets/secret-hash.ts';
import { Schedule } from '../stores/schedule.ts';
import { isInstallationAdmin } from '../tenancy/installations.ts';
import type { TeamRole } from '../tenancy/teams.ts';
import { userTokenClaims } from './partner-client.ts';
import { type SigningKeys, TOKEN_TTL_SECONDS } from './signing-keys.ts';

/** The dashboard sections a redirect may point at (Vercel's `path`). */
export const SSO_PATHS = ['billing', 'usage', 'onboarding', 'support'] as const;

/**
 * What the user opened, in Vercel's parameter names, as the partner receives them beside `mode`,
 * `code` and `state`. `resource_id` and `product_id` are the partner's own ids (its resource id,
 * its product slug), whichever id the caller named them by.
 */
export interface SsoContext {
  resource_id?: string;
  product_id?: string;
  project_id?: string;
  invoice_id?: string;
  check_id?: string;
  experimentation_item_id?: string;
  /** A pull request's URL. */
  pr?: string;
  path?: (typeof SSO_PATHS)[number];
  /** The target of an `sso:` link. */
  url?: string;
  /** The Support link was followed. */
  support?: boolean;
}

/** The token exchange's body (JSON, or form-encoded as OAuth clients send it). */
export interface TokenRequest {
  code: string;
  state?: string;
  client_id: string;
  client_secret: string;
  redirect_uri?: string;
  grant_type?: string;
}

export interface TokenAnswer {
  id_token: string;
  access_token: null;
  token_type: null;
  expires_in: number;
}

export interface SsoOptions {
  db: Database;
  keys: SigningKeys;
  catalog: () => Catalog;
  issuer: () => string;
  /** How long a code may wait for its exchange. */
  codeTtlMs: number;
}

/** Used and expired codes are kept this long (a second use is told "already used", not "unknown"), then deleted. */
const KEEP_SPENT_CODES = '1 hour';
/** How often the housekeeping deletes them: a code outlives its keeping by this much at most. */
const SWEEP_SPENT_CODES_EVERY_MS = 10 * 60_000;

/** Deletes the codes expired (used or not) longer than KEEP_SPENT_CODES ago; how many. */
export async function deleteSpentSsoCodes(db: Queryable): Promise<number> {
  const { rowCount } = await db.query(`DELETE FROM sso_codes WHERE expires_at < now() - interval '${KEEP_SPENT_CODES}'`);
  return rowCount ?? 0;
}

/**
 * The housekeeping of spent codes, off the request path: once started, a sweep every
 * SWEEP_SPENT_CODES_EVERY_MS (`wake` asks for one now). An open or an exchange touches only its
 * own code; every node sweeps, and a row two delete at once is simply gone.
 */
export function ssoCodeSweep(db: Queryable, onError: (error: Error) => void): Schedule {
  return new Schedule(
    async () => {
      await deleteSpentSsoCodes(db);
      return undefined;
    },
    SWEEP_SPENT_CODES_EVERY_MS,
    onError,
  );
}

/**
 * Client secrets a code may be tried with. Each check is a slow hash (about 50 ms of the thread
 * pool, secret-hash.ts) and any member of the team can hold a code, so without a bound one could
 * keep a node hashing; the partner's own exchange needs one.
 */
export const SECRET_CHECKS_PER_CODE = 5;

/** 400 as OAuth's `invalid_grant`: the code is not one that can be exchanged (unknown, used, expired). */
const invalidGrant = (message: string) => new AppError(400, 'invalid_grant', message);

export class Sso {
  constructor(private readonly options: SsoOptions) {}

  /**
   * A one-time code for `userId` to open the installation in its provider, and where to send the
   * browser with it. 404 for an installation the user's teams do not have (or of another
   * integration), and for a resource, invoice or project not of that installation; 409 for an
   * integration the catalog gives no redirectLoginUrl or no client secret (its partner could not
   * exchange a code). `state` is the provider's own when it sent the user here (provider-initiated
   * SSO, as Vercel's `/sso/integrations/{slug}/{installationId}?state=...`): the partner gets it
   * back beside the code, and can tell a login it asked for from one it did not.
   */
  async open(
    userId: string,
    integrationIdOrSlug: string,
    installationId: string,
    asked: SsoContext,
    givenState?: string,
  ): Promise<{ url: string }> {
    const { db } = this.options;
    const integration = this.options.catalog().findIntegration(integrationIdOrSlug);
    const { rows } = await db.query<{
      team_id: string;
      role: TeamRole | null;
      redirect_login_url: string | null;
      has_secret: boolean;
    }>(
      `SELECT n.team_id, m.role, i.redirect_login_url, i.client_secret_hash IS NOT NULL AS has_secret
         FROM installations n JOIN integrations i ON i.id = n.integration_id
         LEFT JOIN memberships m ON m.team_id = n.team_id AND m.user_id = $2
        WHERE n.id = $1 AND n.integration_id = $3`,
      [installationId, userId, integration.id],
    );
    const installation = rows[0];
    // Another team's installation looks exactly like a missing one.
    if (!installation || installation.role === null) throw notFound('configuration', installationId);
    if (!installation.redirect_login_url) {
      throw conflict(
        'sso_not_configured',
        `The integration ${integration.slug} has no redirectLoginUrl in the catalog: it offers no "Open in provider"`,
      );
    }
    if (!installation.has_secret) {
      throw conflict(
        'sso_not_configured',
        `The integration ${integration.slug} has no clientSecret in the catalog, so its server could not exchange an SSO code`,
      );
    }
    const context = await this.partnerContext(integration.id, installationId, installation.team_id, asked);

    const code = newTokenValue('shsso');
    const state = givenState ?? randomBase62(24);
    await db.query(
      `INSERT INTO sso_codes (code_hash, integration_id, installation_id, user_id, state, context, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))`,
      [hashToken(code), integration.id, installationId, userId, state, JSON.stringify(context), this.options.codeTtlMs / 1000],
    );
    const url = new URL(installation.redirect_login_url);
    url.searchParams.set('mode', 'sso');
    url.searchParams.set('code', code);
    url.searchParams.set('state', state);
    for (const [name, value] of Object.entries(context)) url.searchParams.set(name, String(value));
    return { url: url.toString() };
  }

  /**
   * The context as the partner knows it: a resource by the partner's own id (the caller may name
   * it by Storehouse's store id), with its product's slug; an invoice of the installation; a
   * project of the installation's team. Anything else is passed on as given.
   */
  private async partnerContext(integrationId: string, installationId: string, teamId: string, asked: SsoContext): Promise<SsoContext> {
    const { db } = this.options;
    const context: SsoContext = { ...asked };
    delete context.support;
    if (asked.support) context.support = true;
    if (asked.product_id !== undefined) {
      const product = this.options
        .catalog()
        .productsOf(integrationId)
        .find((p) => p.id === asked.product_id || p.slug === asked.product_id);
      if (!product) throw notFound('product', asked.product_id);
      context.product_id = product.slug;
    }
    if (asked.resource_id !== undefined) {
      const { rows } = await db.query<{ id: string; external_resource_id: string | null; product_slug: string }>(
        `SELECT s.id, s.external_resource_id, p.slug AS product_slug FROM stores s JOIN products p ON p.id = s.product_id
          WHERE s.installation_id = $1 AND (s.id = $2 OR s.external_resource_id = $2)
          ORDER BY s.id = $2 DESC LIMIT 1`,
        [installationId, asked.resource_id],
      );
      const store = rows[0];
      if (!store) throw notFound('resource', asked.resource_id);
      if (context.product_id !== undefined && context.product_id !== store.product_slug) {
        throw badRequest(`product_id "${asked.product_id}" is not the product of resource ${asked.resource_id} (${store.product_slug})`);
      }
      context.resource_id = store.external_resource_id ?? store.id;
      context.product_id = store.product_slug;
    }
    if (asked.invoice_id !== undefined) {
      // Storehouse's invoice id, as the partner got it back from its submission (src/billing/invoices.ts).
      const { rows } = await db.query('SELECT 1 FROM invoices WHERE id = $1 AND installation_id = $2', [asked.invoice_id, installationId]);
      if (rows.length === 0) throw notFound('invoice', asked.invoice_id);
    }
    if (asked.project_id !== undefined) {
      const { rows } = await db.query('SELECT 1 FROM projects WHERE id = $1 AND team_id = $2', [asked.project_id, teamId]);
      if (rows.length === 0) throw notFound('project', asked.project_id);
    }
    return context;
  }

  /**
   * Exchanges a code for the id_token of its user, once. The client's secret is checked (a slow
   * hash) only for a code that could be exchanged, so guesses at codes cost next to nothing, and
   * at most SECRET_CHECKS_PER_CODE times a code; the code is spent by one UPDATE, so of two exchanges racing only one gets a token. The user's
   * role and name are read now, not when the code was issued: one removed from the team
   * meanwhile gets no token (and the code is left unspent: it can sign nobody in).
   */
  async exchange(request: TokenRequest): Promise<TokenAnswer> {
    const { db } = this.options;
    if (request.grant_type !== undefined && request.grant_type !== 'authorization_code') {
      throw new AppError(
        400,
        'unsupported_grant_type',
        `grant_type "${request.grant_type}" is not supported: the SSO token exchange takes "authorization_code" (Storehouse issues no refresh tokens)`,
      );
    }
    const hash = hashToken(request.code);
    const { rows } = await db.query<{
      integration_id: string;
      installation_id: string;
      user_id: string;
      state: string;
      used: boolean;
      expired: boolean;
      client_secret_hash: string | null;
      context: SsoContext;
    }>(
      `SELECT c.integration_id, c.installation_id, c.user_id, c.state, c.context, c.used_at IS NOT NULL AS used, c.expires_at <= now() AS expired,
              i.client_secret_hash
         FROM sso_codes c JOIN integrations i ON i.id = c.integration_id WHERE c.code_hash = $1`,
      [hash],
    );
    const code = rows[0];
    if (!code) throw invalidGrant('The code is not one Storehouse issued, or it was spent long ago');
    if (code.used) throw invalidGrant('The code was already exchanged: a code works once');
    if (code.expired) throw invalidGrant(`The code expired (codes last ${this.options.codeTtlMs} ms): open the provider again`);
    if (request.client_id !== code.integration_id)
      throw forbidden('client_id is not the client id of the integration the code was issued for');
    if (!code.client_secret_hash) throw forbidden("client_secret is not the integration's client secret");
    // Counted before the hash, in one statement: exchanges racing with wrong secrets get no more checks between them.
    const { rowCount: checks } = await db.query(
      'UPDATE sso_codes SET secret_checks = secret_checks + 1 WHERE code_hash = $1 AND secret_checks < $2',
      [hash, SECRET_CHECKS_PER_CODE],
    );
    if (checks === 0) {
      throw invalidGrant(
        `The code was tried with ${SECRET_CHECKS_PER_CODE} client secrets, the most a code takes: open the provider again`,
      );
    }
    // Never echoed, never logged: only whether it matched.
    if (!(await verifySecret(request.client_secret, code.client_secret_hash))) {
      throw forbidden("client_secret is not the integration's client secret");
    }
    if (request.state !== undefined && request.state !== code.state) throw badRequest('state is not the state sent with the code');

    const { rows: users } = await db.query<{
      team_id: string;
      installed_by: string | null;
      email: string;
      name: string | null;
      role: TeamRole | null;
    }>(
      `SELECT n.team_id, n.installed_by, u.email, u.name, m.role
         FROM installations n JOIN users u ON u.id = $2 LEFT JOIN memberships m ON m.team_id = n.team_id AND m.user_id = u.id
        WHERE n.id = $1`,
      [code.installation_id, code.user_id],
    );
    const user = users[0];
    if (!user || user.role === null) throw forbidden("The code's user is no longer a member of the installation's team");

    // Spent and logged in one statement: the team's audit log shows each sign-in at the provider.
    const spent = await audited(
      db,
      'UPDATE sso_codes SET used_at = now() WHERE code_hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING context',
      [hash],
      {
        teamId: user.team_id,
        actorId: code.user_id,
        action: 'installation.sso_login',
        targetType: 'installation',
        targetId: code.installation_id,
        details: { integrationId: code.integration_id, context: code.context },
      },
    );
    if (spent.rowCount === 0) throw invalidGrant('The code was already exchanged, or expired, meanwhile: a code works once');
    const admin = isInstallationAdmin({ installedBy: user.installed_by }, code.user_id, user.role);
    const claims = userTokenClaims(code.integration_id, {
      accountId: user.team_id,
      installationId: code.installation_id,
      user: { id: code.user_id, role: admin ? 'ADMIN' : 'USER', email: user.email, name: user.name ?? undefined },
    });
    const idToken = await this.options.keys.sign(claims, this.options.issuer());
    return { id_token: idToken, access_token: null, token_type: null, expires_in: TOKEN_TTL_SECONDS };
  }
}
