/**
 * `npm run chaos`: Storehouse as a real process on a private PostgreSQL (its state), a second
 * private PostgreSQL (where the Postgres provider makes stores) and a private Redis, so every
 * role, database and ACL user there is the run's own and the counts are exact.
 *
 * Phase "crashes": mixed creates and deletes while Storehouse is killed with SIGKILL at random
 * moments and started again. Phase "outages": the state PostgreSQL stopped during requests and
 * started again, then Redis. After each phase, once recovery has had its chance, the invariants
 * of checks.ts are checked. Bounded by counts and deadlines; `--long` for a bigger run.
 *
 * `--nodes N` (N > 1): N Storehouse processes on the same servers (one secret key, Redis for the
 * shared rate limits too) behind the round-robin client of api.ts, and multinode.ts's phases:
 * kills of a random node while it has work under way (timed until that work is taken over),
 * same-key creates sent to two nodes at once, the outages, and hangs (SIGSTOP) of Redis and of
 * the state PostgreSQL, where no request may wait past a bound the configured timeouts give.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { parse } from 'yaml';
import { DEFAULT_CATALOG_PATH } from '../src/config.ts';
import { writeCatalogFile } from '../test/helpers.ts';
import { freePort } from '../test/partner-fixtures.ts';
import { StorehouseApi, Tally, type Product } from './api.ts';
import { checkCredentials, checkLedger, listsDiffer, orphans, providerInventory, secretsInLogs, settle } from './checks.ts';
import { PrivatePostgres } from './postgres-server.ts';
import { Random } from './random.ts';
import { PrivateRedis } from './redis-server.ts';
import { runOutage } from './outages.ts';
import { failuresOf, type PhaseResult } from './report.ts';
import { StorehouseProcess } from './storehouse-process.ts';
import { Ledger, Workload } from './workload.ts';
import { hangPhase, multiNodeCrashPhase, NODE_TIMEOUTS } from './multinode.ts';
import { leaseIds, statePool } from './takeover.ts';

export interface ChaosOptions {
  seed: number;
  long: boolean;
  /** Storehouse processes (1 unless given): more than one runs the multi-node mode. */
  nodes?: number;
  /** Progress lines (to stderr by default). */
  log?: (line: string) => void;
}

export interface ChaosResult {
  seed: number;
  phases: Record<string, PhaseResult>;
  failures: string[];
  durationMs: number;
  /** Where the logs of Storehouse and the private servers were saved. */
  logDir: string;
}

const SIZES = {
  short: {
    kills: 10,
    maxCreates: 200,
    concurrency: 3,
    outageMs: 4_000,
    outageRounds: 1,
    settleMs: 180_000,
    stateOutage: true,
    storesHang: false,
  },
  long: {
    kills: 40,
    maxCreates: 1000,
    concurrency: 4,
    outageMs: 15_000,
    outageRounds: 3,
    settleMs: 300_000,
    stateOutage: true,
    storesHang: true,
  },
  /**
   * Several nodes, short (the run in npm test): a few kills, then Redis and the state PostgreSQL
   * hung; no outage phase (the single-node run stops both), to stay within about two minutes.
   */
  multiShort: {
    kills: 3,
    maxCreates: 200,
    concurrency: 3,
    outageMs: 4_000,
    outageRounds: 0,
    settleMs: 180_000,
    stateOutage: false,
    storesHang: false,
  },
  multiLong: {
    kills: 20,
    maxCreates: 800,
    concurrency: 4,
    outageMs: 10_000,
    outageRounds: 2,
    settleMs: 300_000,
    stateOutage: true,
    storesHang: true,
  },
};

export type Size = (typeof SIZES)['short'];

/** How long a kill waits for the process to acknowledge something before it kills it anyway. */
const PROGRESS_DEADLINE_MS = 60_000;

/** Short, so an interrupted create is recovered (at twice this) within seconds. */
const PROVISION_TIMEOUT_MS = 5_000;

/** The default catalog without per-team limits on free plans, so a run can make many stores. */
function chaosCatalog(): string {
  const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
  for (const integration of catalog.integrations) {
    for (const product of integration.products) for (const plan of product.plans) delete plan.resourceLimit;
  }
  return writeCatalogFile(catalog);
}

export function emptyPhase(): PhaseResult {
  return {
    ...emptyCounts(),
    disagreements: [],
    crossNodePairs: 0,
    listsDiffer: [],
    takeoverMs: [],
    takeoversLate: [],
    keyedRetryAfterCutMs: [],
    hangWaits: [],
    slowestInHangMs: undefined,
    idle: [],
  };
}

function emptyCounts() {
  return {
    creates: 0,
    acknowledged: 0,
    deletes: 0,
    deletesAcknowledged: 0,
    kills: 0,
    lost: [],
    deletedButPresent: [],
    duplicates: [],
    stuck: [],
    orphanRoles: [],
    orphanDatabases: [],
    orphanAclUsers: [],
    brokenCredentials: [],
    tenantLeaks: [],
    secretsInLogs: [],
    fiveHundreds: [],
    otherServerErrors: [],
    malformedErrors: [],
    unexpectedExits: [],
    unavailable: 0,
    keyedRepeatsNameTaken: [],
    settleMs: 0,
    recovery: [],
    notes: [],
  };
}

/** Everything a run has started, so it can all be stopped, whatever happened. */
export interface Rig {
  statePostgres: PrivatePostgres;
  storesPostgres: PrivatePostgres;
  redis: PrivateRedis;
  /** The first node (the only one unless --nodes). */
  storehouse: StorehouseProcess;
  nodes: StorehouseProcess[];
  /** Each node's current process's lease (node_leases.node_id), learnt at its start; undefined when it could not be. */
  nodeIds: Array<string | undefined>;
  /** The state database as its admin, for the leases and the work under way (multi-node mode). */
  state: pg.Pool;
  api: StorehouseApi;
  tally: Tally;
  token: string;
  installationId: string;
  random: Random;
  log: (line: string) => void;
  /** Passwords seen so far (every check round adds the stores' current ones). */
  passwords: Set<string>;
}

/**
 * Starts node `index` again (or for the first time) and learns its lease: nodes start one at a
 * time, so the one lease that is new after its start is its own.
 */
export async function startNode(rig: Rig, index: number): Promise<void> {
  // Before the first start there is no lease table yet: no lease.
  const before = await leaseIds(rig.state).catch((): string[] => []);
  await rig.nodes[index]!.start();
  const after = await leaseIds(rig.state).catch((): string[] => []);
  const fresh = after.filter((id) => !before.includes(id));
  rig.nodeIds[index] = fresh.length === 1 ? fresh[0] : undefined;
}

async function startRig(options: ChaosOptions, log: (line: string) => void, cleanups: Array<() => void>): Promise<Rig> {
  const random = new Random(options.seed);
  const nodeCount = options.nodes ?? 1;
  const [statePort, storesPort, redisPort] = [await freePort(), await freePort(), await freePort()];
  const ports: number[] = [];
  for (let i = 0; i < nodeCount; i++) ports.push(await freePort());
  log(`starting PostgreSQL (state) on ${statePort}, PostgreSQL (stores) on ${storesPort}, Redis on ${redisPort}`);
  const statePostgres = await PrivatePostgres.create('state', statePort);
  cleanups.push(() => statePostgres.destroy());
  const storesPostgres = await PrivatePostgres.create('stores', storesPort);
  cleanups.push(() => storesPostgres.destroy());
  const redis = new PrivateRedis(redisPort);
  cleanups.push(() => redis.destroy());
  await redis.start();
  const admin = new pg.Client({ connectionString: statePostgres.adminUrl });
  await admin.connect();
  await admin.query('CREATE DATABASE storehouse');
  await admin.end();

  const catalogFile = chaosCatalog();
  cleanups.push(() => fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true }));
  const token = `chaos-${random.int(1e9, 9e9)}-${options.seed}-token`;
  // Several nodes must seal secrets with one key; a single node generates its own into its data dir.
  const secretKey = nodeCount > 1 ? crypto.randomBytes(32).toString('hex') : undefined;
  const nodes: StorehouseProcess[] = [];
  for (const port of ports) {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-chaos-data-'));
    cleanups.push(() => fs.rmSync(dataDir, { recursive: true, force: true }));
    const env: Record<string, string> = {
      PORT: String(port),
      DATABASE_URL: statePostgres.urlOf('storehouse'),
      STOREHOUSE_DATA_DIR: dataDir,
      STOREHOUSE_CATALOG: catalogFile,
      STOREHOUSE_BOOTSTRAP_TOKEN: token,
      STOREHOUSE_POSTGRES_ADMIN_URL: storesPostgres.adminUrl,
      STOREHOUSE_REDIS_ADMIN_URL: redis.url,
      STOREHOUSE_PROVISION_TIMEOUT_MS: String(PROVISION_TIMEOUT_MS),
      STOREHOUSE_TEAM_STORE_QUOTA: '100000',
      STOREHOUSE_RATE_LIMIT_STORE_CREATES: '0',
      STOREHOUSE_RATE_LIMIT_REQUESTS: '0',
      REDIS_URL: '',
      LOG_LEVEL: 'info',
    };
    if (secretKey) {
      Object.assign(env, {
        STOREHOUSE_SECRET_KEY: secretKey,
        // The shared rate limits count in this Redis, so its hang reaches every authenticated request;
        // limits too high to refuse anything.
        REDIS_URL: redis.url,
        STOREHOUSE_RATE_LIMIT_STORE_CREATES: '1000000',
        STOREHOUSE_RATE_LIMIT_REQUESTS: '1000000',
        STOREHOUSE_LEASE_MS: String(NODE_TIMEOUTS.leaseMs),
        STOREHOUSE_DB_CONNECT_TIMEOUT_MS: String(NODE_TIMEOUTS.dbConnectMs),
        STOREHOUSE_DB_QUERY_TIMEOUT_MS: String(NODE_TIMEOUTS.dbQueryMs),
        STOREHOUSE_RATE_LIMIT_REDIS_TIMEOUT_MS: String(NODE_TIMEOUTS.rateLimitRedisMs),
      });
    }
    const node = new StorehouseProcess(`http://127.0.0.1:${port}`, env);
    cleanups.push(() => node.destroy());
    nodes.push(node);
  }
  const state = statePool(statePostgres.urlOf('storehouse'));
  cleanups.push(() => void state.end().catch(() => {}));
  const tally = new Tally();
  const api = new StorehouseApi(
    nodes.map((node) => node.url),
    token,
    tally,
  );
  const rig: Rig = {
    statePostgres,
    storesPostgres,
    redis,
    storehouse: nodes[0]!,
    nodes,
    nodeIds: nodes.map(() => undefined),
    state,
    api,
    tally,
    token,
    installationId: '',
    random,
    log,
    passwords: new Set(),
  };
  // One at a time: the first applies the migrations and the bootstrap, and each start's new lease is its node's.
  for (let index = 0; index < nodes.length; index++) await startNode(rig, index);
  if (nodes.length > 1) log(`${nodes.length} nodes started in ${nodes.map((node) => node.startTimesMs[0]).join(', ')} ms`);
  rig.installationId = await api.installationId();
  return rig;
}

/** Fills a phase's result with what the ledger and the tally say, then checks every invariant. */
export async function checkPhase(rig: Rig, phase: string, result: PhaseResult, ledger: Ledger, settleMs: number): Promise<void> {
  const { api, tally } = rig;
  result.creates = ledger.createRequests;
  result.acknowledged = ledger.acknowledged().length;
  result.deletes = ledger.deleteRequests;
  result.deletesAcknowledged = ledger.deletesAcknowledged;
  rig.log(`${phase}: waiting for every store to settle`);
  const settled = await settle(api, settleMs);
  result.settleMs = settled.ms;
  result.stuck = settled.unsettled.map(
    (s) => `${s.name} (${s.id}, ${s.product?.slug}) ${s.status}${s.notification?.title ? `: ${s.notification.title}` : ''}`,
  );
  const listed = await api.stores();
  Object.assign(result, checkLedger(ledger, listed));
  if (api.nodes > 1) {
    result.listsDiffer = await listsDiffer(api);
    result.crossNodePairs = ledger.creates.reduce((n, c) => n + c.crossNodePairs, 0);
    result.keyedRetryAfterCutMs = ledger.creates.flatMap((c) => (c.resolvedAfterCutMs === undefined ? [] : [c.resolvedAfterCutMs]));
  }

  rig.log(`${phase}: checking the credentials of ${listed.length} stores`);
  const available = listed.filter((store) => store.status === 'available');
  const { secrets, failures } = await api.secretsOf(available, `chaos-verify-${phase}`);
  const credentials = await checkCredentials(available, secrets);
  result.brokenCredentials = [...failures, ...credentials.broken];
  result.tenantLeaks = credentials.tenantLeaks;
  for (const password of credentials.passwords) rig.passwords.add(password);

  // Removing a deleted store's role or user may trail its record by a moment: give it 30 s.
  let stray = orphans(await providerInventory(rig.storesPostgres.adminUrl, rig.redis.url), listed, credentials.owned);
  for (
    const deadline = Date.now() + 30_000;
    Date.now() < deadline && stray.roles.length + stray.databases.length + stray.aclUsers.length > 0;
  ) {
    await sleep(500);
    stray = orphans(await providerInventory(rig.storesPostgres.adminUrl, rig.redis.url), await api.stores(), credentials.owned);
  }
  result.orphanRoles = stray.roles;
  result.orphanDatabases = stray.databases;
  result.orphanAclUsers = stray.aclUsers;

  result.secretsInLogs = secretsInLogs([...rig.passwords, rig.token], {
    ...Object.fromEntries(rig.nodes.map((node, index) => [rig.nodes.length > 1 ? `node ${index}'s logs` : 'Storehouse logs', node.logs()])),
    'the state PostgreSQL log': rig.statePostgres.log(),
    'the stores PostgreSQL log': rig.storesPostgres.log(),
    'the Redis log': rig.redis.log(),
  });
  const errors = tally.serverErrors.filter((e) => e.phase === phase);
  result.fiveHundreds = errors.filter((e) => e.status === 500).map((e) => `${e.what}: ${e.code} ${e.message ?? ''}`.trim());
  // Every dependency the provider needs is up in the crash phase, and a dependency that is down
  // must be a 503 that says so: any other 5xx is a finding in either phase.
  result.otherServerErrors = errors
    .filter((e) => e.status > 500 && e.status !== 503)
    .map((e) => `${e.what}: ${e.status} ${e.code} ${e.message ?? ''}`.trim());
  result.malformedErrors = tally.malformedErrors.filter((e) => e.phase === phase).map((e) => `${e.what} ${e.status}: ${e.body}`);
  result.unavailable = tally.count(phase, (status) => status === 503);
  const outcomes = [...(tally.byOutcome.get(phase) ?? new Map<string, number>())].sort(([a], [b]) => a.localeCompare(b));
  result.notes.push(`answers: ${outcomes.map(([outcome, n]) => `${outcome} ×${n}`).join(', ')}`);
}

/** Phase 1: kill -9 at random moments while creates and deletes run. */
async function crashPhase(rig: Rig, size: Size): Promise<PhaseResult> {
  const result = emptyPhase();
  rig.tally.phase = 'crashes';
  const ledger = new Ledger(`c${rig.random.int(1e6, 9e6)}`);
  const workload = new Workload(rig.api, rig.installationId, ledger, rig.random);
  let killing = true;
  const products: Product[] = ['postgres', 'redis'];
  const driving = workload.run({
    concurrency: size.concurrency,
    stop: () => !killing,
    products,
    deleteShare: 0.3,
    retries: 10,
    retryDelayMs: 500,
    maxCreates: size.maxCreates,
  });
  let driven = false;
  void driving.finally(() => (driven = true)).catch(() => {});
  for (let kill = 1; kill <= size.kills; kill++) {
    // At a random moment, but not before this process has acknowledged a create (odd kills) or a
    // delete (even ones, once there is a store to delete): a kill before any request could finish
    // tests nothing but refused connections, and on a busy machine a start takes 30 s and a create
    // several. Requests of the other workers are in flight at that moment, at random stages.
    const wanted = kill % 2 === 1 || ledger.deletable().length === 0 ? 'create' : 'delete';
    const acknowledged = () => (wanted === 'create' ? ledger.acknowledged().length : ledger.deletesAcknowledged);
    const before = acknowledged();
    await sleep(rig.random.int(200, 2_500));
    for (const deadline = Date.now() + PROGRESS_DEADLINE_MS; acknowledged() === before && !driven && Date.now() < deadline; ) {
      await sleep(50);
    }
    if (!rig.storehouse.running) result.unexpectedExits.push(`before kill ${kill}`);
    await rig.storehouse.kill();
    result.kills++;
    rig.log(
      `crashes: kill ${kill}/${size.kills} (${ledger.acknowledged().length} creates, ${ledger.deletesAcknowledged} deletes acknowledged so far)`,
    );
    await rig.storehouse.start();
  }
  killing = false;
  await driving;
  result.notes.push(`starts took ${rig.storehouse.startTimesMs.map((ms) => `${ms}`).join(', ')} ms`);
  await checkPhase(rig, 'crashes', result, ledger, size.settleMs);
  return result;
}

/** A bound on the creates of one outage: `more` beyond what the ledger holds now. */
const ledgerBound = (workload: Workload, more: number) => workload.ledger.creates.length + more;

/** Phase 2: the state PostgreSQL, then Redis, stopped during requests and started again. */
async function outagePhase(rig: Rig, size: Size): Promise<PhaseResult> {
  const result = emptyPhase();
  rig.tally.phase = 'outages';
  const ledger = new Ledger(`o${rig.random.int(1e6, 9e6)}`);
  const workload = new Workload(rig.api, rig.installationId, ledger, rig.random);
  for (let round = 1; round <= size.outageRounds; round++) {
    if (size.stateOutage)
      await runOutage(rig, workload, result, {
        what: 'state PostgreSQL',
        products: ['postgres', 'redis'],
        outageMs: size.outageMs,
        maxCreates: ledgerBound(workload, size.maxCreates / 2),
        down: async () => rig.statePostgres.stop('immediate'),
        up: async () => rig.statePostgres.start(),
      });
    await runOutage(rig, workload, result, {
      what: 'Redis',
      products: ['redis', 'redis', 'postgres'],
      outageMs: size.outageMs,
      maxCreates: ledgerBound(workload, size.maxCreates / 2),
      down: () => rig.redis.stop(),
      up: () => rig.redis.start(),
    });
  }
  await checkPhase(rig, 'outages', result, ledger, size.settleMs);
  return result;
}

export async function runChaos(options: ChaosOptions): Promise<ChaosResult> {
  const began = Date.now();
  const write = options.log ?? ((line: string) => process.stderr.write(`chaos: ${line}\n`));
  // Each line with the seconds since the start, so a slow run shows where its time went.
  const log = (line: string) => write(`${((Date.now() - began) / 1000).toFixed(1).padStart(5)} s  ${line}`);
  const multi = (options.nodes ?? 1) > 1;
  const size = multi ? (options.long ? SIZES.multiLong : SIZES.multiShort) : options.long ? SIZES.long : SIZES.short;
  const cleanups: Array<() => void> = [];
  const cleanUp = () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        cleanup();
      } catch (error) {
        log(`cleanup: ${(error as Error).message}`);
      }
    }
  };
  // Private servers must not outlive the run, even when it dies of an exception or a signal.
  process.once('exit', cleanUp);
  const phases: Record<string, PhaseResult> = {};
  const logDir = fs.mkdtempSync(path.join(os.tmpdir(), `storehouse-chaos-logs-${options.seed}-`));
  let rig: Rig | undefined;
  try {
    rig = await startRig(options, log, cleanups);
    const phaseList: Array<readonly [string, (rig: Rig, size: Size) => Promise<PhaseResult>]> = multi
      ? [['crashes', multiNodeCrashPhase], ...(size.outageRounds > 0 ? [['outages', outagePhase] as const] : []), ['hangs', hangPhase]]
      : [
          ['crashes', crashPhase],
          ['outages', outagePhase],
        ];
    for (const [name, phase] of phaseList) {
      const phaseBegan = Date.now();
      phases[name] = await phase(rig, size);
      phases[name].notes.push(`took ${((Date.now() - phaseBegan) / 1000).toFixed(0)} s, its checks included`);
    }
    await Promise.all(rig.nodes.map((node) => node.stop()));
  } finally {
    // Kept for whoever reads a failure: what every process said, in the order it said it.
    if (rig) {
      for (const [index, node] of rig.nodes.entries())
        fs.writeFileSync(path.join(logDir, rig.nodes.length > 1 ? `storehouse-node${index}.log` : 'storehouse.log'), node.logs());
      fs.writeFileSync(path.join(logDir, 'postgres-state.log'), rig.statePostgres.log());
      fs.writeFileSync(path.join(logDir, 'postgres-stores.log'), rig.storesPostgres.log());
      fs.writeFileSync(path.join(logDir, 'redis.log'), rig.redis.log());
    }
    cleanUp();
    process.removeListener('exit', cleanUp);
  }
  return { seed: options.seed, phases, failures: failuresOf(phases, size.kills), durationMs: Date.now() - began, logDir };
}
