/**
 * Provisioning latency of the built-in providers against the raw work they wrap, measured
 * alternately in the same run: for Postgres, CREATE ROLE plus CREATE DATABASE over one admin
 * connection; for Redis, one ACL SETUSER. Storehouse's provision adds its books (a record before
 * the server is touched and one after, in the state database) and the hardening statements
 * (REVOKE, GRANT, settings, an advisory lock). Target: at most 1.3 times the raw work.
 *
 * The state is the embedded default's (its own PostgreSQL in a scratch data dir); the Postgres
 * stores go to that same cluster, as on the embedded default, unless STOREHOUSE_BENCH_POSTGRES_URL
 * names another server; Redis is the one at STOREHOUSE_BENCH_REDIS_URL (default 127.0.0.1:6379).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { parse } from 'yaml';
import { Catalog } from '../src/catalog/catalog.ts';
import { syncCatalog } from '../src/catalog/catalog-sync.ts';
import { DEFAULT_CATALOG_PATH } from '../src/config.ts';
import { migrate } from '../src/db/migrate.ts';
import { openDatabase } from '../src/db/open.ts';
import { PostgresProvider } from '../src/providers/postgres.ts';
import type { Provider } from '../src/providers/provider.ts';
import { RedisProvider } from '../src/providers/redis.ts';
import { SecretBox } from '../src/secrets/secret-box.ts';
import { quantile, time } from './measure.ts';

const ROUNDS = 20;
export const TARGET_PROVISION_RATIO = 1.3;

export interface ProvisionResult {
  provider: string;
  /** Where the stores went: `embedded` (the state's own cluster) or the server's host:port. */
  server: string;
  rawMedianMs: number;
  rawP95Ms: number;
  storehouseMedianMs: number;
  storehouseP95Ms: number;
  ratio: number;
  targetMet: boolean;
}

export async function benchProvisioning(log: (line: string) => void): Promise<ProvisionResult[]> {
  const redisUrl = process.env.STOREHOUSE_BENCH_REDIS_URL || 'redis://127.0.0.1:6379';
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-bench-provision-'));
  const results: ProvisionResult[] = [];
  let state: Awaited<ReturnType<typeof openDatabase>> | undefined;
  try {
    state = await openDatabase({ dataDir });
    await migrate(state);
    await syncCatalog(state, parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8')));
    const catalog = await Catalog.load(state);
    const box = SecretBox.fromKey(randomBytes(32));

    const measure = async (
      name: string,
      server: string,
      provider: Provider & { close(): Promise<void> },
      productSlug: string,
      raw: () => Promise<() => Promise<void>>,
    ) => {
      const product = catalog.findProduct('oac_storehouse', productSlug);
      const rawMs: number[] = [];
      const storehouseMs: number[] = [];
      const cleanups: Array<() => Promise<void>> = [];
      for (let i = 0; i < ROUNDS + 2; i++) {
        let cleanup!: () => Promise<void>;
        const rawTime = await time(async () => (cleanup = await raw()));
        cleanups.push(cleanup);
        let id = '';
        const key = `bench-${randomBytes(6).toString('hex')}`;
        const storehouseTime = await time(async () => {
          id = (
            await provider.provision({
              idempotencyKey: key,
              installationId: 'icfg_bench',
              product,
              name: `bench ${i}`,
              metadata: {},
              billingPlanId: product.plans[0]!.id,
            })
          ).resource.id;
        });
        cleanups.push(() => provider.delete('icfg_bench', id, `bench-delete-${id}`));
        if (i >= 2) {
          // The first two rounds warm connections and caches up.
          rawMs.push(rawTime);
          storehouseMs.push(storehouseTime);
        }
      }
      for (const cleanup of cleanups) await cleanup();
      const result: ProvisionResult = {
        provider: name,
        server,
        rawMedianMs: quantile(rawMs, 0.5),
        rawP95Ms: quantile(rawMs, 0.95),
        storehouseMedianMs: quantile(storehouseMs, 0.5),
        storehouseP95Ms: quantile(storehouseMs, 0.95),
        ratio: quantile(storehouseMs, 0.5) / quantile(rawMs, 0.5),
        targetMet: quantile(storehouseMs, 0.5) / quantile(rawMs, 0.5) <= TARGET_PROVISION_RATIO,
      };
      log(
        `  ${name}: raw median ${result.rawMedianMs.toFixed(2)} ms (p95 ${result.rawP95Ms.toFixed(2)}), ` +
          `storehouse median ${result.storehouseMedianMs.toFixed(2)} ms (p95 ${result.storehouseP95Ms.toFixed(2)}), ratio ${result.ratio.toFixed(2)}`,
      );
      results.push(result);
    };

    const configured = process.env.STOREHOUSE_BENCH_POSTGRES_URL || undefined;
    const postgresUrl = configured ?? state.embeddedAdminUrl!;
    const postgresServer = configured ? new URL(configured).host : 'embedded';
    const admin = new pg.Client({ connectionString: postgresUrl });
    const postgresUp = await admin.connect().then(
      () => true,
      () => false,
    );
    if (postgresUp) {
      // As the registry sets it up: on its own embedded cluster Storehouse revokes PUBLIC's CONNECT itself.
      const provider = new PostgresProvider(state, box, { adminUrl: postgresUrl, revokePublicConnect: !configured });
      await measure('postgres', postgresServer, provider, 'postgres', async () => {
        const name = `bench_raw_${randomBytes(6).toString('hex')}`;
        await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD '${randomBytes(16).toString('hex')}'`);
        await admin.query(`CREATE DATABASE ${name} OWNER ${name}`);
        return async () => {
          await admin.query(`DROP DATABASE ${name}`);
          await admin.query(`DROP ROLE ${name}`);
        };
      });
      await provider.close();
      await admin.end();
    } else {
      await admin.end().catch(() => {});
      log(`  postgres: skipped (no PostgreSQL at ${postgresServer})`);
    }

    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    redis.on('error', () => {});
    const redisUp = await redis.connect().then(
      () => true,
      () => false,
    );
    if (redisUp) {
      const provider = new RedisProvider(state, box, { adminUrl: redisUrl });
      while (!(await provider.availability()).available) await new Promise((resolve) => setTimeout(resolve, 20));
      await measure('redis', new URL(redisUrl).host, provider, 'redis', async () => {
        const name = `bench_raw_${randomBytes(6).toString('hex')}`;
        await redis.call('ACL', 'SETUSER', name, 'on', `>${randomBytes(16).toString('hex')}`, `~${name}:*`, '+@all', '-@dangerous');
        return async () => {
          await redis.call('ACL', 'DELUSER', name);
        };
      });
      await provider.close();
      redis.disconnect();
    } else {
      log(`  redis: skipped (no Redis at ${redisUrl}; set STOREHOUSE_BENCH_REDIS_URL)`);
    }
  } finally {
    await state?.close();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
  return results;
}
