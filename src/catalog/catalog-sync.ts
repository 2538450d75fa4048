import { billingPlanOf, type BillingPlan } from './catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import { CatalogError } from './catalog-file.ts';
import type { CatalogFile } from './catalog-schema.ts';
import { hashSecret } from '../secrets/secret-hash.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

export interface SyncSummary {
  upserted: { integrations: number; products: number; plans: number };
  /** Dropped from the file but still in use: kept, marked retired (shown as disabled nowhere, selectable nowhere). */
  retired: string[];
  /** Dropped from the file and unused: deleted. */
  deleted: string[];
  /** Another node synced exactly this file while this one waited for the lock: nothing was written. */
  unchanged: boolean;
}

const emptySummary = (): SyncSummary => ({
  upserted: { integrations: 0, products: 0, plans: 0 },
  retired: [],
  deleted: [],
  unchanged: false,
});

const CATALOG_SYNC_LOCK = 7_391_002;
const json = (value: unknown) => JSON.stringify(value);

/**
 * Brings the database's catalog in line with the file: adds and updates everything in it;
 * what the file no longer has is deleted when nothing uses it, and otherwise kept as retired,
 * so existing installations and stores never lose the integration, product or plan they use.
 * Runs in one transaction under an advisory lock, so nodes starting together do not interleave;
 * with a `source` fingerprint, a node that finds under the lock that another node has just synced
 * the same file writes nothing, so nodes started together sync a catalog once.
 */
export async function syncCatalog(
  db: Database,
  catalog: CatalogFile,
  source?: { file: string; fingerprint: string },
  /** Seals the client secrets of integrations with a webhook URL (webhooks are signed with them); without it, none is kept. */
  box?: SecretBox,
): Promise<SyncSummary> {
  const file = source?.file ?? 'catalog';
  let summary = emptySummary();
  const integrationIds = catalog.integrations.map((i) => i.id);
  const products = catalog.integrations.flatMap((i) => i.products.map((p, position) => ({ ...p, integrationId: i.id, position })));
  const productIds = products.map((p) => p.id);
  const planKeys = products.flatMap((p) => p.plans.map((plan) => `${p.id}/${plan.id}`));
  // Client secrets are hashed (slowly) before the transaction, which holds the sync lock.
  const secretHashes = new Map<string, string>();
  for (const integration of catalog.integrations) {
    if (integration.clientSecret !== undefined) secretHashes.set(integration.id, await hashSecret(integration.clientSecret));
  }

  await db.transaction(async (tx) => {
    // A transaction retried after a deadlock or serialization failure counts from zero again.
    summary = emptySummary();
    await tx.query('SELECT pg_advisory_xact_lock($1)', [CATALOG_SYNC_LOCK]);
    if (source && (await syncedFingerprint(tx)) === source.fingerprint) {
      summary.unchanged = true;
      return;
    }

    // Removals first, so a slug moving to a new id does not collide with its old row.
    const goneKeys = (
      await tx.query<{ product_id: string; id: string; used: boolean }>(
        `SELECT p.product_id, p.id, EXISTS (SELECT 1 FROM stores s WHERE s.product_id = p.product_id AND s.billing_plan_id = p.id) AS used
         FROM billing_plans p WHERE NOT (p.product_id || '/' || p.id = ANY($1)) AND NOT p.retired`,
        [planKeys],
      )
    ).rows;
    for (const plan of goneKeys) {
      const label = `plan ${plan.product_id}/${plan.id}`;
      if (plan.used) {
        await tx.query('UPDATE billing_plans SET retired = true, updated_at = now() WHERE product_id = $1 AND id = $2', [
          plan.product_id,
          plan.id,
        ]);
        summary.retired.push(label);
      } else {
        await tx.query('DELETE FROM billing_plans WHERE product_id = $1 AND id = $2', [plan.product_id, plan.id]);
        summary.deleted.push(label);
      }
    }
    const goneProducts = await tx.query<{ id: string; used: boolean }>(
      `SELECT p.id, EXISTS (SELECT 1 FROM stores s WHERE s.product_id = p.id) AS used
         FROM products p WHERE NOT (p.id = ANY($1)) AND NOT p.retired`,
      [productIds],
    );
    for (const product of goneProducts.rows) {
      if (product.used) {
        await tx.query('UPDATE products SET retired = true, updated_at = now() WHERE id = $1', [product.id]);
        summary.retired.push(`product ${product.id}`);
      } else {
        await tx.query('DELETE FROM billing_plans WHERE product_id = $1', [product.id]);
        await tx.query('DELETE FROM products WHERE id = $1', [product.id]);
        summary.deleted.push(`product ${product.id}`);
      }
    }
    const goneIntegrations = await tx.query<{ id: string; used: boolean }>(
      `SELECT i.id, EXISTS (SELECT 1 FROM installations n WHERE n.integration_id = i.id)
                 OR EXISTS (SELECT 1 FROM products p WHERE p.integration_id = i.id) AS used
         FROM integrations i WHERE NOT (i.id = ANY($1)) AND NOT i.retired`,
      [integrationIds],
    );
    for (const integration of goneIntegrations.rows) {
      if (integration.used) {
        await tx.query('UPDATE integrations SET retired = true, updated_at = now() WHERE id = $1', [integration.id]);
        summary.retired.push(`integration ${integration.id}`);
      } else {
        await tx.query('DELETE FROM integrations WHERE id = $1', [integration.id]);
        summary.deleted.push(`integration ${integration.id}`);
      }
    }

    // Rows about to be written give up their slugs first, so two entries may swap slugs.
    await tx.query(`UPDATE integrations SET slug = '~' || id WHERE id = ANY($1) AND NOT retired`, [integrationIds]);
    await tx.query(`UPDATE products SET slug = '~' || id WHERE id = ANY($1) AND NOT retired`, [productIds]);

    // A product that stores use stays with its integration: its stores live in that integration's installations.
    const moved = await tx.query<{ id: string; integration_id: string }>(
      `SELECT p.id, p.integration_id FROM products p
        WHERE p.id = ANY($1) AND EXISTS (SELECT 1 FROM stores s WHERE s.product_id = p.id)`,
      [productIds],
    );
    for (const row of moved.rows) {
      const now = products.find((p) => p.id === row.id)!;
      if (now.integrationId !== row.integration_id) {
        throw new CatalogError(file, [
          `product ${row.id}: stores of integration ${row.integration_id} use it, so it cannot move to integration ${now.integrationId}`,
        ]);
      }
    }

    for (const integration of catalog.integrations) {
      await tx.query(
        `INSERT INTO integrations (id, slug, name, icon, scopes, client_secret_hash, webhook_url, client_secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (id) DO UPDATE SET slug = $2, name = $3, icon = $4, scopes = $5, client_secret_hash = $6, webhook_url = $7,
           client_secret = $8, retired = false, updated_at = now()`,
        [
          integration.id,
          integration.slug,
          integration.name,
          integration.icon,
          json(integration.scopes ?? ['read-write:integration-resource']),
          secretHashes.get(integration.id) ?? null,
          integration.webhookUrl ?? null,
          // Sealed only where a webhook needs it in plaintext; elsewhere the hash is enough.
          integration.webhookUrl !== undefined && integration.clientSecret !== undefined && box
            ? box.seal(integration.clientSecret, { table: 'integrations', id: integration.id, column: 'client_secret' })
            : null,
        ],
      );
      // Its own statement, beside the upsert: "Open in provider" (src/partners/sso.ts) reads it from here.
      await tx.query('UPDATE integrations SET redirect_login_url = $2 WHERE id = $1', [
        integration.id,
        integration.redirectLoginUrl ?? null,
      ]);
      summary.upserted.integrations++;
    }
    for (const product of products) {
      await tx.query(
        `INSERT INTO products (id, integration_id, slug, position, name, description, short_description, primary_protocol,
                               protocols, tags, capabilities, metadata_schema, provider)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
         ON CONFLICT (id) DO UPDATE SET integration_id = $2, slug = $3, position = $4, name = $5, description = $6,
           short_description = $7, primary_protocol = $8, protocols = $9, tags = $10, capabilities = $11,
           metadata_schema = $12, provider = $13, retired = false, updated_at = now()`,
        [
          product.id,
          product.integrationId,
          product.slug,
          product.position,
          product.name,
          product.description ?? null,
          product.shortDescription ?? null,
          product.primaryProtocol ?? null,
          json(product.protocols),
          json(product.tags ?? []),
          json(product.capabilities ?? {}),
          json(product.metadataSchema),
          json(product.provider),
        ],
      );
      summary.upserted.products++;
      for (const [position, plan] of product.plans.entries()) {
        await upsertPlan(tx, position, billingPlanOf(product.id, plan));
        summary.upserted.plans++;
      }
    }
    if (source) {
      await tx.query(
        `INSERT INTO catalog_state (fingerprint, file) VALUES ($1, $2)
         ON CONFLICT (singleton) DO UPDATE SET fingerprint = $1, file = $2, synced_at = now()`,
        [source.fingerprint, source.file],
      );
    }
  });
  return summary;
}

async function upsertPlan(tx: Queryable, position: number, plan: BillingPlan) {
  await tx.query(
    `INSERT INTO billing_plans (product_id, id, position, type, scope, name, description, cost, payment_method_required,
                                preauthorization_amount_cents, initial_charge, minimum_amount_cents, maximum_amount_cents,
                                details, highlighted_details, resource_limit, disabled)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
     ON CONFLICT (product_id, id) DO UPDATE SET position = $3, type = $4, scope = $5, name = $6, description = $7, cost = $8,
       payment_method_required = $9, preauthorization_amount_cents = $10, initial_charge = $11, minimum_amount_cents = $12,
       maximum_amount_cents = $13, details = $14, highlighted_details = $15, resource_limit = $16, disabled = $17,
       retired = false, updated_at = now()`,
    [
      plan.productId,
      plan.id,
      position,
      plan.type,
      plan.scope,
      plan.name,
      plan.description,
      plan.cost,
      plan.paymentMethodRequired,
      plan.preauthorizationAmountCents,
      plan.initialCharge,
      plan.minimumAmountCents,
      plan.maximumAmountCents,
      json(plan.details),
      json(plan.highlightedDetails),
      plan.resourceLimit,
      plan.disabled,
    ],
  );
}

/**
 * Keeps a plan a partner server offered (and a store was created on) beside the catalog's, so the
 * store can reference it; it sorts after the catalog's own plans. A later catalog sync retires it
 * like any plan the file does not name, and keeps it while stores use it.
 */
export async function rememberPartnerPlan(tx: Queryable, plan: BillingPlan): Promise<void> {
  await upsertPlan(tx, 1000, { ...plan, disabled: false });
}

/** The fingerprint of the catalog the database holds (see catalogFingerprint), if any was synced. */
export async function syncedFingerprint(db: Queryable): Promise<string | undefined> {
  const { rows } = await db.query<{ fingerprint: string }>('SELECT fingerprint FROM catalog_state');
  return rows[0]?.fingerprint;
}
