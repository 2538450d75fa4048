/**
 * What must hold once Storehouse has had its chance to recover: no acknowledged store lost, none
 * stuck, nothing deleted still there, no role, database or ACL user without a store, every
 * credential working and confined to its own store, and no secret in any log.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Store, StorehouseApi, Timing } from './api.ts';
import type { Ledger } from './workload.ts';

/** Waits until no store is initializing, deleting or in error (the list shows deleting as error). */
export async function settle(api: StorehouseApi, timeoutMs: number): Promise<{ ms: number; unsettled: Store[] }> {
  const began = Date.now();
  let unsettled: Store[] = [];
  while (Date.now() - began < timeoutMs) {
    try {
      unsettled = (await api.stores()).filter((store) => store.status !== 'available');
      if (unsettled.length === 0) break;
    } catch {
      /* the server may be briefly unable to answer: keep waiting */
    }
    await sleep(250);
  }
  return { ms: Date.now() - began, unsettled };
}

export interface LedgerFindings {
  /** Acknowledged, never asked to be deleted, and not listed; or answered 404 to a delete no earlier one can explain. */
  lost: string[];
  /** Deleted with a 200, yet listed. */
  deletedButPresent: string[];
  /** One Idempotency-Key acknowledged with more than one store. */
  duplicates: string[];
  /** Creates refused 409 store_name_taken: by the store their own earlier attempt left (see CreateRecord). */
  keyedRepeatsNameTaken: string[];
  /** One Idempotency-Key given different final answers (e.g. a 200 and a 409 store_name_taken): replays that disagreed. */
  disagreements: string[];
}

export function checkLedger(ledger: Ledger, listed: Store[]): LedgerFindings {
  const ids = new Set(listed.map((store) => store.id));
  const findings: LedgerFindings = { lost: [], deletedButPresent: [], duplicates: [], keyedRepeatsNameTaken: [], disagreements: [] };
  for (const create of ledger.creates) {
    if (create.finalAnswers.length > 1) findings.disagreements.push(`${create.name}: ${create.finalAnswers.join(' vs ')}`);
    if (create.nameTakenAnswers > 0)
      findings.keyedRepeatsNameTaken.push(
        `${create.name} (${create.nameTakenAnswers} of ${create.requests} requests${create.key ? ', keyed' : ''})`,
      );
  }
  for (const create of ledger.acknowledged()) {
    const id = create.storeId!;
    if (create.deleteRequests === 0 && !ids.has(id))
      findings.lost.push(`${create.name} (${id}, ${create.product}${create.key ? ', keyed' : ''})`);
    else if (create.deleteNotFound && !create.deleteMaybeDone)
      findings.lost.push(`${create.name} (${id}, ${create.product}): its delete answered 404 before any delete of it could have run`);
    if (create.deleteAcknowledged && ids.has(id)) findings.deletedButPresent.push(`${create.name} (${id})`);
    if (create.otherStoreIds.length > 0) findings.duplicates.push(`${create.name}: ${[id, ...create.otherStoreIds].join(', ')}`);
  }
  return findings;
}

/**
 * Every node's list of the team's stores (ids), against the first node's: the nodes share one
 * database, so they must list the same stores. Listed one after another, so a store that changed
 * meanwhile could differ; the lists are taken once every store has settled.
 */
export async function listsDiffer(api: StorehouseApi): Promise<string[]> {
  const lists: string[][] = [];
  for (let node = 0; node < api.nodes; node++) lists.push((await api.stores(node)).map((store) => store.id).sort());
  const differ: string[] = [];
  for (let node = 1; node < lists.length; node++) {
    const [mine, first] = [new Set(lists[node]), new Set(lists[0])];
    const missing = lists[0]!.filter((id) => !mine.has(id));
    const extra = lists[node]!.filter((id) => !first.has(id));
    if (missing.length + extra.length > 0)
      differ.push(
        `node ${node} lists ${extra.length} store(s) node 0 does not (${extra.slice(0, 3).join(', ')}) and misses ${missing.length} (${missing.slice(0, 3).join(', ')})`,
      );
  }
  return differ;
}

/** How long a request may wait while a dependency hangs: on its own work, and when it may wait on another request's first (Timing.waitsOnAnother). */
export interface HangBound {
  ownMs: number;
  waitingMs: number;
}

/**
 * The requests of `phase` in flight at some moment while a dependency hung (sent before it resumed,
 * answered, or given up on, after it paused), and those of them answered later than their bound
 * after they were sent (or not at all).
 */
export function hangWaits(
  timings: Timing[],
  phase: string,
  window: { pausedAt: number; resumedAt: number },
  bound: HangBound,
): { inHang: Timing[]; late: Timing[] } {
  const inHang = timings.filter((t) => t.phase === phase && t.sentAt < window.resumedAt && t.sentAt + t.ms > window.pausedAt);
  return { inHang, late: inHang.filter((t) => t.ms > (t.waitsOnAnother ? bound.waitingMs : bound.ownMs)) };
}

/** The provider-made things (names `sh_...`) on the provider's servers. */
export async function providerInventory(
  postgresAdminUrl: string,
  redisUrl: string,
): Promise<{ roles: string[]; databases: string[]; aclUsers: string[] }> {
  const admin = new pg.Client({ connectionString: postgresAdminUrl });
  await admin.connect();
  try {
    const roles = (await admin.query<{ n: string }>("SELECT rolname AS n FROM pg_roles WHERE rolname LIKE 'sh\\_%'")).rows.map((r) => r.n);
    const databases = (await admin.query<{ n: string }>("SELECT datname AS n FROM pg_database WHERE datname LIKE 'sh\\_%'")).rows.map(
      (r) => r.n,
    );
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    try {
      const aclUsers = ((await redis.call('ACL', 'USERS')) as string[]).filter((user) => user.startsWith('sh_'));
      return { roles, databases, aclUsers };
    } finally {
      redis.disconnect();
    }
  } finally {
    await admin.end();
  }
}

export interface CredentialFindings {
  broken: string[];
  tenantLeaks: string[];
  /** Every password handed out, for the log scan. */
  passwords: string[];
  /** Roles, databases and ACL users the stores' credentials name. */
  owned: Set<string>;
}

const postgresCheck = async (url: string): Promise<void> => {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 15_000 });
  await client.connect();
  try {
    await client.query('CREATE TABLE IF NOT EXISTS chaos_probe (n int)');
    await client.query('INSERT INTO chaos_probe VALUES (1)');
    const { rows } = await client.query('SELECT count(*)::int AS n FROM chaos_probe');
    if (!(rows[0]?.n >= 1)) throw new Error('the row written was not read back');
  } finally {
    await client.end();
  }
};

// No ready check: it runs INFO, which a store's user may not. Errors reach the caller through
// its commands; the event would only be printed as unhandled.
const redisClient = (url: string) =>
  new Redis(url, {
    maxRetriesPerRequest: 1,
    connectTimeout: 15_000,
    retryStrategy: () => null,
    lazyConnect: true,
    enableReadyCheck: false,
  }).on('error', () => {});

/**
 * Connects with every store's POSTGRES_URL or REDIS_URL and writes and reads; then, for a few
 * pairs of stores, tries each one's credentials on the other's database or keys, which must fail.
 */
export async function checkCredentials(
  stores: Store[],
  secrets: Map<string, Record<string, string>>,
  sampleLeaks = 6,
): Promise<CredentialFindings> {
  const findings: CredentialFindings = { broken: [], tenantLeaks: [], passwords: [], owned: new Set() };
  const postgres: Array<{ store: Store; env: Record<string, string> }> = [];
  const redis: Array<{ store: Store; env: Record<string, string> }> = [];
  for (const store of stores) {
    const env = secrets.get(store.id);
    if (!env) {
      findings.broken.push(`${store.name} (${store.id}): no secrets could be read`);
      continue;
    }
    for (const name of ['POSTGRES_USER', 'POSTGRES_DATABASE', 'REDIS_USERNAME']) if (env[name]) findings.owned.add(env[name]!);
    for (const name of ['POSTGRES_PASSWORD', 'REDIS_PASSWORD']) if (env[name]) findings.passwords.push(env[name]!);
    try {
      if (env.POSTGRES_URL) {
        await postgresCheck(env.POSTGRES_URL);
        postgres.push({ store, env });
      } else if (env.REDIS_URL) {
        const client = redisClient(env.REDIS_URL);
        try {
          await client.connect();
          const key = `${env.REDIS_KEY_PREFIX}chaos`;
          await client.set(key, store.id);
          if ((await client.get(key)) !== store.id) throw new Error('the value written was not read back');
        } finally {
          client.disconnect();
        }
        redis.push({ store, env });
      } else {
        findings.broken.push(`${store.name} (${store.id}): neither POSTGRES_URL nor REDIS_URL among ${Object.keys(env).join(', ')}`);
      }
    } catch (error) {
      findings.broken.push(`${store.name} (${store.id}): ${(error as Error).message}`);
    }
  }
  // Neighbours: store i's credentials against store i+1's database or keys.
  for (let i = 0; i + 1 < postgres.length && i < sampleLeaks; i++) {
    const [mine, theirs] = [postgres[i]!, postgres[i + 1]!];
    const url = new URL(mine.env.POSTGRES_URL!);
    url.pathname = `/${theirs.env.POSTGRES_DATABASE}`;
    const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 15_000 });
    try {
      await client.connect();
      findings.tenantLeaks.push(`${mine.store.name}'s role connected to ${theirs.store.name}'s database`);
    } catch {
      /* refused, as it must be */
    } finally {
      await client.end().catch(() => {});
    }
  }
  for (let i = 0; i + 1 < redis.length && i < sampleLeaks; i++) {
    const [mine, theirs] = [redis[i]!, redis[i + 1]!];
    const client = redisClient(mine.env.REDIS_URL!);
    try {
      await client.connect();
      await client.get(`${theirs.env.REDIS_KEY_PREFIX}chaos`);
      findings.tenantLeaks.push(`${mine.store.name}'s user read ${theirs.store.name}'s key`);
    } catch {
      /* NOPERM, as it must be */
    } finally {
      client.disconnect();
    }
  }
  return findings;
}

/** Provider-made names no store owns (by its credentials or its externalResourceId). */
export function orphans(inventory: { roles: string[]; databases: string[]; aclUsers: string[] }, stores: Store[], owned: Set<string>) {
  const known = new Set([...owned, ...stores.map((store) => store.externalResourceId)]);
  return {
    roles: inventory.roles.filter((name) => !known.has(name)),
    databases: inventory.databases.filter((name) => !known.has(name)),
    aclUsers: inventory.aclUsers.filter((name) => !known.has(name)),
  };
}

/** Which secrets appear in which logs. */
export function secretsInLogs(secrets: string[], logs: Record<string, string>): string[] {
  const found: string[] = [];
  for (const secret of new Set(secrets)) {
    if (secret.length < 8) continue; // not a secret worth the name, and would match by chance
    for (const [name, text] of Object.entries(logs)) {
      if (text.includes(secret)) found.push(`${secret.slice(0, 4)}… in ${name}`);
    }
  }
  return found;
}
