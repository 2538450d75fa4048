/**
 * What the partner-server tests share: a port chosen before a server starts (the catalog must
 * name the partner's URL before Storehouse starts, and the partner must name Storehouse's), the
 * catalog file selling the reference partner, and a Storehouse with the reference partner
 * running in process.
 */
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { startPartnerServer, type PartnerServer } from '../src/partner-server/app.ts';
import { catalogWithPartner, type PartnerEntryOptions } from '../src/partner-server/catalog.ts';
import { replaceFaults } from '../src/partner-server/faults.ts';
import { freshDataDir, POSTGRES_URL, startServer, type TestServer } from './helpers.ts';

/** The failure of an SDK call: it lives in helpers.ts, re-exported for the partner tests that took it from here. */
export { sdkFailure } from './helpers.ts';

/** A free loopback port. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** A catalog file (in a directory of its own: remove `path.dirname(file)` afterwards) selling the partner's products. */
export function writePartnerCatalog(...partners: PartnerEntryOptions[]): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-catalog-')), 'catalog.yaml');
  fs.writeFileSync(file, stringify(catalogWithPartner(...partners)));
  return file;
}

export interface StorehouseWithPartner {
  /** Storehouse, on the embedded database, selling the partner's products (integration `acme`, client id oac_partner). */
  server: TestServer;
  /** The reference partner server, in this process; its stores are on POSTGRES_URL when set, else embedded. */
  partner: PartnerServer;
  /** The team's installation of the partner's integration. */
  installationId: string;
  partnerDir: string;
  catalogFile: string;
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
  } = {},
): Promise<StorehouseWithPartner> {
  const port = await freePort();
  const catalogFile = writePartnerCatalog(
    { url: `http://127.0.0.1:${port}`, ...(options.extraProducts && { extraProducts: options.extraProducts }), ...(options.catalogPlans && { catalogPlans: options.catalogPlans }) },
    ...(options.otherPartners ?? []).map((other) => ({ url: other.url, slug: other.slug, clientId: `oac_${other.slug}` })),
  );
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
        const live = (await (await fetch(`${partner.url}/_partner/resources`)).json()) as { resources: Array<{ id: string; installationId: string }> };
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
    server = await startServer('embedded', { catalogPath: catalogFile, ...(options.env && { env: options.env }) });
    partnerDir = await freshDataDir();
    partner = await startPartnerServer({ port, dataDir: partnerDir, clientId: 'oac_partner', issuer: server.url, postgresAdminUrl: POSTGRES_URL });
    const configurations = await server.sdk().integrations.getConfigurations({ view: 'account', integrationIdOrSlug: 'acme' });
    const installationId = configurations[0]!.id!;
    return { server, partner, installationId, partnerDir, catalogFile, close };
  } catch (error) {
    await close().catch(() => {});
    throw error;
  }
}
