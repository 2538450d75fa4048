/**
 * What the partner-server tests share: a port chosen before a server starts (the catalog must
 * name the partner's URL before Storehouse starts, and the partner must name Storehouse's), the
 * catalog file selling the reference partner, and a Storehouse with the reference partner
 * running in process.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Vercel } from '@vercel/sdk';
import { startPartnerServer, type PartnerServer } from '../src/partner-server/app.ts';
import { catalogWithPartner, type PartnerEntryOptions } from '../src/partner-server/catalog.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { freshDataDir, POSTGRES_URL, startServer, writeCatalogFile, type TestServer } from './helpers.ts';

/**
 * Ports freePort hands out: below the kernel's ephemeral range (32768 and up on Linux), where
 * nothing else gets ports by chance, and above the embedded Postgres stores' range (25432 to
 * 26431). A port chosen now is used later, often by a server stopped and started again on it
 * (chaos, restarts), while other test files run beside this one: in the ephemeral range any
 * process's outgoing connection or `listen(0)` could take it meanwhile.
 */
const FREE_PORTS = { first: 26500, last: 32700 };

/** A free loopback port, chosen at random from FREE_PORTS (so concurrent test files rarely pick the same one). */
export async function freePort(): Promise<number> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const port = FREE_PORTS.first + Math.floor(Math.random() * (FREE_PORTS.last - FREE_PORTS.first + 1));
    const probe = net.createServer();
    const free = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (free) {
      await new Promise((resolve) => probe.close(resolve));
      return port;
    }
  }
  throw new Error(`no free port from ${FREE_PORTS.first} to ${FREE_PORTS.last} after 100 tries`);
}

/** A catalog file (in a directory of its own: remove `path.dirname(file)` afterwards) selling the partner's products. */
export function writePartnerCatalog(...partners: PartnerEntryOptions[]): string {
  return writeCatalogFile(catalogWithPartner(...partners));
}

/** A created store as @vercel/sdk shows it. */
type SdkStore = NonNullable<Awaited<ReturnType<Vercel['integrations']['createIntegrationStoreDirect']>>['store']>;

export interface StorehouseWithPartner {
  /** Storehouse, on the embedded database, selling the partner's products (integration `acme`, client id oac_partner). */
  server: TestServer;
  /** The reference partner server, in this process; its stores are on POSTGRES_URL when set, else embedded. */
  partner: PartnerServer;
  /** The team's installation of the partner's integration. */
  installationId: string;
  partnerDir: string;
  catalogFile: string;
  /** A store of the installation's `postgres` created by the owner through @vercel/sdk (the partner provisions it), as the SDK shows it. */
  createStore(name: string, extra?: Record<string, unknown>): Promise<SdkStore>;
  /** The calls the partner received with `method` whose path contains `pathPart`, oldest first. */
  partnerCalls(method: string, pathPart: string): PartnerServer['requests'];
  /** The ids of the resources the partner holds alive (its own records), sorted. */
  partnerResourceIds(): Promise<string[]>;
  /** Deletes what the partner still holds, then stops both servers and removes their files. */
  close(): Promise<void>;
}

/**
 * A Storehouse whose catalog sells the reference partner's `postgres` (and `extraProducts`, served
 * by the same partner), with the partner running in process and verifying Storehouse's tokens
 * (issuer: Storehouse's URL). `otherPartners` are more integrations, each with its own partner
 * URL (one nothing listens on, say).
 */
export async function startStorehouseWithPartner(
  options: {
    extraProducts?: Array<{ slug: string }>;
    otherPartners?: Array<{ slug: string; url: string }>;
    /** The partner's plans Storehouse's catalog lists (all by default). */
    catalogPlans?: string[];
    env?: Record<string, string>;
    /** The owner's token (the vercel CLI refuses one with a "-", which the harness's default has). */
    bootstrapToken?: string;
    /** More fields of the partner's catalog entry (clientSecret, redirectLoginUrl...), given the partner's URL. */
    integration?: (partnerUrl: string) => Record<string, unknown>;
    /** The partner's client secret (PARTNER_CLIENT_SECRET), when the catalog gives its integration one. */
    partnerClientSecret?: string;
  } = {},
): Promise<StorehouseWithPartner> {
  const port = await freePort();
  const catalog = catalogWithPartner(
    {
      url: `http://127.0.0.1:${port}`,
      ...(options.extraProducts && { extraProducts: options.extraProducts }),
      ...(options.catalogPlans && { catalogPlans: options.catalogPlans }),
    },
    ...(options.otherPartners ?? []).map((other) => ({ url: other.url, slug: other.slug, clientId: `oac_${other.slug}` })),
  );
  if (options.integration) {
    Object.assign(
      catalog.integrations.find((i: { id: string }) => i.id === 'oac_partner'),
      options.integration(`http://127.0.0.1:${port}`),
    );
  }
  const catalogFile = writeCatalogFile(catalog);
  let server: TestServer | undefined;
  let partner: PartnerServer | undefined;
  let partnerDir: string | undefined;
  const close = async () => {
    if (process.env.DEBUG_LOGS) for (const line of server?.logs ?? []) if (/"level":(40|50)/.test(line)) console.log(line.slice(0, 600));
    try {
      // Whatever the partner still holds (stores left, resources deleted on Storehouse only)
      // goes, so no database outlives the test on a real PostgreSQL.
      if (partner && server) {
        replaceFaults(partner.faults, {});
        const live = (await (await fetch(`${partner.url}/_partner/resources`)).json()) as {
          resources: Array<{ id: string; installationId: string }>;
        };
        for (const resource of live.resources) {
          const jwt = await server.runtime.keys.sign(
            { aud: 'oac_partner', installation_id: resource.installationId, account_id: 'cleanup', sub: 'account:cleanup' },
            server.runtime.urls.issuer(),
          );
          await fetch(`${partner.url}/v1/installations/${resource.installationId}/resources/${resource.id}`, {
            method: 'DELETE',
            headers: { authorization: `Bearer ${jwt}` },
          }).catch(() => {});
        }
      }
    } finally {
      await partner?.close();
      await server?.close();
      if (partnerDir) fs.rmSync(partnerDir, { recursive: true, force: true });
      fs.rmSync(path.dirname(catalogFile), { recursive: true, force: true });
    }
  };
  try {
    server = await startServer('embedded', {
      catalogPath: catalogFile,
      ...(options.env && { env: options.env }),
      ...(options.bootstrapToken && { bootstrapToken: options.bootstrapToken }),
    });
    partnerDir = await freshDataDir();
    partner = await startPartnerServer({
      port,
      dataDir: partnerDir,
      clientId: 'oac_partner',
      issuer: server.url,
      postgresAdminUrl: POSTGRES_URL,
      ...(options.partnerClientSecret && { clientSecret: options.partnerClientSecret }),
    });
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    const installationId = configurations[0]!.id!;
    const [storehouse, reference] = [server, partner];
    const createStore = async (name: string, extra: Record<string, unknown> = {}) => {
      const { store } = await storehouse.sdk().integrations.createIntegrationStoreDirect({
        requestBody: {
          name,
          integrationConfigurationId: installationId,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
          ...extra,
        },
      });
      if (!store) throw new Error(`the create of ${name} answered no store`);
      return store;
    };
    return {
      server,
      partner,
      installationId,
      partnerDir,
      catalogFile,
      close,
      createStore,
      partnerCalls: (method, pathPart) => reference.requests.filter((r) => r.method === method && r.url.includes(pathPart)),
      partnerResourceIds: async () => {
        const { resources } = (await (await fetch(`${reference.url}/_partner/resources`)).json()) as { resources: Array<{ id: string }> };
        return resources.map((resource) => resource.id).sort();
      },
    };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}
