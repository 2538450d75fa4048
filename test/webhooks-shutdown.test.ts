/**
 * A node shut down while a webhook is being sent (its receiver holding the request open): the
 * send is cut off, not counted as the receiver's failure, and the event is due again at once,
 * unclaimed, so the next node sends it under the same id without waiting out a claim. Two
 * Storehouse nodes, one after the other, on one real PostgreSQL; the reference partner receives.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { after, before, describe, test } from 'node:test';
import { runAdminCommand } from '../src/admin/commands.ts';
import { startPartnerServer, type PartnerServer } from '../src/partner-server/app.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import {
  eventually,
  freshDataDir,
  freshPostgresDatabase,
  POSTGRES_URL,
  startServer,
  writeCatalogFile,
  type TestServer,
} from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { CLIENT_SECRET, FAST_RETRIES, inboxOf, received, webhookIntegration } from './webhooks-fixtures.ts';

describe('a node shut down mid-send', { skip: POSTGRES_URL ? false : 'needs STOREHOUSE_TEST_DATABASE_URL' }, () => {
  let database: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let first: TestServer | undefined;
  let second: TestServer | undefined;
  let partner: PartnerServer;
  let partnerDir: string;
  let catalogFile: string;

  before(async () => {
    const partnerPort = await freePort();
    const partnerUrl = `http://127.0.0.1:${partnerPort}`;
    const catalog = catalogWithPartner({ url: partnerUrl });
    Object.assign(
      catalog.integrations.find((i: { id: string }) => i.id === 'oac_partner'),
      webhookIntegration(partnerUrl),
    );
    catalogFile = writeCatalogFile(catalog);
    database = await freshPostgresDatabase();
    partnerDir = await freshDataDir();
    partner = await startPartnerServer({
      port: partnerPort,
      dataDir: partnerDir,
      clientId: 'oac_partner',
      issuer: 'http://127.0.0.1:1',
      clientSecret: CLIENT_SECRET,
    });
  });
  after(async () => {
    await partner?.close();
    await second?.close();
    await first?.close();
    await database?.drop();
    if (partnerDir) fs.rmSync(partnerDir, { recursive: true, force: true });
    if (catalogFile) fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
  });

  test('the cut-off send is due again at once, and the next node delivers it', { timeout: 120_000 }, async () => {
    // A claim would hold for the timeout and 5 s more: far longer than the test waits.
    const env = { ...FAST_RETRIES, STOREHOUSE_WEBHOOK_TIMEOUT_MS: '120000', STOREHOUSE_SECRET_KEY: randomBytes(32).toString('hex') };
    first = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env });
    const node = first;
    // The receiver holds the first request open, longer than the test.
    partner.faults.webhook = { delayMs: 600_000, times: 1 };
    await runAdminCommand(node.runtime, 'members.add', {
      team: node.runtime.bootstrapped!.team.id,
      user: 'cut-off@example.com',
      role: 'MEMBER',
    });
    await eventually('the send under way', async () => (await inboxOf(partner.url)).arrivals === 1);
    const { rows } = await node.runtime.db.query<{ id: string }>("SELECT id FROM webhook_events WHERE body LIKE '%cut-off@example.com%'");
    const id = rows[0]!.id;
    await node.close();
    first = undefined;

    // As the first node left it, read before another node starts.
    const sql = new pg.Client({ connectionString: database.url });
    await sql.connect();
    const state = await sql
      .query<{ status: string; claimed_by: string | null; due: boolean; attempts: number }>(
        `SELECT status, claimed_by, next_attempt_at <= now() AS due,
                (SELECT count(*)::int FROM webhook_attempts WHERE event_id = e.id) AS attempts
           FROM webhook_events e WHERE id = $1`,
        [id],
      )
      .finally(() => sql.end());
    assert.deepEqual(state.rows[0], { status: 'pending', claimed_by: null, due: true, attempts: 0 }, 'due again, unclaimed, no attempt');

    replaceFaults(partner.faults, {});
    second = await startServer('postgres', { databaseUrl: database.url, catalogPath: catalogFile, env, bootstrapToken: node.token });
    const event = await received(partner.url, 'delivered by the next node', (e) => e.id === id);
    assert.equal(event.id, id);
  });
});
