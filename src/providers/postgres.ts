/**
 * The built-in Postgres provider, server mode: given an admin connection to a PostgreSQL server
 * (a role with CREATEROLE and CREATEDB), each resource is a role with a strong random password
 * and a database owned by it, with CONNECT revoked from PUBLIC, so no other store's role can
 * connect to it.
 *
 * Other databases stay reachable to PUBLIC unless revoked: postgres-isolation.ts checks them at
 * start, and revokes or says what to revoke.
 *
 * Role and database names are generated (`sh_` and lowercase base62); the store's name never
 * reaches the server (shared catalogs are readable by every role). These statements take no
 * parameters, so every identifier and literal goes through pg's escaping.
 */
import { createHash, createHmac, pbkdf2 as pbkdf2Callback, randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import pg from 'pg';
import { offeredPlans, type BillingPlan, type Product } from '../catalog/catalog.ts';
import { BoundedClient, isReadTimeout } from '../db/bounded-client.ts';
import { sqlLiteral, type Queryable } from '../db/database.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import { conflict, validationError } from '../errors.ts';
import { randomBase62 } from '../ids.ts';
import {
  providerUnavailable,
  type Provider,
  type ProviderResource,
  type ProvisionRequest,
  type ResourceUpdate,
  type Secret,
} from './provider.ts';
import { isolateStoreRoles, type IsolationLog, type IsolationReport } from './postgres-isolation.ts';
import { ResourceRecords, type ResourceRecord } from './resource-records.ts';

interface PostgresDetails {
  role: string;
  database: string;
}

const id = (text: string) => pg.escapeIdentifier(text);
const pbkdf2 = promisify(pbkdf2Callback);

/**
 * The SCRAM-SHA-256 verifier of a password (RFC 5802/7677, PostgreSQL's storage format), which
 * PostgreSQL accepts in place of the password: the password itself then never reaches the
 * server, its logs (a failed statement is logged in full) or pg_stat_activity.
 */
export async function scramVerifier(password: string): Promise<string> {
  const salt = randomBytes(16);
  const iterations = 4096;
  const salted = await pbkdf2(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}
const literal = sqlLiteral;
const codeOf = (error: unknown) => (error as { code?: string }).code;

/**
 * Sends SQL on the locked connection (see exclusively). `release`: the work's last statement,
 * committed with the lock's release after it, in its round trip.
 */
type Run = (sql: string, options?: { release?: boolean }) => Promise<void>;

/** Statement timeouts the product's metadata offers (catalog: statementTimeout). */
const TIMEOUTS: Record<string, string | null> = { off: null, '30s': '30s', '5min': '5min' };

/** PostgreSQL's CONNECTION LIMIT: -1 is none; beyond 10,000 no server has the connections. */
const CONNECTION_LIMIT_RANGE = { minimum: -1, maximum: 10_000 };
/** The longest an admin statement (CREATE DATABASE copies a template) may run. */
const ADMIN_STATEMENT_TIMEOUT_MS = 120_000;

/**
 * The role's CONNECTION LIMIT clause. The range a caller is told is the product's (its
 * metadataSchema decides, and already checked it), the provider's own only without a product.
 */
function connectionLimit(metadata: Record<string, unknown>, product?: Product): string {
  // None asked for is no limit (-1), whatever the product's bounds on a limit asked for.
  if (metadata.connectionLimit === undefined) return 'CONNECTION LIMIT -1';
  const limit = metadata.connectionLimit;
  const schema = product?.metadataSchema.properties.connectionLimit as { minimum?: unknown; maximum?: unknown } | undefined;
  const bound = (value: unknown, fallback: number) => (typeof value === 'number' ? value : fallback);
  const minimum = bound(schema?.minimum, CONNECTION_LIMIT_RANGE.minimum);
  const maximum = bound(schema?.maximum, CONNECTION_LIMIT_RANGE.maximum);
  if (!Number.isInteger(limit) || (limit as number) < minimum || (limit as number) > maximum) {
    throw validationError([{ key: 'metadata.connectionLimit', message: `must be a whole number from ${minimum} to ${maximum}` }]);
  }
  return `CONNECTION LIMIT ${limit}`;
}

export function statementTimeoutValue(metadata: Record<string, unknown>): string | null {
  const value = String(metadata.statementTimeout ?? 'off');
  if (!Object.hasOwn(TIMEOUTS, value)) {
    throw validationError([{ key: 'metadata.statementTimeout', message: `must be one of ${Object.keys(TIMEOUTS).join(', ')}` }]);
  }
  return TIMEOUTS[value]!;
}

/** What both Postgres providers require of a store's metadata: a whole connection limit, a known timeout. */
export function checkPostgresMetadata(metadata: Record<string, unknown>, product?: Product): void {
  connectionLimit(metadata, product);
  statementTimeoutValue(metadata);
}

function statementTimeout(role: string, metadata: Record<string, unknown>): string {
  const timeout = statementTimeoutValue(metadata);
  return timeout === null
    ? `ALTER ROLE ${id(role)} RESET statement_timeout`
    : `ALTER ROLE ${id(role)} SET statement_timeout = ${literal(timeout)}`;
}

export interface PostgresProviderOptions {
  /** Connection string of a role with CREATEROLE and CREATEDB; stores are reached at its host and port. */
  adminUrl: string;
  /** Revoke PUBLIC's CONNECT on the server's other databases where the admin may (STOREHOUSE_POSTGRES_REVOKE_PUBLIC_CONNECT). */
  revokePublicConnect?: boolean | undefined;
  /** Where the start-up check says what it revoked, or what the operator should. */
  log?: (IsolationLog & { error(details: object, message: string): void }) | undefined;
  /** How often that check runs again after the start (ISOLATION_RECHECK_MS unless given). */
  isolationRecheckMs?: number;
  /** The longest an admin statement may run (ADMIN_STATEMENT_TIMEOUT_MS unless given). */
  statementTimeoutMs?: number;
  /**
   * The admin server is the one that holds `state` (the embedded default): a provision's writes
   * then commit without waiting for their flush, which the caller's record of the result brings
   * (Provider.onStateServer; only Storehouse's store creation, which records it so, sets this).
   */
  onStateServer?: boolean | undefined;
}

export class PostgresProvider implements Provider {
  private readonly admin: pg.Pool;
  private readonly adminUrl: string;
  private readonly records: ResourceRecords<PostgresDetails>;
  private readonly host: string;
  private readonly port: number;
  private readonly state: Queryable;
  private readonly options: PostgresProviderOptions;
  private readonly queryTimeoutMs: number;
  readonly onStateServer: boolean;

  constructor(state: Queryable, box: SecretBox, options: PostgresProviderOptions) {
    this.state = state;
    this.options = options;
    this.onStateServer = options.onStateServer === true;
    const statementTimeoutMs = options.statementTimeoutMs ?? ADMIN_STATEMENT_TIMEOUT_MS;
    this.queryTimeoutMs = statementTimeoutMs + Math.min(10_000, statementTimeoutMs);
    // Bounded waits: a lock held too long or a stuck server is a 503, never a hang. The server
    // enforces statement_timeout; a server that stops answering altogether (SIGSTOP, a dead
    // host) cannot, so the client gives up a little later and drops the connection.
    this.admin = new pg.Pool({
      connectionString: options.adminUrl,
      max: 4,
      Client: BoundedClient,
      connectionTimeoutMillis: 5000,
      keepAlive: true,
      lock_timeout: 30_000,
      statement_timeout: statementTimeoutMs,
      query_timeout: this.queryTimeoutMs,
    });
    this.adminUrl = options.adminUrl;
    this.admin.on('error', () => {}); // an idle admin connection dropping is noticed on next use
    this.records = new ResourceRecords(state, box, 'postgres');
    const url = new URL(options.adminUrl);
    this.host = url.hostname || 'localhost';
    this.port = Number(url.port || 5432);
  }

  private isolation: Promise<IsolationReport | undefined> | undefined;
  private isolationError: Error | undefined;
  private recheck: NodeJS.Timeout | undefined;
  private readonly reported = new Set<string>();

  /**
   * The start-up check of which other databases store roles can reach (postgres-isolation.ts),
   * run once, then again every ISOLATION_RECHECK_MS (a database made on the server since is
   * PUBLIC's to connect to as well); it never fails: a server it cannot check is logged, and
   * checked again on next call. What it asks an operator to run is logged once, not at each check.
   */
  start(): Promise<IsolationReport | undefined> {
    if (!this.recheck) {
      // After the check under way, if one is (its answer is kept until then); a failed one too.
      this.recheck = setInterval(async () => {
        await this.isolation;
        this.isolation = undefined;
        await this.start();
      }, this.options.isolationRecheckMs ?? ISOLATION_RECHECK_MS);
      this.recheck.unref();
    }
    this.isolation ??= isolateStoreRoles(this.admin, this.state, {
      revoke: this.options.revokePublicConnect === true,
      log: this.options.log,
      reported: this.reported,
    }).catch((error) => {
      this.isolation = undefined;
      this.isolationError = error;
      this.options.log?.error({ err: error }, 'cannot check which databases store roles can connect to');
      return undefined;
    });
    return this.isolation;
  }

  private superuser: Promise<boolean> | undefined;

  /** Whether the admin role is a superuser (asked once): if not, it needs membership of each store's role. */
  private adminIsSuperuser(): Promise<boolean> {
    this.superuser ??= this.admin
      .query<{ rolsuper: boolean }>('SELECT rolsuper FROM pg_roles WHERE rolname = current_user')
      .then((result) => result.rows[0]?.rolsuper === true)
      .catch((error) => {
        this.superuser = undefined;
        throw error;
      });
    return this.superuser;
  }

  async availability() {
    try {
      const { rows } = await this.admin.query<{ ok: boolean }>(
        'SELECT (rolcreaterole OR rolsuper) AND (rolcreatedb OR rolsuper) AS ok FROM pg_roles WHERE rolname = current_user',
      );
      if (!rows[0]?.ok) return { available: false as const, reason: 'the admin role needs CREATEROLE and CREATEDB' };
      return { available: true as const };
    } catch (error) {
      return { available: false as const, reason: `cannot reach the PostgreSQL server (${(error as Error).message})` };
    }
  }

  async listPlans(product: Product): Promise<BillingPlan[]> {
    return offeredPlans(product);
  }

  /**
   * Runs `work` on one admin connection holding an advisory lock on the resource, so concurrent
   * calls for one resource (retries, a delete racing a rotation), from any node, take turns.
   * An unreachable server is the provider being unavailable, not a 500.
   *
   * `lockWithFirst`: for work whose first step is a statement of `run`, the lock is taken in the
   * same round trip, ahead of it (a session lock, kept whatever becomes of the statements after
   * it). The lock is released at the end, as always (releasing one not held is a warning), or
   * with the statement run with `release`: that one runs in a transaction of its own, committed
   * before the release, so the next holder sees what it did.
   */
  private async exclusively<T>(resourceId: string, work: (run: Run) => Promise<T>, options: { lockWithFirst?: boolean } = {}): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.admin.connect();
    } catch (error) {
      throw providerUnavailable('postgres', `cannot reach the PostgreSQL server (${(error as Error).message})`);
    }
    const key = literal(`storehouse:${resourceId}`);
    const [lock, unlock] = [
      `SELECT pg_advisory_lock(hashtextextended(${key}, 0))`,
      `SELECT pg_advisory_unlock(hashtextextended(${key}, 0))`,
    ];
    let broken = false;
    const onError = () => (broken = true); // a connection dropped while checked out must not crash the process
    client.on('error', onError);
    try {
      let lockPending = options.lockWithFirst === true;
      // What is left to send at the end: the release, after a rollback when a statement sent with
      // the release failed (its explicit transaction stays open, aborted); nothing once released.
      let cleanup: string | undefined = unlock;
      if (!lockPending) await client.query(lock);
      try {
        return await work(async (sql, { release = false } = {}) => {
          const statements = [...(lockPending ? [lock] : []), ...(release ? ['BEGIN', sql, 'COMMIT', unlock] : [sql])];
          lockPending = false;
          if (release) cleanup = `ROLLBACK; ${unlock}`;
          await client.query(statements.join('; '));
          if (release) cleanup = undefined;
        });
      } finally {
        if (cleanup) await client.query(cleanup).catch(() => (broken = true));
      }
    } catch (error) {
      const code = codeOf(error);
      if (code === 'ECONNRESET' || code === 'ECONNREFUSED' || code?.startsWith('08') || code === '57P01' || code === '57P03') {
        broken = true;
        throw providerUnavailable('postgres', `lost the PostgreSQL server (${(error as Error).message})`);
      }
      if (code === '55P03' || code === '57014') {
        throw providerUnavailable('postgres', `the PostgreSQL server is too busy (${(error as Error).message})`);
      }
      if (isReadTimeout(error)) {
        broken = true;
        throw providerUnavailable('postgres', `the PostgreSQL server did not answer within ${this.queryTimeoutMs} ms`);
      }
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  checkMetadata(metadata: Record<string, unknown>, product?: Product): void {
    checkPostgresMetadata(metadata, product);
  }

  async provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    this.checkMetadata(request.metadata, request.product); // bad metadata is refused before anything is recorded or created
    // Where Storehouse closes the other databases itself, no store is handed out before they are.
    if (this.options.revokePublicConnect && !(await this.start())) {
      throw providerUnavailable('postgres', `cannot close the server's other databases to store roles (${this.isolationError?.message})`);
    }
    // The verifier's PBKDF2 runs on the thread pool while the record is written (a retry's
    // record has a credential of its own, whose verifier is made then). The superuser question is
    // asked before a pool connection is held, so a burst of provisions cannot exhaust the pool on it.
    const secret = randomBase62(32);
    const freshVerifier = scramVerifier(secret);
    freshVerifier.catch(() => {});
    const record = await this.records.claimFor(request, (id) => ({ role: id, database: id }), {
      secret,
      flushed: !this.onStateServer,
    });
    const verifier = record.secret === secret ? freshVerifier : scramVerifier(record.secret!);
    verifier.catch(() => {});
    const superuser = await this.adminIsSuperuser().catch(() => false);
    // A fresh record's work begins with a statement of its own: the lock rides on it. The verifier
    // is awaited before the connection is taken, so no connection is held while it is made.
    const password = await verifier;
    await this.exclusively(
      record.id,
      async (run) => {
        // A retry, under the lock: a delete that began meanwhile wins, and nothing is created again.
        if (!record.fresh) await this.records.expectState(record, ['provisioning', 'ready']);
        await this.create(run, record, password, superuser);
      },
      { lockWithFirst: record.fresh },
    );
    // On the state server, the caller's record of the result flushes this too (Provider.onStateServer).
    let ready: ResourceRecord<PostgresDetails>;
    try {
      ready = await this.records.markReady(record, { flushed: !this.onStateServer });
    } catch (error) {
      // A delete won while this ran (an undo after a timeout: it found nothing to drop yet, and
      // the record is deleted): what was just made must not outlive it.
      if ((error as { code?: string }).code === 'resource_deleted') await this.drop(record).catch(() => {});
      throw error;
    }
    return { resource: ResourceRecords.asResource(ready), secrets: this.secrets(ready) };
  }

  /**
   * Brings the role and database to what the record says; safe to repeat at any point. Each
   * multi-statement query runs as one implicit transaction, so one commit: the role and its
   * settings, then the database (which cannot share a transaction), then its hardening.
   *
   * On the state server the role's and the REVOKE's commits do not wait for their flush to disk:
   * nobody learns of the resource before the caller's synchronous commit of the result, which
   * comes later in the same WAL and flushes them with it (Provider.onStateServer). A crash of the
   * server before that leaves what a crash mid-provision always could (a record still
   * `provisioning`, perhaps a role and an empty database), which the recovery undoes; a retry runs
   * these statements again. (CREATE DATABASE flushes its own commit whatever the setting.)
   */
  private async create(run: Run, record: ResourceRecord<PostgresDetails>, verifier: string, superuser: boolean): Promise<void> {
    const { role, database } = record.details;
    const login = `LOGIN PASSWORD ${literal(verifier)} ${connectionLimit(record.metadata)}`;
    // Membership lets an admin that is not a superuser create the database OWNER the role.
    const membership = superuser ? [] : [`GRANT ${id(role)} TO CURRENT_USER`];
    const timeout = statementTimeoutValue(record.metadata) === null ? [] : [statementTimeout(role, record.metadata)];
    const unflushed = this.onStateServer ? ['SET LOCAL synchronous_commit = off'] : [];
    try {
      await run([...unflushed, `CREATE ROLE ${id(role)} ${login}`, ...timeout, ...membership].join('; '));
    } catch (error) {
      if (codeOf(error) !== '42710') throw error; // exists: a retry, which also resets what a new role would not have
      await run([...unflushed, `ALTER ROLE ${id(role)} ${login}`, statementTimeout(role, record.metadata), ...membership].join('; '));
    }
    try {
      await run(`CREATE DATABASE ${id(database)} OWNER ${id(role)}`);
    } catch (error) {
      // 42P04: it exists (a retry); 23505: a concurrent create of the same name got there first.
      if (codeOf(error) !== '42P04' && codeOf(error) !== '23505') throw error;
    }
    // The owner keeps every privilege; PUBLIC (every other role) loses CONNECT and TEMPORARY.
    // (No comment naming the store: shared catalogs are readable by every store's role.) The
    // lock's release rides on it, after its commit: before it, the next holder's change of the
    // same catalog row could fail "concurrently updated".
    await run([...unflushed, `REVOKE ALL ON DATABASE ${id(database)} FROM PUBLIC`].join('; '), { release: true });
  }

  private secrets(record: ResourceRecord<PostgresDetails>): Secret[] {
    const { role, database } = record.details;
    const password = record.secret!;
    const host = this.port === 5432 ? this.host : `${this.host}:${this.port}`;
    const url = `postgres://${encodeURIComponent(role)}:${encodeURIComponent(password)}@${host}/${encodeURIComponent(database)}`;
    const values: Array<[string, string]> = [
      ['DATABASE_URL', url],
      ['POSTGRES_URL', url],
      ['POSTGRES_URL_NON_POOLING', url],
      ['POSTGRES_HOST', this.host],
      ['POSTGRES_PORT', String(this.port)],
      ['POSTGRES_USER', role],
      ['POSTGRES_PASSWORD', password],
      ['POSTGRES_DATABASE', database],
      ['PGHOST', this.host],
      ['PGPORT', String(this.port)],
      ['PGUSER', role],
      ['PGPASSWORD', password],
      ['PGDATABASE', database],
    ];
    return values.map(([name, value]) => ({ name, value }));
  }

  async get(installationId: string, resourceId: string): Promise<ProviderResource> {
    const record = await this.records.get(installationId, resourceId);
    const resource = ResourceRecords.asResource(record);
    if (record.state !== 'ready') return resource;
    // The record says ready: check the database is really there.
    const { rows } = await this.admin
      .query('SELECT 1 FROM pg_database WHERE datname = $1', [record.details.database])
      .catch(() => ({ rows: [1] }));
    return rows.length === 0 ? { ...resource, status: 'error' } : resource;
  }

  async update(installationId: string, resourceId: string, update: ResourceUpdate, _idempotencyKey?: string): Promise<ProviderResource> {
    const { record, next } = await this.records.forUpdate(installationId, resourceId, update);
    const { role } = record.details;
    if (update.metadata) {
      await this.exclusively(record.id, (run) =>
        run(`ALTER ROLE ${id(role)} ${connectionLimit(next.metadata)}; ${statementTimeout(role, next.metadata)}`),
      );
    }
    await this.records.update(record.id, update);
    return ResourceRecords.asResource(next);
  }

  async delete(installationId: string, resourceId: string, _idempotencyKey?: string): Promise<void> {
    const record = await this.records.beginDelete(installationId, resourceId);
    if (!record) return;
    await this.drop(record);
    await this.records.setState(record.id, 'deleted');
  }

  /** The record's role and database gone from the server, under its lock; safe to repeat. */
  private async drop(record: ResourceRecord<PostgresDetails>): Promise<void> {
    const { role, database } = record.details;
    await this.exclusively(record.id, async (run) => {
      // First the role can no longer log in, whatever happens next.
      await run(
        `DO $$ BEGIN IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = ${literal(role)}) THEN ALTER ROLE ${id(role)} NOLOGIN PASSWORD NULL; END IF; END $$`,
      );
      // WITH (FORCE) terminates the database's open connections first.
      await run(`DROP DATABASE IF EXISTS ${id(database)} WITH (FORCE)`);
      try {
        await run(`DROP ROLE IF EXISTS ${id(role)}`);
      } catch (error) {
        if (codeOf(error) !== '2BP01') throw error;
        // Another store granted this role something in its own database: revoke it there, then drop.
        await this.dropOwnedEverywhere(role);
        await run(`DROP ROLE IF EXISTS ${id(role)}`);
      }
    });
  }

  /** Runs DROP OWNED BY (which also revokes what was granted to the role) in every database that depends on it. */
  private async dropOwnedEverywhere(role: string): Promise<void> {
    const { rows } = await this.admin.query<{ datname: string }>(
      `SELECT DISTINCT d.datname FROM pg_shdepend s JOIN pg_database d ON d.oid = s.dbid
        WHERE s.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)`,
      [role],
    );
    for (const { datname } of rows) {
      const url = new URL(this.adminUrl);
      url.pathname = `/${encodeURIComponent(datname)}`;
      const client = new pg.Client({ connectionString: url.toString() });
      client.on('error', () => {});
      await client.connect();
      try {
        await client.query(`DROP OWNED BY ${id(role)}`);
      } finally {
        await client.end().catch(() => {});
      }
    }
  }

  abandon({ installationId, idempotencyKey }: ProvisionRequest): Promise<void> {
    return this.records.abandon(installationId, idempotencyKey, (id) => this.delete(installationId, id, idempotencyKey));
  }

  async rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]> {
    // The record's id is the resource id; rotation() checks it is this installation's, under the lock.
    return this.exclusively(resourceId, async (run) => {
      const record = await this.records.rotation(installationId, resourceId, idempotencyKey);
      await run(`ALTER ROLE ${id(record.details.role)} PASSWORD ${literal(await scramVerifier(record.secret!))}`);
      // Rotations of one role take turns (exclusively), so no other one can have replaced this one's.
      if (!(await this.records.promote(record.id, record.secret!)))
        throw conflict('resource_rotating', `The resource ${record.id}'s secrets changed during the rotation: try again`);
      return this.secrets(record);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.recheck);
    await this.admin.end();
  }
}

/** How often the check of which databases store roles can reach runs again. */
const ISOLATION_RECHECK_MS = 10 * 60_000;
