import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, test } from 'node:test';
import { SDKError } from '@vercel/sdk/models/sdkerror.js';
import { install } from '../src/tenancy/installations.ts';
import { createTeam, setMember } from '../src/tenancy/teams.ts';
import { createToken, revokeToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import { BACKENDS, errorOf, startServer, type TestServer } from './helpers.ts';

/** The status of the SDKError a call rejects with. */
async function sdkStatus(call: Promise<unknown>): Promise<number> {
  try {
    await call;
  } catch (error) {
    assert.ok(error instanceof SDKError, `expected an SDKError, got ${error}`);
    const body = JSON.parse(error.body);
    assert.equal(typeof body.error.code, 'string');
    assert.equal(typeof body.error.message, 'string');
    return error.statusCode;
  }
  assert.fail('expected the call to fail');
}

for (const backend of BACKENDS) {
  describe(`discovery API through @vercel/sdk (${backend})`, () => {
    let server: TestServer;
    let icfg: string;
    // A second team with its own installation, a viewer of my-team, and a member of my-team.
    let other: { teamId: string; teamSlug: string; icfg: string; token: string };
    let viewerToken: string;
    let memberToken: string;

    before(async () => {
      server = await startServer(backend);
      const db = server.runtime.db;
      const [configuration] = await server.sdk().integrations.getConfigurations({ view: 'account' });
      icfg = configuration!.id!;
      const myTeam = (await db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;

      const stranger = await createUser(db, { email: 'stranger@example.com' });
      const otherTeam = await createTeam(db, { slug: 'other-team' });
      await setMember(db, otherTeam.id, stranger.id, 'OWNER');
      const otherInstall = await install(db, { teamId: otherTeam.id, integrationId: 'oac_storehouse', installedBy: stranger.id });
      other = {
        teamId: otherTeam.id,
        teamSlug: otherTeam.slug,
        icfg: otherInstall.id,
        token: (await createToken(db, { userId: stranger.id, teamId: otherTeam.id, name: 't' })).value,
      };
      const viewer = await createUser(db, { email: 'viewer@example.com' });
      await setMember(db, myTeam, viewer.id, 'VIEWER');
      viewerToken = (await createToken(db, { userId: viewer.id, teamId: myTeam, name: 't' })).value;
      const member = await createUser(db, { email: 'member@example.com' });
      await setMember(db, myTeam, member.id, 'MEMBER');
      memberToken = (await createToken(db, { userId: member.id, teamId: myTeam, name: 't' })).value;
    });
    after(() => server.close());

    test("lists the team's configurations with the integration", async () => {
      const configurations = await server.sdk().integrations.getConfigurations({ view: 'account' });
      assert.equal(configurations.length, 1);
      const [configuration] = configurations as any[];
      assert.match(configuration.id, /^icfg_[A-Za-z0-9]+$/);
      assert.equal(configuration.type, 'integration-configuration');
      assert.equal(configuration.slug, 'storehouse');
      assert.equal(configuration.integrationId, 'oac_storehouse');
      assert.equal(configuration.integration.name, 'Storehouse');
      assert.equal(configuration.installationType, 'marketplace');
      assert.ok(configuration.scopes.includes('read-write:integration-resource'));
      assert.ok(configuration.createdAt > 0);
    });

    test('filters configurations by integration and installation type', async () => {
      const integrations = server.sdk().integrations;
      assert.equal((await integrations.getConfigurations({ view: 'project', integrationIdOrSlug: 'storehouse' })).length, 1);
      assert.equal((await integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'oac_storehouse' })).length, 1);
      assert.equal((await integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' })).length, 0);
      assert.equal((await integrations.getConfigurations({ view: 'account', installationType: 'marketplace' })).length, 1);
      assert.equal((await integrations.getConfigurations({ view: 'account', installationType: 'external' })).length, 0);
      assert.equal((await integrations.getConfigurations({ view: 'account', installationType: 'provisioning' })).length, 0);
    });

    test('reads one configuration', async () => {
      const configuration = (await server.sdk().integrations.getConfiguration({ id: icfg })) as any;
      assert.equal(configuration.id, icfg);
      assert.equal(configuration.type, 'integration-configuration');
      assert.deepEqual(configuration.scopes, ['read-write:integration-resource', 'read:project', 'read-write:project-env-vars']);
    });

    test('lists products with metadata schemas the SDK parses, ui controls intact', async () => {
      const result = await server.sdk().integrations.getConfigurationProducts({ id: icfg });
      assert.equal(result.configuration.id, icfg);
      assert.deepEqual(result.integration, { id: 'oac_storehouse', name: 'Storehouse', slug: 'storehouse' });
      assert.deepEqual(
        result.products.map((p) => p.slug),
        ['postgres', 'redis'],
      );
      const postgres = result.products[0]!;
      assert.equal(postgres.id, 'iap_storehouse_postgres');
      assert.equal(postgres.protocols.storage?.status, 'enabled');
      assert.deepEqual(Object.keys(postgres.metadataSchema.properties), ['connectionLimit', 'statementTimeout']);
      const limit = postgres.metadataSchema.properties.connectionLimit as any;
      assert.equal(limit.uiControl, 'input');
      assert.equal(limit.type, 'number');
      // On the wire the keys are Vercel's own.
      const raw = (await (await server.request(`/v1/integrations/configuration/${icfg}/products`)).json()) as any;
      assert.equal(raw.products[0].metadataSchema.properties.statementTimeout['ui:control'], 'select');
      assert.equal(raw.products[0].metadataSchema.properties.statementTimeout['ui:options'].length, 3);
    });

    test('lists billing plans: free, paid and prepayment', async () => {
      const { plans } = await server.sdk().integrations.getBillingPlans({
        integrationIdOrSlug: 'storehouse',
        productIdOrSlug: 'postgres',
        integrationConfigurationId: icfg,
        metadata: JSON.stringify({ connectionLimit: 5 }),
        source: 'marketplace',
      });
      assert.deepEqual(
        plans.map((p) => p.id),
        ['postgres_hobby', 'postgres_pro', 'postgres_payg'],
      );
      const [free, pro, payg] = plans;
      assert.equal(free!.paymentMethodRequired, false);
      assert.equal(free!.type, 'subscription');
      assert.equal(pro!.paymentMethodRequired, true);
      assert.equal(pro!.preauthorizationAmount, 20);
      assert.equal(pro!.cost, '$20.00/month');
      assert.equal(payg!.type, 'prepayment');
      assert.equal(payg!.minimumAmount, '5.00');
      assert.equal(payg!.maximumAmount, '500.00');
      // By ids instead of slugs, and on the path without /v1 that the seed documentation uses.
      const byId = await server
        .sdk()
        .integrations.getBillingPlans({ integrationIdOrSlug: 'oac_storehouse', productIdOrSlug: 'iap_storehouse_redis' });
      assert.deepEqual(
        byId.plans.map((p) => p.id),
        ['redis_hobby', 'redis_pro', 'redis_payg'],
      );
      const unversioned = await server.request('/integrations/integration/storehouse/products/redis/plans');
      assert.equal(unversioned.status, 200);
      assert.deepEqual(
        ((await unversioned.json()) as any).plans.map((p: any) => p.id),
        ['redis_hobby', 'redis_pro', 'redis_payg'],
      );
    });

    test('401 without a token, with an unknown token, and with a revoked one', async () => {
      assert.equal(
        await sdkStatus(
          new (server.sdk().constructor as any)({ serverURL: server.url }).integrations.getConfigurations({ view: 'account' }),
        ),
        401,
      );
      assert.equal(await sdkStatus(server.sdk('sh_not_a_real_token').integrations.getConfigurations({ view: 'account' })), 401);
      const db = server.runtime.db;
      const owner = (
        await db.query<{ user_id: string; default_team_id: string }>(
          "SELECT user_id, default_team_id FROM access_tokens WHERE name = 'bootstrap'",
        )
      ).rows[0]!;
      const { token, value } = await createToken(db, { userId: owner.user_id, teamId: owner.default_team_id, name: 'short-lived' });
      assert.equal((await server.sdk(value).integrations.getConfigurations({ view: 'account' })).length, 1);
      await revokeToken(db, token.id);
      assert.equal(await sdkStatus(server.sdk(value).integrations.getConfigurations({ view: 'account' })), 401);
      const response = await server.request('/v1/integrations/configurations?view=account', { token: null });
      assert.deepEqual(await errorOf(response), {
        status: 401,
        code: 'unauthorized',
        message: 'Missing bearer token: send "Authorization: Bearer <token>"',
        body: { error: { code: 'unauthorized', message: 'Missing bearer token: send "Authorization: Bearer <token>"' } },
      });
    });

    test("another team's configuration is a 404, never a hint that it exists", async () => {
      const integrations = server.sdk().integrations;
      assert.equal(await sdkStatus(integrations.getConfiguration({ id: other.icfg })), 404);
      assert.equal(await sdkStatus(integrations.getConfigurationProducts({ id: other.icfg })), 404);
      assert.equal(await sdkStatus(integrations.deleteConfiguration({ id: other.icfg })), 404);
      assert.equal(
        await sdkStatus(
          integrations.getBillingPlans({
            integrationIdOrSlug: 'storehouse',
            productIdOrSlug: 'postgres',
            integrationConfigurationId: other.icfg,
          }),
        ),
        404,
      );
      const missing = await errorOf(await server.request('/v1/integrations/configuration/icfg_doesnotexist'));
      const foreign = await errorOf(await server.request(`/v1/integrations/configuration/${other.icfg}`));
      assert.equal(foreign.code, missing.code);
      assert.equal(foreign.message.replace(other.icfg, 'X'), missing.message.replace('icfg_doesnotexist', 'X'));
      // Its owner sees it.
      assert.equal(((await server.sdk(other.token).integrations.getConfiguration({ id: other.icfg })) as any).id, other.icfg);
    });

    test('team selection: teamId, slug, both, and teams the caller is not in', async () => {
      const integrations = server.sdk().integrations;
      const mine = (await server.runtime.db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      assert.equal((await integrations.getConfigurations({ view: 'account', teamId: mine })).length, 1);
      assert.equal((await integrations.getConfigurations({ view: 'account', slug: 'my-team' })).length, 1);
      assert.equal((await integrations.getConfigurations({ view: 'account', teamId: mine, slug: 'my-team' })).length, 1);
      assert.equal(await sdkStatus(integrations.getConfigurations({ view: 'account', teamId: other.teamId })), 403);
      assert.equal(await sdkStatus(integrations.getConfigurations({ view: 'account', slug: other.teamSlug })), 403);
      assert.equal(await sdkStatus(integrations.getConfigurations({ view: 'account', teamId: 'team_nope' })), 403);
      assert.equal(await sdkStatus(integrations.getConfigurations({ view: 'account', teamId: mine, slug: other.teamSlug })), 400);
      assert.equal(await sdkStatus(integrations.getConfigurations({ view: 'account', teamId: mine, slug: 'no-such-team' })), 400);
      // The other team's owner, acting on the other team, sees its own configuration only.
      const theirs = await server.sdk(other.token).integrations.getConfigurations({ view: 'account' });
      assert.deepEqual(
        theirs.map((c) => c.id),
        [other.icfg],
      );
    });

    test('a VIEWER reads but cannot remove a configuration; neither can a MEMBER who did not install it', async () => {
      assert.equal((await server.sdk(viewerToken).integrations.getConfigurations({ view: 'account' })).length, 1);
      assert.equal((await server.sdk(viewerToken).integrations.getConfigurationProducts({ id: icfg })).products.length, 2);
      assert.equal(await sdkStatus(server.sdk(viewerToken).integrations.deleteConfiguration({ id: icfg })), 403);
      assert.equal(await sdkStatus(server.sdk(memberToken).integrations.deleteConfiguration({ id: icfg })), 403);
      assert.equal((await server.sdk().integrations.getConfigurations({ view: 'account' })).length, 1);
    });

    test("bad query values are 400s in Vercel's format", async () => {
      const cases: Array<[string, RegExp]> = [
        ['/v1/integrations/configurations', /Missing required query parameter "view"/],
        ['/v1/integrations/configurations?view=everything', /Invalid query parameter "view": must be one of account, project/],
        ['/v1/integrations/configurations?view=account&installationType=weird', /"installationType"/],
        ['/v1/integrations/integration/storehouse/products/postgres/plans?source=fax', /"source"/],
        ['/v1/integrations/integration/storehouse/products/postgres/plans?metadata=%7Bnope', /"metadata": must be a JSON object/],
        ['/v1/integrations/integration/storehouse/products/postgres/plans?metadata=%5B1%5D', /"metadata": must be a JSON object/],
      ];
      for (const [path, message] of cases) {
        const error = await errorOf(await server.request(path));
        assert.equal(error.status, 400, path);
        assert.equal(error.code, 'bad_request', path);
        assert.match(error.message, message, path);
      }
    });

    test('unknown integrations and products are 404s', async () => {
      const integrations = server.sdk().integrations;
      assert.equal(await sdkStatus(integrations.getBillingPlans({ integrationIdOrSlug: 'acme', productIdOrSlug: 'postgres' })), 404);
      assert.equal(await sdkStatus(integrations.getBillingPlans({ integrationIdOrSlug: 'storehouse', productIdOrSlug: 'mysql' })), 404);
      assert.equal(await sdkStatus(integrations.getConfigurationProducts({ id: 'icfg_missing' })), 404);
    });

    test('unknown routes 404, wrong methods 405, malformed JSON 400', async () => {
      const notFound = await errorOf(await server.request('/v1/nothing/here'));
      assert.deepEqual([notFound.status, notFound.code], [404, 'not_found']);
      const wrongMethod = await server.request('/v1/integrations/configurations?view=account', { method: 'POST' });
      assert.equal(wrongMethod.headers.get('allow'), 'GET, HEAD, OPTIONS');
      const method = await errorOf(wrongMethod);
      assert.deepEqual([method.status, method.code, method.message], [405, 'method_unknown', 'This endpoint only responds to GET']);
      const deleteOrGet = await errorOf(await server.request(`/v1/integrations/configuration/${icfg}`, { method: 'PUT' }));
      assert.equal(deleteOrGet.status, 405);
      assert.match(deleteOrGet.message, /GET, PATCH, DELETE/);
      const malformed = await server.request(`/v1/integrations/configuration/${icfg}`, {
        method: 'DELETE',
        headers: { 'content-type': 'application/json' },
        body: '{"oops":',
      });
      const parsed = await errorOf(malformed);
      assert.deepEqual([parsed.status, parsed.code], [400, 'bad_request']);
      // Nothing was deleted by the malformed request.
      assert.equal((await server.sdk().integrations.getConfigurations({ view: 'account' })).length, 1);
    });

    test("values the database cannot hold, odd paths and broken HTTP are 4xx in Vercel's format", async () => {
      for (const path of [
        '/v1/integrations/configurations?view=account&teamId=%00',
        '/v1/integrations/configurations?view=account&slug=a%00b',
        '/v1/integrations/configuration/icfg_%00/products',
        `/v1/integrations/integration/storehouse/products/postgres/plans?integrationConfigurationId=%00`,
      ]) {
        const error = await errorOf(await server.request(path));
        assert.ok([400, 403, 404].includes(error.status), `${path}: ${error.status}`);
      }
      const nul = await errorOf(await server.request('/v1/integrations/configuration/icfg_%00'));
      assert.deepEqual([nul.status, nul.code], [400, 'bad_request']);
      const badEncoding = await errorOf(await server.request('/v1/integrations/configuration/%E0%A4%A'));
      assert.deepEqual([badEncoding.status, badEncoding.code], [400, 'bad_request']);
      const long = await errorOf(await server.request(`/v1/integrations/configuration/${'x'.repeat(600)}`));
      assert.deepEqual([long.status, long.code], [414, 'uri_too_long']);
      const raw = async (request: string) => {
        const socket = net.connect(Number(new URL(server.url).port), '127.0.0.1');
        let response = '';
        socket.on('data', (chunk) => (response += chunk));
        socket.write(request);
        await new Promise((resolve) => socket.on('close', resolve));
        return response;
      };
      const malformed = await raw('GET / HTTP/1.1\r\nHost x\r\n\r\n');
      assert.match(malformed, /^HTTP\/1.1 400/);
      assert.match(malformed, /\{"error":\{"code":"bad_request","message":"The request is not valid HTTP"\}\}$/);
      const overflow = await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`);
      assert.match(overflow, /^HTTP\/1.1 431/);
      assert.match(overflow, /"code":"headers_too_large"/);
    });

    test('an empty teamId or slug names no team, however warm the cache', async () => {
      for (let round = 0; round < 2; round++) {
        assert.equal((await server.request('/v1/integrations/configurations?view=account')).status, 200);
        assert.equal((await server.request('/v1/integrations/configurations?view=account&teamId=')).status, 403);
        assert.equal((await server.request('/v1/integrations/configurations?view=account&slug=')).status, 403);
      }
    });

    test('DELETE is refused while stores remain, then removes the configuration', async () => {
      const db = server.runtime.db;
      const teamId = (await db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      // Until the store API exists, a store row stands for a provisioned store.
      await db.query(
        `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status)
         VALUES ('store_discovery1', $1, $2, 'iap_storehouse_postgres', 'postgres_hobby', 'db-1', 'available')`,
        [teamId, icfg],
      );
      const refused = await server.request(`/v1/integrations/configuration/${icfg}`, { method: 'DELETE' });
      const error = await errorOf(refused);
      assert.deepEqual([error.status, error.code], [409, 'configuration_has_stores']);
      assert.match(error.message, /still has 1 store/);
      await db.query("DELETE FROM stores WHERE id = 'store_discovery1'");

      await server.sdk().integrations.deleteConfiguration({ id: icfg });
      assert.equal((await server.sdk().integrations.getConfigurations({ view: 'account' })).length, 0);
      assert.equal(await sdkStatus(server.sdk().integrations.getConfiguration({ id: icfg })), 404);
      assert.equal(await sdkStatus(server.sdk().integrations.deleteConfiguration({ id: icfg })), 404);
    });

    test('no token value ever reaches a log line', () => {
      const secrets = [server.token, other.token, viewerToken, memberToken];
      assert.ok(server.logs.length > 10, 'the server logged its requests');
      for (const line of server.logs) {
        for (const secret of secrets) assert.ok(!line.includes(secret), `a token leaked into the log: ${line}`);
        const entry = JSON.parse(line);
        if (entry.req) assert.ok(entry.reqId, 'request log lines carry the request id');
      }
    });
  });
}

describe('system routes', () => {
  let server: TestServer;
  before(async () => {
    server = await startServer('embedded');
  });
  after(() => server.close());

  test('healthz answers without a token; responses carry a request id', async () => {
    const response = await server.request('/healthz', { token: null });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { status: string; checks: Record<string, { status: string }> };
    assert.equal(body.status, 'ok');
    assert.equal(body.checks.database?.status, 'ok', 'it names what it checked');
    assert.match(response.headers.get('x-request-id') ?? '', /^req_/);
    const traced = await server.request('/healthz', { token: null, headers: { 'x-request-id': 'lb-trace-42' } });
    assert.equal(traced.headers.get('x-request-id'), 'lb-trace-42');
  });

  test('openapi.json documents the discovery API from the route schemas', async () => {
    const response = await server.request('/openapi.json', { token: null });
    assert.equal(response.status, 200);
    const document = (await response.json()) as any;
    assert.match(document.openapi, /^3\./);
    for (const path of [
      '/v1/integrations/configurations',
      '/v1/integrations/configuration/{id}',
      '/v1/integrations/configuration/{id}/products',
      '/v1/integrations/integration/{integrationIdOrSlug}/products/{productIdOrSlug}/plans',
    ]) {
      assert.ok(document.paths[path], `${path} is documented`);
    }
    const list = document.paths['/v1/integrations/configurations'].get;
    assert.deepEqual(list.parameters.find((p: any) => p.name === 'view').schema.enum, ['account', 'project']);
    assert.equal(list.parameters.find((p: any) => p.name === 'view').required, true);
    assert.ok(document.paths['/v1/integrations/configuration/{id}'].delete.responses['204']);
    assert.ok(JSON.stringify(document.components.schemas).includes('paymentMethodRequired'));
  });
});
