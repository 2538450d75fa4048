/**
 * /openapi.json tells the truth: it is valid OpenAPI 3.0 with a summary and tags on every
 * operation, and real responses (successes and failures, from every area of the API: discovery,
 * stores, projects and variables, account, teams, Storehouse's own API, the marketplace API with
 * an installation token, OIDC) have statuses the document lists for their operation and bodies
 * that match its schema for that status. One server on the embedded database.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { randomBase62 } from '../src/ids.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { startServer, type TestServer, writeCatalogFile } from './helpers.ts';
import { checkFetchResponse, checkResponse, documentProblems, findOperation, loadOpenApi, type OpenApiDocument } from './openapi-check.ts';

/** The partner integration's client secret in this test's catalog: SSO codes are exchanged with it. */
const PARTNER_CLIENT_SECRET = `cs_${randomBase62(40)}`;

interface Call {
  method?: string;
  path: string;
  /** JSON-encoded unless a string. */
  body?: unknown;
  /** A user's or an installation's token; null for none; the owner's when absent. */
  token?: string | null;
  headers?: Record<string, string>;
  /** The status this call is made to produce: a call that answers another did not test what it meant to. */
  expect: number;
  /** Sees the response's headers (a session's cookie). */
  seen?: (response: Response) => void;
}

describe('/openapi.json against real responses', () => {
  let server: TestServer;
  let doc: OpenApiDocument;
  const problems: string[] = [];
  /** Each operation and status the calls below checked: "GET /v1/storage/stores/{id} 404". */
  const covered = new Set<string>();

  /** Makes the call, checks its response against the document, and returns its body. */
  const call = async ({ method = 'GET', path, body, token, headers = {}, expect, seen }: Call): Promise<any> => {
    const init: RequestInit & { token?: string | null } = { method, headers: { ...headers }, token };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const response = await server.request(path, init);
    seen?.(response);
    const checked = await checkFetchResponse(doc, method, path, response);
    problems.push(...checked.problems);
    const operation = findOperation(doc, method, path);
    covered.add(`${method} ${operation?.template ?? '(none)'} ${response.status}`);
    assert.equal(response.status, expect, `${method} ${path} answered ${response.status}, not ${expect}: ${JSON.stringify(checked.body)}`);
    return checked.body;
  };

  before(async () => {
    // The default catalog and a partner integration (never called here): the marketplace API
    // serves partners' resources, not the built-in products'.
    const catalog = catalogWithPartner({ url: 'http://127.0.0.1:9' });
    // Its SSO ("Open in provider"): Storehouse issues and exchanges the codes, so the partner need not run.
    Object.assign(
      catalog.integrations.find((i: { id: string }) => i.id === 'oac_partner'),
      // Its webhooks go nowhere: each is refused and stays pending, retried within the default day.
      { clientSecret: PARTNER_CLIENT_SECRET, redirectLoginUrl: 'http://127.0.0.1:9/sso', webhookUrl: 'http://127.0.0.1:9/webhook' },
    );
    const catalogPath = writeCatalogFile(catalog);
    server = await startServer('embedded', {
      catalogPath,
      // A Redis that cannot be reached: its creates are the 503 the document must list.
      env: { STOREHOUSE_RATE_LIMIT_MARKETPLACE_ACCOUNT: '3', STOREHOUSE_REDIS_ADMIN_URL: 'redis://127.0.0.1:1' },
    });
    doc = await loadOpenApi(server.url);
  });
  after(() => server?.close());

  test('is valid OpenAPI 3.0, and every operation has a summary, tags and a success response', async () => {
    assert.match(doc.openapi, /^3\.0\./);
    assert.deepEqual(await documentProblems(doc), []);
    assert.ok(Object.keys(doc.paths).length >= 40, 'the document lists the API');
  });

  test('the checker fails what does not match: an undocumented status, a body missing a field, a wrong type, a missing body', () => {
    assert.match(
      checkResponse(doc, 'GET', '/v1/storage/stores/store_x', 500, { error: { code: 'x', message: 'y' } })[0] ?? '',
      /status not documented/,
    );
    assert.match(
      checkResponse(doc, 'GET', '/v1/storage/stores/store_x', 200, { store: { id: 'store_x' } }).join(),
      /must have required property/,
    );
    assert.match(
      checkResponse(doc, 'GET', '/v2/user', 200, {
        user: { id: 1, email: 'a', username: 'a', defaultTeamId: 't', version: 'northstar' },
      }).join(),
      /must be string/,
    );
    assert.match(checkResponse(doc, 'GET', '/v1/teams', 401, undefined).join(), /documented with a body, but none came/);
    assert.match(checkResponse(doc, 'DELETE', '/v1/storage/stores/s/connections', 204, { x: 1 }).join(), /without a body/);
    // OpenAPI 3.0's nullable: null where the schema allows it, and nowhere else.
    assert.deepEqual(
      checkResponse(doc, 'GET', '/v2/user', 200, {
        user: { id: 'u', email: 'a', username: 'a', name: null, defaultTeamId: 't', version: 'northstar' },
      }),
      [],
    );
    assert.match(
      checkResponse(doc, 'GET', '/v2/user', 200, {
        user: { id: 'u', email: null, username: 'a', defaultTeamId: 't', version: 'northstar' },
      }).join(),
      /must be string/,
    );
    // No operation: 404 for an unknown path, 405 for a known one under another method.
    assert.deepEqual(checkResponse(doc, 'GET', '/nowhere', 404, { error: { code: 'not_found', message: 'x' } }), []);
    assert.match(
      checkResponse(doc, 'PUT', '/v1/storage/stores', 404, { error: { code: 'not_found', message: 'x' } }).join(),
      /405 was expected/,
    );
    // A concrete path finds its templated operation, literal segments first.
    assert.equal(
      findOperation(doc, 'POST', '/v1/storage/stores/integration/direct?teamId=t')?.template,
      '/v1/storage/stores/integration/direct',
    );
    assert.equal(findOperation(doc, 'DELETE', '/v1/storage/stores/integration/store_1')?.template, '/v1/storage/stores/integration/{id}');
  });

  test('responses across the API match the document', { timeout: 240_000 }, async () => {
    const db = server.runtime.db;
    const owner = (
      await db.query<{ id: string; team_id: string }>(
        "SELECT m.user_id AS id, m.team_id FROM memberships m JOIN teams t ON t.id = m.team_id WHERE t.slug = 'my-team'",
      )
    ).rows[0]!;
    const viewer = await createUser(db, { email: 'viewer@example.com' });
    await setMember(db, owner.team_id, viewer.id, 'VIEWER');
    const viewerToken = (await createToken(db, { userId: viewer.id, teamId: owner.team_id, name: 'viewer' })).value;
    const otherTeam = await createTeam(db, { slug: 'other-team' });
    const otherInstall = await install(db, { teamId: otherTeam.id, integrationId: 'oac_storehouse', installedBy: null });

    // System and OIDC (public).
    await call({ path: '/healthz', token: null, expect: 200 });
    await call({ path: '/.well-known/jwks', token: null, expect: 200 });
    await call({ path: '/.well-known/openid-configuration', token: null, expect: 200 });
    // Another module's health route, when the document lists it.
    if (doc.paths['/livez']) await call({ path: '/livez', token: null, expect: 200 });
    await call({ path: '/nowhere', expect: 404 });
    await call({ method: 'PUT', path: '/v1/storage/stores', body: {}, expect: 405 });
    await call({ method: 'PUT', path: '/v1/storage/stores/%zz', expect: 400 });
    await call({ path: '/v1/storage/stores/%zz', expect: 400 });
    await call({ path: '/v1/storage/stores/', expect: 404 });

    // Account and teams.
    await call({ path: '/v2/user', expect: 200 });
    await call({ path: '/v2/user', token: null, expect: 401 });
    await call({ path: '/v2/user', token: 'not-a-token', expect: 401 });
    await call({ path: '/v1/teams', expect: 200 });
    await call({ path: '/teams/my-team', expect: 200 });
    await call({ path: '/teams/other-team', expect: 403 });
    await call({ path: '/v2/teams/my-team', expect: 200 });
    await call({ path: '/v2/teams/other-team', expect: 403 });
    await call({ path: `/v1/teams?teamId=${otherTeam.id}`, expect: 403 });

    // Discovery.
    const configurations = await call({ path: '/v1/integrations/configurations?view=account', expect: 200 });
    const icfg = configurations.find((c: { integrationId: string }) => c.integrationId === 'oac_storehouse').id as string;
    await call({ path: '/v1/integrations/configurations', expect: 400 });
    await call({ path: `/v1/integrations/configuration/${icfg}`, expect: 200 });
    await call({ path: `/v1/integrations/configuration/${otherInstall.id}`, expect: 404 });
    await call({ path: `/v1/integrations/configuration/${'x'.repeat(600)}`, expect: 414 });
    await call({ path: `/v1/integrations/configuration/${icfg}/products`, expect: 200 });
    await call({ path: `/v1/integrations/integration/storehouse/products/postgres/plans?integrationConfigurationId=${icfg}`, expect: 200 });
    await call({ path: '/v1/integrations/integration/storehouse/products/nothing/plans', expect: 404 });
    await call({ path: '/v1/integrations/integration/storehouse/products/postgres/plans?metadata=nope', expect: 400 });
    await call({ method: 'DELETE', path: `/v1/integrations/configuration/${icfg}`, token: viewerToken, expect: 403 });

    // Storehouse's own API: payment methods, billing records, the audit log.
    const card = await call({
      method: 'POST',
      path: '/_storehouse/payment-methods',
      body: { cardNumber: '4242424242424242' },
      expect: 200,
    });
    await call({ method: 'POST', path: '/_storehouse/payment-methods', body: { cardNumber: 'nope' }, expect: 400 });
    await call({
      method: 'POST',
      path: '/_storehouse/payment-methods',
      body: '<card/>',
      headers: { 'content-type': 'application/xml' },
      expect: 415,
    });
    const declining = await call({
      method: 'POST',
      path: '/_storehouse/payment-methods',
      body: { cardNumber: '4000000000000002' },
      expect: 200,
    });
    await call({ path: '/_storehouse/payment-methods', expect: 200 });
    await call({ path: '/_storehouse/payment-methods', token: viewerToken, expect: 403 });
    await call({ method: 'PATCH', path: `/_storehouse/payment-methods/${card.id}`, body: { default: true }, expect: 200 });
    await call({ method: 'PATCH', path: '/_storehouse/payment-methods/pm_nothing', body: { default: true }, expect: 404 });

    // Stores: a paid plan on a card that declines, a provider that cannot be reached, then a real one.
    const create = (body: Record<string, unknown>, expect: number) =>
      call({ method: 'POST', path: '/v1/storage/stores/integration/direct', body: { integrationConfigurationId: icfg, ...body }, expect });
    await create(
      { name: 'paid', integrationProductIdOrSlug: 'postgres', billingPlanId: 'postgres_pro', paymentMethodId: declining.id },
      402,
    );
    await create({ name: 'cache', integrationProductIdOrSlug: 'redis' }, 503);
    await create({ name: 'db', integrationProductIdOrSlug: 'nothing' }, 404);
    await create({ name: 'db', integrationProductIdOrSlug: 'postgres', metadata: { connectionLimit: 'many' } }, 400);
    const { store } = await create({ name: 'db', integrationProductIdOrSlug: 'postgres', metadata: { connectionLimit: 5 } }, 200);
    await create({ name: 'db', integrationProductIdOrSlug: 'postgres' }, 409);
    await call({ path: '/v1/storage/stores', expect: 200 });
    await call({ path: '/v1/storage/stores?limit=0', expect: 400 });
    await call({ path: `/v1/storage/stores/${store.id}`, expect: 200 });
    await call({ path: `/storage/stores/${store.id}`, expect: 200 });
    await call({ path: '/v1/storage/stores/store_nothing', expect: 404 });
    await call({ path: `/v1/storage/stores/${store.id}/plans`, expect: 200 });
    await call({ method: 'PATCH', path: `/v1/storage/stores/${store.id}`, body: { name: 'orders-db' }, expect: 200 });
    await call({ method: 'PATCH', path: `/v1/storage/stores/${store.id}`, body: {}, expect: 400 });
    await call({ method: 'DELETE', path: `/v1/integrations/configuration/${icfg}`, expect: 409 });

    // Projects, connections and variables.
    const project = await call({ method: 'POST', path: '/v11/projects', body: { name: 'web' }, expect: 200 });
    await call({ method: 'POST', path: '/v11/projects', body: { name: 'web' }, expect: 409 });
    await call({ method: 'POST', path: '/v11/projects', body: { name: 'Not A Name' }, expect: 400 });
    await call({ method: 'POST', path: '/v11/projects', body: { name: 'x'.repeat(2_000_000) }, expect: 413 });
    await call({ method: 'POST', path: '/v11/projects', body: { name: 'api' }, token: viewerToken, expect: 403 });
    await call({ path: '/v10/projects', expect: 200 });
    await call({ path: '/v9/projects/web', expect: 200 });
    await call({ path: '/v9/projects/nothing', expect: 404 });
    const connections = `/v1/integrations/installations/${icfg}/resources/${store.id}/connections`;
    await call({ method: 'POST', path: connections, body: { projectId: project.id, envVarEnvironments: ['production'] }, expect: 201 });
    await call({ method: 'POST', path: connections, body: { projectId: project.id, envVarEnvironments: ['nowhere'] }, expect: 400 });
    const { envs } = await call({ path: '/v10/projects/web/env?decrypt=true', expect: 200 });
    await call({ path: `/v1/projects/web/env/${envs[0].id}`, expect: 200 });
    await call({ path: '/v1/projects/web/env/env_nothing', expect: 404 });
    await call({ path: '/v10/projects/web/env?decrypt=true', token: viewerToken, expect: 403 });
    // Variables of the project's own, as `vercel env add/update/rm/pull` write and read them.
    const own = (key: string) => ({ key, value: 'v1', type: 'encrypted', target: ['preview'] });
    const { created } = await call({ method: 'POST', path: '/v10/projects/web/env', body: own('OWN_A'), expect: 201 });
    const { created: batch } = await call({ method: 'POST', path: '/v10/projects/web/env', body: [own('OWN_B')], expect: 201 });
    await call({ method: 'POST', path: '/v10/projects/web/env', body: own('OWN_A'), expect: 400 });
    await call({ method: 'POST', path: '/v10/projects/web/env?upsert=true', body: own('OWN_A'), expect: 201 });
    await call({ method: 'POST', path: '/v10/projects/web/env', body: own('OWN_C'), token: viewerToken, expect: 403 });
    await call({ method: 'POST', path: '/v10/projects/nothing/env', body: own('OWN_C'), expect: 404 });
    const { envs: afterUpsert } = await call({ path: '/v10/projects/web/env', expect: 200 });
    const ownA = afterUpsert.find((e: { key: string }) => e.key === 'OWN_A').id as string;
    assert.notEqual(created.id, undefined);
    await call({ method: 'PATCH', path: `/v10/projects/web/env/${ownA}`, body: { value: 'v2' }, expect: 200 });
    await call({ method: 'PATCH', path: `/v9/projects/web/env/${ownA}`, body: { value: 'v3' }, expect: 200 });
    await call({ method: 'PATCH', path: `/v10/projects/web/env/${envs[0].id}`, body: { value: 'mine' }, expect: 409 });
    await call({ method: 'PATCH', path: '/v10/projects/web/env/env_nothing', body: { value: 'v2' }, expect: 404 });
    await call({ method: 'PATCH', path: `/v10/projects/web/env/${ownA}`, body: { type: 'nothing' }, expect: 400 });
    await call({ path: '/v3/env/pull/web/preview', expect: 200 });
    await call({ path: '/v3/env/pull/nothing/preview', expect: 404 });
    await call({ method: 'DELETE', path: `/v10/projects/web/env/${ownA}`, expect: 200 });
    await call({ method: 'DELETE', path: `/v9/projects/web/env/${batch[0].id}`, expect: 200 });
    await call({ method: 'DELETE', path: `/v10/projects/web/env/${envs[0].id}`, expect: 409 });
    await call({ method: 'DELETE', path: `/v9/projects/web/env/${ownA}`, expect: 404 });
    await call({ path: '/v2/teams', expect: 200 });
    await call({ path: '/v2/teams?limit=0', expect: 400 });
    // A store's secrets read back (the dashboard's store page): not by a viewer, not another team's.
    const { secrets: revealed } = await call({ path: `/_storehouse/stores/${store.id}/secrets`, expect: 200 });
    assert.ok(revealed.some((secret: { name: string }) => secret.name === 'POSTGRES_URL'));
    await call({ path: `/_storehouse/stores/${store.id}/secrets`, token: viewerToken, expect: 403 });
    await call({ path: '/_storehouse/stores/store_nothing/secrets', expect: 404 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/${store.id}/connections/nothing`, expect: 404 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/${store.id}/connections/${project.id}`, expect: 204 });
    await call({ method: 'POST', path: `/v1/storage/stores/${store.id}/connections`, body: { projectId: 'web' }, expect: 201 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/${store.id}/connections`, expect: 204 });

    // The marketplace API, with the installation's access token.
    const partnerIcfg = configurations.find((c: { integrationId: string }) => c.integrationId === 'oac_partner').id as string;
    const partner = (await mintInstallationToken(db, partnerIcfg)).value;
    const installation = `/v1/installations/${partnerIcfg}`;
    const market = (rest: Omit<Call, 'token'>) => call({ ...rest, token: partner });
    // The partner's resource (a built-in product's store is not the marketplace API's to show or change).
    const resourceId = 'ext_partner';
    await market({
      method: 'PUT',
      path: `${installation}/resources/${resourceId}`,
      body: { productId: 'postgres', name: 'partner-db', status: 'ready', secrets: [{ name: 'DB_URL', value: 'postgres://partner' }] },
      expect: 200,
    });
    await market({ path: `/v1/installations/${icfg}/resources/${store.externalResourceId}`, expect: 403 });
    // A built-in product's resources are not the marketplace API's: the built-in installation's own token may not import one.
    const builtIn = (await mintInstallationToken(db, icfg)).value;
    await call({
      method: 'PUT',
      path: `/v1/installations/${icfg}/resources/ext_builtin`,
      body: { productId: 'postgres', name: 'not-imported', status: 'ready' },
      token: builtIn,
      expect: 400,
    });
    await call({ path: `/v1/installations/${icfg}/resources/${store.externalResourceId}`, token: builtIn, expect: 404 });
    await market({ path: `${installation}/account`, expect: 200 });
    await call({ path: `${installation}/account`, token: server.token, expect: 401 });
    await market({ path: `/v1/installations/${otherInstall.id}/account`, expect: 403 });
    await market({ path: `${installation}/member/${owner.id}`, expect: 200 });
    await market({ path: `${installation}/member/user_nothing`, expect: 404 });
    await market({ path: `${installation}/resources`, expect: 200 });
    await market({ path: `${installation}/resources/${resourceId}`, expect: 200 });
    await market({ path: `${installation}/resources/nothing`, expect: 404 });
    const notification = { level: 'warn', title: 'Maintenance', message: 'Tonight' };
    await market({ method: 'PATCH', path: `${installation}/resources/${resourceId}`, body: { notification }, expect: 200 });
    await market({ method: 'PATCH', path: `${installation}/resources/${resourceId}`, body: { colour: 'red' }, expect: 400 });
    await market({ path: `${installation}/resources/${resourceId}`, expect: 200 });
    const secrets = [{ name: 'EXTRA_URL', value: 'postgres://example' }];
    await market({ method: 'PUT', path: `${installation}/resources/${resourceId}/secrets`, body: { secrets, partial: true }, expect: 201 });
    const imported = { productId: 'postgres', name: 'imported', status: 'ready', secrets };
    await market({ method: 'PUT', path: `${installation}/resources/ext_imported`, body: imported, expect: 200 });
    await market({ method: 'PUT', path: `${installation}/resources/ext_other`, body: { ...imported, productId: 'nothing' }, expect: 404 });
    await market({ method: 'PUT', path: `${installation}/resources/ext_clash`, body: { ...imported, name: 'orders-db' }, expect: 409 });
    await market({ method: 'DELETE', path: `${installation}/resources/ext_imported`, expect: 204 });
    await market({ method: 'POST', path: `${installation}/events`, body: { event: { type: 'installation.updated' } }, expect: 201 });
    await market({ method: 'POST', path: `${installation}/events`, body: { event: { type: 'resource.updated' } }, expect: 400 });
    await market({
      method: 'POST',
      path: `${installation}/events`,
      body: { event: { type: 'resource.updated', resourceId: 'nothing' } },
      expect: 404,
    });
    await market({ method: 'PATCH', path: installation, body: { status: 'ready', externalId: 'acct_1' }, expect: 204 });
    await market({
      method: 'POST',
      path: `${installation}/credentials/rotate`,
      body: { client_secret: 'not-the-secret-at-all' },
      expect: 403,
    });
    await market({
      method: 'POST',
      path: `${installation}/credentials/revoke`,
      body: { token: partner, client_secret: 'not-the-secret-at-all' },
      expect: 403,
    });
    const period = { start: '2025-01-01T00:00:00Z', end: '2025-02-01T00:00:00Z' };
    // The partner's subscription plan, on its resource: a test invoice (kept paid, charging nothing) to read and refund.
    const item = { billingPlanId: 'partner_pro', resourceId, name: 'Pro', price: '10.00', quantity: 1, units: 'month', total: '10.00' };
    await market({
      method: 'POST',
      path: `${installation}/billing`,
      body: { timestamp: period.end, eod: period.end, period, billing: [item], usage: [] },
      expect: 201,
    });
    const { invoiceId } = await market({
      method: 'POST',
      path: `${installation}/billing/invoices`,
      body: { invoiceDate: period.end, period, items: [item], test: { result: 'paid' } },
      expect: 200,
    });
    await market({
      method: 'POST',
      path: `${installation}/billing/invoices`,
      body: { invoiceDate: period.end, period, items: [] },
      expect: 400,
    });
    const foreignItem = { ...item, resourceId: 'ext_nothing' };
    await market({
      method: 'POST',
      path: `${installation}/billing/invoices`,
      body: { invoiceDate: period.end, period, items: [foreignItem] },
      expect: 404,
    });
    await market({ path: `${installation}/billing/invoices/${invoiceId}`, expect: 200 });
    await market({ path: `${installation}/billing/invoices/inv_nothing`, expect: 404 });
    const refund = (id: string, total: string, expect: number) =>
      market({
        method: 'POST',
        path: `${installation}/billing/invoices/${id}/actions`,
        body: { action: 'refund', total, reason: 'credit' },
        expect,
      });
    await refund(invoiceId, '1.00', 204);
    await refund(invoiceId, '10.00', 400);
    await refund('inv_nothing', '1.00', 404);
    const notpaid = await market({
      method: 'POST',
      path: `${installation}/billing/invoices`,
      body: { invoiceDate: period.end, period, items: [item], test: { result: 'notpaid' } },
      expect: 200,
    });
    await refund(notpaid.invoiceId, '1.00', 409);
    // The webhooks those invoices sent the partner (nobody listens: each is pending, retried later).
    const { deliveries } = await call({ path: `/_storehouse/webhooks/deliveries?integrationId=oac_partner&limit=5`, expect: 200 });
    assert.ok(deliveries.length > 0, 'the invoices recorded webhook events');
    const delivery = `/_storehouse/webhooks/deliveries/${deliveries[0].id}`;
    await call({ path: '/_storehouse/webhooks/deliveries?status=lost', expect: 400 });
    await call({ path: '/_storehouse/webhooks/deliveries', token: viewerToken, expect: 403 });
    await call({ path: delivery, expect: 200 });
    await call({ path: delivery, token: viewerToken, expect: 403 });
    await call({ path: '/_storehouse/webhooks/deliveries/evt_nothing', expect: 404 });
    await call({ method: 'POST', path: `${delivery}/redeliver`, expect: 409 });
    await call({ method: 'POST', path: `${delivery}/redeliver`, token: viewerToken, expect: 403 });
    await call({ method: 'POST', path: '/_storehouse/webhooks/deliveries/evt_nothing/redeliver', expect: 404 });
    // The team's view of what it is billed (owners and billing members see invoices; every member usage and balances).
    const team = `/_storehouse/teams/${owner.team_id}`;
    await call({ path: `${team}/invoices?installationId=${partnerIcfg}`, expect: 200 });
    await call({ path: `${team}/invoices`, token: viewerToken, expect: 403 });
    await call({ path: `${team}/invoices?limit=0`, expect: 400 });
    await call({ path: `${team}/invoices/${invoiceId}`, expect: 200 });
    await call({ path: `${team}/invoices/inv_nothing`, expect: 404 });
    await call({ path: `/_storehouse/teams/${otherTeam.id}/invoices/${invoiceId}`, expect: 403 });
    await market({
      method: 'POST',
      path: `${installation}/billing/invoices`,
      body: { invoiceDate: period.end, period, items: [item], test: { validate: true } },
      expect: 200,
    });
    await market({
      method: 'POST',
      path: `${installation}/billing/balance`,
      body: { timestamp: period.end, balances: [{ resourceId, currencyValueInCents: 500 }] },
      expect: 201,
    });
    await market({ method: 'POST', path: `${installation}/billing/balance`, body: { balances: [] }, expect: 400 });
    await call({ path: `${team}/billing/usage`, token: viewerToken, expect: 200 });
    await call({ path: `${team}/billing/usage?limit=0`, expect: 400 });
    await call({ path: `${team}/billing/balances`, token: viewerToken, expect: 200 });
    await call({ path: `/_storehouse/teams/${otherTeam.id}/billing/balances`, expect: 403 });
    // SSO, "Open in provider": the owner opens the partner's installation (the URL, as JSON), whose
    // partner exchanges the code once with its client secret; the built-in integration offers none.
    const opened = await call({
      path: `/_storehouse/sso/integrations/acme/${partnerIcfg}?path=usage`,
      headers: { accept: 'application/json' },
      expect: 200,
    });
    await call({ path: `/_storehouse/sso/integrations/storehouse/${icfg}`, expect: 409 });
    const ssoToken = '/v1/integrations/sso/token';
    const ssoExchange = {
      code: new URL(opened.url).searchParams.get('code'),
      client_id: 'oac_partner',
      client_secret: PARTNER_CLIENT_SECRET,
    };
    await call({
      method: 'POST',
      path: ssoToken,
      body: { ...ssoExchange, client_secret: 'not-the-secret-at-all' },
      token: null,
      expect: 403,
    });
    await call({ method: 'POST', path: ssoToken, body: ssoExchange, token: null, expect: 200 });
    await call({ method: 'POST', path: ssoToken, body: ssoExchange, token: null, expect: 400 });
    // The account limit was set to 3 a minute: the fourth call is refused.
    await market({ path: `${installation}/account`, expect: 200 });
    await market({ path: `${installation}/account`, expect: 200 });
    await market({ path: `${installation}/account`, expect: 429 });

    // The vercel CLI's marketplace calls (src/http/routes/cli-integrations.ts and cli-configurations.ts).
    await call({ path: '/v2/integrations/integration/storehouse', expect: 200 });
    await call({ path: '/v2/integrations/integration/nothing', expect: 404 });
    await call({ path: '/v2/integrations/integrations?integrationType=marketplace&category=databases', expect: 200 });
    await call({ path: '/v2/integrations/categories', expect: 200 });
    await call({
      path: '/v2/integrations/configurations?view=account&installationType=marketplace&integrationIdOrSlug=storehouse',
      expect: 200,
    });
    await call({ path: '/v2/integrations/configurations', expect: 400 });
    const provision = (body: Record<string, unknown>, expect: number, token?: string) =>
      call({
        method: 'POST',
        path: '/v1/integrations/integration/storehouse/marketplace/auto-provision/postgres',
        body: { metadata: {}, acceptedPolicies: {}, source: 'cli', ...body },
        token,
        expect,
      });
    const cliStore = await provision({ name: 'cli-db', installationId: icfg }, 200);
    const prepaid = await provision({ name: 'cli-prepaid', billingPlanId: 'postgres_payg' }, 200);
    await provision({ name: 'cli-gold', billingPlanId: 'postgres_gold' }, 400);
    await provision({ name: 'cli-viewer' }, 403, viewerToken);
    await provision({ name: 'cli-other', installationId: otherInstall.id }, 404);
    const installPath = '/v2/integrations/integration/storehouse/marketplace/install';
    await call({ method: 'POST', path: installPath, body: { acceptedPolicies: { toc: new Date().toISOString() } }, expect: 409 });
    await call({ method: 'POST', path: installPath, body: { acceptedPolicies: {} }, expect: 400 });
    await call({ path: `/v1/integrations/installations/${icfg}/billing/balance`, expect: 200 });
    await call({ path: `/v1/integrations/installations/${otherInstall.id}/billing/balance`, expect: 404 });
    const threshold = (resourceId: string, expect: number) =>
      call({
        method: 'POST',
        path: `/v1/integrations/installations/${icfg}/resources/${resourceId}/billing/threshold`,
        body: { minimumAmountInCents: 500, purchaseAmountInCents: 1000, maximumAmountPerPeriodInCents: 5000 },
        expect,
      });
    await threshold(prepaid.resource.id, 200);
    await threshold(cliStore.resource.id, 400);
    await threshold('store_nothing', 404);
    const configuration = `/v1/integrations/configuration/${icfg}`;
    await call({ method: 'PATCH', path: configuration, body: { projects: 'all' }, expect: 200 });
    await call({ method: 'PATCH', path: configuration, body: { billingPlanId: 'postgres_pro' }, expect: 400 });
    await call({ method: 'PATCH', path: configuration, body: { projects: ['prj_nothing'] }, expect: 404 });
    await call({ method: 'PATCH', path: configuration, body: { projects: 'all' }, token: viewerToken, expect: 403 });
    await call({ method: 'POST', path: `/v2/integrations/installations/${icfg}/uninstall`, body: {}, expect: 403 });
    await call({ method: 'POST', path: `/v2/integrations/installations/${otherInstall.id}/uninstall`, body: {}, expect: 404 });
    for (const made of [cliStore, prepaid])
      await call({ method: 'DELETE', path: `/v1/storage/stores/integration/${made.resource.id}`, expect: 200 });

    // The dashboard's sign-in: a session from a token, read and ended with its cookie (and CSRF token).
    let cookie = '';
    const session = await call({
      method: 'POST',
      path: '/_storehouse/dashboard/session',
      body: { token: server.token },
      token: null,
      expect: 200,
      seen: (response) => (cookie = response.headers.get('set-cookie')?.split(';')[0] ?? ''),
    });
    assert.match(cookie, /^storehouse_session=shd_/);
    await call({ method: 'POST', path: '/_storehouse/dashboard/session', body: { token: 'not-a-token' }, token: null, expect: 401 });
    await call({ method: 'POST', path: '/_storehouse/dashboard/session', body: { token: 'a', code: 'b' }, token: null, expect: 400 });
    await call({ method: 'POST', path: '/_storehouse/dashboard/session', body: { code: 'used-or-never-made' }, token: null, expect: 401 });
    await call({ path: '/_storehouse/dashboard/session', token: null, headers: { cookie }, expect: 200 });
    await call({ path: '/_storehouse/dashboard/session', expect: 401 });
    await call({ method: 'DELETE', path: '/_storehouse/dashboard/session', token: null, headers: { cookie }, expect: 403 });
    await call({ method: 'DELETE', path: '/_storehouse/dashboard/session', expect: 401 });
    await call({
      method: 'DELETE',
      path: '/_storehouse/dashboard/session',
      token: null,
      headers: { cookie, 'x-storehouse-csrf': session.csrfToken },
      expect: 204,
    });
    await call({ path: '/_storehouse/dashboard/session', token: null, headers: { cookie }, expect: 401 });

    // Members and roles: owners change them, the last owner stays, other teams' members are not there.
    const members = `/v1/teams/${owner.team_id}/members`;
    await call({ path: `/v3/teams/${owner.team_id}/members`, expect: 200 });
    await call({ path: `/v3/teams/${otherTeam.id}/members`, expect: 403 });
    await call({ method: 'PATCH', path: `${members}/${viewer.id}`, body: { role: 'VIEWER' }, expect: 200 });
    await call({ method: 'PATCH', path: `${members}/${viewer.id}`, body: { role: 'KING' }, expect: 400 });
    await call({ method: 'PATCH', path: `${members}/${viewer.id}`, body: { role: 'OWNER' }, token: viewerToken, expect: 403 });
    await call({ method: 'PATCH', path: `${members}/${owner.id}`, body: { role: 'MEMBER' }, expect: 409 });
    await call({ method: 'PATCH', path: `${members}/user_nobody`, body: { role: 'MEMBER' }, expect: 404 });
    await call({ method: 'DELETE', path: `${members}/nobody`, expect: 404 });
    await call({ method: 'DELETE', path: `${members}/${owner.id}`, expect: 409 });

    // A user's own access tokens.
    await call({ path: '/v6/user/tokens', expect: 200 });
    const made = await call({ method: 'POST', path: '/v3/user/tokens', body: { name: 'ci' }, expect: 200 });
    await call({ method: 'POST', path: '/v3/user/tokens', body: { name: ' ' }, expect: 400 });
    await call({ method: 'POST', path: '/v3/user/tokens', body: {}, expect: 400 });
    await call({ method: 'DELETE', path: `/v3/user/tokens/${made.token.id}`, token: viewerToken, expect: 404 });
    await call({ method: 'DELETE', path: `/v3/user/tokens/${made.token.id}`, expect: 200 });
    await call({ method: 'DELETE', path: '/v3/user/tokens/tok_nothing', expect: 404 });

    // The records of all this, then the store's delete.
    await call({ path: '/_storehouse/billing/authorizations', expect: 200 });
    await call({ path: '/_storehouse/audit?limit=50', expect: 200 });
    await call({ path: '/_storehouse/audit', token: viewerToken, expect: 403 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/integration/${store.id}`, token: viewerToken, expect: 403 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/integration/${store.id}`, expect: 200 });
    await call({ method: 'DELETE', path: `/v1/storage/stores/integration/${store.id}`, expect: 404 });
    await call({ method: 'DELETE', path: `/_storehouse/payment-methods/${card.id}`, expect: 204 });
    // An installation without stores: the CLI's uninstall removes it.
    const otherOwner = await createUser(db, { email: 'other-owner@example.com' });
    await setMember(db, otherTeam.id, otherOwner.id, 'OWNER');
    const otherToken = (await createToken(db, { userId: otherOwner.id, teamId: otherTeam.id, name: 'other' })).value;
    await call({
      method: 'POST',
      path: `/v2/integrations/installations/${otherInstall.id}/uninstall`,
      body: {},
      token: otherToken,
      expect: 200,
    });

    assert.deepEqual(problems, []);
    // Every documented operation was called at least once, so none went unchecked.
    const missed = Object.entries(doc.paths).flatMap(([template, operations]) =>
      Object.keys(operations)
        .map((method) => `${method.toUpperCase()} ${template}`)
        .filter((op) => ![...covered].some((entry) => entry.startsWith(`${op} `))),
    );
    assert.deepEqual(missed, [], 'operations no call above checked');
  });
});
