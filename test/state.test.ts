/** Migrations and the catalog sync, on each backend. */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { parse, stringify } from 'yaml';
import { Catalog, offeredPlans } from '../src/catalog/catalog.ts';
import { CatalogError, loadCatalogFile, validateCatalog } from '../src/catalog/catalog-file.ts';
import type { CatalogFile } from '../src/catalog/catalog-schema.ts';
import { syncCatalog } from '../src/catalog/catalog-sync.ts';
import { DEFAULT_CATALOG_PATH, type Config } from '../src/config.ts';
import { bootstrapNotice } from '../src/runtime.ts';
import type { Bootstrapped } from '../src/tenancy/bootstrap.ts';
import { UNFLUSHED, type Database, type Queryable } from '../src/db/database.ts';
import { DataDirLockedError, lockDataDir } from '../src/db/lock.ts';
import { migrate, readMigrations } from '../src/db/migrate.ts';
import { openDatabase } from '../src/db/open.ts';
import { BACKENDS, freshDataDir, freshPostgresDatabase, ROOT, startServer, type Backend } from './helpers.ts';

const defaultCatalog = (): CatalogFile => parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));

async function withDatabase(backend: Backend, work: (db: Database) => Promise<void>, options: { poolMax?: number } = {}) {
  const dataDir = await freshDataDir();
  const postgres = backend === 'postgres' ? await freshPostgresDatabase() : undefined;
  const db = await openDatabase({ dataDir, databaseUrl: postgres?.url, ...options });
  try {
    await work(db);
  } finally {
    await db.close();
    await postgres?.drop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

function writeCatalog(catalog: CatalogFile): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
  fs.writeFileSync(file, stringify(catalog));
  return file;
}

for (const backend of BACKENDS) {
  describe(`migrations (${backend})`, () => {
    test('apply once; running them again is harmless', async () => {
      await withDatabase(backend, async (db) => {
        assert.deepEqual(
          await migrate(db),
          readMigrations().map((m) => `${m.version}_${m.name}`),
        );
        assert.deepEqual(await migrate(db), []);
        const { rows } = await db.query<{ version: string }>('SELECT version FROM schema_migrations');
        assert.equal(rows.length, readMigrations().length);
      });
    });

    test('concurrent runs apply each migration exactly once', async () => {
      await withDatabase(backend, async (db) => {
        const results = await Promise.all([migrate(db), migrate(db), migrate(db)]);
        assert.equal(results.flat().length, readMigrations().length);
      });
    });

    test('an applied migration that was edited stops the run', async () => {
      await withDatabase(backend, async (db) => {
        await migrate(db);
        const edited = readMigrations().map((m, i) => (i === 0 ? { ...m, checksum: 'changed' } : m));
        await assert.rejects(migrate(db, edited), /was changed after it was applied/);
      });
    });
  });

  describe(`catalog sync (${backend})`, () => {
    test('adds and updates; what the file drops is deleted when unused and retired when in use', async () => {
      await withDatabase(backend, async (db) => {
        await migrate(db);
        const catalog = defaultCatalog();
        const first = await syncCatalog(db, catalog);
        assert.deepEqual(first.upserted, { integrations: 1, products: 2, plans: 6 });

        // A store on the Postgres Pro plan keeps that plan (and its product) in use.
        const teamId = 'team_sync';
        await db.query("INSERT INTO teams (id, slug, name) VALUES ($1, 'sync', 'Sync')", [teamId]);
        await db.query(
          "INSERT INTO installations (id, team_id, integration_id, source) VALUES ('icfg_sync', $1, 'oac_storehouse', 'cli')",
          [teamId],
        );
        await db.query(
          `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status)
           VALUES ('store_sync', $1, 'icfg_sync', 'iap_storehouse_postgres', 'postgres_pro', 'kept', 'available')`,
          [teamId],
        );

        const edited = defaultCatalog();
        const postgres = edited.integrations[0]!.products[0]!;
        postgres.name = 'Postgres 2';
        postgres.plans = postgres.plans.filter((plan) => plan.id === 'postgres_hobby'); // drops pro (used) and payg (unused)
        edited.integrations[0]!.products.pop(); // drops redis (unused)
        const second = await syncCatalog(db, edited);
        assert.deepEqual(second.retired.sort(), ['plan iap_storehouse_postgres/postgres_pro']);
        assert.deepEqual(second.deleted.sort(), [
          'plan iap_storehouse_postgres/postgres_payg',
          'plan iap_storehouse_redis/redis_hobby',
          'plan iap_storehouse_redis/redis_payg',
          'plan iap_storehouse_redis/redis_pro',
          'product iap_storehouse_redis',
        ]);
        const loaded = await Catalog.load(db);
        const product = loaded.findProduct('oac_storehouse', 'postgres');
        assert.equal(product.name, 'Postgres 2');
        // The plan a store still uses is kept, listed as disabled; the unused one is gone.
        assert.deepEqual(
          offeredPlans(product).map((p) => [p.id, p.disabled]),
          [
            ['postgres_hobby', false],
            ['postgres_pro', true],
          ],
        );
        assert.equal(product.plans.find((p) => p.id === 'postgres_pro')?.retired, true);
        assert.throws(() => loaded.findProduct('oac_storehouse', 'redis'), /Could not find the product: redis/);

        // Dropping the whole integration while it is installed and in use retires it all.
        const third = await syncCatalog(db, {
          integrations: [{ ...edited.integrations[0]!, id: 'oac_other', slug: 'other', products: [] }],
        });
        assert.ok(third.retired.includes('integration oac_storehouse'));
        assert.ok(third.retired.includes('product iap_storehouse_postgres'));
        const after = await Catalog.load(db);
        assert.equal(after.integrationById('oac_storehouse')?.retired, true);
        assert.throws(() => after.findIntegration('storehouse'), /Could not find the integration/);

        // A product stores use cannot move to another integration.
        const moving = defaultCatalog();
        moving.integrations.push({
          id: 'oac_elsewhere',
          slug: 'elsewhere',
          name: 'Elsewhere',
          icon: 'x',
          products: [moving.integrations[0]!.products.shift()!],
        });
        await assert.rejects(
          syncCatalog(db, moving),
          /iap_storehouse_postgres: stores of integration oac_storehouse use it, so it cannot move to integration oac_elsewhere/,
        );

        // Putting it back brings it back, under the same ids.
        await syncCatalog(db, defaultCatalog());
        const restored = await Catalog.load(db);
        assert.deepEqual(
          offeredPlans(restored.findProduct('oac_storehouse', 'postgres')).map((p) => [p.id, p.disabled]),
          [
            ['postgres_hobby', false],
            ['postgres_pro', false],
            ['postgres_payg', false],
          ],
        );
      });
    });

    test('nodes syncing one catalog file at once write it once', async () => {
      await withDatabase(backend, async (db) => {
        await migrate(db);
        const source = { file: 'catalog.json', fingerprint: 'fp-once' };
        const results = await Promise.all([1, 2, 3].map(() => syncCatalog(db, defaultCatalog(), source)));
        assert.deepEqual(
          results.map((r) => r.unchanged).sort(),
          [false, true, true],
          'one sync writes, the others find it done under the lock',
        );
        const written = results.find((r) => !r.unchanged)!;
        assert.deepEqual(written.upserted, { integrations: 1, products: 2, plans: 6 }, 'counted once, not per attempt');
        // Another file is synced in full again.
        const next = await syncCatalog(db, defaultCatalog(), { ...source, fingerprint: 'fp-next' });
        assert.equal(next.unchanged, false);
      });
    });

    test('two products may swap slugs', async () => {
      await withDatabase(backend, async (db) => {
        await migrate(db);
        await syncCatalog(db, defaultCatalog());
        const swapped = defaultCatalog();
        const [postgres, redis] = swapped.integrations[0]!.products;
        [postgres!.slug, redis!.slug] = [redis!.slug, postgres!.slug];
        await syncCatalog(db, swapped);
        const catalog = await Catalog.load(db);
        assert.equal(catalog.findProduct('oac_storehouse', 'redis').id, 'iap_storehouse_postgres');
        assert.equal(catalog.findProduct('oac_storehouse', 'postgres').id, 'iap_storehouse_redis');
      });
    });

    test('a start with the catalog already synced skips validating and syncing it again', async () => {
      const dataDir = await freshDataDir();
      const postgres = backend === 'postgres' ? await freshPostgresDatabase() : undefined;
      const file = writeCatalog(defaultCatalog());
      const start = async () => {
        const server = await startServer(backend, { dataDir, databaseUrl: postgres?.url, catalogPath: file });
        await server.close();
        return server.logs.map((line) => JSON.parse(line).msg as string);
      };
      try {
        assert.ok((await start()).includes('catalog synced'));
        const again = await start();
        assert.ok(again.includes('catalog unchanged since it was last synced'));
        assert.ok(!again.includes('catalog synced'));
        // Any change to the file means validating and syncing it again; a broken one stops the start.
        const edited = defaultCatalog();
        edited.integrations[0]!.name = 'Storehouse 2';
        fs.writeFileSync(file, stringify(edited));
        assert.ok((await start()).includes('catalog synced'));
        fs.writeFileSync(file, stringify({ integrations: [] }));
        await assert.rejects(start(), /Invalid catalog .*\n  - \/integrations: must NOT have fewer than 1 items/);
      } finally {
        await postgres?.drop();
        fs.rmSync(dataDir, { recursive: true, force: true });
      }
    });

    test('a server started with another catalog offers exactly that catalog', async () => {
      const catalog = defaultCatalog();
      catalog.integrations[0]!.products[1]!.plans[0]!.disabled = true;
      catalog.integrations.push({
        id: 'oac_acme',
        slug: 'acme',
        name: 'Acme',
        icon: 'https://acme.example/icon.png',
        products: [
          {
            id: 'iap_acme_search',
            slug: 'search',
            name: 'Acme Search',
            protocols: { storage: { status: 'enabled' } },
            provider: { type: 'http', url: 'https://partner.acme.example' },
            metadataSchema: {
              type: 'object',
              properties: {
                regions: {
                  type: 'array',
                  'ui:control': 'multi-vercel-region',
                  items: { type: 'string' },
                  'ui:options': ['iad1', { value: 'fra1', label: 'Frankfurt' }],
                },
                size: {
                  type: 'array',
                  'ui:control': 'slider',
                  items: { type: 'number', minimum: 1, maximum: 8 },
                  'ui:steps': [1, 2, 4, 8],
                  default: [2],
                },
                owner: { type: 'string', 'ui:control': 'git-namespace', 'git:providers': ['github'] },
                tier: {
                  type: 'string',
                  'ui:control': 'radio-button',
                  'ui:options': [{ value: 'a', label: 'A' }],
                  'ui:hidden': { expr: 'false' },
                },
              },
            },
            plans: [{ id: 'free', type: 'subscription', name: 'Free', description: 'Free', paymentMethodRequired: false }],
          },
        ],
      });
      // Redis served (on the PostgreSQL backend the embedded default's own redis-server is not run),
      // so the plans show the catalog's word alone.
      const redis = process.env.STOREHOUSE_TEST_REDIS_URL;
      const env = backend === 'postgres' && redis ? { STOREHOUSE_REDIS_ADMIN_URL: redis } : undefined;
      const server = await startServer(backend, { catalogPath: writeCatalog(catalog), ...(env && { env }) });
      try {
        // Bootstrap installed every integration of the catalog.
        const configurations = await server.sdk().integrations.getConfigurations({ view: 'account' });
        assert.deepEqual(configurations.map((c) => c.slug).sort(), ['acme', 'storehouse']);
        const acme = configurations.find((c) => c.slug === 'acme')!;
        const { products } = await server.sdk().integrations.getConfigurationProducts({ id: acme.id! });
        assert.deepEqual(Object.keys(products[0]!.metadataSchema.properties), ['regions', 'size', 'owner', 'tier']);
        const { plans } = await server.sdk().integrations.getBillingPlans({ integrationIdOrSlug: 'storehouse', productIdOrSlug: 'redis' });
        const servedHere = backend === 'embedded' || redis !== undefined;
        assert.deepEqual(
          plans.map((p) => [p.id, p.disabled]),
          [
            ['redis_hobby', true],
            // Unserved, every plan is shown disabled (the product is listed unavailable).
            ['redis_pro', !servedHere],
            ['redis_payg', !servedHere],
          ],
        );
      } finally {
        await server.close();
      }
    });
  });
}

describe('catalog validation', () => {
  const problemsOf = (mutate: (catalog: CatalogFile) => void): string[] => {
    const catalog = defaultCatalog();
    mutate(catalog);
    try {
      validateCatalog(catalog, 'test.yaml');
    } catch (error) {
      assert.ok(error instanceof CatalogError);
      assert.match(error.message, /^Invalid catalog test\.yaml:/);
      return error.problems;
    }
    return [];
  };
  const product = (catalog: CatalogFile) => catalog.integrations[0]!.products[0]!;

  test('the default catalog is valid', () => {
    assert.deepEqual(
      problemsOf(() => {}),
      [],
    );
    assert.equal(loadCatalogFile(DEFAULT_CATALOG_PATH).integrations[0]!.slug, 'storehouse');
  });

  test('each problem names the field and what was expected', () => {
    const cases: Array<[(catalog: CatalogFile) => void, RegExp]> = [
      [(c) => delete (c.integrations[0] as any).icon, /^\/integrations\/0: missing required field "icon"$/],
      [(c) => ((c.integrations[0] as any).id = 'storehouse'), /^\/integrations\/0\/id: must match pattern "\^oac_/],
      [(c) => ((product(c) as any).id = 'postgres'), /^\/integrations\/0\/products\/0\/id: must match pattern "\^iap_/],
      [(c) => ((product(c) as any).colour = 'blue'), /^\/integrations\/0\/products\/0: unknown field "colour"$/],
      [(c) => ((product(c) as any).tags = ['postgres', 'sql']), /^\/integrations\/0\/products\/0\/tags\/1: must be one of "ai"/],
      [
        (c) => ((product(c).protocols as any).storage = {}),
        /^\/integrations\/0\/products\/0\/protocols\/storage: missing required field "status"$/,
      ],
      [
        (c) => ((product(c).plans[0] as any).type = 'free'),
        /^\/integrations\/0\/products\/0\/plans\/0\/type: must be one of "subscription", "prepayment"$/,
      ],
      [
        (c) => ((product(c).plans[2] as any).minimumAmount = 5),
        /^\/integrations\/0\/products\/0\/plans\/2\/minimumAmount: must be string$/,
      ],
      [
        (c) => delete (product(c).metadataSchema.properties.statementTimeout as any)['ui:options'],
        /properties\/statementTimeout: missing required field "ui:options"$/,
      ],
      [
        (c) => ((product(c).metadataSchema.properties.connectionLimit as any)['ui:read-only'] = 'sometimes'),
        /connectionLimit\/ui:read-only: does not match any of the allowed forms$/,
      ],
      [
        (c) => ((product(c).metadataSchema.properties as any).plain = { type: 'string' }),
        /properties\/plain: missing required field "ui:control"$/,
      ],
      [(c) => ((product(c) as any).provider = { type: 'mysql' }), /provider\/type: must be one of "postgres", "redis", "http"$/],
    ];
    for (const [mutate, expected] of cases) {
      const problems = problemsOf(mutate);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${expected} in ${JSON.stringify(problems)}`,
      );
    }
  });

  test('rules beyond the schema: unique ids, coherent plans, valid defaults', () => {
    const cases: Array<[(catalog: CatalogFile) => void, RegExp]> = [
      [
        (c) => (c.integrations[0]!.products[1]!.slug = 'postgres'),
        /products\/1\/slug: product slug "postgres" is already used at \/integrations\/0\/products\/0\/slug/,
      ],
      [
        (c) => {
          c.integrations[0]!.products[0]!.provider = { type: 'http', url: 'http://127.0.0.1:4000' };
          c.integrations[0]!.products[1]!.provider = { type: 'http', url: 'http://127.0.0.1:4001' };
        },
        /^\/integrations\/0\/products: the products of one integration must name one partner server, not http:\/\/127\.0\.0\.1:4000 and http:\/\/127\.0\.0\.1:4001$/,
      ],
      [(c) => (product(c).plans[1]!.id = 'postgres_hobby'), /plans\/1\/id: plan id "postgres_hobby" is already used/],
      [(c) => delete product(c).plans[2]!.maximumAmount, /plans\/2: missing required field "maximumAmount" \(prepayment plans\)/],
      [(c) => (product(c).plans[2]!.minimumAmount = '0.25'), /plans\/2\/minimumAmount: must be at least "0.50"/],
      [(c) => (product(c).plans[2]!.minimumAmount = '900.00'), /plans\/2\/maximumAmount: must not be less than minimumAmount/],
      [
        (c) => (product(c).plans[0]!.preauthorizationAmount = 5),
        /plans\/0\/preauthorizationAmount: only plans with paymentMethodRequired: true/,
      ],
      [
        (c) => ((product(c).metadataSchema.properties.connectionLimit as any).default = 500),
        /connectionLimit\/default: does not satisfy its own property/,
      ],
      [(c) => (product(c).metadataSchema.required = ['nope']), /metadataSchema\/required\/0: "nope" is not a property of the schema/],
      [
        (c) => ((product(c).metadataSchema.properties as any).bad = { type: 'number', 'ui:control': 'toggle' }),
        /type "number" with ui:control "toggle" is not supported/,
      ],
    ];
    for (const [mutate, expected] of cases) {
      const problems = problemsOf(mutate);
      assert.ok(
        problems.some((p) => expected.test(p)),
        `${expected} in ${JSON.stringify(problems)}`,
      );
    }
  });

  test('unreadable and unparsable files are reported as such', () => {
    assert.throws(() => loadCatalogFile('/no/such/catalog.yaml'), /Invalid catalog \/no\/such\/catalog.yaml:\n  - cannot read the file/);
    const file = writeCatalog(defaultCatalog());
    fs.writeFileSync(file, 'integrations: [\n  {id: oac_x');
    assert.throws(() => loadCatalogFile(file), /not valid YAML or JSON/);
    fs.writeFileSync(file, JSON.stringify(defaultCatalog()));
    assert.equal(loadCatalogFile(file).integrations.length, 1, 'JSON catalogs load too');
  });
});

for (const backend of BACKENDS) {
  describe(`the database layer (${backend})`, () => {
    test('a NUL byte in a parameter fails like PostgreSQL (22021) and leaves the connection in step', async () => {
      await withDatabase(backend, async (db) => {
        await assert.rejects(db.query('SELECT $1::text AS v', ['a\u0000b']), (error) => (error as { code?: string }).code === '22021');
        await assert.rejects(
          db.transaction((tx) => tx.query('SELECT $1::text AS v', [['x', '\u0000']])),
          (error) => (error as { code?: string }).code === '22021',
        );
        for (let i = 0; i < 5; i++) assert.deepEqual((await db.query('SELECT $1::int AS v', [i])).rows, [{ v: i }]);
      });
    });

    test('a write that does not wait for its flush turns synchronous_commit off for itself only', async () => {
      // One connection, so every statement here runs on the session the unflushed writes used.
      await withDatabase(
        backend,
        async (db) => {
          const setting = async (q: Queryable) =>
            (await q.query<{ synchronous_commit: string }>('SHOW synchronous_commit')).rows[0]!.synchronous_commit;
          await db.query('CREATE TABLE unflushed_writes (id int PRIMARY KEY)');
          const inside = await db.transaction(
            async (tx) => {
              await tx.query('INSERT INTO unflushed_writes VALUES (1)');
              return setting(tx);
            },
            { synchronousCommit: false },
          );
          assert.equal(inside, 'off');
          assert.equal(await setting(db), 'on');
          await db.query(`WITH ${UNFLUSHED} INSERT INTO unflushed_writes SELECT 2 FROM unflushed`);
          assert.equal(await setting(db), 'on');
          // A rolled-back one leaves the session as it found it too.
          await assert.rejects(
            db.transaction(
              async (tx) => {
                await tx.query('INSERT INTO unflushed_writes VALUES (1)');
              },
              { synchronousCommit: false },
            ),
            (error) => (error as { code?: string }).code === '23505',
          );
          assert.equal(await setting(db), 'on');
          assert.deepEqual((await db.query('SELECT id FROM unflushed_writes ORDER BY id')).rows, [{ id: 1 }, { id: 2 }]);
        },
        { poolMax: 1 },
      );
    });
  });
}

describe('the bootstrap notice', () => {
  const bootstrapped = { team: { slug: 'my-team' }, token: 'sh_secret_value' } as Bootstrapped;
  const config = { dataDir: '/srv/storehouse', bootstrapToken: undefined } as Config;

  test('shows the token on a terminal, and only where it is saved elsewhere (logs)', () => {
    assert.match(bootstrapNotice(config, bootstrapped, true), /sh_secret_value/);
    const quiet = bootstrapNotice(config, bootstrapped, false);
    assert.doesNotMatch(quiet, /sh_secret_value/);
    assert.match(quiet, /saved in \/srv\/storehouse\/admin-token \(mode 0600\)/);
    assert.equal(bootstrapNotice(config, undefined, true), '');
  });
});

describe('the embedded cluster', () => {
  test('a data dir whose cluster directory holds files but no cluster is refused, not overwritten', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-partial-'));
    try {
      fs.mkdirSync(path.join(dataDir, 'postgres'));
      fs.writeFileSync(path.join(dataDir, 'postgres', 'precious'), 'restored data');
      await assert.rejects(openDatabase({ dataDir }), /holds files but no PostgreSQL cluster \(no PG_VERSION\): refusing to touch it/);
      assert.equal(fs.readFileSync(path.join(dataDir, 'postgres', 'precious'), 'utf8'), 'restored data');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

/** A separate process that takes the lock on `dataDir`, prints what happened, and holds it until killed. */
function lockInChild(dataDir: string, prefix: string[] = []) {
  const script = `
    import { lockDataDir } from ${JSON.stringify(path.join(ROOT, 'src/db/lock.ts'))};
    try { await lockDataDir(${JSON.stringify(dataDir)}); console.log('locked'); setInterval(() => {}, 1000); }
    catch (error) { console.log(error.message); process.exit(3); }`;
  const [command, ...args] = [...prefix, process.execPath, '--import', 'tsx', '--input-type=module', '-e', script];
  const child = spawn(command!, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const firstLine = new Promise<string>((resolve) => {
    let out = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
      if (out.includes('\n')) resolve(out.split('\n')[0]!);
    });
    child.on('exit', () => resolve(out.trim()));
  });
  return { child, firstLine };
}

const canUnshareNet = spawnSync('unshare', ['-n', 'true']).status === 0;

describe('the data dir lock', () => {
  test('holds across network namespaces (containers sharing a volume)', {
    skip: canUnshareNet ? false : 'unshare -n is not permitted here',
  }, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-lock-'));
    try {
      const lock = await lockDataDir(dataDir);
      const other = lockInChild(dataDir, ['unshare', '-n']);
      assert.match(await other.firstLine, /is in use by another Storehouse process \(pid \d+\)/);
      await lock.release();
      const after = lockInChild(dataDir, ['unshare', '-n']);
      assert.equal(await after.firstLine, 'locked');
      after.child.kill('SIGKILL');
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a holder killed with SIGKILL leaves no lock behind', async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-lock-'));
    try {
      const holder = lockInChild(dataDir);
      assert.equal(await holder.firstLine, 'locked');
      await assert.rejects(lockDataDir(dataDir), DataDirLockedError);
      holder.child.kill('SIGKILL');
      await new Promise((resolve) => holder.child.once('exit', resolve));
      const deadline = Date.now() + 3000;
      let lock: Awaited<ReturnType<typeof lockDataDir>> | undefined;
      while (!lock) {
        lock = await lockDataDir(dataDir).catch((error) => {
          if (!(error instanceof DataDirLockedError) || Date.now() > deadline) throw error;
          return undefined;
        });
        if (!lock) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await lock.release();
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  test('a second open of the same embedded data dir is refused until the first closes', async () => {
    const dataDir = await freshDataDir();
    try {
      const first = await openDatabase({ dataDir });
      await assert.rejects(openDatabase({ dataDir }), (error) => error instanceof DataDirLockedError && error.holderPid === process.pid);
      await first.close();
      const second = await openDatabase({ dataDir });
      await second.close();
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
