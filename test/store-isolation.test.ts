/**
 * A store's role reaches its own database and nothing else of the server (issue 17), and the
 * change channel believes Storehouse's own role only.
 *
 * On the shared test server (STOREHOUSE_TEST_DATABASE_URL) Storehouse may not revoke anything on
 * `postgres` (other suites' roles connect there), so there it checks and says what to run; the
 * revoking itself runs on a private cluster (initdb, as chaos/ does), the stand-in for a cluster
 * Storehouse runs itself. Storehouse's state role is a non-superuser in both, as on an
 * operator's server, so its superuser powers are not what lets anything through.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import type pg from 'pg';
import { postgresBinDir, PrivatePostgres } from '../chaos/postgres-server.ts';
import type { Product } from '../src/catalog/catalog.ts';
import { ANYTHING, CHANGES_CHANNEL } from '../src/db/change-feed.ts';
import { UNVERIFIED_INTERVAL_MS, UnverifiedChanges } from '../src/db/notification-senders.ts';
import type { IsolationLog } from '../src/providers/postgres-isolation.ts';
import { PostgresProvider } from '../src/providers/postgres.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { eventually, POSTGRES_URL, providerState, startServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { connect, connectionOutcome, urlWith } from './pg-clients.ts';
import { secretsOf } from './provider-fixtures.ts';

const tag = () => randomBytes(5).toString('hex');

/**
 * A state database owned by a role that is not a superuser (Storehouse's state role, as an
 * operator would make it), on the server `adminUrl` reaches as a superuser.
 */
async function stateDatabase(adminUrl: string) {
  const role = `storehouse_iso_${tag()}`;
  const database = `storehouse_test_iso_${tag()}`;
  const password = randomBytes(18).toString('base64url');
  const admin = await connect(adminUrl);
  await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
  await admin.query(`CREATE DATABASE ${database} OWNER ${role}`);
  await admin.end();
  return {
    role,
    password,
    database,
    url: urlWith(adminUrl, { user: role, password, database }),
    drop: async () => {
      const client = await connect(adminUrl);
      await client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
      await client.query(`DROP ROLE IF EXISTS ${role}`);
      await client.end();
    },
  };
}

/** A migrated state on `url`, with the default catalog, and its Postgres product. */
const openState = (url: string) => providerState('postgres', { databaseUrl: url });

function capturingLog() {
  const lines: Array<{ level: string; details: any; message: string }> = [];
  const log: IsolationLog & { error(details: object, message: string): void } = {
    info: (details, message) => lines.push({ level: 'info', details, message }),
    warn: (details, message) => lines.push({ level: 'warn', details, message }),
    error: (details, message) => lines.push({ level: 'error', details, message }),
  };
  return { lines, log };
}

const provisionOn = (provider: PostgresProvider, product: Product, name: string) =>
  provider.provision({
    idempotencyKey: `iso-${tag()}`,
    installationId: 'icfg_isolation',
    product,
    name,
    metadata: {},
    billingPlanId: 'postgres_hobby',
  });

describe('on a server Storehouse is only given', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  test('it says, once at start, what to revoke; the statement it gives closes the state database to store roles', async () => {
    const stateDb = await stateDatabase(POSTGRES_URL!);
    const { state, product, close } = await openState(stateDb.url);
    const { lines, log } = capturingLog();
    const provider = new PostgresProvider(state, SecretBox.fromKey(randomBytes(32)), { adminUrl: POSTGRES_URL!, log });
    let resourceId: string | undefined;
    try {
      const report = (await provider.start())!;
      assert.deepEqual(report.revoked, [], 'nothing is revoked unless told to');
      const forState = `REVOKE CONNECT ON DATABASE "${stateDb.database}" FROM PUBLIC; GRANT CONNECT ON DATABASE "${stateDb.database}" TO "${stateDb.role}";`;
      assert.ok(report.toRun.includes(forState), `the state database's statement is among ${JSON.stringify(report.toRun)}`);
      const admin = await connect(POSTGRES_URL!);
      const { rows } = await admin.query("SELECT has_database_privilege('public', 'postgres', 'CONNECT') AS open");
      if (rows[0].open) assert.ok(report.toRun.includes('REVOKE CONNECT ON DATABASE "postgres" FROM PUBLIC;'), 'postgres is named too');
      assert.equal(await provider.start(), report, 'checked once');
      const warnings = lines.filter((line) => line.level === 'warn');
      assert.equal(warnings.length, 1, 'one warning');
      assert.ok(warnings[0]!.details.sql.includes(forState));
      assert.match(warnings[0]!.message, /STOREHOUSE_POSTGRES_REVOKE_PUBLIC_CONNECT/);
      assert.ok(!report.toRun.some((sql) => /"sh_[a-z0-9]+"/.test(sql)), 'store databases are not named: theirs is revoked already');

      // The warning is true: a store's role reaches the state database...
      const { resource, secrets } = await provisionOn(provider, product, 'reaching');
      resourceId = resource.id;
      const store = secretsOf(secrets);
      const storeInto = (database: string) => urlWith(store.DATABASE_URL!, { database });
      assert.equal(await connectionOutcome(store.DATABASE_URL!), 'connected');
      assert.equal(await connectionOutcome(storeInto(stateDb.database)), 'connected');
      // ...until the statement it gave is run; Storehouse's state role still connects, the store's own database still works.
      await admin.query(forState.slice(0, -1));
      await admin.end();
      assert.equal(await connectionOutcome(storeInto(stateDb.database)), '42501');
      assert.equal(await connectionOutcome(stateDb.url), 'connected');
      assert.equal(await connectionOutcome(store.DATABASE_URL!), 'connected');
      // And the next start no longer names it.
      const again = new PostgresProvider(state, SecretBox.fromKey(randomBytes(32)), { adminUrl: POSTGRES_URL! });
      assert.ok(!(await again.start())!.toRun.some((sql) => sql.includes(stateDb.database)));
      await again.close();
    } finally {
      if (resourceId) await provider.delete('icfg_isolation', resourceId, 'iso-cleanup');
      await provider.close();
      await close();
      await stateDb.drop();
    }
  });
});

/** Why the private cluster cannot be made here, or undefined. */
function privateClusterUnavailable(): string | undefined {
  if (!POSTGRES_URL) return 'STOREHOUSE_TEST_DATABASE_URL is not set';
  if (!postgresBinDir()) return 'no PostgreSQL server binaries at /usr/lib/postgresql/*/bin/initdb';
  if (process.getuid?.() === 0) {
    try {
      execFileSync('id', ['postgres'], { stdio: 'ignore' });
    } catch {
      return 'running as root, and there is no postgres OS user to run PostgreSQL as';
    }
  }
  return undefined;
}

describe('on a cluster Storehouse runs itself', { skip: privateClusterUnavailable() ?? false }, () => {
  let cluster: PrivatePostgres;
  before(async () => {
    cluster = await PrivatePostgres.create('isolation', await freePort());
  });
  after(() => cluster?.destroy());

  test('a store role can connect to its own database only: postgres, template1 and the state database refuse it', async () => {
    const stateDb = await stateDatabase(cluster.adminUrl);
    const server = await startServer('postgres', {
      databaseUrl: stateDb.url,
      env: { STOREHOUSE_POSTGRES_ADMIN_URL: cluster.adminUrl, STOREHOUSE_POSTGRES_REVOKE_PUBLIC_CONNECT: 'true' },
    });
    const provider = server.runtime.providers.for(server.runtime.catalog.findProduct('oac_storehouse', 'postgres')) as PostgresProvider;
    let resourceId: string | undefined;
    try {
      // The start revokes in the background; a provision waits for it.
      const { resource, secrets } = await provisionOn(provider, server.runtime.catalog.findProduct('oac_storehouse', 'postgres'), 'sealed');
      resourceId = resource.id;
      const store = secretsOf(secrets);
      const storeInto = (database: string) => urlWith(store.DATABASE_URL!, { database });
      assert.equal(await connectionOutcome(store.DATABASE_URL!), 'connected');
      for (const database of ['postgres', 'template1', stateDb.database]) {
        assert.equal(await connectionOutcome(storeInto(database)), '42501', `${database} refuses the store's role`);
      }
      // Everything that needs a database keeps it: the state role its own, the admin all.
      assert.equal(await connectionOutcome(stateDb.url), 'connected');
      assert.equal(await connectionOutcome(cluster.urlOf(stateDb.database)), 'connected');
      const storeClient = await connect(store.DATABASE_URL!);
      await storeClient.query('CREATE TABLE t (v int); INSERT INTO t VALUES (1)');
      assert.equal((await storeClient.query('SELECT count(*)::int AS n FROM t')).rows[0].n, 1);
      await storeClient.end();
      // Storehouse still serves from its state.
      const response = await server.request('/v2/user');
      assert.equal(response.status, 200);
      // Nothing but templates and stores is left open to PUBLIC, and a second start has nothing to do.
      const again = new PostgresProvider(server.runtime.db, SecretBox.fromKey(randomBytes(32)), {
        adminUrl: cluster.adminUrl,
        revokePublicConnect: true,
      });
      assert.deepEqual(await again.start(), { revoked: [], toRun: [] });
      await again.close();
      // A database made on the server after the start is closed to store roles by a later check.
      const rechecking = new PostgresProvider(server.runtime.db, SecretBox.fromKey(randomBytes(32)), {
        adminUrl: cluster.adminUrl,
        revokePublicConnect: true,
        isolationRecheckMs: 100,
      });
      await rechecking.start();
      const late = `storehouse_test_late_${tag()}`;
      const admin = await connect(cluster.adminUrl);
      await admin.query(`CREATE DATABASE ${late}`);
      await admin.end();
      try {
        await eventually('the new database closed to store roles', async () => (await connectionOutcome(storeInto(late))) === '42501');
      } finally {
        await rechecking.close();
        const cleanup = await connect(cluster.adminUrl);
        await cleanup.query(`DROP DATABASE IF EXISTS ${late} WITH (FORCE)`);
        await cleanup.end();
      }
    } finally {
      if (resourceId) await provider.delete('icfg_isolation', resourceId, 'iso-cleanup');
      await server.close();
      await stateDb.drop();
    }
  });
});

describe('the change channel', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  test("believes Storehouse's own role and its members, not a store role or any other", async () => {
    const stateDb = await stateDatabase(POSTGRES_URL!);
    // The server's own Postgres provider is on this server too: at start it warns what to revoke.
    const server = await startServer('postgres', { databaseUrl: stateDb.url, env: { STOREHOUSE_POSTGRES_ADMIN_URL: POSTGRES_URL! } });
    // Its books in the server's own state: a store as the server's provider would make it.
    const provider = new PostgresProvider(server.runtime.db, SecretBox.fromKey(randomBytes(32)), { adminUrl: POSTGRES_URL! });
    const product = server.runtime.catalog.findProduct('oac_storehouse', 'postgres');
    const admin = await connect(POSTGRES_URL!);
    const member = `storehouse_iso_member_${tag()}`;
    const stranger = `storehouse_iso_other_${tag()}`;
    const clients: pg.Client[] = [];
    let resourceId: string | undefined;
    try {
      const warned = () => server.logs.map((line) => JSON.parse(line)).find((line) => line.level === 40 && typeof line.sql === 'string');
      await eventually('the start-up warning naming what to revoke', async () => warned() !== undefined);
      assert.ok(warned().sql.includes(`REVOKE CONNECT ON DATABASE "${stateDb.database}" FROM PUBLIC;`), warned().sql);
      const seen: Array<string | undefined> = [];
      const { feed } = server.runtime;
      feed.onChange((table) => seen.push(table));
      const { resource, secrets } = await provisionOn(provider, product, 'notifying');
      resourceId = resource.id;
      const store = secretsOf(secrets);
      await admin.query(`CREATE ROLE ${member} LOGIN PASSWORD 'member-pw' IN ROLE ${stateDb.role}`);
      await admin.query(`CREATE ROLE ${stranger} LOGIN PASSWORD 'other-pw'`);
      /** A session of `user` on the state database, kept open so its pid is there to be checked. */
      const session = async (user: string, password: string) => {
        const client = await connect(urlWith(stateDb.url, { user, password }));
        clients.push(client);
        return client;
      };
      const notify = (client: pg.Client, payload: string) => client.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, payload]);

      // The store role can reach the state database here (PUBLIC has CONNECT), and NOTIFY needs no privilege.
      const storeSession = await session(store.PGUSER!, store.PGPASSWORD!);
      const strangerSession = await session(stranger, 'other-pw');
      const refusedBefore = feed.refused;
      const forged = [`forged-${tag()}`, 'products', ANYTHING];
      for (const payload of forged) await notify(storeSession, payload);
      await storeSession.query(`NOTIFY ${CHANGES_CHANNEL}, 'teams'`);
      await notify(strangerSession, 'access_tokens');
      await eventually('the node refusing the five notifications', async () => feed.refused - refusedBefore >= 5);
      assert.equal(feed.refused - refusedBefore, 5);

      // Storehouse's own role, and a role that is a member of it, are believed.
      const own = `own-${tag()}`;
      const viaMember = `member-${tag()}`;
      await notify(await session(stateDb.role, stateDb.password), own);
      await notify(await session(member, 'member-pw'), viaMember);
      await eventually("the node hearing its own role's notification", async () => seen.includes(own) && seen.includes(viaMember));
      for (const payload of [...forged, 'teams', 'access_tokens']) {
        assert.ok(!seen.includes(payload), `${payload} from a role that is not Storehouse's moved nothing`);
      }
    } finally {
      for (const client of clients) await client.end().catch(() => {});
      if (resourceId) await provider.delete('icfg_isolation', resourceId, 'iso-cleanup');
      await provider.close();
      await server.close();
      await admin.query(`DROP ROLE IF EXISTS ${member}`);
      await admin.query(`DROP ROLE IF EXISTS ${stranger}`);
      await admin.end();
      await stateDb.drop();
    }
  });
});

test('changes whose sender could not be checked are applied, at most one per interval, and none is lost', async () => {
  const applied: string[] = [];
  const changes = new UnverifiedChanges((table) => applied.push(table), ANYTHING);
  try {
    const start = Date.now();
    changes.add('teams');
    assert.deepEqual(applied, ['teams'], 'the first is applied at once');
    for (const table of ['teams', 'products', 'teams']) changes.add(table);
    assert.deepEqual(applied, ['teams'], 'the rest wait for the interval to end');
    await eventually('the folded change', async () => applied.length === 2, 30_000);
    assert.ok(Date.now() - start >= UNVERIFIED_INTERVAL_MS - 5, 'not before the interval ended');
    assert.deepEqual(applied, ['teams', ANYTHING], 'several tables fold into one change of anything');
    changes.add('memberships');
    await eventually('the next folded change', async () => applied.length === 3, 30_000);
    assert.deepEqual(applied, ['teams', ANYTHING, 'memberships'], 'one table folds into a change of that table');
  } finally {
    changes.stop();
  }
});
