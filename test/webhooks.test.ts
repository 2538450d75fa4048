/**
 * Webhooks (src/webhooks/) against the reference partner's receiver over real HTTP: each event
 * type Storehouse records arrives once its change is made, signed with the client secret; a
 * receiver that answers 500, hangs past the timeout or is down gets the event later under the
 * same id; a retry-exhausted event is failed and visible; the deliveries API and its refusals.
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { runAdminCommand, type AdminCommand } from '../src/admin/commands.ts';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { syncCatalog } from '../src/catalog/catalog-sync.ts';
import { loadCatalogFile } from '../src/catalog/catalog-file.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import type { CatalogFile } from '../src/catalog/catalog-schema.ts';
import { errorOf, eventually, freshPostgresDatabase, POSTGRES_URL, startServer, writeCatalogFile, type TestServer } from './helpers.ts';
import { freePort, startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import {
  CLIENT_SECRET,
  FAST_RETRIES,
  inboxOf,
  prepareWebhookPartner,
  received,
  startWebhookReceiver,
  webhookIntegration,
  type WebhookPartner,
  type WebhookReceiver,
} from './webhooks-fixtures.ts';

const BETA_SECRET = 'beta-webhook-test-client-secret';

/** An operator's command, as the CLI runs it on the server's state. */
const admin = (server: TestServer, command: AdminCommand, args: Record<string, string>) => runAdminCommand(server.runtime, command, args);

describe('webhooks to the reference partner', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let partner: PartnerServer;
  let installationId: string;
  /** The second integration's receiver: down (nothing on its port) until the test starts it. */
  let betaPort: number;
  let beta: PartnerServer | undefined;
  let betaReceiver: WebhookReceiver | undefined;
  let teamId: string;

  const deliveries = async (query = '', token?: string) => {
    const response = await server.request(`/_storehouse/webhooks/deliveries${query}`, token === undefined ? {} : { token });
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as { deliveries: any[]; pagination: { next: number | null } };
  };
  const delivery = async (id: string) => {
    const response = await server.request(`/_storehouse/webhooks/deliveries/${id}`);
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as any;
  };
  const delivered = (id: string) => eventually(`delivery ${id}`, async () => (await delivery(id)).status === 'delivered');

  before(async () => {
    betaPort = await freePort();
    setup = await startStorehouseWithPartner({
      integration: webhookIntegration,
      partnerClientSecret: CLIENT_SECRET,
      otherPartners: [{ slug: 'beta', url: `http://127.0.0.1:${betaPort}` }],
      env: { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_RETRY_FOR_MS: '120000', STOREHOUSE_WEBHOOK_TIMEOUT_MS: '2000' },
    });
    ({ server, partner, installationId } = setup);
    teamId = server.runtime.bootstrapped!.team.id;
    // beta takes webhooks too, at a port where nothing listens yet: the catalog synced again with its webhookUrl.
    const catalog = catalogWithPartner({ url: partner.url }, { url: `http://127.0.0.1:${betaPort}`, slug: 'beta', clientId: 'oac_beta' });
    Object.assign(
      catalog.integrations.find((i: any) => i.id === 'oac_partner'),
      webhookIntegration(partner.url),
    );
    Object.assign(
      catalog.integrations.find((i: any) => i.id === 'oac_beta'),
      {
        clientSecret: BETA_SECRET,
        webhookUrl: `http://127.0.0.1:${betaPort}/webhook`,
      },
    );
    await syncCatalog(server.runtime.db, catalog as CatalogFile, undefined, SecretBox.load(undefined, server.config.dataDir));
    await server.runtime.reloadCatalog();
  });

  after(async () => {
    await betaReceiver?.close();
    await setup?.close();
  });

  test('the catalog gives an integration a webhookUrl, and one without a client secret is refused', async () => {
    const catalog = catalogWithPartner({ url: partner.url });
    catalog.integrations.find((i: any) => i.id === 'oac_partner').webhookUrl = `${partner.url}/webhook`;
    const file = writeCatalogFile(catalog);
    try {
      assert.throws(() => loadCatalogFile(file, fs.readFileSync(file, 'utf8')), /clientSecret/);
    } finally {
      fs.rmSync(path.dirname(file), { recursive: true, force: true });
    }
    const integration = server.runtime.catalog.integrationById('oac_partner');
    assert.equal(integration?.webhookUrl, `${partner.url}/webhook`);
    // Sealed at rest, not the plaintext.
    const { rows } = await server.runtime.db.query<{ client_secret: string }>(
      "SELECT client_secret FROM integrations WHERE id = 'oac_partner'",
    );
    assert.ok(rows[0]!.client_secret.startsWith('v2:'));
    assert.ok(!rows[0]!.client_secret.includes(CLIENT_SECRET));
  });

  test('project-connected and project-disconnected arrive, signed, with Vercel payloads', async () => {
    const store = await setup.createStore('hooked');
    const externalId = store.externalResourceId;
    const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE external_resource_id = $1', [externalId]);
    const storeId = rows[0]!.id;
    const project = await server.sdk().projects.createProject({ requestBody: { name: 'hooked-app' } });
    await server.sdk().integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: installationId,
      resourceId: externalId,
      requestBody: { projectId: project.id },
    });
    const connected = await received(partner.url, 'project-connected', (e) => e.type === 'integration-resource.project-connected');
    assert.deepEqual(connected.payload, {
      configuration: { id: installationId },
      installationId,
      resourceId: externalId,
      project: { id: project.id, name: 'hooked-app' },
      projectId: project.id,
      targets: ['production', 'preview', 'development'],
      team: { id: teamId },
      user: { id: connected.payload.user && (connected.payload.user as any).id },
    });
    assert.ok((connected.payload.user as any).id, 'the user who connected it');

    const gone = await server.request(`/v1/storage/stores/${storeId}/connections`, { method: 'DELETE' });
    assert.ok(gone.status < 300, await gone.text());
    const disconnected = await received(partner.url, 'project-disconnected', (e) => e.type === 'integration-resource.project-disconnected');
    assert.deepEqual(disconnected.payload.project, { id: project.id });
    assert.equal(disconnected.payload.resourceId, externalId);
    await delivered(connected.id);
    const inbox = await inboxOf(partner.url);
    assert.equal(inbox.duplicates, 0, 'each event once in the normal case');
    const removed = await server.request(`/v1/storage/stores/integration/${storeId}`, { method: 'DELETE' });
    assert.ok(removed.status < 300, await removed.text());
  });

  test('marketplace.member.changed: added as USER, made ADMIN, removed as NONE; and beta, down, gets its events once it is up', async () => {
    await admin(server, 'members.add', { team: teamId, user: 'hooked-member@example.com', role: 'MEMBER' });
    const added = await received(partner.url, 'member added', (e) => e.type === 'marketplace.member.changed' && e.payload.role === 'USER');
    const memberId = added.payload.memberId as string;
    assert.deepEqual(added.payload, {
      installationId,
      memberId,
      role: 'USER',
      globalUserId: memberId,
      userEmail: 'hooked-member@example.com',
      team: { id: teamId },
    });
    // A role the partner sees the same way (MEMBER to DEVELOPER: still USER) sends nothing.
    await admin(server, 'members.add', { team: teamId, user: memberId, role: 'DEVELOPER' });
    await admin(server, 'members.add', { team: teamId, user: memberId, role: 'OWNER' });
    await received(partner.url, 'member made admin', (e) => e.type === 'marketplace.member.changed' && e.payload.role === 'ADMIN');
    await admin(server, 'members.remove', { team: teamId, user: memberId });
    await received(partner.url, 'member removed', (e) => e.type === 'marketplace.member.changed' && e.payload.role === 'NONE');
    const changes = (await inboxOf(partner.url)).events.filter(
      (e) => e.type === 'marketplace.member.changed' && e.payload.memberId === memberId,
    );
    assert.deepEqual(
      changes.map((e) => e.payload.role),
      ['USER', 'ADMIN', 'NONE'],
    );

    // beta's copies of the same changes have failed attempts (nothing listens there), and are still pending.
    const betaEvents = async () => (await deliveries('?integrationId=oac_beta&limit=100')).deliveries;
    await eventually('beta attempted and refused', async () =>
      (await betaEvents()).some((d) => d.attempts > 0 && d.lastError?.includes('unreachable')),
    );
    assert.ok((await betaEvents()).every((d) => d.status === 'pending'));
    betaReceiver = await startWebhookReceiver({ port: betaPort, clientId: 'oac_beta', issuer: server.url, clientSecret: BETA_SECRET });
    beta = betaReceiver.partner;
    for (const d of await betaEvents()) await delivered(d.id);
    const inbox = await inboxOf(beta.url);
    assert.equal(inbox.events.length, 3);
    for (const d of await betaEvents()) {
      const event = await received(beta.url, `beta got ${d.id}`, (e) => e.id === d.id, BETA_SECRET);
      assert.equal(event.type, 'marketplace.member.changed');
      const detail = await delivery(d.id);
      assert.ok(detail.history.length >= 2, 'failed first, delivered later');
      assert.equal(detail.history.at(-1).status, 200);
      assert.equal(detail.history[0].status, null);
    }
  });

  test('a receiver that answers 500, then one that hangs past the timeout, gets the event later with the same id', async () => {
    partner.faults.webhook = { status: 500, times: 2 };
    await admin(server, 'members.add', { team: teamId, user: 'retried-500@example.com', role: 'MEMBER' });
    const event = await received(partner.url, 'the event after two 500s', (e) => e.payload.userEmail === 'retried-500@example.com');
    await delivered(event.id);
    const detail = await delivery(event.id);
    assert.deepEqual(
      detail.history.map((a: any) => a.status),
      [500, 500, 200],
    );
    assert.match(detail.history[0].error, /answered 500/);
    assert.equal(detail.event.id, event.id);
    assert.equal(JSON.stringify(detail.event), event.body, 'the recorded body, byte for byte');

    // Slow past Storehouse's timeout (2 s): the first attempt times out; the receiver still
    // records it once its delay is over, and the retry comes as a duplicate of the same id.
    partner.faults.webhook = { delayMs: 4000, times: 1 };
    const before = (await inboxOf(partner.url)).duplicates;
    await admin(server, 'members.add', { team: teamId, user: 'retried-slow@example.com', role: 'MEMBER' });
    const slow = await received(partner.url, 'the event after a timeout', (e) => e.payload.userEmail === 'retried-slow@example.com');
    await delivered(slow.id);
    const slowDetail = await delivery(slow.id);
    assert.match(slowDetail.history[0].error, /timeout/);
    assert.ok(slowDetail.history[0].durationMs >= 1900);
    await eventually('the late first attempt counted as a duplicate', async () => {
      const inbox = await inboxOf(partner.url);
      return inbox.duplicates === before + 1 && inbox.events.find((e) => e.id === slow.id)?.deliveries === 2;
    });
    replaceFaults(partner.faults, {});
  });

  test('the partner refuses a missing or wrong signature (403), recording nothing', async () => {
    const body = JSON.stringify({ id: 'evt_forged', type: 'marketplace.member.changed', createdAt: Date.now(), payload: {} });
    const before = await inboxOf(partner.url);
    const wrong = createHmac('sha1', 'not-the-client-secret').update(body).digest('hex');
    const signatures: Array<Record<string, string>> = [{}, { 'x-vercel-signature': wrong }, { 'x-vercel-signature': 'zz' }];
    for (const headers of signatures) {
      const response = await fetch(`${partner.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      });
      assert.equal(response.status, 403);
    }
    // The right signature over other bytes is wrong too.
    const signed = createHmac('sha1', CLIENT_SECRET).update(body).digest('hex');
    const tampered = await fetch(`${partner.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-vercel-signature': signed },
      body: body.replace('member', 'memb3r'),
    });
    assert.equal(tampered.status, 403);
    const after = await inboxOf(partner.url);
    assert.equal(after.refused, before.refused + 4);
    assert.ok(!after.events.some((e) => e.id === 'evt_forged'));
  });

  test('deliveries: list (filtered, paged), show, redeliver; refusals for other roles, other teams and unknown ids', async () => {
    const all = await deliveries('?integrationId=oac_partner&status=delivered&limit=100');
    assert.ok(all.deliveries.length >= 5);
    assert.ok(all.deliveries.every((d) => d.status === 'delivered' && d.integrationId === 'oac_partner'));
    const first = await deliveries('?integrationId=oac_partner&status=delivered&limit=2');
    assert.equal(first.deliveries.length, 2);
    const second = await deliveries(`?integrationId=oac_partner&status=delivered&limit=2&until=${first.pagination.next}`);
    assert.deepEqual(
      [...first.deliveries, ...second.deliveries].map((d) => d.id),
      all.deliveries.slice(0, 4).map((d) => d.id),
    );
    assert.equal((await server.request('/_storehouse/webhooks/deliveries?status=lost')).status, 400);

    const target = all.deliveries[0]!;
    const before = (await inboxOf(partner.url)).events.find((e) => e.id === target.id)!;
    const again = await server.request(`/_storehouse/webhooks/deliveries/${target.id}/redeliver`, { method: 'POST' });
    assert.equal(again.status, 200, await again.clone().text());
    await eventually(
      'the redelivery arrived',
      async () => (await inboxOf(partner.url)).events.find((e) => e.id === target.id)!.deliveries === before.deliveries + 1,
    );
    await delivered(target.id);
    const redone = await delivery(target.id);
    assert.equal(redone.attempts, target.attempts + 1, 'a new attempt of the same event id');
    assert.equal((await server.request('/_storehouse/webhooks/deliveries/evt_nothing')).status, 404);
    assert.equal((await server.request('/_storehouse/webhooks/deliveries/evt_nothing/redeliver', { method: 'POST' })).status, 404);

    // A MEMBER and a VIEWER of the team are refused; an OWNER of another team does not see this team's.
    const tokenFor = async (email: string, team: string, role: string) => {
      await admin(server, 'members.add', { team, user: email, role });
      return ((await admin(server, 'tokens.create', { user: email, team })) as { value: string }).value;
    };
    for (const role of ['MEMBER', 'VIEWER']) {
      const token = await tokenFor(`deliveries-${role.toLowerCase()}@example.com`, teamId, role);
      const refused = await server.request('/_storehouse/webhooks/deliveries', { token });
      assert.equal(refused.status, 403);
      assert.match((await errorOf(refused)).message, /owners/);
      assert.equal(
        (await server.request(`/_storehouse/webhooks/deliveries/${target.id}/redeliver`, { method: 'POST', token })).status,
        403,
      );
    }
    await admin(server, 'teams.create', { slug: 'other-hooks' });
    const outsider = await tokenFor('other-owner@example.com', 'other-hooks', 'OWNER');
    assert.equal((await deliveries('', outsider)).deliveries.length, 0);
    assert.equal((await server.request(`/_storehouse/webhooks/deliveries/${target.id}`, { token: outsider })).status, 404);
    assert.equal(
      (await server.request(`/_storehouse/webhooks/deliveries/${target.id}/redeliver`, { method: 'POST', token: outsider })).status,
      404,
    );

    // The operator's commands (the CLI's `storehouse webhooks ...`) see every team's.
    const listed = (await admin(server, 'webhooks.list', { integration: 'oac_partner', status: 'delivered' })) as any;
    assert.ok(listed.deliveries.some((d: any) => d.id === target.id));
    const shown = (await admin(server, 'webhooks.show', { id: target.id })) as any;
    assert.equal(shown.history.length, redone.history.length);
    await assert.rejects(admin(server, 'webhooks.show', { id: 'evt_nothing' }), /Could not find/);
  });

  test('integration-configuration.removed arrives when the installation is removed', async () => {
    await server.sdk().integrations.deleteConfiguration({ id: installationId });
    const removed = await received(partner.url, 'configuration removed', (e) => e.type === 'integration-configuration.removed');
    assert.deepEqual(removed.payload.configuration, { id: installationId, projectSelection: 'all', projects: [] });
    assert.deepEqual(removed.payload.team, { id: teamId });
    assert.ok((removed.payload.user as any).id);
    // Still visible to the team's owners after the installation is gone.
    await delivered(removed.id);
  });
});

describe('a webhook whose receiver never comes back', () => {
  let server: TestServer;
  let receiver: WebhookPartner | undefined;

  before(async () => {
    receiver = await prepareWebhookPartner(); // never started: nothing listens there
    server = await startServer('embedded', {
      catalogPath: receiver.catalogFile,
      env: { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_RETRY_FOR_MS: '1500' },
    });
  });
  after(async () => {
    await server?.close();
    await receiver?.close();
  });

  test('is retried for the configured time, then failed and visible; a redelivery tries again', async () => {
    const teamId = server.runtime.bootstrapped!.team.id;
    await admin(server, 'members.add', { team: teamId, user: 'never@example.com', role: 'MEMBER' });
    let failed: any;
    await eventually('the event failed', async () => {
      const response = await server.request('/_storehouse/webhooks/deliveries?status=failed');
      failed = ((await response.json()) as any).deliveries[0];
      return failed !== undefined;
    });
    assert.ok(failed.attempts >= 2, `retried before failing (${failed.attempts} attempts)`);
    assert.match(failed.lastError, /unreachable/);
    assert.equal(failed.nextAttemptAt, null);
    const detail = (await (await server.request(`/_storehouse/webhooks/deliveries/${failed.id}`)).json()) as any;
    assert.equal(detail.history.length, failed.attempts);
    assert.equal(detail.event.type, 'marketplace.member.changed');
    const again = await server.request(`/_storehouse/webhooks/deliveries/${failed.id}/redeliver`, { method: 'POST' });
    assert.equal(again.status, 200);
    assert.equal(((await again.json()) as any).status, 'pending');
    // Pending again (its new window is 1.5 s): a second redelivery is refused until it settles.
    const twice = await server.request(`/_storehouse/webhooks/deliveries/${failed.id}/redeliver`, { method: 'POST' });
    assert.equal(twice.status, 409);
    assert.equal((await errorOf(twice)).code, 'delivery_pending');
    await eventually('failed again after its new window', async () => {
      const d = (await (await server.request(`/_storehouse/webhooks/deliveries/${failed.id}`)).json()) as any;
      return d.status === 'failed' && d.attempts > failed.attempts;
    });
  });
});

describe('two nodes on one PostgreSQL', { skip: POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_DATABASE_URL' }, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let a: TestServer;
  let b: TestServer;
  let receiver: WebhookPartner | undefined;
  let partner: PartnerServer;

  before(async () => {
    receiver = await prepareWebhookPartner();
    const catalogFile = receiver.catalogFile;
    database = await freshPostgresDatabase();
    // One secret key for both nodes, as several nodes must share one.
    // A timeout far above a loaded machine's answer: an attempt retried after a slow 2xx would be a duplicate.
    const env = { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_TIMEOUT_MS: '15000', STOREHOUSE_SECRET_KEY: randomBytes(32).toString('hex') };
    a = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env });
    b = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env, bootstrapToken: a.token });
    partner = await receiver.start(a.url);
  });
  after(async () => {
    await receiver?.close();
    await b?.close();
    await a?.close();
    await database?.drop();
  });

  test('each event is sent by one node, once', async () => {
    const teamId = a.runtime.bootstrapped!.team.id;
    const count = 30;
    // Changes on both nodes; both dispatchers hear of every event.
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        admin(i % 2 ? a : b, 'members.add', { team: teamId, user: `pair-${i}@example.com`, role: 'MEMBER' }),
      ),
    );
    await eventually('every event delivered', async () => (await inboxOf(partner.url)).events.length >= count);
    const { rows } = await a.runtime.db.query<{ status: string; attempts: number }>('SELECT status, attempts FROM webhook_events');
    assert.equal(rows.length, count);
    await eventually('every delivery recorded', async () => {
      const recorded = await a.runtime.db.query<{ n: number }>("SELECT count(*)::int AS n FROM webhook_events WHERE status = 'delivered'");
      return recorded.rows[0]!.n === count;
    });
    const inbox = await inboxOf(partner.url);
    assert.equal(inbox.events.length, count);
    assert.equal(inbox.duplicates, 0, 'no event sent twice');
    const attempts = await a.runtime.db.query<{ n: number }>('SELECT count(*)::int AS n FROM webhook_attempts');
    assert.equal(attempts.rows[0]!.n, count, 'one attempt per event');
  });
});
