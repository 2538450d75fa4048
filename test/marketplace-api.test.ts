/**
 * The marketplace API partner servers call back (docs/partner-api.md §2.2, §5;
 * docs/vercel-api.md §5), driven by the unmodified @vercel/sdk `marketplace.*` functions with the
 * installation access token the reference partner server received in its upsert. Every change
 * is checked through Storehouse's own user-facing API (the owner's `GET /v1/storage/stores`,
 * `GET /v10/projects/{id}/env?decrypt=true`, billing authorizations, audit log), not only by
 * the status answered.
 */
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { Vercel } from '@vercel/sdk';
import { HTTPClient } from '@vercel/sdk/lib/http.js';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { install } from '../src/tenancy/installations.ts';
import { createTeam } from '../src/tenancy/teams.ts';
import { errorOf, eventually, sdkFailure, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';

/** A store as the owner's GET /v1/storage/stores shows it (the fields these tests read). */
interface UserStore {
  id: string;
  name: string;
  status: string;
  externalResourceId: string;
  externalResourceStatus?: string;
  source: string;
  secrets: Array<{ name: string; length: number }>;
  ownership: string;
  notification?: { level: string; title: string; message?: string; href?: string };
  metadata: Record<string, unknown>;
  billingPlan?: { id: string };
  product: { id: string; slug: string };
  projectsMetadata: Array<{ projectId?: string; id?: string }>;
}

describe('the marketplace API, called by a partner through @vercel/sdk', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let partner: PartnerServer;
  let installationId: string;
  /** The installation's access token, as the partner received it in the upsert. */
  let token: string;
  let first: UserStore;

  const mp = () => server.sdk(token).marketplace;
  /**
   * The marketplace SDK with the installation's token, keeping the HTTP status of every answer
   * (for calls whose SDK function resolves to nothing, such as a 204 or a 201 without a body).
   */
  const mpWithStatuses = () => {
    const statuses: number[] = [];
    const httpClient = new HTTPClient();
    httpClient.addHook('response', (response) => {
      statuses.push(response.status);
    });
    return { api: new Vercel({ bearerToken: token, serverURL: server.url, httpClient }).marketplace, statuses };
  };
  const icfg = () => ({ integrationConfigurationId: installationId });

  /** The owner's view of the team's stores. */
  const userStores = async (): Promise<UserStore[]> => {
    const response = await server.request('/v1/storage/stores?limit=1000');
    assert.equal(response.status, 200);
    return ((await response.json()) as { stores: UserStore[] }).stores;
  };
  const storeOf = async (resourceId: string): Promise<UserStore | undefined> =>
    (await userStores()).find((s) => s.externalResourceId === resourceId);
  const secretNames = (store: UserStore | undefined) => (store?.secrets ?? []).map((s) => s.name).sort();

  /** A project's variables as the owner reads them decrypted: key → target → value. */
  const projectVars = async (projectId: string): Promise<Record<string, Record<string, string>>> => {
    const response = await server.request(`/v10/projects/${projectId}/env?decrypt=true`);
    assert.equal(response.status, 200);
    const { envs } = (await response.json()) as { envs: Array<{ key: string; value?: string; target: string[] }> };
    const vars: Record<string, Record<string, string>> = {};
    for (const env of envs) for (const target of env.target) (vars[env.key] ??= {})[target] = env.value ?? '(hidden)';
    return vars;
  };

  /** A store created by the owner through @vercel/sdk, provisioned by the partner. */
  const create = async (name: string, extra: Record<string, unknown> = {}) => {
    const store = await setup.createStore(name, extra);
    assert.ok(store.externalResourceId, 'the partner gave the store a resource id');
    const found = await storeOf(store.externalResourceId);
    assert.ok(found);
    return found;
  };

  /** A project connected to the store (by its partner id, with the owner's token). */
  const connectedProject = async (name: string, store: UserStore) => {
    const project = await server.sdk().projects.createProject({ requestBody: { name } });
    await server.sdk().integrations.connectIntegrationResourceToProject({
      ...icfg(),
      resourceId: store.externalResourceId,
      requestBody: { projectId: project.id },
    });
    return project.id;
  };

  /** A marketplace call with a raw body (what the SDK would refuse to send), with the installation's token. */
  const raw = (method: string, pathAndQuery: string, body?: string, bearer: string | null = token) =>
    server.request(pathAndQuery, {
      method,
      token: bearer,
      headers: { 'content-type': 'application/json' },
      ...(body !== undefined && { body }),
    });

  const partnerCalls = (method: string, pathPart: string) => setup.partnerCalls(method, pathPart);

  before(async () => {
    setup = await startStorehouseWithPartner({
      // Its `postgres`, and a second product, `replica`, served by the same partner, that resources are only imported into.
      extraProducts: [{ slug: 'replica' }],
      env: {
        // Generous: the machine is shared, and an embedded partner store takes a second or two.
        STOREHOUSE_PROVISION_TIMEOUT_MS: '30000',
        STOREHOUSE_PARTNER_TIMEOUT_MS: '30000',
        STOREHOUSE_PARTNER_RETRIES: '1',
        STOREHOUSE_PENDING_TIMEOUT_MS: '600000',
        // The bad-input test sends more secrets updates in a minute than Vercel's 20 (malformed
        // ones count too); the limits have tests of their own (marketplace-credentials.test.ts).
        STOREHOUSE_RATE_LIMIT_MARKETPLACE_SECRETS: '1000',
      },
    });
    ({ server, partner, installationId } = setup);

    first = await create('mk-first');
    const upsert = partnerCalls('PUT', `/v1/installations/${installationId}`)[0];
    assert.ok(upsert, 'the installation was announced to the partner');
    token = (upsert.body as { credentials: { access_token: string } }).credentials.access_token;
    assert.match(token, /^shi_/);
  });

  // Whatever the partner still holds goes too (startStorehouseWithPartner's close), so no
  // database outlives the test on a real PostgreSQL.
  after(async () => {
    await setup?.close();
  });

  beforeEach(() => {
    replaceFaults(partner.faults, {});
  });

  test("getIntegrationResources lists the installation's resources; getIntegrationResource reads one by the partner's id", async () => {
    const { resources } = await mp().getIntegrationResources(icfg());
    const listed = resources.find((r) => r.partnerId === first.externalResourceId);
    assert.ok(listed, 'the store is listed by its partner id');
    assert.equal(listed.internalId, first.id, "internalId is Storehouse's store id");
    assert.equal(listed.name, 'mk-first');
    assert.equal(listed.productId, first.product.slug, 'the partner API names products by slug');
    assert.equal(listed.status, 'ready');
    assert.equal(listed.billingPlanId, 'partner_free');
    for (const resource of resources) {
      assert.equal(typeof resource.partnerId, 'string');
      assert.equal(typeof resource.internalId, 'string');
      assert.equal(typeof resource.name, 'string');
      assert.equal(typeof resource.productId, 'string');
    }
    // Every listed resource is a store the owner sees, under the same name.
    const mine = await userStores();
    for (const resource of resources) assert.equal(mine.find((s) => s.id === resource.internalId)?.name, resource.name);

    const one = await mp().getIntegrationResource({ ...icfg(), resourceId: first.externalResourceId });
    assert.equal(one.id, first.externalResourceId, "the item's id is the partner's id");
    assert.equal(one.internalId, first.id);
    assert.equal(one.name, 'mk-first');
    assert.equal(one.productId, first.product.slug);
    assert.equal(one.status, 'ready');
    // Storehouse's own store id is not a partner id.
    assert.equal((await sdkFailure(mp().getIntegrationResource({ ...icfg(), resourceId: first.id }))).status, 404);
    assert.equal((await sdkFailure(mp().getIntegrationResource({ ...icfg(), resourceId: 'sh_never_there' }))).status, 404);
  });

  test('updateResource: rename (409 on a taken name), suspend, notification set and cleared, secrets as an array and as {secrets, partial}', async () => {
    const store = await create('mk-update');
    const rid = store.externalResourceId;
    const update = (requestBody: Parameters<ReturnType<typeof mp>['updateResource']>[0]['requestBody']) =>
      mp().updateResource({ ...icfg(), resourceId: rid, requestBody });

    assert.deepEqual(await update({ name: 'mk-update-renamed' }), { name: 'mk-update-renamed' });
    assert.equal((await storeOf(rid))?.name, 'mk-update-renamed');

    const taken = await sdkFailure(update({ name: 'mk-first' }));
    assert.equal(taken.status, 409);
    assert.equal(taken.code, 'store_name_taken');
    assert.equal((await storeOf(rid))?.name, 'mk-update-renamed', 'a refused rename changes nothing');
    assert.equal((await storeOf(first.externalResourceId))?.name, 'mk-first');

    // The answer names the store even when the body does not rename it.
    assert.deepEqual(await update({ status: 'suspended' }), { name: 'mk-update-renamed' });
    let seen = await storeOf(rid);
    assert.equal(seen?.status, 'suspended');
    assert.equal(seen?.externalResourceStatus, 'suspended');
    assert.equal((await mp().getIntegrationResource({ ...icfg(), resourceId: rid })).status, 'suspended');

    const notification = {
      level: 'warn',
      title: 'Maintenance',
      message: 'Tonight at 2am',
      href: 'https://acme.example.com/status',
    } as const;
    await update({ notification });
    assert.deepEqual((await storeOf(rid))?.notification, notification, "the owner's store view shows it, href included");
    assert.deepEqual((await mp().getIntegrationResource({ ...icfg(), resourceId: rid })).notification, notification);
    await update({ notification: '' });
    assert.equal((await storeOf(rid))?.notification, undefined, 'an empty string clears the notification');

    // A bare array replaces every secret.
    await update({ secrets: [{ name: 'EXTRA', value: 'one' }] });
    seen = await storeOf(rid);
    assert.deepEqual(seen?.secrets, [{ name: 'EXTRA', length: 3 }]);
    // {secrets, partial: true} keeps those not named.
    await update({ secrets: { secrets: [{ name: 'OTHER', value: 'twenty-two' }], partial: true } });
    assert.deepEqual(secretNames(await storeOf(rid)), ['EXTRA', 'OTHER']);
    // {secrets} without partial replaces them all.
    await update({ secrets: { secrets: [{ name: 'LAST', value: 'x' }] } });
    assert.deepEqual(secretNames(await storeOf(rid)), ['LAST']);

    await update({ status: 'resumed', metadata: { connectionLimit: 7 } });
    seen = await storeOf(rid);
    assert.equal(seen?.status, 'available');
    assert.equal(seen?.externalResourceStatus, 'resumed');
    assert.deepEqual(seen?.metadata, { connectionLimit: 7 });

    // `{}` changes nothing (every field is optional); no body at all (the SDK without requestBody) is a 400 (docs/vercel-api.md §8.8).
    assert.deepEqual(await update({}), { name: 'mk-update-renamed' });
    assert.equal((await sdkFailure(mp().updateResource({ ...icfg(), resourceId: rid }))).status, 400);
    assert.deepEqual(await storeOf(rid), seen);
  });

  test('updateResourceSecretsById: partial keeps unlisted secrets, a full update replaces them, connected projects follow, environmentOverrides per environment', async () => {
    const store = await create('mk-secrets');
    const rid = store.externalResourceId;
    const projectId = await connectedProject('mk-secrets-app', store);
    const before = await projectVars(projectId);
    assert.match(before.POSTGRES_URL?.production ?? '', /^postgres(ql)?:\/\//);
    const partnerSecrets = secretNames(store);
    assert.ok(partnerSecrets.includes('POSTGRES_URL'));

    await mp().updateResourceSecretsById({
      ...icfg(),
      resourceId: rid,
      requestBody: { secrets: [{ name: 'API_KEY', value: 'k1' }], partial: true },
    });
    assert.deepEqual(secretNames(await storeOf(rid)), [...partnerSecrets, 'API_KEY'].sort());
    let vars = await projectVars(projectId);
    assert.deepEqual(vars.API_KEY, { production: 'k1', preview: 'k1', development: 'k1' });
    assert.deepEqual(vars.POSTGRES_URL, before.POSTGRES_URL, 'a partial update keeps the secrets it does not name');

    // partial: true replacing one that exists: only that one changes.
    await mp().updateResourceSecretsById({
      ...icfg(),
      resourceId: rid,
      requestBody: { secrets: [{ name: 'API_KEY', value: 'k2' }], partial: true },
    });
    vars = await projectVars(projectId);
    assert.equal(vars.API_KEY?.production, 'k2');
    assert.deepEqual(vars.POSTGRES_URL, before.POSTGRES_URL);

    // partial: false replaces them all; environmentOverrides give per-environment values.
    await mp().updateResourceSecretsById({
      ...icfg(),
      resourceId: rid,
      requestBody: {
        secrets: [
          { name: 'ONLY', value: 'o-default', environmentOverrides: { preview: 'o-preview', development: 'o-dev' } },
          { name: 'PROD_ONLY_OVERRIDE', value: 'p-default', environmentOverrides: { production: 'p-prod' } },
        ],
        partial: false,
      },
    });
    assert.deepEqual(secretNames(await storeOf(rid)), ['ONLY', 'PROD_ONLY_OVERRIDE']);
    vars = await projectVars(projectId);
    assert.deepEqual(Object.keys(vars).sort(), ['ONLY', 'PROD_ONLY_OVERRIDE'], 'the variables of the old secrets are gone');
    assert.deepEqual(vars.ONLY, { production: 'o-default', preview: 'o-preview', development: 'o-dev' });
    assert.deepEqual(vars.PROD_ONLY_OVERRIDE, { production: 'p-prod', preview: 'p-default', development: 'p-default' });

    // Without partial: a full replacement too.
    await mp().updateResourceSecretsById({ ...icfg(), resourceId: rid, requestBody: { secrets: [{ name: 'ONLY', value: 'o2' }] } });
    vars = await projectVars(projectId);
    assert.deepEqual(vars, { ONLY: { production: 'o2', preview: 'o2', development: 'o2' } });

    // A secret named like a variable the project has from another store is refused (409), and nothing changes.
    await mp().importResource({
      ...icfg(),
      resourceId: 'ext_neighbour',
      requestBody: { productId: 'postgres', name: 'mk-neighbour', status: 'ready', secrets: [{ name: 'MINE', value: 'mine' }] },
    });
    await server.sdk().integrations.connectIntegrationResourceToProject({
      ...icfg(),
      resourceId: 'ext_neighbour',
      requestBody: { projectId, envVarEnvironments: ['production'] },
    });
    const clash = await sdkFailure(
      mp().updateResourceSecretsById({
        ...icfg(),
        resourceId: rid,
        requestBody: { secrets: [{ name: 'MINE', value: 'theirs' }], partial: true },
      }),
    );
    assert.equal(clash.status, 409);
    assert.deepEqual(secretNames(await storeOf(rid)), ['ONLY']);
    assert.deepEqual(await projectVars(projectId), {
      ONLY: { production: 'o2', preview: 'o2', development: 'o2' },
      MINE: { production: 'mine' },
    });

    // The deprecated path, with the product in it, does the same.
    await mp().updateResourceSecrets({
      ...icfg(),
      integrationProductIdOrSlug: 'postgres',
      resourceId: rid,
      requestBody: { secrets: [{ name: 'ONLY', value: 'o3' }] },
    });
    assert.equal((await projectVars(projectId)).ONLY?.production, 'o3');
  });

  test("importResource: a new resource becomes a linked store, importing again updates it, name clash 409, unknown product 404, a linked store's delete leaves the partner alone", async () => {
    const rid = 'ext_import_1';
    const before = (await userStores()).length;
    const imported = await mp().importResource({
      ...icfg(),
      resourceId: rid,
      requestBody: {
        productId: 'postgres',
        name: 'mk-imported',
        status: 'pending',
        metadata: { region: 'iad1' },
        secrets: [{ name: 'IMPORTED_URL', value: 'postgres://imported-1' }],
      },
    });
    assert.deepEqual(imported, { name: 'mk-imported' });
    let seen = await storeOf(rid);
    assert.ok(seen, 'the resource is a store the owner sees');
    assert.equal(seen.name, 'mk-imported');
    assert.equal(seen.status, 'initializing', 'the status the body gave (pending)');
    assert.equal(seen.externalResourceStatus, 'pending');
    assert.equal(seen.source, 'import');
    assert.equal(seen.product.slug, 'postgres');
    assert.equal(seen.billingPlan?.id, 'partner_free', "the product's free plan when the body names none");
    assert.deepEqual(seen.metadata, { region: 'iad1' });
    assert.deepEqual(seen.secrets, [{ name: 'IMPORTED_URL', length: 'postgres://imported-1'.length }]);
    assert.equal((await userStores()).length, before + 1);
    const { rows } = await server.runtime.db.query<{ ownership: string }>('SELECT ownership FROM stores WHERE id = $1', [seen.id]);
    assert.equal(rows[0]!.ownership, 'linked', 'ownership defaults to linked');
    assert.equal(seen.ownership, 'linked', "the owner's store view says so");
    assert.equal((await mp().getIntegrationResource({ ...icfg(), resourceId: rid })).internalId, seen.id);
    const importedId = seen.id;

    // Importing again updates the same store: name, status, secrets (and a connected project's variables).
    const again = await mp().importResource({
      ...icfg(),
      resourceId: rid,
      requestBody: {
        productId: 'postgres',
        name: 'mk-imported-2',
        status: 'ready',
        secrets: [{ name: 'IMPORTED_URL', value: 'postgres://imported-2' }],
      },
    });
    assert.deepEqual(again, { name: 'mk-imported-2' });
    seen = await storeOf(rid);
    assert.equal(seen?.id, (await mp().getIntegrationResource({ ...icfg(), resourceId: rid })).internalId);
    assert.equal(seen?.id, importedId, 'the store the first import made');
    assert.equal(seen?.name, 'mk-imported-2');
    assert.equal(seen?.status, 'available');
    assert.equal((await userStores()).length, before + 1, 'no second store');
    const projectId = await connectedProject('mk-imported-app', seen!);
    assert.equal((await projectVars(projectId)).IMPORTED_URL?.production, 'postgres://imported-2');
    await mp().importResource({
      ...icfg(),
      resourceId: rid,
      requestBody: {
        productId: 'postgres',
        name: 'mk-imported-2',
        status: 'ready',
        secrets: [{ name: 'IMPORTED_URL', value: 'postgres://imported-3' }],
      },
    });
    assert.equal((await projectVars(projectId)).IMPORTED_URL?.production, 'postgres://imported-3');

    // A name another store has: 409, for a new import and for an update by import alike.
    const clash = await sdkFailure(
      mp().importResource({
        ...icfg(),
        resourceId: 'ext_import_2',
        requestBody: { productId: 'postgres', name: 'mk-first', status: 'ready' },
      }),
    );
    assert.equal(clash.status, 409);
    assert.equal(await storeOf('ext_import_2'), undefined);
    const renameClash = await sdkFailure(
      mp().importResource({ ...icfg(), resourceId: rid, requestBody: { productId: 'postgres', name: 'mk-first', status: 'ready' } }),
    );
    assert.equal(renameClash.status, 409);
    assert.equal((await storeOf(rid))?.name, 'mk-imported-2');

    // A product the integration does not have: 404, for a new resource and for one imported already.
    const unknown = await sdkFailure(
      mp().importResource({ ...icfg(), resourceId: 'ext_import_3', requestBody: { productId: 'nope', name: 'mk-nope', status: 'ready' } }),
    );
    assert.equal(unknown.status, 404);
    assert.equal(await storeOf('ext_import_3'), undefined);
    // ...nor the built-in integration's product of the same slug, by its id.
    const foreign = await sdkFailure(
      mp().importResource({
        ...icfg(),
        resourceId: 'ext_import_3',
        requestBody: { productId: 'iap_storehouse_postgres', name: 'mk-nope', status: 'ready' },
      }),
    );
    assert.equal(foreign.status, 404);
    const unknownAgain = await sdkFailure(
      mp().importResource({ ...icfg(), resourceId: rid, requestBody: { productId: 'nope', name: 'mk-imported-9', status: 'suspended' } }),
    );
    assert.equal(unknownAgain.status, 404);
    // Another product of the integration: a resource does not change its product.
    const otherProduct = await sdkFailure(
      mp().importResource({
        ...icfg(),
        resourceId: rid,
        requestBody: { productId: 'replica', name: 'mk-imported-9', status: 'suspended' },
      }),
    );
    assert.equal(otherProduct.status, 400);
    seen = await storeOf(rid);
    assert.deepEqual(
      [seen?.name, seen?.status, seen?.product.slug],
      ['mk-imported-2', 'available', 'postgres'],
      'refused imports changed nothing',
    );
    assert.equal((await userStores()).length, before + 1);
    // Naming the product by its id is the same product.
    await mp().importResource({
      ...icfg(),
      resourceId: rid,
      requestBody: { productId: 'iap_acme_postgres', name: 'mk-imported-2', status: 'ready' },
    });
    // A resource of the integration's other product is imported into that product.
    await mp().importResource({
      ...icfg(),
      resourceId: 'ext_replica',
      requestBody: { productId: 'replica', name: 'mk-replica', status: 'onboarding', ownership: 'owned' },
    });
    const replica = await storeOf('ext_replica');
    assert.deepEqual([replica?.product.slug, replica?.status], ['replica', 'onboarding']);
    const { rows: owned } = await server.runtime.db.query<{ ownership: string }>('SELECT ownership FROM stores WHERE id = $1', [
      replica!.id,
    ]);
    assert.equal(owned[0]!.ownership, 'owned');

    // The owner deletes the linked store (disconnecting its project): the partner is not asked to delete it.
    const deletesBefore = partnerCalls('DELETE', `/resources/${rid}`).length;
    const removed = await server.request(`/v1/storage/stores/integration/${seen!.id}?disconnect=true`, { method: 'DELETE' });
    assert.equal(removed.status, 200);
    assert.equal(await storeOf(rid), undefined);
    assert.deepEqual(await projectVars(projectId), {});
    assert.equal(partnerCalls('DELETE', `/resources/${rid}`).length, deletesBefore, "the partner's DELETE was not called");
    assert.equal(partnerCalls('DELETE', '/resources/').filter((r) => r.url.includes('ext_import')).length, 0);
    // An owned one is deleted at the partner (which never had it: its 404 counts as deleted).
    assert.equal((await server.request(`/v1/storage/stores/integration/${replica!.id}`, { method: 'DELETE' })).status, 200);
    assert.equal(await storeOf('ext_replica'), undefined);
    assert.equal(partnerCalls('DELETE', '/resources/ext_replica').length, 1);
  });

  test('deleteIntegrationResource: the store goes, with its variables; its billing authorization is released; the partner is not called', async () => {
    const card = await server.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber: '4242424242424242', default: true }),
    });
    assert.equal(card.status, 200);
    const store = await create('mk-paid', { billingPlanId: 'partner_pro' });
    assert.equal(store.billingPlan?.id, 'partner_pro');
    const authorizations = async () =>
      (
        (await (await server.request(`/_storehouse/billing/authorizations?storeId=${store.id}`)).json()) as {
          authorizations: Array<{ state: string; amountCents: number }>;
        }
      ).authorizations;
    assert.deepEqual(
      (await authorizations()).map((a) => [a.state, a.amountCents]),
      [['authorized', 1000]],
    );
    const projectId = await connectedProject('mk-paid-app', store);
    assert.ok((await projectVars(projectId)).POSTGRES_URL);

    const partnerDeletes = partnerCalls('DELETE', '/resources/').length;
    const deleting = mpWithStatuses();
    const answer = await deleting.api.deleteIntegrationResource({ ...icfg(), resourceId: store.externalResourceId });
    assert.equal(answer, undefined);
    assert.deepEqual(deleting.statuses, [204], 'answered 204 No Content');
    assert.equal(await storeOf(store.externalResourceId), undefined, 'the store is gone');
    assert.equal((await server.request(`/v1/storage/stores/${store.id}`)).status, 404);
    assert.deepEqual(
      (await authorizations()).map((a) => a.state),
      ['released'],
    );
    assert.deepEqual(await projectVars(projectId), {}, "the store's variables went with it");
    assert.equal(partnerCalls('DELETE', '/resources/').length, partnerDeletes, 'the partner was not called back');
    const audit = (await (await server.request('/_storehouse/audit?limit=20')).json()) as {
      events: Array<{ action: string; targetId: string; actorId: string | null }>;
    };
    assert.ok(audit.events.some((e) => e.action === 'store.deleted' && e.targetId === store.id && e.actorId === null));

    // Gone: a second delete, a read and an update are 404s.
    assert.equal((await sdkFailure(mp().deleteIntegrationResource({ ...icfg(), resourceId: store.externalResourceId }))).status, 404);
    assert.equal((await sdkFailure(mp().getIntegrationResource({ ...icfg(), resourceId: store.externalResourceId }))).status, 404);
    assert.equal(
      (await sdkFailure(mp().updateResource({ ...icfg(), resourceId: store.externalResourceId, requestBody: { status: 'ready' } }))).status,
      404,
    );
  });

  test('createEvent: resource.updated reads the resource again (a pending store becomes available); installation.updated is 201', async () => {
    partner.faults.provision = { pending: 'forever', times: 1 };
    const store = await create('mk-pending');
    const rid = store.externalResourceId;
    assert.equal(store.status, 'initializing');

    // The partner finishes it, but its own event cannot make Storehouse read it (its GET fails).
    partner.faults.get = { status: 500 };
    const finished = (await (await fetch(`${partner.url}/_partner/resources/${rid}/ready`, { method: 'POST' })).json()) as {
      status: number;
    };
    assert.equal(finished.status, 502, 'Storehouse could not read the resource back');
    assert.equal((await storeOf(rid))?.status, 'initializing');
    const failing = await sdkFailure(
      mp().createEvent({ ...icfg(), requestBody: { event: { type: 'resource.updated', resourceId: rid } } }),
    );
    assert.equal(failing.status, 502);
    delete partner.faults.get;

    const gets = partnerCalls('GET', `/resources/${rid}`).length;
    const eventing = mpWithStatuses();
    const answer = await eventing.api.createEvent({
      ...icfg(),
      requestBody: { event: { type: 'resource.updated', resourceId: rid, productId: 'postgres' } },
    });
    assert.equal(answer, undefined);
    assert.deepEqual(eventing.statuses, [201], 'answered 201');
    assert.ok(partnerCalls('GET', `/resources/${rid}`).length > gets, 'Storehouse read the resource from the partner');
    const seen = await storeOf(rid);
    assert.equal(seen?.status, 'available', 'available as soon as the event is answered');
    assert.equal(seen?.externalResourceStatus, 'ready');

    // A repeat with nothing new is fine too.
    await mp().createEvent({ ...icfg(), requestBody: { event: { type: 'resource.updated', resourceId: rid } } });
    assert.equal((await storeOf(rid))?.status, 'available');

    await mp().createEvent({ ...icfg(), requestBody: { event: { type: 'installation.updated', billingPlanId: 'partner_pro' } } });
    await mp().createEvent({ ...icfg(), requestBody: { event: { type: 'installation.updated' } } });
    const audit = (await (await server.request('/_storehouse/audit?limit=50')).json()) as {
      events: Array<{ action: string; targetId: string; details: Record<string, unknown> }>;
    };
    const updates = audit.events.filter((e) => e.action === 'installation.updated' && e.targetId === installationId);
    assert.equal(updates.length, 2);
    assert.ok(updates.some((e) => e.details.billingPlanId === 'partner_pro'));

    // An event about a resource the installation does not have.
    assert.equal(
      (await sdkFailure(mp().createEvent({ ...icfg(), requestBody: { event: { type: 'resource.updated', resourceId: 'sh_nothing' } } })))
        .status,
      404,
    );
  });

  test('a partner update while the owner deletes the store does not keep the store alive', async () => {
    const store = await create('mk-race');
    const rid = store.externalResourceId;
    // Long enough for the steps below on a busy machine (the partner timeout here is 30 s).
    partner.faults.delete = { delayMs: 10_000, afterWork: true, times: 1 };
    const deleting = server.request(`/v1/storage/stores/integration/${store.id}`, { method: 'DELETE' });
    // A store being deleted shows as `error` with a "Being deleted" notification.
    await eventually('the delete to start', async () => (await storeOf(rid))?.notification?.title === 'Being deleted', 10_000);
    // The partner reports a status meanwhile (it has not seen the delete yet).
    await mp().updateResource({
      ...icfg(),
      resourceId: rid,
      requestBody: { status: 'ready', notification: { level: 'info', title: 'Ready' } },
    });
    assert.equal((await storeOf(rid))?.notification?.title, 'Being deleted', 'still being deleted');
    const removed = await deleting;
    assert.equal(removed.status, 200);
    assert.equal(await storeOf(rid), undefined, 'the store the owner deleted is gone');
  });

  test("bad input: malformed bodies are 400 in Vercel's format and change nothing; another installation's resource is 404; unknown and revoked tokens are 401", async () => {
    const store = await create('mk-bad');
    const rid = store.externalResourceId;
    const projectId = await connectedProject('mk-bad-app', store);
    const snapshot = async () => ({ stores: await userStores(), vars: await projectVars(projectId) });
    const before = await snapshot();
    const resource = `/v1/installations/${installationId}/resources/${rid}`;
    const fresh = `/v1/installations/${installationId}/resources/ext_bad_import`;
    const events = `/v1/installations/${installationId}/events`;
    const cases: Array<[string, string, string | undefined]> = [
      // importResource (PUT)
      ['PUT', fresh, undefined],
      ['PUT', fresh, ''],
      ['PUT', fresh, '{}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"bogus"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"","status":"ready"}'],
      ['PUT', fresh, '{"productId":"postgres","name":5,"status":"ready"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","ownership":"mine"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","secrets":"A=b"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","secrets":[{"name":"1BAD","value":"v"}]}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","secrets":[{"name":"A"}]}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","secrets":[{"name":"A","value":7}]}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","notification":{"level":"fatal","title":"t"}}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","metadata":"region=iad1"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","surprise":true}'],
      ['PUT', fresh, '{"productId":"postgres","name":"line\\nbreak","status":"ready"}'],
      ['PUT', fresh, '{"productId":"postgres","name":"x","status":"ready","secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}'],
      [
        'PUT',
        resource,
        '{"productId":"postgres","name":"mk-bad","status":"ready","secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}',
      ],
      ['PUT', resource, '{"productId":"postgres","name":"mk-bad","status":"bogus"}'],
      ['PUT', fresh, '[]'],
      ['PUT', fresh, '{"productId":'],
      // updateResource (PATCH)
      ['PATCH', resource, '{"status":"bogus"}'],
      ['PATCH', resource, '{"name":""}'],
      ['PATCH', resource, '{"name":123}'],
      ['PATCH', resource, '{"name":"tab\\there"}'],
      ['PATCH', resource, '{"secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}'],
      ['PATCH', resource, '{"secrets":{"secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}],"partial":true}}'],
      ['PATCH', resource, '{"notification":{"level":"loud","title":"t"}}'],
      ['PATCH', resource, '{"notification":{"title":"no level"}}'],
      ['PATCH', resource, '{"notification":5}'],
      ['PATCH', resource, '{"notification":false}'],
      ['PATCH', resource, '{"secrets":"A=b"}'],
      ['PATCH', resource, '{"secrets":{"secrets":"A=b"}}'],
      ['PATCH', resource, '{"secrets":[{"name":"A"}]}'],
      ['PATCH', resource, '{"secrets":{"secrets":[{"name":"A","value":"b"}],"partial":"yes"}}'],
      ['PATCH', resource, '{"secrets":{"secrets":[{"name":"A","value":"b"}],"partial":"true"}}'],
      ['PATCH', resource, '{"metadata":[1,2]}'],
      ['PATCH', resource, '{"surprise":1}'],
      ['PATCH', resource, '"rename"'],
      ['PATCH', resource, '[{"name":"x"}]'],
      ['PATCH', resource, 'not json'],
      // updateResourceSecretsById (PUT .../secrets)
      ['PUT', `${resource}/secrets`, undefined],
      ['PUT', `${resource}/secrets`, '{}'],
      ['PUT', `${resource}/secrets`, '{"secrets":"A=b"}'],
      ['PUT', `${resource}/secrets`, '{"secrets":{"name":"A","value":"b"}}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":1}]}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A-B","value":"v"}]}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"v","environmentOverrides":{"staging":"s"}}]}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"v","environmentOverrides":{"preview":1}}]}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"v"}],"partial":"true"}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"v"}],"partial":1}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"v"}],"replace":true}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}]}'],
      ['PUT', `${resource}/secrets`, '{"secrets":[{"name":"A","value":"1"},{"name":"A","value":"2"}],"partial":true}'],
      ['PUT', `/v1/installations/${installationId}/products/postgres/resources/${rid}/secrets`, '{"secrets":"A=b"}'],
      // createEvent (POST .../events)
      ['POST', events, undefined],
      ['POST', events, '{}'],
      ['POST', events, '{"event":"resource.updated"}'],
      ['POST', events, '{"event":{"type":"resource.deleted","resourceId":"x"}}'],
      ['POST', events, '{"event":{"type":"resource.updated"}}'],
      ['POST', events, `{"event":{"type":"resource.updated","resourceId":""}}`],
      ['POST', events, `{"event":{"type":"resource.updated","resourceId":5}}`],
    ];
    const accepted: string[] = [];
    for (const [method, url, body] of cases) {
      const response = await raw(method, url, body);
      const what = `${method} ${url.replace(installationId, '{icfg}').replace(rid, '{rid}')} ${body ?? '(no body)'}`;
      if (response.status !== 400) {
        accepted.push(`${what} → ${response.status} ${await response.text()}`);
        continue;
      }
      const error = await errorOf(response);
      assert.ok(error.message.length > 0, what);
      // A body the route's schema refuses is a bad_request; one that fits the schema but not the
      // contract (a secret named twice) a validation_error: nothing else.
      assert.ok(['validation_error', 'bad_request'].includes(error.code), `${what}: ${error.code}`);
    }
    assert.deepEqual(accepted, [], 'every malformed body is a 400');
    assert.deepEqual(await snapshot(), before, 'the 400s changed nothing');

    // What the SDK sends when the caller passes no body: an empty body labelled JSON.
    assert.equal((await sdkFailure(mp().importResource({ ...icfg(), resourceId: 'ext_bad_import' }))).status, 400);
    assert.equal((await sdkFailure(mp().updateResourceSecretsById({ ...icfg(), resourceId: rid }))).status, 400);
    assert.equal((await sdkFailure(mp().updateResource({ ...icfg(), resourceId: rid }))).status, 400);
    assert.deepEqual(await snapshot(), before);

    // Another installation's resource: 404 through this installation's path, and it is left alone.
    const team = await createTeam(server.runtime.db, { slug: 'mk-other-team' });
    const other = await install(server.runtime.db, { teamId: team.id, integrationId: 'oac_partner', installedBy: null });
    const otherToken = (await mintInstallationToken(server.runtime.db, other.id)).value;
    const otherApi = server.sdk(otherToken).marketplace;
    await otherApi.importResource({
      integrationConfigurationId: other.id,
      resourceId: 'ext_theirs',
      requestBody: { productId: 'postgres', name: 'theirs', status: 'ready', secrets: [{ name: 'T', value: 't' }] },
    });
    const theirs = { ...icfg(), resourceId: 'ext_theirs' };
    assert.equal((await sdkFailure(mp().getIntegrationResource(theirs))).status, 404);
    assert.equal(
      (await sdkFailure(mp().updateResource({ ...theirs, requestBody: { name: 'mine-now', status: 'suspended' } }))).status,
      404,
    );
    assert.equal(
      (await sdkFailure(mp().updateResourceSecretsById({ ...theirs, requestBody: { secrets: [{ name: 'T', value: 'x' }] } }))).status,
      404,
    );
    assert.equal((await sdkFailure(mp().deleteIntegrationResource(theirs))).status, 404);
    assert.equal(
      (await sdkFailure(mp().createEvent({ ...icfg(), requestBody: { event: { type: 'resource.updated', resourceId: 'ext_theirs' } } })))
        .status,
      404,
    );
    assert.equal(
      (await mp().getIntegrationResources(icfg())).resources.some((r) => r.partnerId === 'ext_theirs'),
      false,
    );
    const untouched = await otherApi.getIntegrationResource({ integrationConfigurationId: other.id, resourceId: 'ext_theirs' });
    assert.deepEqual([untouched.name, untouched.status], ['theirs', 'ready']);
    // This installation's token on the other installation's paths: refused.
    const crossed = await sdkFailure(mp().getIntegrationResources({ integrationConfigurationId: other.id }));
    assert.equal(crossed.status, 403, "another installation's path");
    assert.equal(
      (await sdkFailure(mp().deleteIntegrationResource({ integrationConfigurationId: other.id, resourceId: 'ext_theirs' }))).status,
      crossed.status,
    );
    assert.equal(
      (await otherApi.getIntegrationResource({ integrationConfigurationId: other.id, resourceId: 'ext_theirs' })).name,
      'theirs',
    );

    // Unknown, missing and revoked tokens: 401, and nothing changes.
    const revocable = await mintInstallationToken(server.runtime.db, installationId);
    assert.equal((await server.sdk(revocable.value).marketplace.getIntegrationResource({ ...icfg(), resourceId: rid })).name, 'mk-bad');
    await server.runtime.db.query('DELETE FROM installation_tokens WHERE id = $1', [revocable.id]); // revoked: a token is only its row
    for (const bearer of ['shi_unknown', revocable.value, server.token]) {
      const sdk = server.sdk(bearer).marketplace;
      const calls: Array<[string, () => Promise<unknown>]> = [
        ['list', () => sdk.getIntegrationResources(icfg())],
        ['get', () => sdk.getIntegrationResource({ ...icfg(), resourceId: rid })],
        ['update', () => sdk.updateResource({ ...icfg(), resourceId: rid, requestBody: { name: 'stolen', status: 'suspended' } })],
        [
          'import',
          () =>
            sdk.importResource({
              ...icfg(),
              resourceId: 'ext_stolen',
              requestBody: { productId: 'postgres', name: 'stolen', status: 'ready' },
            }),
        ],
        [
          'secrets',
          () => sdk.updateResourceSecretsById({ ...icfg(), resourceId: rid, requestBody: { secrets: [{ name: 'X', value: 'y' }] } }),
        ],
        ['delete', () => sdk.deleteIntegrationResource({ ...icfg(), resourceId: rid })],
        ['event', () => sdk.createEvent({ ...icfg(), requestBody: { event: { type: 'resource.updated', resourceId: rid } } })],
      ];
      for (const [what, call] of calls)
        assert.equal((await sdkFailure(call())).status, 401, `${what} with ${bearer === server.token ? "a user's token" : bearer}`);
    }
    const none = await raw('GET', `/v1/installations/${installationId}/resources`, undefined, null);
    assert.equal((await errorOf(none)).status, 401);
    assert.deepEqual(await snapshot(), before, 'refused calls changed nothing');
  });
});
