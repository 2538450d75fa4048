/**
 * The built-in Postgres provider against a real PostgreSQL server: what it returns must work
 * with pg and psql, and each store must be sealed off from every other.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { parse } from 'yaml';
import { Catalog, type Product } from '../src/catalog/catalog.ts';
import { syncCatalog } from '../src/catalog/catalog-sync.ts';
import { DEFAULT_CATALOG_PATH, loadConfig } from '../src/config.ts';
import { Providers } from '../src/providers/registry.ts';
import type { Database } from '../src/db/database.ts';
import { migrate } from '../src/db/migrate.ts';
import { openDatabase } from '../src/db/open.ts';
import { AppError } from '../src/errors.ts';
import { PostgresProvider } from '../src/providers/postgres.ts';
import { ResourceRecords } from '../src/providers/resource-records.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { freshDataDir, POSTGRES_URL, providerState } from './helpers.ts';
import { CuttableProxy } from './cuttable-proxy.ts';
import { connect, connectionOutcome } from './pg-clients.ts';
import { assertUnreachable, provisionRequest, secretsOf } from './provider-fixtures.ts';

const run = promisify(execFile);

describe('the provider registry', () => {
  test('an unconfigured provider is a 503 that says what to configure', async () => {
    const dataDir = await freshDataDir();
    const state = await openDatabase({ dataDir });
    try {
      await migrate(state);
      await syncCatalog(state, parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8')));
      const catalog = await Catalog.load(state);
      const box = SecretBox.load(undefined, dataDir);
      const providers = Providers.create(loadConfig({ STOREHOUSE_DATA_DIR: dataDir }), state, box);
      assert.throws(
        () => providers.for(catalog.findProduct('oac_storehouse', 'redis')),
        (error) =>
          error instanceof AppError &&
          error.status === 503 &&
          error.code === 'provider_unavailable' &&
          /set STOREHOUSE_REDIS_ADMIN_URL/.test(error.message),
      );
      // Without a PostgreSQL server configured, Postgres stores live on the embedded default's own.
      const embedded = providers.for(catalog.findProduct('oac_storehouse', 'postgres'));
      assert.ok(embedded instanceof PostgresProvider);
      assert.ok(state.embeddedAdminUrl?.startsWith('postgres://postgres:'));
      // It is the server that holds the state: a create's writes before its last need no flush of their own.
      assert.equal(embedded.onStateServer, true);
      await providers.close();
      // On DATABASE_URL's server no store server is assumed: it says what to set.
      const onSharedState = Providers.create(
        loadConfig({ STOREHOUSE_DATA_DIR: dataDir, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/postgres' }),
        Object.create(state, { embeddedAdminUrl: { value: undefined } }) as typeof state,
        box,
      );
      assert.throws(
        () => onSharedState.for(catalog.findProduct('oac_storehouse', 'postgres')),
        (error) => error instanceof AppError && error.status === 503 && /set STOREHOUSE_POSTGRES_ADMIN_URL/.test(error.message),
      );
      const configured = Providers.create(
        loadConfig({ STOREHOUSE_DATA_DIR: dataDir, STOREHOUSE_POSTGRES_ADMIN_URL: 'postgres://postgres@127.0.0.1:1/postgres' }),
        state,
        box,
      );
      const onItsOwn = configured.for(catalog.findProduct('oac_storehouse', 'postgres'));
      assert.ok(onItsOwn instanceof PostgresProvider);
      // A server of the operator's is not assumed to be the state's (even when it is): every write is flushed.
      assert.equal(onItsOwn.onStateServer, false);
      await configured.close();
      // The generated key is kept, 0600, and opens what it sealed after a reload.
      assert.equal(fs.statSync(`${dataDir}/secret.key`).mode & 0o777, 0o600);
      const where = { table: 'stores', id: 'store_1', column: 'secrets' } as const;
      assert.equal(SecretBox.load(undefined, dataDir).open(box.seal('round trip', where), where), 'round trip');
    } finally {
      await state.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/**
 * The same suite on both servers a Postgres store can live on: a PostgreSQL of the operator's
 * (STOREHOUSE_POSTGRES_ADMIN_URL) and the embedded default's own.
 */
for (const server of ['configured', 'embedded'] as const)
  describe(`the Postgres provider, on ${server === 'configured' ? 'a configured PostgreSQL' : "the embedded default's PostgreSQL"}`, {
    skip: server === 'embedded' || POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set',
  }, () => {
    let setup: Awaited<ReturnType<typeof providerState>>;
    let state: Database;
    let provider: PostgresProvider;
    let product: Product;
    let admin: pg.Client;
    let adminUrl: string;
    const box = SecretBox.fromKey(randomBytes(32));
    const installationId = 'icfg_providertest';
    let counter = 0;
    const provision = (
      name: string,
      metadata: Record<string, unknown> = { connectionLimit: 5 },
      key = `key-${++counter}-${randomBytes(4).toString('hex')}`,
    ) => provider.provision({ idempotencyKey: key, installationId, product, name, metadata, billingPlanId: 'postgres_hobby' });

    before(async () => {
      setup = await providerState('postgres');
      ({ state, product } = setup);
      adminUrl = server === 'configured' ? POSTGRES_URL! : state.embeddedAdminUrl!;
      // The embedded default's server holds the state too, and the provider is told so, as the registry tells it.
      provider = new PostgresProvider(state, box, {
        adminUrl,
        revokePublicConnect: server === 'embedded',
        onStateServer: server === 'embedded',
      });
      admin = await connect(adminUrl);
    });
    after(async () => {
      // Nothing this suite created may outlive it.
      const { rows } = await state.query<{ id: string; state: string }>(
        "SELECT id, state FROM provider_resources WHERE state <> 'deleted'",
      );
      for (const row of rows) await provider.delete(installationId, row.id, `cleanup-${row.id}`);
      await admin.end();
      await provider.close();
      await setup.close();
    });

    test('is available with a CREATEROLE/CREATEDB admin, and says why not otherwise', async () => {
      assert.deepEqual(await provider.availability(), { available: true });
      const unreachable = new PostgresProvider(state, box, { adminUrl: 'postgres://postgres@127.0.0.1:1/postgres' });
      await assertUnreachable(unreachable, provisionRequest(product, installationId, 'x'), /cannot reach the PostgreSQL server/);
    });

    test('a server that stops answering is a prompt 503 (the statement is given up, its connection dropped), and the next call works once it answers', {
      timeout: 60_000,
    }, async () => {
      const upstream = new URL(adminUrl);
      const proxy = new CuttableProxy({ host: upstream.hostname, port: Number(upstream.port || 5432) });
      await proxy.listen();
      const proxied = new URL(adminUrl);
      proxied.port = String(proxy.port);
      const hung = new PostgresProvider(state, box, { adminUrl: proxied.toString(), statementTimeoutMs: 1000 });
      const request = (name: string) => ({
        ...provisionRequest(product, installationId, name),
        idempotencyKey: `hang-${name}-${++counter}`,
      });
      try {
        // A first provision leaves a connection idle in the pool: the one the hang then catches.
        await hung.provision(request('before-hang'));
        proxy.blackhole();
        await assert.rejects(hung.provision(request('during-hang')), (error: unknown) => {
          assert.ok(error instanceof AppError, String(error));
          assert.equal(error.status, 503);
          return true;
        });
        await proxy.restore();
        const { resource } = await hung.provision(request('after-hang'));
        assert.equal(resource.status, 'ready');
      } finally {
        await hung.close();
        await proxy.cut();
      }
    });

    test('provisions a database its secrets connect to, with pg and with psql', async () => {
      const { resource, secrets } = await provision('orders');
      assert.equal(resource.status, 'ready');
      assert.equal(resource.productId, 'postgres');
      const env = secretsOf(secrets);
      for (const name of [
        'DATABASE_URL',
        'POSTGRES_URL',
        'POSTGRES_URL_NON_POOLING',
        'POSTGRES_HOST',
        'POSTGRES_USER',
        'POSTGRES_PASSWORD',
        'POSTGRES_DATABASE',
        'PGHOST',
        'PGUSER',
        'PGPASSWORD',
        'PGDATABASE',
      ]) {
        assert.ok(env[name], `${name} is among the secrets`);
      }
      assert.equal(env.POSTGRES_URL, env.DATABASE_URL);
      assert.ok(env.PGPASSWORD!.length >= 32, 'a strong password');
      // The server was given a SCRAM verifier, never the password itself.
      const { rows } = await admin.query('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [env.PGUSER]);
      assert.match(rows[0].rolpassword, /^SCRAM-SHA-256\$4096:/);
      assert.ok(!rows[0].rolpassword.includes(env.PGPASSWORD!));

      const client = await connect(env.DATABASE_URL!);
      await client.query('CREATE TABLE orders (id serial PRIMARY KEY, item text)');
      await client.query("INSERT INTO orders (item) VALUES ('tea')");
      await client.end();

      const { stdout } = await run('psql', ['-Atc', 'SELECT current_user, current_database(), item FROM orders'], {
        env: {
          ...process.env,
          PGHOST: env.PGHOST,
          PGPORT: env.PGPORT,
          PGUSER: env.PGUSER,
          PGPASSWORD: env.PGPASSWORD,
          PGDATABASE: env.PGDATABASE,
        },
      });
      assert.equal(stdout.trim(), `${env.PGUSER}|${env.PGDATABASE}|tea`);
      const { stdout: viaUrl } = await run('psql', [env.POSTGRES_URL!, '-Atc', 'SELECT count(*) FROM orders']);
      assert.equal(viaUrl.trim(), '1');
    });

    test('stores are sealed off from each other', async () => {
      const a = secretsOf((await provision('store a')).secrets);
      const b = secretsOf((await provision('store b')).secrets);
      // A's credentials against B's database: refused, however A asks.
      const aIntoB = new URL(a.DATABASE_URL!);
      aIntoB.pathname = `/${b.PGDATABASE}`;
      assert.equal(await connectionOutcome(aIntoB.toString()), '42501', 'permission denied for database');
      // And a wrong password is refused outright.
      const wrong = new URL(a.DATABASE_URL!);
      wrong.password = 'not-the-password';
      assert.equal(await connectionOutcome(wrong.toString()), '28P01');
      // B's data is B's: A cannot read or grant itself anything of it.
      const clientB = await connect(b.DATABASE_URL!);
      await clientB.query('CREATE TABLE secrets (v text)');
      await clientB.end();
      const { rows } = await admin.query('SELECT has_database_privilege($1, $2, $3) AS can', [a.PGUSER, b.PGDATABASE, 'CONNECT']);
      assert.equal(rows[0].can, false);
    });

    test('a retry with the same key creates nothing new and returns the same secrets', async () => {
      const key = `retry-${randomBytes(4).toString('hex')}`;
      const first = await provision('retried', { connectionLimit: 3 }, key);
      const [second, third] = await Promise.all([
        provision('retried', { connectionLimit: 3 }, key),
        provision('retried', { connectionLimit: 3 }, key),
      ]);
      assert.equal(second.resource.id, first.resource.id);
      assert.equal(third.resource.id, first.resource.id);
      assert.deepEqual(second.secrets, first.secrets);
      const { rows } = await state.query('SELECT count(*)::int AS n FROM provider_resources WHERE provision_key = $1', [key]);
      assert.equal(rows[0]!.n, 1);
      assert.equal(await connectionOutcome(secretsOf(first.secrets).DATABASE_URL!), 'connected');
    });

    test('hostile store names break nothing and inject nothing', async () => {
      for (const name of [
        `"; DROP DATABASE postgres; --`,
        `Robert'); DROP TABLE students;--`,
        'spaces and\ttabs\nand newlines',
        'ユニコード 🚀 données',
        '\\\\ back\\slash $$ dollar $$',
      ]) {
        const { resource, secrets } = await provision(name);
        assert.equal(resource.name, name);
        const env = secretsOf(secrets);
        assert.equal(await connectionOutcome(env.DATABASE_URL!), 'connected');
        assert.equal((await provider.get(installationId, resource.id)).name, name);
        // Shared catalogs are readable by every store's role: the name is not written there.
        const { rows } = await admin.query('SELECT shobj_description(oid, $1) AS comment FROM pg_database WHERE datname = $2', [
          'pg_database',
          env.PGDATABASE,
        ]);
        assert.equal(rows[0].comment, null);
      }
      const { rows } = await admin.query("SELECT 1 FROM pg_database WHERE datname = 'postgres'");
      assert.equal(rows.length, 1, 'postgres is still there');
    });

    test('ten concurrent provisions make ten working, separate databases', async () => {
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => provision(`concurrent ${i}`)));
      const databases = new Set(results.map((r) => secretsOf(r.secrets).PGDATABASE));
      assert.equal(databases.size, 10);
      const outcomes = await Promise.all(results.map((r) => connectionOutcome(secretsOf(r.secrets).DATABASE_URL!)));
      assert.deepEqual(outcomes, Array(10).fill('connected'));
    });

    test('rotation: the old password is refused, the new one accepted; a retried rotation changes nothing more', async () => {
      const { resource, secrets } = await provision('rotating');
      const before = secretsOf(secrets);
      const rotated = secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-1'));
      assert.notEqual(rotated.PGPASSWORD, before.PGPASSWORD);
      assert.equal(await connectionOutcome(before.DATABASE_URL!), '28P01');
      assert.equal(await connectionOutcome(rotated.DATABASE_URL!), 'connected');
      assert.deepEqual(secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-1')), rotated);
      assert.equal(await connectionOutcome(rotated.DATABASE_URL!), 'connected');
      const again = secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-2'));
      assert.notEqual(again.PGPASSWORD, rotated.PGPASSWORD);
      assert.equal(await connectionOutcome(rotated.DATABASE_URL!), '28P01');
    });

    test('a rotation cut short keeps the working password, and its retry finishes it', async () => {
      const { resource, secrets } = await provision('interrupted');
      const before = secretsOf(secrets);
      // The first half of a rotation, as if the process died before telling the server.
      const books = new ResourceRecords(state, box, 'postgres');
      await books.rotation(installationId, resource.id, 'rotate-cut');
      const stored = await books.get(installationId, resource.id);
      assert.equal(stored.secret, before.PGPASSWORD, 'the stored credential is still the one that works');
      assert.equal(await connectionOutcome(before.DATABASE_URL!), 'connected');
      const after = secretsOf(await provider.rotateSecrets(installationId, resource.id, 'rotate-cut'));
      assert.equal(after.PGPASSWORD, stored.pendingSecret, 'the retry applies the credential the rotation chose');
      assert.equal(await connectionOutcome(after.DATABASE_URL!), 'connected');
      assert.equal(await connectionOutcome(before.DATABASE_URL!), '28P01');
      assert.equal((await books.get(installationId, resource.id)).secret, after.PGPASSWORD);
    });

    test('update applies the metadata to the role', async () => {
      const { resource, secrets } = await provision('tuned', { connectionLimit: 5, statementTimeout: 'off' });
      const role = secretsOf(secrets).PGUSER;
      await provider.update(
        installationId,
        resource.id,
        { name: 'tuned (renamed)', metadata: { connectionLimit: 7, statementTimeout: '30s' } },
        'update-1',
      );
      const { rows } = await admin.query('SELECT rolconnlimit, rolconfig FROM pg_roles WHERE rolname = $1', [role]);
      assert.equal(rows[0].rolconnlimit, 7);
      assert.deepEqual(rows[0].rolconfig, ['statement_timeout=30s']);
      const client = await connect(secretsOf(secrets).DATABASE_URL!);
      assert.equal((await client.query('SHOW statement_timeout')).rows[0].statement_timeout, '30s');
      await client.end();
      const read = await provider.get(installationId, resource.id);
      assert.deepEqual([read.name, read.metadata.connectionLimit, read.status], ['tuned (renamed)', 7, 'ready']);
    });

    test('delete leaves nothing: no database, no role, even with connections open', async () => {
      const { resource, secrets } = await provision('doomed', { connectionLimit: 5 }, 'doomed-key');
      const env = secretsOf(secrets);
      const open = await connect(env.DATABASE_URL!);
      open.on('error', () => {});
      await provider.delete(installationId, resource.id, 'delete-1');
      const { rows: databases } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [env.PGDATABASE]);
      const { rows: roles } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [env.PGUSER]);
      assert.deepEqual([databases.length, roles.length], [0, 0]);
      await provider.delete(installationId, resource.id, 'delete-1'); // again: nothing to do, no error
      assert.equal((await provider.get(installationId, resource.id)).status, 'uninstalled');
      const { rows } = await state.query('SELECT secret FROM provider_resources WHERE id = $1', [resource.id]);
      assert.equal(rows[0]!.secret, null, 'the credential is gone from the books');
      await open.end().catch(() => {});
      // A late retry of the provision does not bring it back.
      await assert.rejects(
        provision('doomed', { connectionLimit: 5 }, 'doomed-key'),
        (error) => error instanceof AppError && error.status === 409 && error.code === 'resource_deleted',
      );
    });

    test('a delete that wins while a provision runs (the undo of a timed-out create) leaves no role or database behind', async () => {
      // The delete comes between the record's claim and the role's creation, so it finds nothing to drop.
      const records = (
        provider as unknown as { records: { claimFor: (...args: unknown[]) => Promise<{ id: string; details: { role: string } }> } }
      ).records;
      const claimFor = records.claimFor;
      let claimed: { id: string; details: { role: string } } | undefined;
      records.claimFor = async (...args: unknown[]) => {
        claimed = await claimFor.apply(records, args);
        await provider.delete(installationId, claimed.id, `raced-${claimed.id}`);
        return claimed;
      };
      try {
        await assert.rejects(
          provision('raced'),
          (error) => error instanceof AppError && error.status === 409 && error.code === 'resource_deleted',
        );
      } finally {
        records.claimFor = claimFor;
      }
      assert.ok(claimed);
      const { rows: databases } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [claimed.details.role]);
      const { rows: roles } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [claimed.details.role]);
      assert.deepEqual([databases.length, roles.length], [0, 0], 'what the provision made went with the record');
    });

    test("an idempotency key is one installation's: another installation using it gets a resource of its own", async () => {
      const mine = await provision('mine', { connectionLimit: 5 }, 'shared-key');
      const theirs = await provider.provision({
        idempotencyKey: 'shared-key',
        installationId: 'icfg_someone_else',
        product,
        name: 'theirs',
        metadata: {},
        billingPlanId: 'postgres_hobby',
      });
      assert.notEqual(theirs.resource.id, mine.resource.id);
      assert.notEqual(secretsOf(theirs.secrets).PGPASSWORD, secretsOf(mine.secrets).PGPASSWORD);
      await provider.delete('icfg_someone_else', theirs.resource.id, 'cleanup-theirs');
    });

    test("a store that granted another store's role something cannot block that store's deletion", async () => {
      const a = secretsOf((await provision('granting')).secrets);
      const { resource, secrets } = await provision('granted to');
      const b = secretsOf(secrets);
      const client = await connect(a.DATABASE_URL!);
      await client.query(`CREATE TABLE shared (v int); GRANT SELECT ON shared TO ${b.PGUSER}`);
      await client.end();
      await provider.delete(installationId, resource.id, 'delete-granted');
      const { rows } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [b.PGUSER]);
      assert.equal(rows.length, 0);
    });

    test("metadata outside the product's values is a 400 and leaves nothing behind", async () => {
      const before = (await state.query('SELECT count(*)::int AS n FROM provider_resources')).rows[0]!.n;
      for (const metadata of [
        { statementTimeout: 'constructor' },
        { statementTimeout: '__proto__' },
        { connectionLimit: 2 ** 40 },
        { connectionLimit: 'many' },
      ]) {
        await assert.rejects(
          provision('bad', metadata),
          (error) => error instanceof AppError && error.status === 400,
          JSON.stringify(metadata),
        );
      }
      assert.equal((await state.query('SELECT count(*)::int AS n FROM provider_resources')).rows[0]!.n, before);
    });

    test('works with an admin that is not a superuser, only CREATEROLE and CREATEDB', async () => {
      const adminRole = `sh_admin_${randomBytes(4).toString('hex')}`;
      await admin.query(`CREATE ROLE ${adminRole} LOGIN CREATEROLE CREATEDB PASSWORD 'admin-password'`);
      // The embedded default's server revoked PUBLIC's CONNECT: an admin of one's own is granted it by name.
      await admin.query(`GRANT CONNECT ON DATABASE ${new URL(adminUrl).pathname.slice(1)} TO ${adminRole}`);
      const url = new URL(adminUrl);
      url.username = adminRole;
      url.password = 'admin-password';
      const limited = new PostgresProvider(state, box, { adminUrl: url.toString() });
      try {
        assert.deepEqual(await limited.availability(), { available: true });
        const { resource, secrets } = await limited.provision({
          idempotencyKey: 'limited-admin',
          installationId,
          product,
          name: 'by a limited admin',
          metadata: {},
          billingPlanId: 'postgres_hobby',
        });
        assert.equal(await connectionOutcome(secretsOf(secrets).DATABASE_URL!), 'connected');
        await limited.delete(installationId, resource.id, 'limited-delete');
        const { rows } = await admin.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [secretsOf(secrets).PGUSER]);
        assert.equal(rows.length, 0);
      } finally {
        await limited.close();
        await admin.query(`DROP OWNED BY ${adminRole}`); // its CONNECT grant
        await admin.query(`DROP ROLE ${adminRole}`);
      }
    });

    test('a provision whose statements fail after its lock was taken with them releases the lock', async () => {
      // An admin without CREATEROLE: its CREATE ROLE fails in the round trip that takes the lock.
      const adminRole = `sh_admin_${randomBytes(4).toString('hex')}`;
      await admin.query(`CREATE ROLE ${adminRole} LOGIN CREATEDB PASSWORD 'admin-password'`);
      await admin.query(`GRANT CONNECT ON DATABASE ${new URL(adminUrl).pathname.slice(1)} TO ${adminRole}`);
      const url = new URL(adminUrl);
      url.username = adminRole;
      url.password = 'admin-password';
      const limited = new PostgresProvider(state, box, { adminUrl: url.toString(), onStateServer: server === 'embedded' });
      try {
        await assert.rejects(
          limited.provision({
            idempotencyKey: 'no-createrole',
            installationId,
            product,
            name: 'refused',
            metadata: {},
            billingPlanId: 'postgres_hobby',
          }),
          (error) => (error as { code?: string }).code === '42501',
        );
        // Its connection went back to the pool alive, holding no advisory lock.
        const { rows } = await admin.query<{ connections: number; locks: number }>(
          `SELECT count(*)::int AS connections, count(l.pid)::int AS locks
             FROM pg_stat_activity a LEFT JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' WHERE a.usename = $1`,
          [adminRole],
        );
        assert.ok(rows[0]!.connections >= 1, 'the failed provision kept its connection');
        assert.equal(rows[0]!.locks, 0);
      } finally {
        await limited.close();
        await admin.query(`DROP OWNED BY ${adminRole}`); // its CONNECT grant
        await admin.query(`DROP ROLE ${adminRole}`);
      }
    });

    test('resources of another installation are not found; secrets are sealed in the books', async () => {
      const { resource, secrets } = await provision('private');
      await assert.rejects(provider.get('icfg_other', resource.id), (error) => error instanceof AppError && error.status === 404);
      const { rows } = await state.query<{ secret: string }>('SELECT secret FROM provider_resources WHERE id = $1', [resource.id]);
      assert.ok(!rows[0]!.secret.includes(secretsOf(secrets).PGPASSWORD!), 'the password is not stored in the clear');
      assert.match(rows[0]!.secret, /^v2:/);
    });
  });
