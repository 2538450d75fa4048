/**
 * Storehouse against a real partner server over HTTP (the reference partner in
 * src/partner-server, wrapping the built-in Postgres provider and verifying Storehouse's JWTs
 * through its JWKS): the full create through @vercel/sdk, async completion, secrets pushed by the
 * partner, billing data, delete; and the faults: partner down, slow past the timeout, 500,
 * malformed answers, pending forever.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import pg from 'pg';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { hashToken } from '../src/ids.ts';
import { eventually, sdkFailure, type TestServer } from './helpers.ts';
import { freePort, startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import { subject } from '../src/partners/partner-client.ts';

describe('stores provided by a partner server over HTTP', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let partner: PartnerServer;
  let installationId: string;

  before(async () => {
    const down = await freePort(); // nothing listens there
    setup = await startStorehouseWithPartner({
      // Another integration, whose partner server is down.
      otherPartners: [{ slug: 'down', url: `http://127.0.0.1:${down}` }],
      env: {
        // An embedded store takes the partner a second or two; one on PostgreSQL, milliseconds.
        STOREHOUSE_PROVISION_TIMEOUT_MS: '8000',
        STOREHOUSE_PARTNER_TIMEOUT_MS: '10000',
        STOREHOUSE_PARTNER_RETRIES: '1',
        STOREHOUSE_PENDING_TIMEOUT_MS: '3000',
      },
    });
    ({ server, partner, installationId } = setup);
  });
  after(async () => {
    await setup?.close();
  });
  beforeEach(() => {
    replaceFaults(partner.faults, {});
  });

  const create = async (name: string, extra: Record<string, unknown> = {}) => ({ store: await setup.createStore(name, extra) });
  /** The partner resource ids of the installation's stores, sorted. */
  const storeResourceIds = async () =>
    (
      await server.runtime.db.query<{ id: string }>(
        'SELECT external_resource_id AS id FROM stores WHERE installation_id = $1 AND external_resource_id IS NOT NULL',
        [installationId],
      )
    ).rows
      .map((row) => row.id)
      .sort();
  const storeCount = async () =>
    Number(
      (await server.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM stores WHERE installation_id = $1', [installationId]))
        .rows[0]!.n,
    );
  const partnerCalls = (method: string, pathPart: string) => setup.partnerCalls(method, pathPart);

  test('plans come from the partner; a create installs, provisions with a signed user token and an Idempotency-Key, and the URL connects', async () => {
    const { plans } = await server.sdk().integrations.getBillingPlans({
      integrationIdOrSlug: 'acme',
      productIdOrSlug: 'postgres',
      integrationConfigurationId: installationId,
      metadata: JSON.stringify({ connectionLimit: 5 }),
    });
    assert.deepEqual(
      plans.map((p) => p.id),
      ['partner_free', 'partner_pro'],
    );
    const plansCall = partnerCalls('GET', '/v1/products/postgres/plans').at(-1)!;
    assert.equal(plansCall.vercelAuth, 'system');
    assert.equal(plansCall.claims?.installation_id, installationId);
    assert.equal(plansCall.claims?.user_id, undefined, 'plans are asked with a system token');

    const { store } = await create('acme-first');
    assert.equal(store.status, 'available');
    assert.equal(store.billingPlan?.id, 'partner_free');

    const [upsert] = partnerCalls('PUT', `/v1/installations/${installationId}`);
    assert.ok(upsert, 'the installation was announced before the first provision');
    assert.equal(upsert.vercelAuth, 'user');
    assert.equal(upsert.claims?.user_role, 'ADMIN');
    assert.equal(upsert.claims?.aud, 'oac_partner');
    assert.equal(upsert.claims?.iss, server.url);
    assert.ok(upsert.idempotencyKey);
    const token = (upsert.body as { credentials: { access_token: string } }).credentials.access_token;
    const { rows: tokens } = await server.runtime.db.query<{ token_hash: string }>(
      'SELECT token_hash FROM installation_tokens WHERE installation_id = $1',
      [installationId],
    );
    assert.equal(tokens.length, 1);
    assert.ok(!tokens[0]!.token_hash.includes(token), 'only the hash is stored');
    assert.equal(tokens[0]!.token_hash, hashToken(token), 'the hash of the token the partner received');

    const provision = partnerCalls('POST', `/v1/installations/${installationId}/resources`).at(-1)!;
    const { rows } = await server.runtime.db.query<{ id: string; provision_key: string; external_resource_id: string }>(
      'SELECT id, provision_key, external_resource_id FROM stores WHERE name = $1',
      ['acme-first'],
    );
    const storeId = rows[0]!.id;
    assert.equal(provision.idempotencyKey, rows[0]!.provision_key);
    assert.equal(provision.claims?.account_id, server.runtime.bootstrapped!.team.id);
    assert.equal(provision.claims?.sub, subject(server.runtime.bootstrapped!.team.id, server.runtime.bootstrapped!.user.id));
    assert.match(provision.claims?.sub as string, /^account:[0-9a-f]+:user:[0-9a-f]+$/);
    assert.equal(store.externalResourceId, rows[0]!.external_resource_id);

    // The second create does not announce the installation again.
    await create('acme-second');
    assert.equal(partnerCalls('PUT', `/v1/installations/${installationId}`).length, 1);

    // Connect to a project; the project's POSTGRES_URL reaches the partner's database.
    const project = await server.sdk().projects.createProject({ requestBody: { name: 'acme-app' } });
    await server.sdk().integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: installationId,
      resourceId: store.externalResourceId!,
      requestBody: { projectId: project.id },
    });
    const url = await envValue(server, project.id, 'POSTGRES_URL');
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await client.end();

    // The partner pushes new secrets: the project's variable follows, and the new URL connects.
    const pushed = (await (
      await fetch(`${partner.url}/_partner/resources/${store.externalResourceId}/rotate-secrets`, { method: 'POST' })
    ).json()) as { status: number };
    assert.equal(pushed.status, 201);
    const rotated = await envValue(server, project.id, 'POSTGRES_URL');
    assert.notEqual(rotated, url);
    const again = new pg.Client({ connectionString: rotated });
    await again.connect();
    await again.end();

    // Billing data from the partner is kept.
    const billed = (await (await fetch(`${partner.url}/_partner/installations/${installationId}/billing`, { method: 'POST' })).json()) as {
      status: number;
    };
    assert.equal(billed.status, 201);
    const { rows: reports } = await server.runtime.db.query('SELECT 1 FROM partner_reports WHERE installation_id = $1 AND kind = $2', [
      installationId,
      'billing',
    ]);
    assert.equal(reports.length, 1);

    // Delete (disconnecting the project): the partner is told, with a user token.
    const removed = await server.request(`/v1/storage/stores/integration/${storeId}?disconnect=true`, { method: 'DELETE' });
    assert.ok(removed.status < 300, `delete answered ${removed.status}`);
    const deleteCall = partnerCalls('DELETE', `/resources/${store.externalResourceId}`).at(-1)!;
    assert.equal(deleteCall.status, 204);
    assert.ok(deleteCall.idempotencyKey);
    const gone = new pg.Client({ connectionString: rotated, connectionTimeoutMillis: 2000 });
    await assert.rejects(gone.connect());
  });

  test('a pending resource becomes available when the partner reports resource.updated', async () => {
    // Pending until the partner is told to finish: then it reports resource.updated, and Storehouse
    // reads the resource back before answering the event. Nothing here waits on a clock, so the
    // poller (first due 2 s after the provision) cannot be what made the store available.
    partner.faults.provision = { pending: 'forever', times: 1 };
    const { store } = await create('acme-pending');
    assert.equal(store.status, 'initializing');
    const gets = partnerCalls('GET', `/resources/${store.externalResourceId}`).length;
    const finished = (await (
      await fetch(`${partner.url}/_partner/resources/${store.externalResourceId}/ready`, { method: 'POST' })
    ).json()) as { status: number };
    assert.equal(finished.status, 201, 'Storehouse took the event');
    assert.equal(await statusOf(server, store.externalResourceId), 'available', 'available as soon as the event was answered');
    // Storehouse read the resource back, on the event.
    assert.ok(partnerCalls('GET', `/resources/${store.externalResourceId}`).length >= gets + 1);
  });

  test('a resource pending forever ends in error with a notification after the pending timeout', async () => {
    partner.faults.provision = { pending: 'forever' };
    const { store } = await create('acme-forever');
    assert.equal(store.status, 'initializing');
    await eventually('the store to be marked error', async () => (await statusOf(server, store.externalResourceId)) === 'error', 12_000);
    const { rows } = await server.runtime.db.query<{ notification: { title: string } }>(
      'SELECT notification FROM stores WHERE external_resource_id = $1',
      [store.externalResourceId],
    );
    assert.match(rows[0]!.notification.title, /did not finish/);
    assert.ok(partnerCalls('GET', `/resources/${store.externalResourceId}`).length >= 1, 'Storehouse polled the partner');
  });

  test('faults: a 500, a malformed answer, a partner too slow, a partner down; each leaves no store and no resource behind', async () => {
    const before = await storeCount();
    const provisionsBefore = partnerCalls('POST', '/resources').length;

    partner.faults.provision = { status: 500, times: 2 };
    const failed = await sdkFailure(create('acme-500'));
    assert.equal(failed.status, 502);
    assert.match(failed.message, /500/);
    assert.equal(partnerCalls('POST', '/resources').length - provisionsBefore >= 2, true, 'a 5xx is retried');

    // A partner's own validation error, naming fields, is the caller's to fix: 400 with the fields.
    partner.faults.provision = { status: 400, times: 1 };
    const refused = await sdkFailure(create('acme-400'));
    assert.equal(refused.status, 400);
    assert.equal(refused.code, 'validation_error');
    assert.match(refused.message, /refused/);
    assert.deepEqual(
      refused.body.error.fields,
      [{ key: 'metadata', message: 'refused by the partner (injected fault)' }],
      "the partner's fields reach the caller",
    );

    partner.faults.provision = { malformed: true, times: 1 };
    const malformed = await sdkFailure(create('acme-malformed'));
    assert.equal(malformed.status, 502);
    assert.equal(malformed.code, 'provider_invalid_response');
    assert.match(malformed.message, /"id" is required|"status" must be one of/);

    partner.faults.provision = { delayMs: 9000, afterWork: true, times: 1 };
    const slow = await sdkFailure(create('acme-slow'));
    assert.equal(slow.status, 503);
    assert.equal(slow.code, 'provider_timeout');

    const [downInstallation] = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'down' });
    const down = await sdkFailure(
      server.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name: 'acme-down',
          integrationConfigurationId: downInstallation!.id!,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
        },
      }),
    );
    assert.equal(down.status, 503);
    assert.equal(down.code, 'provider_unavailable');

    // A failed create's undo may outlive its answer (it waits at most a moment for it, then goes
    // on in the background): the slow partner makes the resource after the timeout.
    await eventually('no store to be left behind', async () => (await storeCount()) === before, 30_000);
    // Every resource the partner made for these creates was deleted again.
    await eventually(
      'the partner to hold no orphan resource',
      async () => JSON.stringify(await setup.partnerResourceIds()) === JSON.stringify(await storeResourceIds()),
      30_000,
    );
    // The same resources, not only as many: the partner's live ones are the installation's stores'.
    assert.deepEqual(await setup.partnerResourceIds(), await storeResourceIds());
  });
});

/** A store's status, by its partner resource id (the SDK's store has no id of its own). */
async function statusOf(server: TestServer, externalResourceId: string | undefined): Promise<string | undefined> {
  const { rows } = await server.runtime.db.query<{ status: string }>('SELECT status FROM stores WHERE external_resource_id = $1', [
    externalResourceId,
  ]);
  return rows[0]?.status;
}

async function envValue(server: TestServer, projectId: string, key: string): Promise<string> {
  const env = await server.sdk().projects.filterProjectEnvs({ idOrName: projectId, decrypt: 'true' });
  const envs = 'envs' in env ? env.envs : [];
  const found = (envs as Array<{ key?: string; value?: string; target?: unknown }>).find(
    (e) => e.key === key && JSON.stringify(e.target).includes('production'),
  );
  assert.ok(found?.value, `the project has ${key}`);
  return found.value;
}
