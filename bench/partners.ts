/**
 * Creating a store through a partner server: the whole API (auth, validation, the partner's plans,
 * billing, quota, the records before and after, the signed call) against the same provision done
 * by calling the partner server directly with a signed token, alternating, in the same run. Then
 * changing a store's settings (PATCH, the change recorded before and after the partner's update)
 * against the same update sent to the partner directly. The reference partner provisions on
 * its own embedded PostgreSQL (in its data dir), or on STOREHOUSE_BENCH_POSTGRES_URL when set;
 * Storehouse runs on the embedded default.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { randomBase62 } from '../src/ids.ts';
import { startPartnerServer } from '../src/partner-server/app.ts';
import { catalogWithPartner } from '../src/partner-server/catalog.ts';
import { startInProcess } from './in-process.ts';
import { freePort, quantile, time } from './measure.ts';

const ROUNDS = 20;

export interface PartnerCreateResult {
  /** `embedded` (the partner's own cluster) or the host:port of STOREHOUSE_BENCH_POSTGRES_URL. */
  partnerBackend: string;
  createMedianMs: number;
  createP95Ms: number;
  directMedianMs: number;
  directP95Ms: number;
  ratio: number;
  updateMedianMs: number;
  directUpdateMedianMs: number;
  updateRatio: number;
}

export async function benchPartners(log: (line: string) => void): Promise<PartnerCreateResult> {
  const postgresUrl = process.env.STOREHOUSE_BENCH_POSTGRES_URL || undefined;

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-bench-partners-'));
  // Both data dirs are inside it: run as root, their PostgreSQL servers run as the user postgres,
  // which must pass through it (it lists nothing: 0711, as Storehouse makes a data dir itself).
  fs.chmodSync(scratch, 0o711);
  const partnerPort = await freePort();
  const catalogFile = path.join(scratch, 'catalog.yaml');
  fs.writeFileSync(catalogFile, stringify(catalogWithPartner({ url: `http://127.0.0.1:${partnerPort}` })));
  const token = `bench-${randomBase62(24)}`;
  // Closed in reverse order at the end, also when a start-up step fails (nothing is left running).
  const closers: Array<() => Promise<unknown>> = [];
  try {
    const { runtime, base } = await startInProcess(
      {
        STOREHOUSE_DATA_DIR: path.join(scratch, 'storehouse'),
        STOREHOUSE_BOOTSTRAP_TOKEN: token,
        STOREHOUSE_CATALOG: catalogFile,
        STOREHOUSE_TEAM_STORE_QUOTA: '1000',
      },
      closers,
    );
    const partner = await startPartnerServer({
      port: partnerPort,
      dataDir: path.join(scratch, 'partner'),
      clientId: 'oac_partner',
      issuer: runtime.urls.issuer(),
      ...(postgresUrl && { postgresAdminUrl: postgresUrl }),
      logger: pino({ level: 'warn' }),
    });
    closers.push(() => partner.close());
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const configurations = (await (
      await fetch(`${base}/v1/integrations/configurations?view=account&integrationIdOrSlug=acme`, { headers })
    ).json()) as Array<{ id: string }>;
    const icfg = configurations[0]!.id;
    const { rows } = await runtime.db.query<{ team_id: string; installed_by: string }>(
      'SELECT team_id, installed_by FROM installations WHERE id = $1',
      [icfg],
    );
    const { team_id: teamId, installed_by: userId } = rows[0]!;
    // The direct calls carry the same kind of token Storehouse sends: user style, signed by its key.
    const userJwt = () =>
      runtime.keys.sign(
        {
          aud: 'oac_partner',
          sub: `account:${teamId}:user:${userId}`,
          account_id: teamId,
          installation_id: icfg,
          user_id: userId,
          user_role: 'ADMIN',
          type: 'id_token',
        },
        runtime.urls.issuer(),
      );
    const direct = async (i: number) => {
      const jwt = await userJwt();
      const response = await fetch(`${partner.url}/v1/installations/${icfg}/resources`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${jwt}`,
          'x-vercel-auth': 'user',
          'idempotency-key': `bench-direct-${randomBase62(12)}`,
          'content-type': 'application/json',
        },
        body: JSON.stringify({
          productId: 'postgres',
          name: `direct ${i}`,
          metadata: { connectionLimit: 5 },
          billingPlanId: 'partner_free',
        }),
      });
      if (response.status >= 300) throw new Error(`direct provision failed: ${response.status} ${await response.text()}`);
      return ((await response.json()) as { id: string }).id;
    };
    const through = async (i: number) => {
      const response = await fetch(`${base}/v1/storage/stores/integration/direct`, {
        method: 'POST',
        headers,
        body: JSON.stringify({
          name: `bench-partner-${i}`,
          integrationConfigurationId: icfg,
          integrationProductIdOrSlug: 'postgres',
          metadata: { connectionLimit: 5 },
          billingPlanId: 'partner_free',
        }),
      });
      if (response.status !== 200) throw new Error(`create failed: ${response.status} ${await response.text()}`);
      await response.arrayBuffer();
    };
    // The first create also announces the installation to the partner: not part of the measure.
    await through(-1);
    const createMs: number[] = [];
    const directMs: number[] = [];
    const directIds: string[] = [];
    for (let i = 0; i < ROUNDS + 2; i++) {
      const d = await time(async () => directIds.push(await direct(i)));
      const c = await time(() => through(i));
      if (i >= 2) {
        directMs.push(d);
        createMs.push(c);
      }
    }
    // Changes: a store's connection limit through the API, the same update of a direct resource at the partner.
    const { rows: changed } = await runtime.db.query<{ id: string }>(
      "SELECT id FROM stores WHERE name LIKE 'bench-partner-%' ORDER BY created_at",
    );
    const updateMs: number[] = [];
    const directUpdateMs: number[] = [];
    for (let i = 0; i < ROUNDS + 2; i++) {
      const metadata = { connectionLimit: 6 + (i % 2), statementTimeout: 'off' };
      const d = await time(async () => {
        const response = await fetch(`${partner.url}/v1/installations/${icfg}/resources/${directIds[i % directIds.length]}`, {
          method: 'PATCH',
          headers: {
            authorization: `Bearer ${await userJwt()}`,
            'x-vercel-auth': 'user',
            'idempotency-key': `bench-update-${randomBase62(12)}`,
            'content-type': 'application/json',
          },
          body: JSON.stringify({ metadata }),
        });
        if (response.status !== 200) throw new Error(`direct update failed: ${response.status} ${await response.text()}`);
        await response.arrayBuffer();
      });
      const u = await time(async () => {
        const response = await fetch(`${base}/v1/storage/stores/${changed[i % changed.length]!.id}`, {
          method: 'PATCH',
          headers,
          body: JSON.stringify({ metadata }),
        });
        if (response.status !== 200) throw new Error(`update failed: ${response.status} ${await response.text()}`);
        await response.arrayBuffer();
      });
      if (i >= 2) {
        directUpdateMs.push(d);
        updateMs.push(u);
      }
    }
    // Clean up: stores through the API (which deletes their resources at the partner), direct ones at the partner.
    const { rows: stores } = await runtime.db.query<{ id: string }>("SELECT id FROM stores WHERE name LIKE 'bench-partner-%'");
    for (const { id } of stores)
      await fetch(`${base}/v1/storage/stores/integration/${id}`, { method: 'DELETE', headers: { authorization: headers.authorization } });
    for (const id of directIds) {
      const jwt = await runtime.keys.sign(
        { aud: 'oac_partner', sub: `account:${teamId}`, account_id: teamId, installation_id: icfg, type: 'access_token' },
        runtime.urls.issuer(),
      );
      await fetch(`${partner.url}/v1/installations/${icfg}/resources/${id}`, {
        method: 'DELETE',
        headers: { authorization: `Bearer ${jwt}`, 'x-vercel-auth': 'system' },
      });
    }
    const result: PartnerCreateResult = {
      partnerBackend: postgresUrl ? new URL(postgresUrl).host : 'embedded',
      createMedianMs: quantile(createMs, 0.5),
      createP95Ms: quantile(createMs, 0.95),
      directMedianMs: quantile(directMs, 0.5),
      directP95Ms: quantile(directMs, 0.95),
      ratio: quantile(createMs, 0.5) / quantile(directMs, 0.5),
      updateMedianMs: quantile(updateMs, 0.5),
      directUpdateMedianMs: quantile(directUpdateMs, 0.5),
      updateRatio: quantile(updateMs, 0.5) / quantile(directUpdateMs, 0.5),
    };
    log(
      `  create through the partner (${result.partnerBackend}): API median ${result.createMedianMs.toFixed(2)} ms (p95 ${result.createP95Ms.toFixed(2)}) ` +
        `vs calling the partner directly ${result.directMedianMs.toFixed(2)} ms (p95 ${result.directP95Ms.toFixed(2)}), ratio ${result.ratio.toFixed(2)}`,
    );
    log(
      `  change a store through the partner: API median ${result.updateMedianMs.toFixed(2)} ms vs the same update sent to the partner directly ${result.directUpdateMedianMs.toFixed(2)} ms, ratio ${result.updateRatio.toFixed(2)}`,
    );
    return result;
  } finally {
    for (const close of closers.reverse()) await close().catch(() => undefined);
    fs.rmSync(scratch, { recursive: true, force: true });
  }
}

// `node --import tsx bench/partners.ts` runs this part alone.
if (process.argv[1]?.endsWith('bench/partners.ts')) {
  await benchPartners((line) => process.stdout.write(`${line}\n`));
}
