/**
 * The reference partner server: a small but real integration provider that Storehouse calls
 * through the partner API (docs/partner-api.md §1), the way Vercel's marketplace
 * calls providers. It verifies Storehouse's OIDC tokens against its JWKS (§2.1), provisions real
 * Postgres databases through Storehouse's own built-in provider, calls the marketplace back with
 * the installation's access token (§2.2, §5), and can be told to misbehave (faults.ts), so the
 * HTTP provider can be tested, and shown, against something that is not a mock.
 *
 * Routes under `/v1/` are the partner API; routes under `/_partner/` steer the partner in tests
 * (faults, received requests, provider-side actions). Those take no token: bind the server to a
 * loopback address, as the default does.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import Fastify, { type FastifyError, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { openDatabase } from '../db/open.ts';
import { secureDataDir } from '../data-dir.ts';
import { migrate } from '../db/migrate.ts';
import { AppError, notFound, validationError, type FieldError } from '../errors.ts';
import { sendError } from '../http/errors.ts';
import { acceptEmptyJsonBody } from '../http/json-body.ts';
import { randomBase62 } from '../ids.ts';
import { PostgresProvider } from '../providers/postgres.ts';
import { SecretBox } from '../secrets/secret-box.ts';
import { resealLegacySecrets } from '../secrets/reseal.ts';
import { PARTNER_SEALED_COLUMNS } from '../secrets/sealed-columns.ts';
import { authorize, tokenVerifier, type AuthKind, type PartnerClaims } from './auth.ts';
import {
  faultAnswer,
  hasCheckedBody,
  malformedAnswer,
  parseFaults,
  replaceFaults,
  takeFault,
  type Answer,
  type Faults,
  type Operation,
  type ProvisionFault,
} from './faults.ts';
import { MarketplaceClient } from './marketplace.ts';
import { ssoLoginRoutes } from './sso.ts';
import { emptyInbox, webhookRoutes, type WebhookInbox } from './webhooks.ts';
import { Partner, type ProvisionBody, type UpdateBody } from './partner.ts';
import { partnerProduct, PLANS, PRODUCT_SLUG, findPlan } from './plans.ts';
import { PartnerState, type InstallationUpsert } from './state.ts';
import { callableUrl } from '../http/listen-address.ts';
import type { AddressInfo } from 'node:net';

export interface PartnerServerOptions {
  /** Where to listen; 127.0.0.1 unless given. */
  host?: string;
  /** 0 (the default) picks a free port. */
  port?: number;
  /** The partner's own data: its embedded database, secret key and embedded stores. */
  dataDir: string;
  /** A PostgreSQL database of the partner's own for its state (not Storehouse's), instead of the embedded one. */
  databaseUrl?: string | undefined;
  /** Provision stores on this PostgreSQL server (a role with CREATEROLE and CREATEDB), instead of embedded ones. */
  postgresAdminUrl?: string | undefined;
  /** The integration's client id: the audience Storehouse's tokens must name (e.g. oac_partner). */
  clientId: string;
  /** The issuer Storehouse's tokens must name (its public URL). */
  issuer: string;
  /** Where Storehouse's signing keys are; `${issuer}/.well-known/jwks` unless given. */
  jwksUrl?: string | undefined;
  /** Storehouse's base URL for callbacks (events, secrets, billing, the SSO exchange); the issuer unless given. */
  marketplaceUrl?: string | undefined;
  /** The integration's client secret (the catalog's clientSecret): SSO codes are exchanged with it. */
  clientSecret?: string | undefined;
  logger?: Logger | undefined;
}

/** A partner API request as the partner received it, for tests to assert on. */
export interface ReceivedRequest {
  method: string;
  url: string;
  idempotencyKey: string | undefined;
  /** The `X-Vercel-Auth` header (`user` or `system`), when sent. */
  vercelAuth: string | undefined;
  /** The token's claims, once verified; undefined when it was refused. */
  claims: PartnerClaims | undefined;
  /** The parsed body. */
  body: unknown;
  /** The status answered, once answered. */
  status: number | undefined;
}

export interface PartnerServer {
  url: string;
  /** The faults in force; change them in place (or over HTTP: PUT /_partner/faults). */
  faults: Faults;
  /** Partner API requests received, oldest first (the last 1000). */
  requests: ReceivedRequest[];
  /** The webhooks received from Storehouse (POST /webhook), each once, with the duplicates counted. */
  webhooks: WebhookInbox;
  close(): Promise<void>;
}

const KEEP_REQUESTS = 1000;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Collects a body's problems, so one 400 names every bad field (§1's `validation_error`). */
class Fields {
  readonly errors: FieldError[] = [];
  constructor(private readonly body: Record<string, unknown>) {}

  string(key: string, required: boolean): string | undefined {
    const value = this.body[key];
    if (value === undefined && !required) return undefined;
    if (typeof value !== 'string' || (required && value === ''))
      this.errors.push({ key, message: required ? 'is required: a non-empty string' : 'must be a string' });
    return typeof value === 'string' ? value : undefined;
  }

  object(key: string, required: boolean): Record<string, unknown> | undefined {
    const value = this.body[key];
    if (value === undefined && !required) return undefined;
    if (!isObject(value)) this.errors.push({ key, message: required ? 'is required: an object' : 'must be an object' });
    return isObject(value) ? value : undefined;
  }

  plan(key: string, required: boolean): string | undefined {
    const id = this.string(key, required);
    if (id !== undefined && !findPlan(id))
      this.errors.push({ key, message: `is not a plan of this product (${PLANS.map((p) => p.id).join(', ')})` });
    return id;
  }

  /** Throws the 400 when anything was wrong. */
  check(): void {
    if (this.errors.length > 0) throw validationError(this.errors);
  }
}

/**
 * A recorded body as `GET /_partner/requests` shows it, to anyone who can reach the port: without
 * the installation's access token (a long-lived marketplace credential, in the upsert). The
 * in-process `requests` keep it, so a test can check the token the partner was given.
 */
function redacted(body: unknown): unknown {
  if (!isObject(body) || !isObject(body.credentials) || body.credentials.access_token === undefined) return body;
  return { ...body, credentials: { ...body.credentials, access_token: '[redacted]' } };
}

const bodyOf = (body: unknown): Record<string, unknown> => {
  if (body === undefined || body === null) return {};
  if (!isObject(body)) throw validationError([{ key: '(body)', message: 'must be a JSON object' }]);
  return body;
};

/**
 * The upsert body (§1.2). Only the access token is required here (the partner cannot call the
 * marketplace without it); the other fields are documented as required but checked only for
 * their type when present, as §0.4 asks.
 */
function parseUpsert(body: unknown): InstallationUpsert {
  const fields = new Fields(bodyOf(body));
  const credentials = fields.object('credentials', true);
  const account = fields.object('account', false);
  const acceptedPolicies = fields.object('acceptedPolicies', false);
  const scopes = bodyOf(body).scopes;
  if (scopes !== undefined && !(Array.isArray(scopes) && scopes.every((scope) => typeof scope === 'string')))
    fields.errors.push({ key: 'scopes', message: 'must be a list of strings' });
  const accessToken = credentials?.access_token;
  if (credentials && (typeof accessToken !== 'string' || accessToken === ''))
    fields.errors.push({ key: 'credentials.access_token', message: 'is required: a non-empty string' });
  fields.check();
  return {
    accessToken: accessToken as string,
    tokenType: typeof credentials?.token_type === 'string' ? credentials.token_type : 'Bearer',
    scopes: (scopes as string[] | undefined) ?? [],
    acceptedPolicies: acceptedPolicies ?? {},
    account: account ?? null,
  };
}

/** The provision body (§1.3); `metadata` may be absent (an empty form). */
function parseProvision(body: unknown): ProvisionBody {
  const fields = new Fields(bodyOf(body));
  const productId = fields.string('productId', true);
  if (productId !== undefined && productId !== PRODUCT_SLUG)
    fields.errors.push({ key: 'productId', message: `is not a product of this partner (${PRODUCT_SLUG})` });
  const name = fields.string('name', true);
  const metadata = fields.object('metadata', false) ?? {};
  const billingPlanId = fields.plan('billingPlanId', true);
  const externalId = fields.string('externalId', false);
  const protocolSettings = fields.object('protocolSettings', false);
  fields.check();
  return {
    productId: productId!,
    name: name!,
    metadata,
    billingPlanId: billingPlanId!,
    ...(externalId !== undefined && { externalId }),
    ...(protocolSettings && { protocolSettings }),
  };
}

/** The update body (§1.3): any of name, metadata, plan; the deprecated `status` is ignored. */
function parseUpdate(body: unknown): UpdateBody {
  const fields = new Fields(bodyOf(body));
  const name = fields.string('name', false);
  if (name === '') fields.errors.push({ key: 'name', message: 'must not be empty' });
  const metadata = fields.object('metadata', false);
  const billingPlanId = fields.plan('billingPlanId', false);
  const protocolSettings = fields.object('protocolSettings', false);
  fields.check();
  return {
    ...(name !== undefined && { name }),
    ...(metadata && { metadata }),
    ...(billingPlanId !== undefined && { billingPlanId }),
    ...(protocolSettings && { protocolSettings }),
  };
}

/** `?metadata=<JSON>` of the plans endpoints: the form as filled in so far. */
function parseMetadataQuery(metadata: string | undefined): Record<string, unknown> {
  if (metadata === undefined || metadata === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(metadata);
  } catch {
    throw validationError([{ key: 'metadata', message: 'must be a JSON object (the query parameter is not JSON)' }]);
  }
  if (parsed !== null && !isObject(parsed)) throw validationError([{ key: 'metadata', message: 'must be a JSON object' }]);
  return parsed ?? {};
}

/** One partner API call as a route sees it, once authenticated and authorized. */
interface Call {
  params: Record<string, string>;
  query: Record<string, string | undefined>;
  body: unknown;
  claims: PartnerClaims;
  /** The request's Idempotency-Key, or a random one: each call without one is its own. */
  idempotencyKey: string;
  fault: ProvisionFault | undefined;
}

export async function startPartnerServer(options: PartnerServerOptions): Promise<PartnerServer> {
  const { logger } = options;
  // Its data dir holds a secret key and store credentials, as Storehouse's does (src/data-dir.ts).
  secureDataDir(options.dataDir, { warn: (message) => logger?.warn(message) });
  const db = await openDatabase({
    dataDir: options.dataDir,
    databaseUrl: options.databaseUrl,
    onPoolError: (error) => logger?.warn({ err: error }, 'database pool error'),
    log: logger,
  });
  const closing = new AbortController();
  const cleanups: Array<() => Promise<void>> = [() => db.close()];
  const cleanUp = async () => {
    closing.abort();
    for (const cleanup of cleanups.reverse())
      await cleanup().catch((error: Error) => logger?.error({ err: error }, 'error while closing the partner server'));
  };
  try {
    // Storehouse's migrations give the wrapped provider its provider_resources table.
    await migrate(db);
    const box = SecretBox.load(undefined, options.dataDir, { logger });
    const state = new PartnerState(db, box);
    await state.createTables();
    await resealLegacySecrets(db, box, PARTNER_SEALED_COLUMNS, logger); // v1 values become v2 (src/secrets/reseal.ts)

    // Its databases live on the configured server, else on the partner's own embedded PostgreSQL.
    const adminUrl = options.postgresAdminUrl ?? db.embeddedAdminUrl;
    if (!adminUrl) throw new Error('the partner server needs PARTNER_POSTGRES_ADMIN_URL when PARTNER_DATABASE_URL is set');
    const provider = new PostgresProvider(db, box, { adminUrl, revokePublicConnect: !options.postgresAdminUrl });
    cleanups.push(() => provider.close());

    const marketplace = new MarketplaceClient(options.marketplaceUrl ?? options.issuer, (id) => state.accessToken(id), logger);
    const partner = new Partner(state, provider, partnerProduct(options.clientId), marketplace, logger);
    cleanups.push(() => partner.close());
    cleanups.push(async () => marketplace.close());

    const verify = tokenVerifier({
      jwksUrl: options.jwksUrl ?? `${options.issuer.replace(/\/+$/, '')}/.well-known/jwks`,
      issuer: options.issuer,
      clientId: options.clientId,
    });
    const faults: Faults = {};
    const requests: ReceivedRequest[] = [];
    const received = new WeakMap<FastifyRequest, ReceivedRequest>();

    const app = Fastify(logger ? { loggerInstance: logger } : { logger: false });
    cleanups.push(() => app.close());

    // Liberal (§0.4): an empty body sent as JSON (a DELETE with no options) is no body, not a 400.
    acceptEmptyJsonBody(app);

    app.addHook('onRequest', async (request) => {
      if (!request.url.startsWith('/v1/')) return;
      const header = (name: string) => {
        const value = request.headers[name];
        return Array.isArray(value) ? value[0] : value;
      };
      const record: ReceivedRequest = {
        method: request.method,
        url: request.url,
        idempotencyKey: header('idempotency-key'),
        vercelAuth: header('x-vercel-auth'),
        claims: undefined,
        body: undefined,
        status: undefined,
      };
      requests.push(record);
      if (requests.length > KEEP_REQUESTS) requests.splice(0, requests.length - KEEP_REQUESTS);
      received.set(request, record);
    });
    app.addHook('onResponse', async (request, reply) => {
      const record = received.get(request);
      if (record) record.status = reply.statusCode;
    });

    app.setNotFoundHandler((request, reply) =>
      sendError(reply, 404, 'not_found', `No route ${request.method} ${request.url.split('?')[0]}`),
    );
    app.setErrorHandler((error: FastifyError, request, reply) => {
      if (error instanceof AppError) return sendError(reply, error.status, error.code, error.message, error.extra);
      const status = error.statusCode ?? 500;
      if (status >= 400 && status < 500) return sendError(reply, status, status === 400 ? 'bad_request' : 'invalid_request', error.message);
      request.log.error({ err: error }, 'unhandled error');
      return sendError(reply, 500, 'internal_error', `The partner server failed: ${error.message}`);
    });

    /** A fault's answer, after its delay: undefined when it only delays. */
    const injected = async (operation: Operation, fault: ProvisionFault): Promise<Answer | undefined> => {
      if (fault.delayMs) await sleep(fault.delayMs, undefined, { signal: closing.signal }).catch(() => {});
      if (fault.status !== undefined) return faultAnswer(operation, fault.status);
      // `malformed` is refused for uninstall and delete (faults.ts); one forced in past the types is ignored.
      if (fault.malformed && hasCheckedBody(operation)) return malformedAnswer(operation);
      return undefined;
    };

    /**
     * A partner API route: the token is verified and checked against the path's installation
     * and the endpoint's Auth (§1's table), then the operation's fault, if any, comes before the
     * work (nothing done) or, with `afterWork`, after it.
     */
    const partnerRoute = (
      method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE',
      url: string,
      auth: AuthKind,
      operation: Operation,
      work: (call: Call) => Promise<Answer>,
    ) => {
      app.route({
        method,
        url,
        handler: async (request, reply) => {
          const record = received.get(request);
          if (record) record.body = request.body;
          const params = request.params as Record<string, string>;
          const claims = await verify(request.headers.authorization);
          if (record) record.claims = claims;
          authorize(claims, auth, method, params.installationId);
          const fault = takeFault(faults, operation);
          const key = request.headers['idempotency-key'];
          const call: Call = {
            params,
            query: request.query as Record<string, string | undefined>,
            body: request.body,
            claims,
            idempotencyKey: (Array.isArray(key) ? key[0] : key) || `partner-${randomBase62(20)}`,
            fault,
          };
          let answer = fault && !fault.afterWork ? await injected(operation, fault) : undefined;
          if (!answer) {
            answer = await work(call);
            if (fault?.afterWork) answer = (await injected(operation, fault)) ?? answer;
          }
          return reply.code(answer.status).send(answer.body);
        },
      });
    };

    // Installations (§1.2)
    const installation = '/v1/installations/:installationId';
    partnerRoute('PUT', installation, 'user', 'install', async ({ params, body }) => {
      await partner.install(params.installationId!, parseUpsert(body));
      return { status: 200, body: {} };
    });
    partnerRoute('GET', installation, 'any', 'install', async ({ params }) => {
      await partner.installation(params.installationId!);
      return { status: 200, body: {} };
    });
    partnerRoute('DELETE', installation, 'any', 'uninstall', async ({ params, body }) => {
      const options = bodyOf(body);
      if (options.cascadeResourceDeletion !== undefined && typeof options.cascadeResourceDeletion !== 'boolean') {
        throw validationError([{ key: 'cascadeResourceDeletion', message: 'must be a boolean' }]);
      }
      return { status: 200, body: await partner.uninstall(params.installationId!, options.cascadeResourceDeletion === true) };
    });

    // Resources (§1.3)
    const resources = `${installation}/resources`;
    const resource = `${resources}/:resourceId`;
    partnerRoute('POST', resources, 'user', 'provision', async ({ params, body, idempotencyKey, fault }) => ({
      status: 201,
      body: await partner.provision(params.installationId!, idempotencyKey, parseProvision(body), fault?.pending),
    }));
    partnerRoute('GET', resource, 'any', 'get', async ({ params }) => ({
      status: 200,
      body: await partner.get(params.installationId!, params.resourceId!),
    }));
    partnerRoute('PATCH', resource, 'user', 'update', async ({ params, body, idempotencyKey }) => ({
      status: 200,
      body: await partner.update(params.installationId!, params.resourceId!, parseUpdate(body), idempotencyKey),
    }));
    partnerRoute('DELETE', resource, 'any', 'delete', async ({ params, idempotencyKey }) => {
      await partner.delete(params.installationId!, params.resourceId!, idempotencyKey);
      return { status: 204 };
    });
    partnerRoute('POST', `${resource}/secrets/rotate`, 'any', 'rotate', async ({ params, idempotencyKey }) => ({
      status: 200,
      body: { sync: true, secrets: await partner.rotate(params.installationId!, params.resourceId!, idempotencyKey) },
    }));

    // Plans (§1.4): the same two whatever the form says, but the form must be JSON.
    partnerRoute('GET', '/v1/products/:productSlug/plans', 'any', 'plans', async ({ params, query }) => {
      parseMetadataQuery(query.metadata);
      if (params.productSlug !== PRODUCT_SLUG) throw notFound('product', params.productSlug!);
      return { status: 200, body: { plans: PLANS } };
    });
    partnerRoute('GET', `${resource}/plans`, 'any', 'plans', async ({ params, query }) => {
      parseMetadataQuery(query.metadata);
      return { status: 200, body: { plans: await partner.resourcePlans(params.installationId!, params.resourceId!) } };
    });

    // The Redirect Login URL ("Open in provider"): a user's browser arrives with a code, not a token.
    await app.register(ssoLoginRoutes, {
      marketplaceUrl: options.marketplaceUrl ?? options.issuer,
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      verify,
      state,
      signal: closing.signal,
    });

    // Storehouse's webhooks (the catalog's webhookUrl: <this server>/webhook), signed with the client secret.
    const webhooks = emptyInbox();
    await app.register(webhookRoutes, { clientSecret: options.clientSecret, faults, inbox: webhooks, signal: closing.signal });

    // Steering, for tests: no token.
    app.get('/_partner/faults', async () => faults);
    app.put('/_partner/faults', async (request) => {
      replaceFaults(faults, parseFaults(request.body));
      return faults;
    });
    app.delete('/_partner/faults', async () => {
      replaceFaults(faults, {});
      return faults;
    });
    app.get('/_partner/requests', async () => ({ requests: requests.map((record) => ({ ...record, body: redacted(record.body) })) }));
    app.delete('/_partner/requests', async () => {
      requests.length = 0;
      return { requests };
    });
    app.get<{ Querystring: { installationId?: string } }>('/_partner/resources', async (request) => ({
      resources: await state.liveResources(request.query.installationId),
    }));
    // Provider-side actions: each answers with what the marketplace answered.
    app.post<{ Params: { resourceId: string } }>('/_partner/resources/:resourceId/ready', async (request) =>
      partner.finish(request.params.resourceId),
    );
    app.post<{ Params: { resourceId: string } }>('/_partner/resources/:resourceId/rotate-secrets', async (request) =>
      partner.rotateAndPush(request.params.resourceId),
    );
    app.post<{ Params: { installationId: string } }>('/_partner/installations/:installationId/billing', async (request) =>
      partner.sendBilling(request.params.installationId, bodyOf(request.body)),
    );

    await partner.resumeScheduled();
    await app.listen({ host: options.host ?? '127.0.0.1', port: options.port ?? 0 });
    const url = callableUrl(app.server.address() as AddressInfo);
    logger?.info({ url, provider: options.postgresAdminUrl ? 'postgres' : 'embedded' }, 'partner server listening');

    let closed: Promise<void> | undefined;
    return {
      url,
      faults,
      requests,
      webhooks,
      close: () => (closed ??= cleanUp()),
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}
