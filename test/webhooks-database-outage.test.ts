/**
 * The webhook dispatcher's own connection (src/webhooks/connection.ts) on a real PostgreSQL:
 * when PostgreSQL ends it, and when the database refuses every connection for a while, the
 * dispatcher fails its looks (logged), the process goes on, and once the database is back the
 * next events are delivered without a restart, as is one that was waiting through the outage.
 */
import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import type { PartnerServer } from '../src/partner-server/app.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { eventually, freshPostgresDatabase, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';
import { addTeamMember, FAST_RETRIES, inboxOf, prepareWebhookPartner, received, type WebhookPartner } from './webhooks-fixtures.ts';

describe('the webhook dispatcher when its database breaks', { skip: POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_DATABASE_URL' }, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let server: TestServer;
  let receiver: WebhookPartner | undefined;
  let partner: PartnerServer;
  /** A connection to the cluster's own database (not the test's), to end and refuse the test database's connections. */
  let admin: pg.Client;
  let name: string;

  /**
   * The change, once the pool has let go of the connections PostgreSQL ended (a transaction on one
   * it had not yet noticed is refused with 57P01): the pool is not what this test is about.
   */
  const addMember = async (email: string) => {
    await eventually(`${email} added`, () =>
      addTeamMember(server, email).then(
        () => true,
        (error: { code?: string }) => {
          if (error.code !== '57P01') throw error;
          return false;
        },
      ),
    );
  };
  const endConnections = () =>
    admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
  const allowConnections = (allowed: boolean) => admin.query(`ALTER DATABASE ${name} WITH ALLOW_CONNECTIONS ${allowed}`);

  before(async () => {
    receiver = await prepareWebhookPartner();
    database = await freshPostgresDatabase();
    name = new URL(database.url).pathname.slice(1);
    server = await startServer('postgres', {
      databaseUrl: database.url,
      catalogPath: receiver.catalogFile,
      env: { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_TIMEOUT_MS: '5000' },
    });
    partner = await receiver.start(server.url);
    admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
  });
  after(async () => {
    await allowConnections(true).catch(() => {});
    await admin?.end();
    await receiver?.close();
    await server?.close();
    await database?.drop();
  });

  test('its connection ended by PostgreSQL: the next event is delivered', async () => {
    await addMember('before-the-end@example.com');
    await received(partner.url, 'an event before', (e) => e.payload.userEmail === 'before-the-end@example.com');
    await endConnections();
    await addMember('after-the-end@example.com');
    await received(partner.url, 'an event after', (e) => e.payload.userEmail === 'after-the-end@example.com');
  });

  test('the database refusing connections: looks fail and are logged, the process goes on, and delivery resumes', async () => {
    // An event the receiver refuses, so it is being retried when the database goes.
    partner.faults.webhook = { status: 503, times: 1_000 };
    await addMember('through-the-outage@example.com');
    const { rows } = await server.runtime.db.query<{ id: string }>("SELECT id FROM webhook_events WHERE body LIKE '%through-the-outage@%'");
    const waiting = rows[0]!.id;
    await eventually('refused once', async () => (await inboxOf(partner.url)).refused + (await attemptsOf(waiting)) > 0);
    const logged = server.logs.length;
    await allowConnections(false);
    await endConnections();
    await eventually('a failed look logged', async () =>
      server.logs.slice(logged).some((line) => /webhook delivery failed|cannot record a webhook attempt/.test(line)),
    );
    replaceFaults(partner.faults, {});
    await allowConnections(true);
    await received(partner.url, 'the event that waited', (e) => e.id === waiting);
    await addMember('after-the-outage@example.com');
    await received(partner.url, 'an event after the outage', (e) => e.payload.userEmail === 'after-the-outage@example.com');
    const health = await fetch(`${server.url}/healthz`);
    assert.equal(health.status, 200);
  });

  const attemptsOf = async (id: string) => {
    const { rows } = await server.runtime.db.query<{ attempts: number }>('SELECT attempts FROM webhook_events WHERE id = $1', [id]);
    return rows[0]?.attempts ?? 0;
  };
});
