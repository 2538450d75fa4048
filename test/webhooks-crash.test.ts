/**
 * Webhooks survive `kill -9` (issue 14): Storehouse runs as a real child process on an embedded
 * data dir, the reference partner in this process. Twice an event is committed with its change
 * and Storehouse is killed with SIGKILL before it could deliver it: once after the receiver
 * refused two attempts (503), once while the receiver holds an attempt open (its webhook fault
 * hangs far longer than the test waits). Started again on the same data dir, the process must
 * deliver each event under its id, keeping what the killed one recorded.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { eventually, freshDataDir, POSTGRES_URL, ROOT } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { type Proc, runFromSource, stop } from './spawned.ts';
import { FAST_RETRIES, prepareWebhookPartner, received, type WebhookPartner } from './webhooks-fixtures.ts';

const TOKEN = 'webhooks-crash-token-0123456789';

describe('kill -9 between a change and its webhook', () => {
  let receiver: WebhookPartner | undefined;
  let partner: PartnerServer | undefined;
  let dataDir: string | undefined;
  let catalogFile: string | undefined;
  let port: number;
  let url: string;
  let server: Proc | undefined;
  const history: string[] = [];

  const request = (pathAndQuery: string, init: RequestInit = {}) =>
    fetch(url + pathAndQuery, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...init.headers } });

  /** Starts Storehouse (npm start's way) on the data dir and waits until it answers /healthz. */
  const start = async (): Promise<void> => {
    // The killed process's data-dir lock goes within milliseconds; a start that still finds it held is retried.
    for (let attempt = 1; ; attempt++) {
      const proc = runFromSource([path.join(ROOT, 'src', 'main.ts')], {
        DATABASE_URL: '',
        STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
        STOREHOUSE_DATA_DIR: dataDir!,
        STOREHOUSE_CATALOG: catalogFile!,
        PORT: String(port),
        LOG_LEVEL: 'info',
        ...FAST_RETRIES,
      });
      server = proc;
      const healthy = await eventually(
        'Storehouse answering /healthz',
        async () => {
          if (proc.child.exitCode !== null) return true;
          return (await fetch(`${url}/healthz`).catch(() => undefined))?.status === 200;
        },
        60_000,
      ).then(() => proc.child.exitCode === null);
      if (healthy) return;
      history.push(proc.output());
      if (attempt < 10 && /is in use by another Storehouse process/.test(proc.output())) {
        await sleep(300);
        continue;
      }
      throw new Error(`Storehouse did not start:\n${proc.output().slice(-4000)}`);
    }
  };

  before(async () => {
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    receiver = await prepareWebhookPartner();
    catalogFile = receiver.catalogFile;
    dataDir = await freshDataDir();
    await start();
    partner = await receiver.start(url, { postgresAdminUrl: POSTGRES_URL });
  });

  after(async () => {
    await stop(server);
    await receiver?.close();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  /** kill -9: no handler runs, nothing is flushed or closed by Storehouse. */
  const kill = async () => {
    process.kill(server!.child.pid!, 'SIGKILL');
    await server!.exit;
    history.push(server!.output());
  };

  const installation = async () =>
    ((await (await request('/v1/integrations/configurations?view=account&integrationIdOrSlug=acme')).json()) as Array<{ id: string }>)[0]!
      .id;

  test('an event whose attempts failed before the kill is retried by the restarted process, its attempts kept', async () => {
    const installationId = await installation();
    const json = { 'content-type': 'application/json' };
    const created = await request('/v1/storage/stores/integration/direct', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        name: 'crash-hooked',
        integrationConfigurationId: installationId,
        integrationProductIdOrSlug: 'postgres',
        metadata: { connectionLimit: 5 },
      }),
    });
    assert.equal(created.status, 200, await created.clone().text());
    const store = ((await created.json()) as { store: { id: string } }).store;
    const project = (await (
      await request('/v11/projects', { method: 'POST', headers: json, body: JSON.stringify({ name: 'crash-app' }) })
    ).json()) as {
      id: string;
    };
    // The receiver fails every attempt until told otherwise.
    partner!.faults.webhook = { status: 503 };
    const connected = await request(`/v1/integrations/installations/${installationId}/resources/${store.id}/connections`, {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ projectId: project.id }),
    });
    assert.ok(connected.status < 300, await connected.text());
    // Two refused attempts recorded (an attempt under way at the kill may not be: it is sent again).
    await eventually('two attempts refused and recorded', async () => {
      const { deliveries } = (await (await request('/_storehouse/webhooks/deliveries?status=pending')).json()) as {
        deliveries: Array<{ id: string; type: string }>;
      };
      const pending = deliveries.find((d) => d.type === 'integration-resource.project-connected');
      if (!pending) return false;
      const detail = (await (await request(`/_storehouse/webhooks/deliveries/${pending.id}`)).json()) as { history: unknown[] };
      return detail.history.length >= 2;
    });
    await kill();
    replaceFaults(partner!.faults, {});
    await start();

    const event = await received(
      partner!.url,
      'project-connected after the restart',
      (e) => e.type === 'integration-resource.project-connected',
    );
    assert.equal(event.payload.projectId, project.id);
    await eventually('recorded as delivered, after the attempts the killed process recorded', async () => {
      const detail = (await (await request(`/_storehouse/webhooks/deliveries/${event.id}`)).json()) as any;
      if (detail.status !== 'delivered') return false;
      const statuses = detail.history.map((a: { status: number | null }) => a.status);
      assert.ok(statuses.filter((s: number | null) => s === 503).length >= 2, JSON.stringify(statuses));
      assert.equal(statuses.at(-1), 200);
      return true;
    });
    const removed = await request(`/v1/storage/stores/integration/${store.id}?disconnect=true`, { method: 'DELETE' });
    assert.ok(removed.status < 300, await removed.text());
  });

  test('an event whose attempt was in flight at the kill is delivered after the restart, under the same id', async () => {
    const installationId = await installation();
    const arrivalsBefore = partner!.webhooks.arrivals;
    const before = new Set(partner!.webhooks.events.map((e) => e.id));
    // Far longer than the test waits: only a retry of the restarted process can deliver it in time.
    partner!.faults.webhook = { delayMs: 600_000 };
    const removed = await request(`/v1/integrations/configuration/${installationId}`, { method: 'DELETE' });
    assert.equal(removed.status, 204, await removed.text());
    await eventually('the first attempt reached the partner', async () => partner!.webhooks.arrivals > arrivalsBefore);
    assert.ok(!partner!.webhooks.events.some((e) => e.type === 'integration-configuration.removed'), 'held open, not recorded yet');

    await kill();
    replaceFaults(partner!.faults, {});
    await start();

    const event = await received(partner!.url, 'the removal after the restart', (e) => e.type === 'integration-configuration.removed');
    assert.equal((event.payload.configuration as { id: string }).id, installationId);
    const list = (await (await request('/_storehouse/webhooks/deliveries')).json()) as {
      deliveries: Array<{ id: string; status: string }>;
    };
    assert.deepEqual(
      list.deliveries.filter((d) => !before.has(d.id)).map((d) => d.id),
      [event.id],
      'one event, the same id as the killed attempt sent',
    );
    await eventually('recorded as delivered', async () => {
      const detail = (await (await request(`/_storehouse/webhooks/deliveries/${event.id}`)).json()) as any;
      // The killed process never recorded its attempt; the restarted one's is the second.
      return detail.status === 'delivered' && detail.attempts === 2 && detail.history.at(-1)?.status === 200;
    });

    // The operator's CLI reaches the running server (it holds the data dir) over its control socket.
    const cli = runFromSource([path.join(ROOT, 'src', 'cli.ts'), '--json', 'webhooks', 'show', event.id], {
      STOREHOUSE_DATA_DIR: dataDir!,
    });
    assert.equal(await cli.exit, 0, cli.output());
    const shown = JSON.parse(cli.stdout());
    assert.equal(shown.id, event.id);
    assert.equal(shown.status, 'delivered');
    assert.equal(shown.event.type, 'integration-configuration.removed');
    const listed = runFromSource([path.join(ROOT, 'src', 'cli.ts'), 'webhooks', 'list', '--status', 'delivered'], {
      STOREHOUSE_DATA_DIR: dataDir!,
    });
    assert.equal(await listed.exit, 0, listed.output());
    assert.match(listed.stdout(), new RegExp(`${event.id}\\s+integration-configuration.removed\\s+oac_partner\\s+delivered`));
    const refused = runFromSource([path.join(ROOT, 'src', 'cli.ts'), 'webhooks', 'redeliver', 'evt_nothing'], {
      STOREHOUSE_DATA_DIR: dataDir!,
    });
    assert.equal(await refused.exit, 2);
    assert.match(refused.stderr(), /Could not find the webhook delivery: evt_nothing/);
  });
});
