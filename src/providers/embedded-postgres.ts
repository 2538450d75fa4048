/**
 * The built-in Postgres provider, embedded mode: the default when no PostgreSQL server is
 * configured, so that `npm install && npm start` on a machine with no PostgreSQL still hands out
 * a database that psql and pg connect to. Each store is its own PGlite cluster in
 * `<data dir>/stores/<id>/`, served over the PostgreSQL wire protocol on its own loopback port
 * (@electric-sql/pglite-socket), and served again on the same port after a restart.
 *
 * For development only: the socket accepts any user name and password (the secrets carry one,
 * so clients that insist on a password work, but it protects nothing), and every store costs
 * about as much memory as an embedded Storehouse (a PGlite instance each; see docs/providers.md).
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';
import pg from 'pg';
import { offeredPlans, type BillingPlan, type Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { EMBEDDED_POSTGRES_CONF, ensureCluster } from '../db/open.ts';
import { ownerOnlyFromNowOn } from '../data-dir.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import {
  providerUnavailable,
  type Provider,
  type ProviderResource,
  type ProvisionRequest,
  type ResourceUpdate,
  type Secret,
} from './provider.ts';
import { checkPostgresMetadata, statementTimeoutValue } from './postgres.ts';
import { ResourceRecords, type ResourceRecord } from './resource-records.ts';

interface EmbeddedDetails {
  port: number;
}

interface Instance {
  db: PGlite;
  server: PGLiteSocketServer;
}

const HOST = '127.0.0.1';

/**
 * Ports for embedded stores: a fixed range below the OS's ephemeral ports, so a port a store was
 * given is not handed to some other program's outgoing connection while Storehouse is down.
 */
const PORTS = { first: 25432, last: 26431 };

async function canListen(port: number): Promise<boolean> {
  const probe = net.createServer();
  const ok = await new Promise<boolean>((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, HOST, () => resolve(true));
  });
  if (ok) await new Promise((resolve) => probe.close(resolve));
  return ok;
}

export class EmbeddedPostgresProvider implements Provider {
  private readonly records: ResourceRecords<EmbeddedDetails>;
  private readonly instances = new Map<string, Promise<Instance>>();
  /** Provisions take turns: choosing a port and starting to listen on it must not interleave. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    state: Queryable,
    box: SecretBox,
    private readonly dataDir: string,
  ) {
    this.records = new ResourceRecords(state, box, 'postgres-embedded');
  }

  /** A port of the range that no store has been given and nothing listens on. */
  private async freePort(): Promise<number> {
    const taken = new Set((await this.records.liveDetails()).map((record) => record.details.port));
    for (let port = PORTS.first; port <= PORTS.last; port++) {
      if (!taken.has(port) && (await canListen(port))) return port;
    }
    throw providerUnavailable('postgres', `every port from ${PORTS.first} to ${PORTS.last} is in use`);
  }

  private storeDir(id: string): string {
    return path.join(this.dataDir, 'stores', id);
  }

  private readonly turns = new Map<string, Promise<unknown>>();

  /**
   * Runs `work` on one store after whatever else is under way on it (a start serving it, a
   * provision, a delete), so a delete never races the store being served. One process serves
   * a data dir's stores (it holds the data dir's lock), so taking turns in process is enough.
   */
  private exclusively<T>(id: string, work: () => Promise<T>): Promise<T> {
    const result = (this.turns.get(id) ?? Promise.resolve()).then(work);
    const settled = result.catch(() => {});
    this.turns.set(id, settled);
    void settled.then(() => {
      if (this.turns.get(id) === settled) this.turns.delete(id);
    });
    return result;
  }

  /**
   * Serves every live store again (after a restart). Each store's state is read again just
   * before it is served, so one deleted meanwhile stays deleted. A store whose port is taken is
   * reported, not fatal.
   */
  async start(onError?: (error: Error) => void): Promise<void> {
    for (const { id } of await this.records.liveDetails()) {
      await this.exclusively(id, async () => {
        const record = await this.records.liveOne(id);
        if (record) await this.serve(record);
      }).catch((error) => onError?.(new Error(`store ${id}: ${(error as Error).message}`)));
    }
  }

  /** Opens the store's cluster (creating it on first use) and serves it on its port; once per store. */
  private serve(record: { id: string; details: EmbeddedDetails }): Promise<Instance> {
    let instance = this.instances.get(record.id);
    if (!instance) {
      instance = (async () => {
        const cluster = path.join(this.storeDir(record.id), 'pgdata');
        fs.mkdirSync(path.dirname(cluster), { recursive: true, mode: 0o700 });
        await ensureCluster(cluster);
        const db = new PGlite(cluster, { postgresqlconf: EMBEDDED_POSTGRES_CONF });
        await db.waitReady;
        ownerOnlyFromNowOn(db, cluster); // the store's data is its owner's only (src/data-dir.ts)
        const server = new PGLiteSocketServer({ db, host: HOST, port: record.details.port, maxConnections: 100 });
        try {
          await server.start();
        } catch (error) {
          await db.close();
          throw error;
        }
        return { db, server };
      })();
      this.instances.set(record.id, instance);
      instance.catch(() => this.instances.delete(record.id));
    }
    return instance;
  }

  async availability() {
    return { available: true as const };
  }

  async listPlans(product: Product): Promise<BillingPlan[]> {
    return offeredPlans(product);
  }

  checkMetadata(metadata: Record<string, unknown>, product?: Product): void {
    checkPostgresMetadata(metadata, product); // the connection limit is not applied here, but must make sense
  }

  provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    const result = this.turn.then(() => this.provisionNow(request));
    this.turn = result.catch(() => {});
    return result;
  }

  private async provisionNow(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    this.checkMetadata(request.metadata, request.product); // bad metadata is refused before anything is recorded
    const port = await this.freePort(); // used only if this is the key's first provision
    const claimed = await this.records.claimFor(request, () => ({ port }));
    return this.exclusively(claimed.id, () => this.serveProvisioned(claimed));
  }

  /** Serves a claimed store and marks it ready; a delete that got there first wins, and nothing is left serving. */
  private async serveProvisioned(claimed: ResourceRecord<EmbeddedDetails>): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    let record = claimed;
    await this.records.expectState(record, ['provisioning', 'ready']);
    let instance: Instance;
    for (let attempt = 1; ; attempt++) {
      try {
        instance = await this.serve(record);
        break;
      } catch (error) {
        // Another process took the port since it was found free. Until the store is ready nobody
        // has been told its port, so it may move to another.
        const taken = (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!taken || record.state !== 'provisioning' || attempt >= 5) {
          throw providerUnavailable('postgres', `cannot start the embedded database (${(error as Error).message})`);
        }
        record = { ...record, details: { port: await this.freePort() } };
        await this.records.setDetails(record.id, record.details);
      }
    }
    try {
      await this.applySettings(instance, record.metadata);
      const ready = await this.records.markReady(record);
      return { resource: ResourceRecords.asResource(ready), secrets: this.secrets(ready) };
    } catch (error) {
      // Deleted meanwhile (or the settings failed): stop what was just started.
      await this.stopServing(record.id).catch(() => {});
      if ((await this.records.get(record.installationId, record.id)).state === 'deleted')
        fs.rmSync(this.storeDir(record.id), { recursive: true, force: true });
      throw error;
    }
  }

  /**
   * The role's setting outlives restarts; PGlite serves every client from its one session, which
   * read the role's settings when it began, so the session's own is set too: it takes at once.
   */
  private async applySettings(instance: Instance, metadata: Record<string, unknown>): Promise<void> {
    const timeout = statementTimeoutValue(metadata);
    await instance.db.exec(
      timeout === null
        ? 'ALTER ROLE postgres RESET statement_timeout; RESET statement_timeout'
        : `ALTER ROLE postgres SET statement_timeout = ${pg.escapeLiteral(timeout)}; SET statement_timeout = ${pg.escapeLiteral(timeout)}`,
    );
  }

  private secrets(record: ResourceRecord<EmbeddedDetails>): Secret[] {
    const password = record.secret!;
    const { port } = record.details;
    const url = `postgres://postgres:${encodeURIComponent(password)}@${HOST}:${port}/postgres?sslmode=disable`;
    const values: Array<[string, string]> = [
      ['DATABASE_URL', url],
      ['POSTGRES_URL', url],
      ['POSTGRES_URL_NON_POOLING', url],
      ['POSTGRES_HOST', HOST],
      ['POSTGRES_PORT', String(port)],
      ['POSTGRES_USER', 'postgres'],
      ['POSTGRES_PASSWORD', password],
      ['POSTGRES_DATABASE', 'postgres'],
      ['PGHOST', HOST],
      ['PGPORT', String(port)],
      ['PGUSER', 'postgres'],
      ['PGPASSWORD', password],
      ['PGDATABASE', 'postgres'],
      ['PGSSLMODE', 'disable'],
    ];
    return values.map(([name, value]) => ({ name, value }));
  }

  async get(installationId: string, resourceId: string): Promise<ProviderResource> {
    const record = await this.records.get(installationId, resourceId);
    const resource = ResourceRecords.asResource(record);
    if (record.state !== 'ready') return resource;
    return this.serve(record).then(
      () => resource,
      () => ({ ...resource, status: 'error' as const }),
    );
  }

  async update(installationId: string, resourceId: string, update: ResourceUpdate, _idempotencyKey?: string): Promise<ProviderResource> {
    const { record, next } = await this.records.forUpdate(installationId, resourceId, update);
    if (update.metadata) await this.applySettings(await this.serve(record), next.metadata);
    await this.records.update(record.id, update);
    return ResourceRecords.asResource(next);
  }

  private async stopServing(id: string): Promise<void> {
    const instance = await this.instances.get(id)?.catch(() => undefined);
    this.instances.delete(id);
    if (!instance) return;
    await instance.server.stop();
    await instance.db.close();
  }

  async delete(installationId: string, resourceId: string, _idempotencyKey?: string): Promise<void> {
    const record = await this.records.beginDelete(installationId, resourceId);
    if (!record) return;
    await this.exclusively(record.id, async () => {
      await this.stopServing(record.id);
      fs.rmSync(this.storeDir(record.id), { recursive: true, force: true });
      await this.records.setState(record.id, 'deleted');
    });
  }

  abandon({ installationId, idempotencyKey }: ProvisionRequest): Promise<void> {
    return this.records.abandon(installationId, idempotencyKey, (id) => this.delete(installationId, id, idempotencyKey));
  }

  /** A new password in the secrets; the embedded socket does not check passwords (development only). */
  async rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]> {
    const record = await this.records.rotation(installationId, resourceId, idempotencyKey);
    await this.records.promote(record.id);
    return this.secrets(record);
  }

  async close(): Promise<void> {
    for (const id of [...this.instances.keys()]) await this.stopServing(id);
  }
}
