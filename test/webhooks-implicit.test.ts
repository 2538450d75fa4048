/**
 * Webhook events of changes that are not the event's own call, against the reference partner
 * over real HTTP: `integration-configuration.permission-upgraded` when the installation's project
 * selection changes (PATCH /v1/integrations/configuration/{id}), and
 * `integration-resource.project-disconnected` for connections that go with their store (a delete
 * with disconnect=true, the partner deleting its resource), not only for an explicit disconnect.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { eventually, type TestServer } from './helpers.ts';
import { startStorehouseWithPartner, type StorehouseWithPartner } from './partner-fixtures.ts';
import { CLIENT_SECRET, FAST_RETRIES, inboxOf, received, webhookIntegration } from './webhooks-fixtures.ts';

describe('webhooks of implicit changes', () => {
  let setup: StorehouseWithPartner;
  let server: TestServer;
  let partnerUrl: string;
  let installationId: string;
  let teamId: string;

  const createProject = async (name: string) => (await server.sdk().projects.createProject({ requestBody: { name } })).id;
  const patchSelection = async (projects: string[] | 'all') => {
    const response = await server.request(`/v1/integrations/configuration/${installationId}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ projects }),
    });
    assert.equal(response.status, 200, await response.clone().text());
  };
  const ofType = async (type: string) => (await inboxOf(partnerUrl)).events.filter((e) => e.type === type);
  /** A store of the partner connected to a new project; its ids. */
  const connectedStore = async (name: string) => {
    const store = await setup.createStore(name);
    const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE external_resource_id = $1', [
      store.externalResourceId,
    ]);
    const projectId = await createProject(`${name}-app`);
    await server.sdk().integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: installationId,
      resourceId: store.externalResourceId,
      requestBody: { projectId },
    });
    await received(
      partnerUrl,
      `${name} connected`,
      (e) => e.type === 'integration-resource.project-connected' && e.payload.projectId === projectId,
    );
    return { storeId: rows[0]!.id, externalId: store.externalResourceId as string, projectId };
  };

  before(async () => {
    setup = await startStorehouseWithPartner({
      integration: webhookIntegration,
      partnerClientSecret: CLIENT_SECRET,
      env: { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_RETRY_FOR_MS: '120000', STOREHOUSE_WEBHOOK_TIMEOUT_MS: '5000' },
    });
    ({ server, installationId } = setup);
    partnerUrl = setup.partner.url;
    teamId = server.runtime.bootstrapped!.team.id;
  });
  after(() => setup?.close());

  test('permission-upgraded: from all to selected, more selected, back to all; the same selection again sends nothing', async () => {
    const first = await createProject('selected-one');
    const second = await createProject('selected-two');
    const { rows } = await server.runtime.db.query<{ id: string }>('SELECT id FROM projects WHERE team_id = $1 ORDER BY id', [teamId]);
    const everyProject = rows.map((row) => row.id);
    const upgrades = () => ofType('integration-configuration.permission-upgraded');

    await patchSelection([first]);
    const narrowed = await received(
      partnerUrl,
      'narrowed to one project',
      (e) => e.type === 'integration-configuration.permission-upgraded',
    );
    assert.deepEqual(narrowed.payload.configuration, { id: installationId, projectSelection: 'selected', projects: [first] });
    assert.deepEqual(narrowed.payload.projects, { added: [], removed: everyProject.filter((id) => id !== first) });
    assert.deepEqual(narrowed.payload.team, { id: teamId });
    assert.ok((narrowed.payload.user as { id: string }).id, 'the user who changed it');

    await patchSelection([first, second]);
    await eventually('the second change arrived', async () => (await upgrades()).length === 2);
    const widened = (await upgrades())[1]!;
    assert.deepEqual(widened.payload.configuration, {
      id: installationId,
      projectSelection: 'selected',
      projects: [first, second].sort(),
    });
    assert.deepEqual(widened.payload.projects, { added: [second], removed: [] });

    await patchSelection('all');
    await eventually('the third change arrived', async () => (await upgrades()).length === 3);
    const all = (await upgrades())[2]!;
    assert.deepEqual(all.payload.configuration, { id: installationId, projectSelection: 'all', projects: [] });
    assert.deepEqual(all.payload.projects, { added: everyProject.filter((id) => id !== first && id !== second), removed: [] });

    // "all" again changes nothing: no event recorded (the outbox holds exactly the three).
    await patchSelection('all');
    const recorded = await server.runtime.db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM webhook_events WHERE type = 'integration-configuration.permission-upgraded'",
    );
    assert.equal(recorded.rows[0]!.n, 3);
  });

  test('a store deleted while connected (disconnect=true) tells the partner each project was disconnected', async () => {
    const { storeId, externalId, projectId } = await connectedStore('deleted-connected');
    const removed = await server.request(`/v1/storage/stores/integration/${storeId}?disconnect=true`, { method: 'DELETE' });
    assert.equal(removed.status, 200, await removed.clone().text());
    const disconnected = await received(
      partnerUrl,
      'disconnected with its store',
      (e) => e.type === 'integration-resource.project-disconnected' && e.payload.projectId === projectId,
    );
    assert.deepEqual(disconnected.payload, {
      configuration: { id: installationId },
      installationId,
      resourceId: externalId,
      project: { id: projectId },
      projectId,
      targets: ['production', 'preview', 'development'],
      team: { id: teamId },
      user: { id: (disconnected.payload.user as { id: string }).id },
    });
    assert.ok((disconnected.payload.user as { id: string }).id, 'the user who deleted the store');
  });

  test('a resource the partner deletes on its side, while connected, is a disconnect too', async () => {
    const { externalId, projectId } = await connectedStore('partner-deleted');
    const token = (await mintInstallationToken(server.runtime.db, installationId)).value;
    const response = await fetch(`${server.url}/v1/installations/${installationId}/resources/${externalId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${token}` },
    });
    assert.equal(response.status, 204, await response.text());
    const disconnected = await received(
      partnerUrl,
      'disconnected with the partner-deleted resource',
      (e) => e.type === 'integration-resource.project-disconnected' && e.payload.projectId === projectId,
    );
    assert.equal(disconnected.payload.resourceId, externalId);
    assert.deepEqual(disconnected.payload.user, { id: null });
  });
});
