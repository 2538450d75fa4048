/**
 * Charging invoices survives `kill -9` (issue 14): a node killed between an attempt's record and
 * its outcome leaves a started attempt, which the next node resumes under the same processor key,
 * so no invoice is charged twice and none is lost.
 *
 * Storehouse runs as a real child process (as `npm start` runs it) on a PostgreSQL database of
 * its own, which the test reads while the node is dead. Invoices are submitted with the
 * installation's access token while the node charges them; it is killed with SIGKILL the moment
 * an attempt is seen started, and again on a fresh batch until an attempt is left started by the
 * kill. Started again, it must finish every invoice: each paid, on its first attempt's number,
 * with one charge in the card processor's ledger. And two nodes on one database share the
 * charging: each attempt is made by one of them, and charged once.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { mintInstallationToken } from '../src/partners/installation-tokens.ts';
import { eventually, freshDataDir, freshPostgresDatabase, POSTGRES_URL, ROOT, startServer, type TestServer } from './helpers.ts';
import { freePort } from './partner-fixtures.ts';
import { answering, type Proc, runFromSource, stop } from './spawned.ts';

const TOKEN = 'invoices-crash-token-0123456789';
const ROUNDS = 8;
const BATCH = 60;
/** Attempts the processor charged whose outcome is not recorded yet. */
const CHARGED_UNRECORDED = `SELECT count(*) AS n FROM invoice_charges a JOIN card_charges c ON c.idempotency_key = a.invoice_id || ':' || a.attempt
  WHERE a.outcome = 'started'`;

describe('kill -9 while invoices are charged', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let dataDir: string;
  let port: number;
  let url: string;
  let state: pg.Client;
  let server: Proc | undefined;
  const outputs: string[] = [];

  const start = async () => {
    server = runFromSource([path.join(ROOT, 'src', 'main.ts')], {
      DATABASE_URL: database.url,
      STOREHOUSE_DATA_DIR: dataDir,
      STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
      PORT: String(port),
      LOG_LEVEL: 'warn',
      // A dead node's claims are anyone's once its lease runs out: a second here.
      STOREHOUSE_LEASE_MS: '1000',
    });
    await answering('Storehouse', `${url}/healthz`, server, 60_000);
  };
  const kill = async () => {
    assert.equal(server!.child.exitCode, null, 'Storehouse is running when it is killed');
    process.kill(server!.child.pid!, 'SIGKILL');
    await server!.exit;
    outputs.push(server!.output());
    server = undefined;
  };
  const count = async (sql: string, params: unknown[] = []) => Number((await state.query(sql, params)).rows[0].n);

  before(async () => {
    database = await freshPostgresDatabase();
    dataDir = await freshDataDir();
    port = await freePort();
    url = `http://127.0.0.1:${port}`;
    state = new pg.Client({ connectionString: database.url });
    await state.connect();
  });

  after(async () => {
    await stop(server);
    await state?.end();
    await database?.drop();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test('an attempt interrupted between its record and its outcome is resumed under its key: every invoice paid once', async () => {
    await start();
    const owner = { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' };
    const card = await fetch(`${url}/_storehouse/payment-methods`, {
      method: 'POST',
      headers: owner,
      body: JSON.stringify({ cardNumber: '4242424242424242' }),
    });
    assert.equal(card.status, 200);
    const configurations = (await (await fetch(`${url}/v1/integrations/configurations?view=account`, { headers: owner })).json()) as Array<{
      id: string;
    }>;
    const installationId = configurations[0]!.id;
    const partnerToken = (await mintInstallationToken(state, installationId)).value;
    const submit = (n: number) =>
      fetch(`${url}/v1/installations/${installationId}/billing/invoices`, {
        method: 'POST',
        headers: { authorization: `Bearer ${partnerToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          invoiceDate: '2027-03-02T00:00:00.000Z',
          period: { start: '2027-03-01T00:00:00.000Z', end: '2027-04-01T00:00:00.000Z' },
          items: [{ billingPlanId: 'postgres_pro', name: `Pro ${n}`, price: '20.00', quantity: 1, units: 'month', total: '20.00' }],
        }),
      }).then(
        async (response) => (response.status === 200 ? ((await response.json()) as { invoiceId: string }).invoiceId : undefined),
        () => undefined,
      );

    const acknowledged: string[] = [];
    let leftStarted = 0;
    let chargedUnrecorded = 0;
    let rounds = 0;
    for (; rounds < ROUNDS && chargedUnrecorded === 0; rounds++) {
      if (!server) await start();
      let answered = false;
      const answers = Promise.all(Array.from({ length: BATCH }, (_, i) => submit(rounds * BATCH + i))).then((ids) => {
        answered = true;
        return ids;
      });
      // Killed the moment an attempt is charged by the processor and not yet recorded: the state
      // a repeat of the charge would charge twice from. A batch finished before that is seen is
      // killed anyway (an attempt started then counts too), and another follows.
      for (;;) {
        if ((await count(CHARGED_UNRECORDED)) > 0) break;
        if (answered && (await count("SELECT count(*) AS n FROM invoices WHERE state <> 'paid'")) === 0) break;
      }
      await kill();
      for (const id of await answers) if (id) acknowledged.push(id);
      leftStarted += await count("SELECT count(*) AS n FROM invoice_charges WHERE outcome = 'started'");
      chargedUnrecorded += await count(CHARGED_UNRECORDED);
    }
    assert.ok(chargedUnrecorded > 0, `no kill in ${rounds} rounds left an attempt charged but not recorded`);
    process.stderr.write(
      `invoices-crash: ${rounds} kill(s); ${leftStarted} attempt(s) left started, ${chargedUnrecorded} of them charged but not recorded\n`,
    );

    await start();
    await eventually(
      'every invoice settled',
      async () => (await count("SELECT count(*) AS n FROM invoices WHERE state <> 'paid'")) === 0,
      60_000,
    );
    const invoices = await count('SELECT count(*) AS n FROM invoices');
    assert.ok(invoices >= acknowledged.length, 'no acknowledged invoice was lost');
    const known = await count('SELECT count(*) AS n FROM invoices WHERE id = ANY($1::text[])', [acknowledged]);
    assert.equal(known, acknowledged.length, 'every acknowledged invoice is kept');
    // One charge per invoice in the processor's ledger, under its first attempt's key.
    const { rows } = await state.query<{ id: string; charges: string; attempts: number; keys: string[] }>(
      `SELECT i.id, count(c.*) AS charges, i.attempts, array_agg(c.idempotency_key) AS keys
         FROM invoices i LEFT JOIN card_charges c ON c.idempotency_key LIKE i.id || ':%' GROUP BY i.id, i.attempts`,
    );
    for (const row of rows) {
      assert.equal(Number(row.charges), 1, `${row.id} charged ${row.charges} times`);
      assert.deepEqual(row.keys, [`${row.id}:1`], `${row.id} was charged on its first attempt`);
      assert.equal(row.attempts, 1);
    }
    assert.equal(await count("SELECT count(*) AS n FROM invoice_charges WHERE outcome <> 'succeeded'"), 0);
    assert.equal(await count("SELECT count(*) AS n FROM card_charges WHERE outcome <> 'succeeded'"), 0);
  });
});

describe('two nodes charging the same invoices', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  let database: { url: string; drop: () => Promise<void> };
  let a: TestServer | undefined;
  let b: TestServer | undefined;
  const RETRIES = 4;

  before(async () => {
    database = await freshPostgresDatabase();
    const env = { STOREHOUSE_INVOICE_RETRIES: String(RETRIES), STOREHOUSE_INVOICE_RETRY_INTERVAL_MS: '300' };
    a = await startServer('postgres', { databaseUrl: database.url, env });
    b = await startServer('postgres', { databaseUrl: database.url, bootstrapToken: a.token, env });
  });

  after(async () => {
    await b?.close();
    await a?.close();
    await database?.drop();
  });

  test('each attempt of every invoice is made by one node, in order, and charged once', async () => {
    const card = await a!.request('/_storehouse/payment-methods', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ cardNumber: '4000000000000002' }),
    });
    assert.equal(card.status, 200);
    const installationId = (await a!.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
    const partnerToken = (await mintInstallationToken(a!.runtime.db, installationId)).value;
    const ids: string[] = [];
    for (let n = 0; n < 20; n++) {
      const { invoiceId } = await (n % 2 === 0 ? a! : b!).sdk(partnerToken).marketplace.submitInvoice({
        integrationConfigurationId: installationId,
        requestBody: {
          invoiceDate: new Date('2027-03-02T00:00:00.000Z'),
          period: { start: new Date('2027-03-01T00:00:00.000Z'), end: new Date('2027-04-01T00:00:00.000Z') },
          items: [{ billingPlanId: 'postgres_pro', name: `Pro ${n}`, price: '20.00', quantity: 1, units: 'month', total: '20.00' }],
        },
      });
      ids.push(invoiceId!);
    }
    const db = a!.runtime.db;
    await eventually(
      'every invoice overdue',
      async () =>
        Number((await db.query<{ n: string }>("SELECT count(*) AS n FROM invoices WHERE state = 'overdue'")).rows[0]!.n) === ids.length,
      60_000,
    );
    const { rows } = await db.query<{ invoice_id: string; attempts: number[]; charged: string }>(
      `SELECT a.invoice_id, array_agg(a.attempt ORDER BY a.attempt) AS attempts,
              (SELECT count(*) FROM card_charges c WHERE c.idempotency_key LIKE a.invoice_id || ':%') AS charged
         FROM invoice_charges a GROUP BY a.invoice_id`,
    );
    assert.equal(rows.length, ids.length);
    const all = Array.from({ length: 1 + RETRIES }, (_, i) => i + 1);
    for (const row of rows) {
      assert.deepEqual(row.attempts, all, `${row.invoice_id}: every attempt once, in order`);
      assert.equal(Number(row.charged), 1 + RETRIES, `${row.invoice_id}: each attempt charged once`);
    }
    const { rows: nodes } = await db.query<{ n: string }>('SELECT count(DISTINCT node_id) AS n FROM invoice_charges');
    assert.equal(Number(nodes[0]!.n), 2, 'both nodes charged');
  });
});
