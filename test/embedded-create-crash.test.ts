/**
 * Creates on the embedded default, where Postgres stores live on the server that holds
 * Storehouse's state: a create's writes before its last commit without waiting for their flush
 * (Provider.onStateServer), so a crash of that server mid-create must still keep every store it
 * acknowledged and leave nothing of the others once they are undone. Real processes: Storehouse
 * as `npm start` runs it, and a kill -9 of its PostgreSQL's postmaster.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Vercel } from '@vercel/sdk';
import pg from 'pg';
import { postmasterPid, removeEmbedded, restartedPostgres, startEmbedded } from './embedded-fixtures.ts';
import { eventually, freshDataDir } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { answering, type Proc } from './spawned.ts';

const TOKEN = 'embedded-create-crash-token-0123456789';
const WORKERS = 4;

interface Created {
  id: string;
  externalResourceId: string;
  status: string;
}

describe('a crash of the embedded PostgreSQL during creates', () => {
  let dataDir: string;
  let port: number;
  let server: Proc;
  let icfg: string;
  const api = (pathAndQuery: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${port}${pathAndQuery}`, {
      ...init,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers },
    });
  const superuser = () => {
    const password = fs.readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
    const pgPort = fs.readFileSync(path.join(dataDir, 'postgres-port'), 'utf8').trim();
    return new pg.Client({ connectionString: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${pgPort}/postgres` });
  };

  /** A store's POSTGRES_URL as an app reads it: from the env of a project connected to it. */
  const postgresUrlOf = async (store: Created) => {
    const sdk = new Vercel({ bearerToken: TOKEN, serverURL: `http://127.0.0.1:${port}` });
    const project = await sdk.projects.createProject({ requestBody: { name: `app-${store.id.toLowerCase()}` } });
    await sdk.integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: icfg,
      resourceId: store.externalResourceId,
      requestBody: { projectId: project.id, envVarEnvironments: ['development'] },
    });
    const envs = await sdk.projects.filterProjectEnvs({ idOrName: project.id, decrypt: 'true' });
    assert.ok('envs' in envs);
    return envs.envs.find((env) => env.key === 'POSTGRES_URL')!.value!;
  };

  before(async () => {
    dataDir = await freshDataDir();
    port = await freePort();
    server = startEmbedded(dataDir, port, TOKEN, {
      // Creates cut short are taken for interrupted after twice this: the undo comes within the test.
      STOREHOUSE_PROVISION_TIMEOUT_MS: '5000',
      STOREHOUSE_RATE_LIMIT_STORE_CREATES: '1000000',
    });
    await answering('the server', `http://127.0.0.1:${port}/healthz`, server, 120_000);
    const configurations = (await (await api('/v1/integrations/configurations?view=account')).json()) as Array<{ id: string }>;
    icfg = configurations[0]!.id;
  });
  after(() => removeEmbedded(server, dataDir));

  test('keeps every store it acknowledged, working, and leaves no role or database of the others', async () => {
    const acknowledged: Created[] = [];
    let refused = 0;
    let crashed = false;
    let next = 0;
    const create = async () => {
      const response = await api('/v1/storage/stores/integration/direct', {
        method: 'POST',
        body: JSON.stringify({
          name: `crash-${next++}`,
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: 'postgres',
          billingPlanId: 'postgres_hobby',
        }),
      }).catch(() => undefined);
      if (response?.status === 200) acknowledged.push(((await response.json()) as { store: Created }).store);
      else {
        // Cut short by the crash: a 503 that says so, never a 500.
        if (response) assert.ok(response.status === 503 || response.status === 409, `${response.status}: ${await response.text()}`);
        refused++;
      }
    };
    const workers = Array.from({ length: WORKERS }, async () => {
      while (!crashed) await create();
    });
    await eventually('a few creates acknowledged', async () => acknowledged.length >= 3, 120_000);
    const pid = postmasterPid(dataDir);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    crashed = true;
    await Promise.all(workers);
    await restartedPostgres(dataDir, pid);
    await eventually('requests to succeed again', async () => (await api('/v1/storage/stores')).status === 200, 120_000);

    // Every store acknowledged is there, available, and its credentials work.
    for (const store of acknowledged) {
      const response = await api(`/v1/storage/stores/${store.id}`);
      const body = await response.text();
      assert.equal(response.status, 200, `acknowledged store ${store.id}: ${body}`);
      assert.equal((JSON.parse(body) as { store: Created }).store.status, 'available');
      const url = await postgresUrlOf(store);
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      assert.equal((await client.query('SELECT current_database() AS db')).rows[0].db, store.externalResourceId);
      await client.end();
    }
    // The ones cut short are undone: no store is left under way, and the server holds a role and a
    // database for each store listed, and for nothing else.
    const admin = superuser();
    await admin.connect();
    try {
      await eventually(
        'the creates cut short to be undone',
        async () => {
          const { stores } = (await (await api('/v1/storage/stores?limit=1000')).json()) as { stores: Created[] };
          if (stores.some((store) => store.status !== 'available')) return false;
          const listed = stores.map((store) => store.externalResourceId).sort();
          const roles = (await admin.query<{ name: string }>("SELECT rolname AS name FROM pg_roles WHERE rolname LIKE 'sh\\_%'")).rows;
          const databases = (await admin.query<{ name: string }>("SELECT datname AS name FROM pg_database WHERE datname LIKE 'sh\\_%'"))
            .rows;
          const names = (rows: Array<{ name: string }>) => rows.map((row) => row.name).sort();
          if (names(roles).join() !== listed.join() || names(databases).join() !== listed.join()) return false;
          assert.ok(acknowledged.every((store) => listed.includes(store.externalResourceId)));
          return true;
        },
        180_000,
      );
    } finally {
      await admin.end();
    }
    assert.ok(refused >= 1, 'the kill cut at least one create short');
  });
});
