import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import swagger from '@fastify/swagger';
import { randomBase62 } from '../ids.ts';
import type { Runtime } from '../runtime.ts';
import { authPlugin } from './auth.ts';
import { clientErrorHandler, connectHandler, errorSchema, errorsPlugin, frameworkErrors, sendError } from './errors.ts';
import { MAX_PARAM_LENGTH, optionsPlugin, RouteMethods } from './route-methods.ts';
import { acceptEmptyJsonBody } from './json-body.ts';
import { requestValuesPlugin } from './request-values.ts';
import { documentSharedResponses } from './openapi-responses.ts';
import { lazySerializers, lazyValidators } from './lazy-compilers.ts';
import { envVarSchema, projectSchema } from './project-shapes.ts';
import { RateLimits, rateLimitPlugin } from './rate-limit.ts';
import { paginationSchema } from './routes/common.ts';
import accountRoutes from './routes/account.ts';
import integrationsRoutes, { sharedSchemas } from './routes/integrations.ts';
import cliConfigurationsRoutes from './routes/cli-configurations.ts';
import cliIntegrationsRoutes from './routes/cli-integrations.ts';
import projectsRoutes from './routes/projects.ts';
import storehouseRoutes from './routes/storehouse.ts';
import webhookDeliveryRoutes from './routes/webhook-deliveries.ts';
import storesRoutes from './routes/stores.ts';
import systemRoutes from './routes/system.ts';
import teamsRoutes from './routes/teams.ts';
import oidcRoutes from './routes/oidc.ts';
import marketplaceRoutes from './routes/marketplace.ts';
import teamBillingRoutes from './routes/team-billing.ts';
import ssoRoutes from './routes/sso.ts';
import { Sso } from '../partners/sso.ts';
import dashboardRoutes from './routes/dashboard.ts';
import dashboardSessionRoutes from './routes/dashboard-sessions.ts';
import storeSecretsRoutes from './routes/store-secrets.ts';
import teamAdminRoutes from './routes/team-admin.ts';
import { storeSchema } from './store-shapes.ts';
import { callableUrl } from './listen-address.ts';

export interface AppOptions {
  /** A pino logger, or Fastify's logger options; false for none. */
  logger?: FastifyServerOptions['loggerInstance'] | FastifyServerOptions['logger'];
  /** Set `draining` when shutdown starts: health checks then answer 503 so balancers move on. */
  lifecycle?: { draining: boolean };
}

/** What may never reach a log line. */
export const REDACTED_PATHS = ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization'];

const REQUEST_ID = /^[A-Za-z0-9_.:-]{1,128}$/;

/** Request ids: a random prefix per process (unique across nodes) and a counter (cheap per request). */
function requestIds(): () => string {
  const prefix = `req_${randomBase62(8)}`;
  let counter = 0;
  return () => prefix + (++counter).toString(36);
}

export async function buildApp(runtime: Runtime, options: AppOptions = {}): Promise<FastifyInstance> {
  const { logger, lifecycle = { draining: false } } = options;
  const nextRequestId = requestIds();
  const { config } = runtime;
  const app = Fastify({
    ...(logger && typeof logger === 'object' && 'child' in logger
      ? { loggerInstance: logger as FastifyServerOptions['loggerInstance'] }
      : { logger: logger ?? false }),
    // An incoming X-Request-Id is kept (so a proxy's id follows the request), else one is made.
    requestIdHeader: false,
    genReqId: (req) => {
      const incoming = req.headers['x-request-id'];
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : nextRequestId();
    },
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', allErrors: false } },
    // While draining, requests get Vercel's error format from the hook below, not Fastify's.
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    frameworkErrors,
    clientErrorHandler,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    // Whose X-Forwarded-For gives request.ip (the address failed authentications count under).
    trustProxy: config.trustProxy,
    // A client that sends its request slowly, or not at all, gets a 408 (clientErrorHandler)
    // instead of holding a connection open: Fastify's default turns Node's request timeout off.
    requestTimeout: config.httpRequestTimeoutMs,
    keepAliveTimeout: config.httpKeepAliveTimeoutMs,
    http: {
      headersTimeout: config.httpHeadersTimeoutMs,
      // Node looks for requests past their timeout this often (30 s by default, far above a short timeout).
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(config.httpHeadersTimeoutMs / 4))),
    },
    schemaController: { compilersFactory: { buildValidator: lazyValidators() as never, buildSerializer: lazySerializers() as never } },
  });

  app.server.on('connect', connectHandler);

  app.addHook('onRequest', (request, reply, done) => {
    reply.header('x-request-id', request.id);
    // An empty path segment where an id goes (`/v1/installations//account`, a trailing slash) names
    // nothing: the router would match it with an empty id, but it is a path that does not exist.
    if (Object.values(request.params as Record<string, string>).some((value) => value === '')) {
      return sendError(reply, 404, 'not_found', `The requested path ${request.url.split('?')[0]} was not found`);
    }
    // Liveness stays 200 while draining: the process is alive, and a supervisor must not kill it mid-drain.
    if (!lifecycle.draining || request.routeOptions.url === '/livez') return done();
    // Shutting down: send the client elsewhere (in-flight requests still finish).
    reply.header('connection', 'close');
    sendError(reply, 503, 'shutting_down', 'The server is shutting down; retry on another node');
  });

  // An empty body labelled JSON (a DELETE from a client that always sends the header) is no body;
  // routes that need one still answer 400 when their schema asks for an object.
  acceptEmptyJsonBody(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'Storehouse',
        version: '0.1.0',
        description: "Storehouse speaks the integrations and storage subset of Vercel's REST API.",
      },
      components: { securitySchemes: { bearerToken: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearerToken: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
  });
  app.addSchema(errorSchema);
  for (const schema of [...sharedSchemas, paginationSchema, storeSchema, projectSchema, envVarSchema]) app.addSchema(schema);
  app.addHook('onRoute', documentSharedResponses); // every route's shared error statuses, in /openapi.json too

  // Unless configured, Storehouse's public URL is the address it listens on (port 0 included).
  app.addHook('onListen', function () {
    const address = this.server.address();
    if (address && typeof address === 'object') runtime.urls.listeningOn(callableUrl(address));
  });
  const limits = await RateLimits.create(
    {
      requestsPerMinute: config.rateLimitRequests,
      routes: {
        'stores.create': config.rateLimitStoreCreates,
        'stores.update': config.rateLimitStoreUpdates,
        'sso.open': config.rateLimitSsoOpens,
        ...config.marketplaceRateLimits,
      },
      redisUrl: config.redisUrl,
      redisTimeoutMs: config.rateLimitRedisTimeoutMs,
      redisCooldownMs: config.rateLimitRedisCooldownMs,
      authFailuresPerMinute: config.authFailureLimit,
    },
    (error: Error) => app.log.warn({ err: error }, 'rate limits counted in process until Redis is back'),
    () => app.log.info('rate limits counted in Redis again'),
  );
  app.addHook('onClose', () => limits.close());

  // Which methods each path takes: for the Allow header of 405s, and the OPTIONS routes.
  const methods = new RouteMethods();
  await app.register(errorsPlugin, { methods });
  await app.register(authPlugin, { access: runtime.access, limits, sessions: runtime.dashboardSessions });
  await app.register(rateLimitPlugin, { limits, access: runtime.access });
  // After the rate limits' plugin: its onRoute hook puts a route's limit first, and this one's check
  // must come before that (a limit per team reads `teamId` from the query).
  await app.register(requestValuesPlugin);
  await app.register(systemRoutes, { db: runtime.db });
  await app.register(oidcRoutes, { keys: runtime.keys, urls: runtime.urls });
  await app.register(integrationsRoutes, { discovery: runtime.discovery });
  await app.register(cliIntegrationsRoutes, { runtime });
  await app.register(cliConfigurationsRoutes, { runtime });
  await app.register(storesRoutes, { stores: runtime.stores, updates: runtime.storeUpdates, connections: runtime.connections });
  await app.register(projectsRoutes, { db: runtime.db, env: runtime.projectEnv });
  await app.register(storehouseRoutes, { db: runtime.db });
  await app.register(webhookDeliveryRoutes, { db: runtime.db, wake: () => runtime.webhooks.wake() });
  await app.register(accountRoutes, { db: runtime.db });
  await app.register(teamsRoutes, { db: runtime.db });
  await app.register(teamBillingRoutes, { db: runtime.db });
  await app.register(marketplaceRoutes, {
    api: runtime.marketplace,
    db: runtime.db,
    catalog: () => runtime.catalog,
    invoices: runtime.invoices,
    history: runtime.billingHistory,
  });
  const sso = new Sso({
    db: runtime.db,
    keys: runtime.keys,
    catalog: () => runtime.catalog,
    issuer: () => runtime.urls.issuer(),
    codeTtlMs: config.ssoCodeTtlMs,
  });
  await app.register(ssoRoutes, { sso });
  await app.register(dashboardSessionRoutes, { sessions: runtime.dashboardSessions, access: runtime.access, db: runtime.db, limits });
  await app.register(storeSecretsRoutes, { secrets: runtime.storeSecrets });
  await app.register(teamAdminRoutes, { db: runtime.db });
  await app.register(dashboardRoutes);
  await app.register(optionsPlugin, { methods }); // after every other route: OPTIONS for every path they take
  await app.ready();
  return app;
}
