/**
 * The embedded default as `npm start` runs it, with no PostgreSQL configured: Storehouse starts
 * a PostgreSQL server of its own in the data dir, for its state and for every Postgres store,
 * and supervises it. Real processes, real connections to what was provisioned.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { Vercel } from '@vercel/sdk';
import { Redis } from 'ioredis';
import pg from 'pg';
import { eventually, freshDataDir, POSTGRES_URL, startServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { postmasterPid, removeEmbedded, restartedPostgres, startEmbedded } from './embedded-fixtures.ts';
import { answering, type Proc, runBundled, SERVER_BUNDLE, stop } from './spawned.ts';

const TOKEN = 'embedded-cluster-test-token-0123456789';

/** Storehouse as `npm start` starts it (the server bundle), on `dataDir`, with no database configured. */
const start = (dataDir: string, port: number, env: Record<string, string> = {}): Proc => startEmbedded(dataDir, port, TOKEN, env);

const healthy = (url: string, proc: Proc) => answering('the server', `${url}/healthz`, proc, 120_000);

/** The pid of the embedded redis-server (its pid file), while one runs. */
function redisPid(dataDir: string): number | undefined {
  try {
    const pid = Number(fs.readFileSync(path.join(dataDir, 'redis', 'redis.pid'), 'utf8').trim());
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

describe('the embedded default runs its own PostgreSQL', () => {
  let dataDir: string;
  let port: number;
  let server: Proc;
  let sdk: Vercel;
  let icfg: string;
  const url = () => `http://127.0.0.1:${port}`;
  const api = (pathAndQuery: string, init: RequestInit = {}) =>
    fetch(url() + pathAndQuery, {
      ...init,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', ...init.headers },
    });

  /** Creates a Postgres store and returns its POSTGRES_URL, read as an app reads it: from a connected project's env. */
  const createStore = async (name: string) => (await createStoreEnv(name, 'postgres')).POSTGRES_URL!;

  /** Creates a store and returns the variables its connected project got, decrypted. */
  async function createStoreEnv(name: string, product: 'postgres' | 'redis'): Promise<Record<string, string>> {
    const created = await sdk.integrations.createIntegrationStoreDirect({
      requestBody: { name, integrationConfigurationId: icfg, integrationProductIdOrSlug: product, billingPlanId: `${product}_hobby` },
    });
    const project = await sdk.projects.createProject({ requestBody: { name: `app-${name}` } });
    await sdk.integrations.connectIntegrationResourceToProject({
      integrationConfigurationId: icfg,
      resourceId: created.store!.externalResourceId!,
      requestBody: { projectId: project.id, envVarEnvironments: ['development'] },
    });
    const envs = await sdk.projects.filterProjectEnvs({ idOrName: project.id, decrypt: 'true' });
    assert.ok('envs' in envs);
    return Object.fromEntries(envs.envs.map((env) => [env.key, env.value!]));
  }

  before(async () => {
    dataDir = await freshDataDir();
    port = await freePort();
    server = start(dataDir, port);
    await healthy(url(), server);
    sdk = new Vercel({ bearerToken: TOKEN, serverURL: url() });
    const configurations = (await (await api('/v1/integrations/configurations?view=account')).json()) as Array<{ id: string }>;
    icfg = configurations[0]!.id;
  });
  after(() => removeEmbedded(server, dataDir));

  test('two connections to one store each hold a transaction, and both commit; a wrong password is refused', async () => {
    const storeUrl = await createStore('two-at-once');
    const a = new pg.Client({ connectionString: storeUrl });
    const b = new pg.Client({ connectionString: storeUrl });
    await Promise.all([a.connect(), b.connect()]);
    try {
      await a.query('CREATE TABLE items (id int PRIMARY KEY, by text)');
      await a.query('BEGIN');
      await a.query("INSERT INTO items VALUES (1, 'a')");
      // B works while A's transaction is open, in one of its own.
      await b.query('BEGIN');
      await b.query("INSERT INTO items VALUES (2, 'b')");
      assert.equal((await b.query('SELECT count(*)::int AS n FROM items')).rows[0].n, 1, "B does not see A's uncommitted row");
      await Promise.all([a.query('COMMIT'), b.query('COMMIT')]);
      assert.deepEqual((await a.query('SELECT by FROM items ORDER BY id')).rows, [{ by: 'a' }, { by: 'b' }]);
    } finally {
      await Promise.all([a.end(), b.end()]);
    }
    const wrong = new URL(storeUrl);
    wrong.password = 'not-the-password';
    const refused = new pg.Client({ connectionString: wrong.toString() });
    await assert.rejects(refused.connect(), (error: Error & { code?: string }) => error.code === '28P01');
    // Nor may a store's role reach Storehouse's own database.
    const intoState = new URL(storeUrl);
    intoState.pathname = '/storehouse';
    const trespasser = new pg.Client({ connectionString: intoState.toString() });
    await assert.rejects(trespasser.connect(), (error: Error & { code?: string }) => error.code === '42501');
  });

  test('20 concurrent creates all answer 200, each with a database of its own', async () => {
    const urls = await Promise.all(Array.from({ length: 20 }, (_, i) => createStore(`many-${i}`)));
    assert.equal(new Set(urls).size, 20);
    const databases = await Promise.all(
      urls.map(async (storeUrl) => {
        const client = new pg.Client({ connectionString: storeUrl });
        await client.connect();
        const { rows } = await client.query('SELECT current_database() AS db');
        await client.end();
        return rows[0].db as string;
      }),
    );
    assert.equal(new Set(databases).size, 20);
  });

  test("a store's data survives a restart and a kill -9 of Storehouse, and the server stops with it", async () => {
    const storeUrl = await createStore('durable');
    const write = async (value: string) => {
      const client = new pg.Client({ connectionString: storeUrl });
      await client.connect();
      await client.query('CREATE TABLE IF NOT EXISTS notes (value text)');
      await client.query('INSERT INTO notes VALUES ($1)', [value]);
      await client.end();
    };
    const read = async () => {
      const client = new pg.Client({ connectionString: storeUrl });
      await client.connect();
      const { rows } = await client.query('SELECT value FROM notes ORDER BY value');
      await client.end();
      return rows.map((row) => row.value as string);
    };
    await write('before restart');
    await stop(server, 'SIGTERM');
    assert.equal(await server.exit, 0, `a clean stop exits 0; its output:\n${server.output().slice(-4000)}`);
    assert.equal(postmasterPid(dataDir), undefined, 'a clean stop stops the PostgreSQL server too');
    // What PostgreSQL says on every clean stop is no warning (warn is level 40 in pino's JSON lines).
    const warned = server
      .output()
      .split('\n')
      .filter((line) => line.includes('"msg":"embedded PostgreSQL"') && /"level":(40|50|60)/.test(line));
    assert.deepEqual(warned, [], 'a clean stop logs no PostgreSQL warning');
    server = start(dataDir, port);
    await healthy(url(), server);
    assert.deepEqual(await read(), ['before restart']);

    await write('before kill');
    const pid = postmasterPid(dataDir);
    assert.ok(pid);
    assert.ok(redisPid(dataDir), 'its redis-server runs');
    await stop(server, 'SIGKILL');
    // Its server shuts down (cleanly) with it: nothing is left running.
    await eventually('the orphaned PostgreSQL to stop', async () => postmasterPid(dataDir) === undefined, 60_000);
    await eventually('its redis-server to stop too', async () => redisPid(dataDir) === undefined, 60_000);
    server = start(dataDir, port);
    await healthy(url(), server);
    assert.deepEqual(await read(), ['before kill', 'before restart']);
    // The same port, so every URL handed out still works.
    assert.equal(new URL(storeUrl).port, fs.readFileSync(path.join(dataDir, 'postgres-port'), 'utf8').trim());
  });

  test("a Redis store on the embedded default's own redis-server keeps its user and data across restarts; a deleted one's user stays gone", async () => {
    const kept = await createStoreEnv('cache', 'redis');
    const doomed = await createStoreEnv('doomed-cache', 'redis');
    const connect = async (env: Record<string, string>) => {
      const redis = new Redis(env.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      redis.on('error', () => {});
      await redis.connect();
      return redis;
    };
    const writer = await connect(kept);
    await writer.set(`${kept.REDIS_KEY_PREFIX}greeting`, 'hello');
    // A transaction too: Redis replays MULTI/EXEC from its append-only file with its own rules.
    await writer.multi().set(`${kept.REDIS_KEY_PREFIX}counted`, '1').incr(`${kept.REDIS_KEY_PREFIX}counted`).exec();
    writer.disconnect();
    const { stores } = (await (await api('/v1/storage/stores')).json()) as { stores: Array<{ id: string; name: string }> };
    const doomedId = stores.find((store) => store.name === 'doomed-cache')!.id;
    const removed = await api(`/v1/storage/stores/integration/${doomedId}?disconnect=true`, { method: 'DELETE' });
    assert.ok(removed.status < 300, await removed.text());

    for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
      await stop(server, signal);
      server = start(dataDir, port);
      await healthy(url(), server);
      const reader = await connect(kept);
      assert.equal(await reader.get(`${kept.REDIS_KEY_PREFIX}greeting`), 'hello', `after ${signal}`);
      assert.equal(await reader.get(`${kept.REDIS_KEY_PREFIX}counted`), '2', `the transaction's writes, after ${signal}`);
      reader.disconnect();
      // Refused at AUTH (ioredis then closes: the reason is in its error event).
      const refused = new Redis(doomed.REDIS_URL!, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      const errors: string[] = [];
      refused.on('error', (error) => errors.push(error.message));
      await assert.rejects(refused.connect());
      refused.disconnect();
      assert.ok(
        errors.some((message) => /WRONGPASS|invalid username-password/.test(message)),
        `the deleted store's user, after ${signal}: ${errors}`,
      );
    }
  });

  test('a crashed PostgreSQL is started again and requests recover without a restart', async () => {
    const pid = postmasterPid(dataDir);
    assert.ok(pid);
    process.kill(pid, 'SIGKILL');
    await restartedPostgres(dataDir, pid);
    await eventually('requests to succeed again', async () => (await api('/v1/storage/stores')).status === 200, 120_000);
    const storeUrl = await createStore('after-crash');
    const client = new pg.Client({ connectionString: storeUrl });
    await client.connect();
    assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
    await client.end();
    assert.match(server.output(), /the embedded PostgreSQL exited; starting it again/);
  });

  test('its log lines reach the log, and no password does', async () => {
    assert.match(server.output(), /embedded PostgreSQL is ready/);
    const password = fs.readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
    assert.ok(!server.output().includes(password));
    assert.equal(fs.statSync(path.join(dataDir, 'postgres-password')).mode & 0o777, 0o600);
  });
});

test('npm start through a symlinked directory whose path has a space runs the server: a bad setting is its exit 1, not a silent 0', async () => {
  const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse release '));
  try {
    // As deployed: /srv/app -> releases/N, and a path with a space in it.
    fs.symlinkSync(path.dirname(SERVER_BUNDLE), path.join(parent, 'current dist'));
    const proc = runBundled({ PORT: 'not-a-port' }, path.join(parent, 'current dist', path.basename(SERVER_BUNDLE)));
    assert.equal(await proc.exit, 1, proc.output());
    assert.match(proc.stderr(), /^storehouse: PORT must be an integer/);
  } finally {
    fs.rmSync(parent, { recursive: true, force: true });
  }
});

describe('the embedded default refuses what it cannot serve safely', () => {
  test('a port taken by another program at restart is an error naming it, not a move', async () => {
    const dataDir = await freshDataDir();
    const port = await freePort();
    let server = start(dataDir, port);
    try {
      await healthy(`http://127.0.0.1:${port}`, server);
      await stop(server);
      const postgresPort = Number(fs.readFileSync(path.join(dataDir, 'postgres-port'), 'utf8'));
      const squatter = net.createServer();
      await new Promise<void>((resolve) => squatter.listen(postgresPort, '127.0.0.1', resolve));
      try {
        server = start(dataDir, port);
        assert.notEqual(await server.exit, 0);
        assert.match(server.output(), new RegExp(`port ${postgresPort} is taken by another program`));
      } finally {
        squatter.close();
      }
    } finally {
      await stop(server, 'SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a postmaster.pid whose pid another process has now is removed, and that process left alone', async () => {
    const dataDir = await freshDataDir();
    const port = await freePort();
    let server = start(dataDir, port);
    const bystander = spawn('sleep', ['600'], { stdio: 'ignore' });
    try {
      await healthy(`http://127.0.0.1:${port}`, server);
      await stop(server);
      // As after a crash of the machine: the file stayed, and its pid went to another program.
      const pidFile = path.join(dataDir, 'postgres', 'postmaster.pid');
      fs.writeFileSync(pidFile, `${bystander.pid}\n${path.join(dataDir, 'postgres')}\n`);
      server = start(dataDir, port);
      await healthy(`http://127.0.0.1:${port}`, server);
      assert.equal(bystander.exitCode, null, 'the bystander was not signalled');
      assert.equal(bystander.signalCode, null);
      assert.match(server.output(), /names a process that is not it: removing the stale file/);
    } finally {
      bystander.kill('SIGKILL');
      await stop(server, 'SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("on DATABASE_URL too, an earlier version's PGlite stores (stores/ in the data dir) are refused, untouched", async () => {
    const dataDir = await freshDataDir();
    fs.mkdirSync(path.join(dataDir, 'stores', 'pgres_old', 'pgdata'), { recursive: true });
    const server = start(dataDir, await freePort(), { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nowhere' });
    try {
      assert.notEqual(await server.exit, 0);
      assert.match(server.output(), new RegExp(`made by an earlier Storehouse.*${path.join(dataDir, 'stores')}.*Nothing was changed`, 's'));
      assert.ok(fs.existsSync(path.join(dataDir, 'stores', 'pgres_old', 'pgdata')));
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test("an earlier version's PGlite data dir is refused, untouched, with what to do", async () => {
    const dataDir = await freshDataDir();
    fs.mkdirSync(path.join(dataDir, 'pgdata'));
    fs.writeFileSync(path.join(dataDir, 'pgdata', 'PG_VERSION'), '17\n');
    const server = start(dataDir, await freePort());
    try {
      assert.notEqual(await server.exit, 0);
      assert.match(server.output(), /made by an earlier Storehouse.*PGlite.*Nothing was changed/s);
      assert.ok(!fs.existsSync(path.join(dataDir, 'postgres')), 'no cluster was made beside it');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('without a redis-server to run, Redis is listed as unavailable', () => {
  test('its protocols and plans are disabled with the reason, a create is 503 saying what to install, a bad plan still 400', async () => {
    const dataDir = await freshDataDir();
    // A PATH with what the start needs (`id`, for the server's user as root) and no redis-server.
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-path-'));
    fs.symlinkSync(execFileSync('sh', ['-c', 'command -v id'], { encoding: 'utf8' }).trim(), path.join(bin, 'id'));
    const port = await freePort();
    const server = start(dataDir, port, { PATH: bin });
    const api = (pathAndQuery: string, init: RequestInit = {}) =>
      fetch(`http://127.0.0.1:${port}${pathAndQuery}`, {
        ...init,
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      });
    try {
      await healthy(`http://127.0.0.1:${port}`, server);
      const [configuration] = (await (await api('/v1/integrations/configurations?view=account')).json()) as Array<{ id: string }>;
      const { products } = (await (await api(`/v1/integrations/configuration/${configuration!.id}/products`)).json()) as {
        products: Array<{ slug: string; protocols: Record<string, { status: string }>; unavailableReason?: string }>;
      };
      const redis = products.find((product) => product.slug === 'redis')!;
      assert.equal(redis.protocols.storage!.status, 'disabled');
      assert.match(redis.unavailableReason!, /no redis-server on PATH: install Redis/);
      const postgres = products.find((product) => product.slug === 'postgres')!;
      assert.equal(postgres.protocols.storage!.status, 'enabled');
      assert.equal(postgres.unavailableReason, undefined);
      const { plans } = (await (await api('/v1/integrations/integration/storehouse/products/redis/plans')).json()) as {
        plans: Array<{ id: string; disabled?: boolean }>;
      };
      assert.ok(plans.length > 0 && plans.every((plan) => plan.disabled === true));

      const create = (billingPlanId: string) =>
        api('/v1/storage/stores/integration/direct', {
          method: 'POST',
          body: JSON.stringify({
            name: `cache-${billingPlanId}`,
            integrationConfigurationId: configuration!.id,
            integrationProductIdOrSlug: 'redis',
            billingPlanId,
          }),
        });
      const refused = await create(plans[0]!.id);
      assert.equal(refused.status, 503);
      const body = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'provider_unavailable');
      assert.match(body.error.message, /install Redis/);
      assert.equal((await create('no_such_plan')).status, 400, 'a bad plan is a 400 whatever the provider');
    } finally {
      await stop(server, 'SIGKILL');
      fs.rmSync(dataDir, { recursive: true, force: true });
      fs.rmSync(bin, { recursive: true, force: true });
    }
  });
});

describe('as root, a data dir the server user cannot reach', { skip: process.getuid?.() === 0 ? false : 'needs root' }, () => {
  test('is refused before initdb, naming the directory in the way and what to do', async () => {
    const parent = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-private-'));
    fs.chmodSync(parent, 0o700); // as root's home is
    const dataDir = path.join(parent, 'data');
    const server = start(dataDir, await freePort());
    try {
      assert.notEqual(await server.exit, 0);
      assert.match(server.output(), new RegExp(`cannot reach the data dir ${dataDir}: ${parent} is 0700`));
      assert.match(server.output(), /Set STOREHOUSE_DATA_DIR to a directory outside it/);
      assert.ok(!fs.existsSync(path.join(dataDir, 'postgres')));
    } finally {
      fs.rmSync(parent, { recursive: true, force: true });
    }
  });
});

describe("state that holds an earlier version's PGlite stores", {
  skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set',
}, () => {
  test('is refused at start, naming them and what to do, instead of listing stores nobody serves', async () => {
    const first = await startServer('postgres');
    const databaseUrl = first.config.databaseUrl!;
    await first.runtime.db.query(
      `INSERT INTO provider_resources (id, provider, installation_id, product_slug, name, metadata, billing_plan_id, state, details, provision_key)
       VALUES ('pgres_fromPGlite', 'postgres-embedded', 'icfg_old', 'postgres', 'old', '{}', 'postgres_hobby', 'ready', '{"port": 25432}', 'k')`,
    );
    // The database stays for the second start: only the first server's own close is skipped.
    await first.app.close();
    await first.runtime.close();
    try {
      await assert.rejects(
        startServer('postgres', { databaseUrl }),
        /holds Postgres stores an earlier Storehouse kept in PGlite \(pgres_fromPGlite\).*git checkout acf52b9/s,
      );
    } finally {
      await first.close().catch(() => {});
    }
  });
});
