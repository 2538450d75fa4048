/**
 * The embedded default, as `npm start` runs it (`node dist/storehouse.js`, no DATABASE_URL, no
 * STOREHOUSE_POSTGRES_ADMIN_URL: Storehouse starts its own PostgreSQL in STOREHOUSE_DATA_DIR):
 * - start to the first 200 of /healthz on an empty and on an existing data dir, alternating with
 *   the same PostgreSQL cluster started alone (src/db/postgres-server.ts, in the bench process);
 * - the memory of Storehouse and of everything it started (PSS summed), idle and with 100 stores;
 * - creating a Postgres store through the API against the raw CREATE ROLE + CREATE DATABASE on
 *   the same cluster (the superuser's password and port are in the data dir), alternating, one at
 *   a time and 20 at once.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { PostgresServer } from '../src/db/postgres-server.ts';
import { HOST, makeTempDir, request, ROOT, spawnTracked, stop, treeMemory, waitFor200, type Spawned, type TreeMemory } from './children.ts';
import { freePort, median, quantile, time } from './measure.ts';

export const TOKEN = 'bench-token-0123456789abcdef';
export const auth = { authorization: `Bearer ${TOKEN}` };

export const TARGETS = {
  existingStartMs: 500,
  freshStartMs: 5000,
  idleMemoryMb: 150,
  perStoreMb: 2,
  createMedianMs: 100,
  createRatio: 1.3,
  concurrentCreatesMs: 3000,
};

const FRESH_RUNS = 3;
const EXISTING_RUNS = 5;
const MEMORY_STORES = 100;
const MEMORY_CREATE_CONCURRENCY = 4;
const IDLE_MS = 2000;
const CREATE_ROUNDS = 20;
const CREATE_WARMUP = 2;
const CONCURRENT = 20;
const CONCURRENT_ROUNDS = 3;

export interface Server extends Spawned {
  port: number;
  dataDir: string;
  /** Milliseconds from spawn to the first 200 on /healthz. */
  startupMs: number;
}

/** The embedded default's environment: none of the variables that point Storehouse at servers of someone else's. */
function embeddedEnv(port: number, dataDir: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PORT: String(port),
    HOST,
    STOREHOUSE_DATA_DIR: dataDir,
    STOREHOUSE_BOOTSTRAP_TOKEN: TOKEN,
    LOG_LEVEL: 'warn',
    // Far above what the bench sends: the limiters stay on and count every request, as in production.
    STOREHOUSE_RATE_LIMIT_REQUESTS: '1000000000',
    STOREHOUSE_RATE_LIMIT_STORE_CREATES: '1000000000',
    // The default quota (100) is below the bench's stores.
    STOREHOUSE_TEAM_STORE_QUOTA: '1000',
  };
  for (const name of [
    'DATABASE_URL',
    'STOREHOUSE_POSTGRES_ADMIN_URL',
    'STOREHOUSE_REDIS_ADMIN_URL',
    'REDIS_URL',
    'STOREHOUSE_EMBEDDED_POSTGRES_PORT',
  ])
    delete env[name];
  return env;
}

/** Starts a build (`entry`, dist/storehouse.js unless given; `nodeArgs` before it) on the embedded default, until /healthz answers 200. */
export async function startStorehouse(dataDir: string, options: { entry?: string; nodeArgs?: string[] } = {}): Promise<Server> {
  const port = await freePort();
  const entry = options.entry ?? path.join(ROOT, 'dist/storehouse.js');
  const started = performance.now();
  const proc = spawnTracked(process.execPath, [...(options.nodeArgs ?? []), entry], embeddedEnv(port, dataDir));
  try {
    await waitFor200(proc, port, '/healthz');
  } catch (error) {
    await stop(proc).catch(() => undefined);
    throw error;
  }
  return { ...proc, port, dataDir, startupMs: performance.now() - started };
}

export async function getOk(port: number, urlPath: string): Promise<string> {
  const response = await request(port, 'GET', urlPath, 30_000, auth);
  if (response.status !== 200) throw new Error(`GET ${urlPath} answered ${response.status}: ${response.body.slice(0, 500)}`);
  return response.body;
}

// ---------------------------------------------------------------------------------------------
// 1. Start-up.

export interface StartupResult {
  freshMedianMs: number;
  freshRunsMs: number[];
  /** The same cluster's first start alone: initdb and start (src/db/postgres-server.ts). */
  freshPostgresMedianMs: number;
  freshPostgresRunsMs: number[];
  existingMedianMs: number;
  existingRunsMs: number[];
  existingPostgresMedianMs: number;
  existingPostgresRunsMs: number[];
}

/** Alternates Storehouse's starts with its PostgreSQL's alone; returns the data dir of the first fresh start, kept. */
export async function benchStartup(log: (line: string) => void): Promise<{ result: StartupResult; dataDir: string }> {
  const fresh: number[] = [];
  const freshPostgres: number[] = [];
  let dataDir: string | undefined;
  let clusterDir: string | undefined;
  const startPostgres = async (dir: string) => {
    let server: PostgresServer | undefined;
    const ms = await time(async () => {
      server = await PostgresServer.start({ dataDir: dir });
    });
    await server!.stop();
    return ms;
  };
  for (let i = 0; i < FRESH_RUNS; i++) {
    const dir = await makeTempDir('storehouse-bench-');
    const server = await startStorehouse(dir);
    await stop(server);
    fresh.push(server.startupMs);
    const pgDir = await makeTempDir('storehouse-bench-pg-');
    const pgMs = await startPostgres(pgDir);
    freshPostgres.push(pgMs);
    log(
      `  empty data dir ${i + 1}/${FRESH_RUNS}: Storehouse ${Math.round(server.startupMs)} ms to first 200; its PostgreSQL alone ${Math.round(pgMs)} ms`,
    );
    dataDir ??= dir;
    clusterDir ??= pgDir;
  }
  const existing: number[] = [];
  const existingPostgres: number[] = [];
  for (let i = 0; i < EXISTING_RUNS; i++) {
    const server = await startStorehouse(dataDir!);
    await stop(server);
    existing.push(server.startupMs);
    const pgMs = await startPostgres(clusterDir!);
    existingPostgres.push(pgMs);
    log(
      `  existing data dir ${i + 1}/${EXISTING_RUNS}: Storehouse ${Math.round(server.startupMs)} ms to first 200; its PostgreSQL alone ${Math.round(pgMs)} ms`,
    );
  }
  return {
    dataDir: dataDir!,
    result: {
      freshMedianMs: median(fresh),
      freshRunsMs: fresh,
      freshPostgresMedianMs: median(freshPostgres),
      freshPostgresRunsMs: freshPostgres,
      existingMedianMs: median(existing),
      existingRunsMs: existing,
      existingPostgresMedianMs: median(existingPostgres),
      existingPostgresRunsMs: existingPostgres,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Store creation through the API.

export interface Api {
  server: Server;
  installationId: string;
  /**
   * The connections creates are sent on, kept open between requests as @vercel/sdk and the CLI
   * keep theirs (and as the raw side's SQL connection is opened beforehand).
   */
  agent: http.Agent;
}

export async function openApi(server: Server): Promise<Api> {
  const configurations: unknown = JSON.parse(await getOk(server.port, '/v1/integrations/configurations?view=account'));
  const first: unknown = Array.isArray(configurations) ? configurations[0] : undefined;
  const id = typeof first === 'object' && first !== null && 'id' in first && typeof first.id === 'string' ? first.id : undefined;
  if (id === undefined)
    throw new Error(
      `no configuration in GET /v1/integrations/configurations?view=account: ${JSON.stringify(configurations).slice(0, 300)}`,
    );
  return { server, installationId: id, agent: new http.Agent({ keepAlive: true }) };
}

/** POST /v1/storage/stores/integration/direct for a free Postgres store; its id. */
export async function createStore(api: Api, name: string): Promise<string> {
  const response = await request(
    api.server.port,
    'POST',
    '/v1/storage/stores/integration/direct',
    60_000,
    { ...auth, 'content-type': 'application/json' },
    JSON.stringify({
      name,
      integrationConfigurationId: api.installationId,
      integrationProductIdOrSlug: 'postgres',
      billingPlanId: 'postgres_hobby',
    }),
    api.agent,
  );
  if (response.status !== 200) throw new Error(`create of ${name} answered ${response.status}: ${response.body.slice(0, 500)}`);
  return (JSON.parse(response.body) as { store: { id: string } }).store.id;
}

// ---------------------------------------------------------------------------------------------
// 2. Memory.

export interface MemoryResult {
  idle: TreeMemory;
  withStores: TreeMemory;
  stores: number;
  perStoreMb: number;
}

async function settledMemory(api: Api, productsPath: string): Promise<TreeMemory> {
  for (let i = 0; i < 5; i++) {
    await getOk(api.server.port, productsPath);
    await getOk(api.server.port, '/v2/user');
    await getOk(api.server.port, '/healthz');
  }
  await sleep(IDLE_MS);
  return treeMemory(api.server.pid);
}

export async function benchMemory(
  api: Api,
  productsPath: string,
  log: (line: string) => void,
): Promise<{ result: MemoryResult; storeIds: string[] }> {
  const show = (m: TreeMemory) =>
    `${m.totalMb.toFixed(1)} MB (${Object.entries(m.byKindMb)
      .map(([kind, mb]) => `${kind} ${mb.toFixed(1)}`)
      .join(', ')}; ${m.processes} processes)`;
  const idle = await settledMemory(api, productsPath);
  log(`  idle, after a few requests + ${IDLE_MS / 1000} s: ${show(idle)}`);
  const storeIds: string[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: MEMORY_CREATE_CONCURRENCY }, async () => {
      while (next < MEMORY_STORES) {
        const i = next++;
        storeIds.push(await createStore(api, `memory-${i}`));
      }
    }),
  );
  const withStores = await settledMemory(api, productsPath);
  const perStoreMb = (withStores.totalMb - idle.totalMb) / MEMORY_STORES;
  log(`  with ${MEMORY_STORES} Postgres stores more: ${show(withStores)}; ${perStoreMb.toFixed(2)} MB a store`);
  return { result: { idle, withStores, stores: MEMORY_STORES, perStoreMb }, storeIds };
}

// ---------------------------------------------------------------------------------------------
// 3. Creating Postgres stores against the raw SQL on the same cluster.

export interface CreateResult {
  apiMedianMs: number;
  apiP95Ms: number;
  rawMedianMs: number;
  rawP95Ms: number;
  ratio: number;
  concurrent: number;
  concurrentApiMedianMs: number;
  concurrentApiRunsMs: number[];
  concurrentRawMedianMs: number;
  concurrentRawRunsMs: number[];
}

/** The embedded cluster's superuser, from the files Storehouse keeps in its data dir. */
function superuserUrl(dataDir: string): string {
  const password = readFileSync(path.join(dataDir, 'postgres-password'), 'utf8').trim();
  const port = readFileSync(path.join(dataDir, 'postgres-port'), 'utf8').trim();
  return `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
}

/** What a provider's work comes down to: a role that may log in, and a database it owns. */
async function rawCreate(client: pg.Client): Promise<void> {
  const name = `bench_raw_${randomBytes(6).toString('hex')}`;
  await client.query(`CREATE ROLE ${name} LOGIN PASSWORD '${randomBytes(16).toString('hex')}'`);
  await client.query(`CREATE DATABASE ${name} OWNER ${name}`);
}

export async function benchCreates(api: Api, log: (line: string) => void): Promise<CreateResult> {
  const connect = async () => {
    const client = new pg.Client({ connectionString: superuserUrl(api.server.dataDir) });
    await client.connect();
    return client;
  };
  const admin = await connect();
  const pool: pg.Client[] = [];
  try {
    const apiMs: number[] = [];
    const rawMs: number[] = [];
    for (let i = 0; i < CREATE_ROUNDS + CREATE_WARMUP; i++) {
      const raw = await time(() => rawCreate(admin));
      const through = await time(() => createStore(api, `create-${i}`));
      if (i >= CREATE_WARMUP) {
        rawMs.push(raw);
        apiMs.push(through);
      }
    }
    const result = {
      apiMedianMs: median(apiMs),
      apiP95Ms: quantile(apiMs, 0.95),
      rawMedianMs: median(rawMs),
      rawP95Ms: quantile(rawMs, 0.95),
      ratio: median(apiMs) / median(rawMs),
    };
    log(
      `  one at a time (${CREATE_ROUNDS} after ${CREATE_WARMUP} warm-up): API median ${result.apiMedianMs.toFixed(1)} ms (p95 ${result.apiP95Ms.toFixed(1)}) ` +
        `vs raw CREATE ROLE + CREATE DATABASE ${result.rawMedianMs.toFixed(1)} ms (p95 ${result.rawP95Ms.toFixed(1)}): ratio ${result.ratio.toFixed(2)}`,
    );
    // 20 at once: the raw side on 20 connections opened beforehand, the API side on 20 requests.
    for (let i = 0; i < CONCURRENT; i++) pool.push(await connect());
    const concurrentApi: number[] = [];
    const concurrentRaw: number[] = [];
    for (let round = 0; round < CONCURRENT_ROUNDS; round++) {
      const raw = await time(() => Promise.all(pool.map((client) => rawCreate(client))));
      const through = await time(() =>
        Promise.all(Array.from({ length: CONCURRENT }, (_, j) => createStore(api, `concurrent-${round}-${j}`))),
      );
      concurrentRaw.push(raw);
      concurrentApi.push(through);
      log(
        `  ${CONCURRENT} at once, round ${round + 1}/${CONCURRENT_ROUNDS}: API ${Math.round(through)} ms (all 200), raw ${Math.round(raw)} ms`,
      );
    }
    return {
      ...result,
      concurrent: CONCURRENT,
      concurrentApiMedianMs: median(concurrentApi),
      concurrentApiRunsMs: concurrentApi,
      concurrentRawMedianMs: median(concurrentRaw),
      concurrentRawRunsMs: concurrentRaw,
    };
  } finally {
    await Promise.all([admin, ...pool].map((client) => client.end().catch(() => undefined)));
  }
}
