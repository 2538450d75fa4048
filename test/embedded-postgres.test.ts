/**
 * The built-in Postgres provider's embedded mode: a PGlite cluster per store, served on a
 * loopback port, working with psql and pg, and serving the same data again after a restart.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import type { Product } from '../src/catalog/catalog.ts';
import type { Database } from '../src/db/database.ts';
import { EmbeddedPostgresProvider } from '../src/providers/embedded-postgres.ts';
import type { Secret } from '../src/providers/provider.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { freshDataDir, providerState, startServer } from './helpers.ts';

const run = promisify(execFile);
const secretsOf = (secrets: Secret[]) => Object.fromEntries(secrets.map((s) => [s.name, s.value]));
const psql = (env: Record<string, string>, sql: string) =>
  run('psql', ['-Atc', sql], {
    env: {
      ...process.env,
      ...Object.fromEntries(['PGHOST', 'PGPORT', 'PGUSER', 'PGPASSWORD', 'PGDATABASE', 'PGSSLMODE'].map((k) => [k, env[k]!])),
    },
  });

describe('the embedded Postgres provider', () => {
  let setup: Awaited<ReturnType<typeof providerState>>;
  let dataDir: string;
  let state: Database;
  let product: Product;
  let provider: EmbeddedPostgresProvider;
  const box = SecretBox.fromKey(randomBytes(32));
  const provision = (name: string) =>
    provider.provision({
      idempotencyKey: `key-${randomBytes(6).toString('hex')}`,
      installationId: 'icfg_embedded',
      product,
      name,
      metadata: {},
      billingPlanId: 'postgres_hobby',
    });

  before(async () => {
    setup = await providerState('postgres');
    ({ dataDir, state, product } = setup);
    provider = new EmbeddedPostgresProvider(state, box, dataDir);
  });
  after(async () => {
    await provider.close();
    await setup.close();
  });

  test('a port taken by another process between choosing and serving moves the new store to another', async () => {
    // Hold a port, and make it the one the provider picks first (as if another process took it
    // right after the provider found it free).
    const squatter = net.createServer();
    await new Promise<void>((resolve) => squatter.listen(0, '127.0.0.1', resolve));
    const held = (squatter.address() as net.AddressInfo).port;
    const chooser = provider as unknown as { freePort(): Promise<number> };
    const original = chooser.freePort.bind(provider);
    let calls = 0;
    chooser.freePort = async () => (++calls === 1 ? held : original());
    try {
      const secrets = secretsOf((await provision('moved')).secrets);
      assert.notEqual(Number(secrets.PGPORT), held);
      // The held port was handed out first, serving on it failed, and a second port was chosen.
      assert.equal(calls, 2, 'freePort was asked twice: the held port, then another');
      const client = new pg.Client({ connectionString: secrets.DATABASE_URL });
      await client.connect();
      assert.equal((await client.query('SELECT 1 AS one')).rows[0].one, 1);
      await client.end();
    } finally {
      chooser.freePort = original;
      squatter.close();
    }
  });

  test('a store deleted while a restart is serving the stores again stays deleted', async () => {
    const doomed = await provision('doomed');
    const kept = await provision('kept');
    const doomedPort = Number(secretsOf(doomed.secrets).PGPORT);
    await provider.close();
    provider = new EmbeddedPostgresProvider(state, box, dataDir);
    const starting = provider.start();
    await provider.delete('icfg_embedded', doomed.resource.id, 'delete-doomed');
    await starting;
    const canConnect = (port: number) =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => {
          socket.destroy();
          resolve(true);
        });
        socket.on('error', () => resolve(false));
      });
    assert.equal(await canConnect(doomedPort), false, 'the deleted store is not served');
    assert.equal(fs.existsSync(path.join(dataDir, 'stores', doomed.resource.id)), false, 'and its files are gone');
    assert.equal(await canConnect(Number(secretsOf(kept.secrets).PGPORT)), true);
    await provider.delete('icfg_embedded', kept.resource.id, 'delete-kept');
  });

  test('provisions a database psql and pg connect to; stores keep apart; a restart serves the same data', async () => {
    const a = secretsOf((await provision('a')).secrets);
    const b = secretsOf((await provision('b')).secrets);
    assert.notEqual(a.PGPORT, b.PGPORT);
    await psql(a, "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')");
    const client = new pg.Client({ connectionString: a.DATABASE_URL });
    await client.connect();
    assert.deepEqual((await client.query('SELECT body FROM notes')).rows, [{ body: 'kept' }]);
    await client.end();
    await assert.rejects(psql(b, 'SELECT body FROM notes'), /relation "notes" does not exist/);

    // Stop everything, as a restart does, and start again from the books.
    await provider.close();
    await assert.rejects(psql(a, 'SELECT 1'));
    provider = new EmbeddedPostgresProvider(state, box, dataDir);
    await provider.start();
    const { stdout } = await psql(a, 'SELECT body FROM notes');
    assert.equal(stdout.trim(), 'kept');
  });

  test('concurrent provisions get ports of their own from the fixed range', async () => {
    const results = await Promise.all([provision('c1'), provision('c2'), provision('c3')]);
    const envs = results.map((r) => secretsOf(r.secrets));
    assert.equal(new Set(envs.map((e) => e.PGPORT)).size, 3);
    for (const env of envs) {
      assert.ok(Number(env.PGPORT) >= 25432 && Number(env.PGPORT) <= 26431);
      assert.equal((await psql(env, 'SELECT 1')).stdout.trim(), '1');
    }
  });

  test('delete stops serving the store and removes its files', async () => {
    const { resource, secrets } = await provision('doomed');
    const env = secretsOf(secrets);
    await psql(env, 'SELECT 1');
    await provider.delete('icfg_embedded', resource.id, 'delete-1');
    await assert.rejects(psql(env, 'SELECT 1'));
    assert.ok(!fs.existsSync(path.join(dataDir, 'stores', resource.id)));
    assert.equal((await provider.get('icfg_embedded', resource.id)).status, 'uninstalled');
  });
});

describe('a server with embedded Postgres stores', () => {
  test('serves them again after a restart', async () => {
    const dataDir = await freshDataDir(); // ours, so it outlives the first server
    const first = await startServer('embedded', { dataDir });
    let env: Record<string, string>;
    try {
      const product = first.runtime.catalog.findProduct('oac_storehouse', 'postgres');
      const { secrets } = await first.runtime.providers.for(product).provision({
        idempotencyKey: 'restart-key',
        installationId: 'icfg_restart',
        product,
        name: 'survives',
        metadata: {},
        billingPlanId: 'postgres_hobby',
      });
      env = secretsOf(secrets);
      await psql(env, "CREATE TABLE t (v text); INSERT INTO t VALUES ('still here')");
    } finally {
      await first.close();
    }
    await assert.rejects(psql(env, 'SELECT 1'), 'not served while the server is down');
    const second = await startServer('embedded', { dataDir });
    try {
      await second.runtime.storesServed; // the API answered before the stores were back
      assert.equal((await psql(env, 'SELECT v FROM t')).stdout.trim(), 'still here');
    } finally {
      await second.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
