/**
 * Store creation and listing, in process on the embedded default (its own PostgreSQL in a scratch
 * data dir, holding the state and the Postgres stores; STOREHOUSE_BENCH_POSTGRES_URL sends the
 * stores to another server instead):
 * - create-store latency through the whole API (auth, validation, plan, billing, quota, the
 *   records before and after) against the same provider's raw provision() in the same run,
 *   alternating, for Postgres and for Redis (at STOREHOUSE_BENCH_REDIS_URL) when it is reachable;
 * - listing a team's 10,000 stores: one page of 100 through the API against the same page read
 *   in process by the store service (runtime.stores.list: the page query and its connections
 *   query, as the route runs them), and the walk through every page.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { randomBase62 } from '../src/ids.ts';
import { startInProcess } from './in-process.ts';
import { quantile, time } from './measure.ts';

const ROUNDS = 20;
const STORES = 10_000;
const PAGE = 100;

/**
 * The metadata both sides of the create measure send: the default catalog's defaults, written
 * out, so the raw provision gets what the API would have filled in for an empty form.
 */
const METADATA: Record<string, Record<string, unknown>> = {
  postgres: { connectionLimit: 20, statementTimeout: 'off' },
  redis: { pubsub: true },
};

export interface CreateResult {
  product: string;
  createMedianMs: number;
  createP95Ms: number;
  rawMedianMs: number;
  rawP95Ms: number;
  ratio: number;
}

export interface ListResult {
  stores: number;
  pageMedianMs: number;
  pageP95Ms: number;
  /** The same page from the store service in process: the route's data access without HTTP. */
  serviceMedianMs: number;
  ratio: number;
  fullWalkMs: number;
  pages: number;
}

async function reachable(postgresUrl: string | undefined, redisUrl: string) {
  let postgres = true; // the embedded default's own
  if (postgresUrl) {
    const client = new pg.Client({ connectionString: postgresUrl });
    postgres = await client.connect().then(
      () => true,
      () => false,
    );
    await client.end().catch(() => {});
  }
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => {});
  const redisUp = await redis.connect().then(
    () => true,
    () => false,
  );
  redis.disconnect();
  return { postgres, redis: redisUp };
}

export async function benchStores(log: (line: string) => void): Promise<{ create: CreateResult[]; list: ListResult }> {
  const postgresUrl = process.env.STOREHOUSE_BENCH_POSTGRES_URL || undefined;
  const redisUrl = process.env.STOREHOUSE_BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
  const up = await reachable(postgresUrl, redisUrl);
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-bench-stores-'));
  const token = `bench-${randomBase62(24)}`;
  // Closed in reverse order at the end, also when a start-up step fails (nothing is left running).
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const { runtime, base } = await startInProcess(
      {
        STOREHOUSE_DATA_DIR: dataDir,
        STOREHOUSE_BOOTSTRAP_TOKEN: token,
        STOREHOUSE_TEAM_STORE_QUOTA: String(STORES * 2),
        ...(postgresUrl && up.postgres && { STOREHOUSE_POSTGRES_ADMIN_URL: postgresUrl }),
        ...(up.redis && { STOREHOUSE_REDIS_ADMIN_URL: redisUrl }),
      },
      closers,
    );
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const create: CreateResult[] = [];
    const [configuration] = (await (await fetch(`${base}/v1/integrations/configurations?view=account`, { headers })).json()) as Array<{
      id: string;
    }>;
    const icfg = configuration!.id;
    await fetch(`${base}/_storehouse/payment-methods`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ cardNumber: '4242424242424242' }),
    });

    const measure = async (slug: string, plan: string) => {
      const metadata = METADATA[slug]!;
      const product = runtime.catalog.findProduct('oac_storehouse', slug);
      const provider = runtime.providers.for(product);
      const createMs: number[] = [];
      const rawMs: number[] = [];
      const raw: Array<string> = [];
      for (let i = 0; i < ROUNDS + 2; i++) {
        const rawTime = await time(async () => {
          const { resource } = await provider.provision({
            idempotencyKey: `bench-raw-${randomBase62(8)}`,
            installationId: icfg,
            product,
            name: `raw ${i}`,
            metadata,
            billingPlanId: plan,
          });
          raw.push(resource.id);
        });
        const createTime = await time(async () => {
          const response = await fetch(`${base}/v1/storage/stores/integration/direct`, {
            method: 'POST',
            headers,
            body: JSON.stringify({
              name: `bench-${slug}-${i}`,
              integrationConfigurationId: icfg,
              integrationProductIdOrSlug: slug,
              metadata,
              billingPlanId: plan,
            }),
          });
          if (response.status !== 200) throw new Error(`create failed: ${response.status} ${await response.text()}`);
          await response.arrayBuffer();
        });
        if (i >= 2) {
          rawMs.push(rawTime);
          createMs.push(createTime);
        }
      }
      for (const id of raw) await provider.delete(icfg, id, `bench-delete-${id}`);
      const { rows } = await runtime.db.query<{ id: string }>('SELECT id FROM stores WHERE name LIKE $1', [`bench-${slug}-%`]);
      for (const { id } of rows)
        await fetch(`${base}/v1/storage/stores/integration/${id}`, { method: 'DELETE', headers: { authorization: headers.authorization } });
      const result: CreateResult = {
        product: slug,
        createMedianMs: quantile(createMs, 0.5),
        createP95Ms: quantile(createMs, 0.95),
        rawMedianMs: quantile(rawMs, 0.5),
        rawP95Ms: quantile(rawMs, 0.95),
        ratio: quantile(createMs, 0.5) / quantile(rawMs, 0.5),
      };
      log(
        `  create ${slug}: API median ${result.createMedianMs.toFixed(2)} ms (p95 ${result.createP95Ms.toFixed(2)}) vs raw provision ` +
          `${result.rawMedianMs.toFixed(2)} ms (p95 ${result.rawP95Ms.toFixed(2)}), ratio ${result.ratio.toFixed(2)}`,
      );
      create.push(result);
    };
    if (up.redis) await measure('redis', 'redis_pro');
    else log(`  create redis: skipped (no Redis at ${redisUrl})`);
    if (up.postgres) await measure('postgres', 'postgres_pro');
    else log(`  create postgres: skipped (no PostgreSQL at STOREHOUSE_BENCH_POSTGRES_URL)`);

    // 10,000 stores, written directly (provisioning them would measure the provider, not the list).
    const { rows: team } = await runtime.db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'");
    await runtime.db.query(
      `INSERT INTO stores (id, team_id, installation_id, product_id, billing_plan_id, name, status, source, metadata, provision_key, secret_summary, external_resource_id, external_resource_status)
       SELECT 'store_bench' || g, $1, $2, 'iap_storehouse_redis', 'redis_hobby', 'listed-' || g, 'available', 'marketplace', '{"pubsub":false}', 'k' || g,
              '[{"name":"REDIS_URL","length":60},{"name":"KV_URL","length":60}]', 'sh_' || g, 'ready'
         FROM generate_series(1, $3) AS g`,
      [team[0]!.id, icfg, STORES],
    );
    // The baseline is the route's own data access, called in process with the same token's actor.
    const actor = await runtime.access.actor(await runtime.access.principal(headers.authorization), {});
    if (actor.team.id !== team[0]!.id) throw new Error('the token does not act for the team holding the stores');
    const pageMs: number[] = [];
    const serviceMs: number[] = [];
    for (let i = 0; i < ROUNDS + 2; i++) {
      const service = await time(async () => {
        const { views } = await runtime.stores.list(actor, { limit: PAGE });
        if (views.length !== PAGE) throw new Error(`a service page of ${views.length} stores`);
      });
      const page = await time(async () => {
        const response = await fetch(`${base}/v1/storage/stores?limit=${PAGE}`, { headers });
        const body = (await response.json()) as { stores: unknown[] };
        if (body.stores.length !== PAGE) throw new Error(`a page of ${body.stores.length} stores`);
      });
      if (i >= 2) {
        serviceMs.push(service);
        pageMs.push(page);
      }
    }
    let pages = 0;
    let seen = 0;
    const fullWalkMs = await time(async () => {
      let until: number | null = null;
      do {
        const response = await fetch(`${base}/v1/storage/stores?limit=${PAGE}${until === null ? '' : `&until=${until}`}`, { headers });
        const body = (await response.json()) as { stores: unknown[]; pagination: { next: number | null } };
        seen += body.stores.length;
        pages++;
        until = body.pagination.next;
      } while (until !== null);
    });
    if (seen !== STORES) throw new Error(`the walk saw ${seen} stores of ${STORES}`);
    const list: ListResult = {
      stores: STORES,
      pageMedianMs: quantile(pageMs, 0.5),
      pageP95Ms: quantile(pageMs, 0.95),
      serviceMedianMs: quantile(serviceMs, 0.5),
      ratio: quantile(pageMs, 0.5) / quantile(serviceMs, 0.5),
      fullWalkMs,
      pages,
    };
    log(
      `  list of ${STORES} stores: a page of ${PAGE} median ${list.pageMedianMs.toFixed(2)} ms (p95 ${list.pageP95Ms.toFixed(2)}) vs the store service's ` +
        `list (page + connections queries, in process) ${list.serviceMedianMs.toFixed(2)} ms, ratio ${list.ratio.toFixed(2)}; every page (${pages}) in ${fullWalkMs.toFixed(0)} ms`,
    );
    return { create, list };
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
}

if (process.argv[1]?.endsWith('bench/stores.ts')) {
  await benchStores((line) => process.stdout.write(`${line}\n`));
}
