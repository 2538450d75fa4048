/**
 * The marketplace API partner servers call back (docs/partner-api.md §2.2, §5;
 * docs/vercel-api.md §5): with the installation's access token they read the account and members,
 * report `resource.updated`, read, change and delete resources and replace their secrets (their
 * billing data, invoices and balances are src/billing/'s). A token speaks for one installation only.
 */
import { audit } from '../audit/audit-log.ts';
import type { Catalog } from '../catalog/catalog.ts';
import type { Database, Queryable } from '../db/database.ts';
import { AppError, forbidden, notFound, unauthorized, validationError } from '../errors.ts';
import type { Secret } from '../providers/provider.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { StoreConnections } from '../stores/connections.ts';
import type { StoreService } from '../stores/store-service.ts';
import { isNameTaken, nameTaken, readSecrets, sealSecrets, STORE_COLUMNS, STORE_STATUS, toStore, type Store } from '../stores/stores.ts';
import { installationAccount, isInstallationAdmin } from '../tenancy/installations.ts';
import { bearerToken } from '../tenancy/access.ts';
import { ReadCache, type ChangeFeed } from '../db/change-feed.ts';
import { hashToken } from '../ids.ts';
import type { TeamRole } from '../tenancy/teams.ts';
import { installationOfToken } from './installation-tokens.ts';
import type { ResourceStatus } from '../providers/provider.ts';
import type { PartnerPlan } from '../providers/http.ts';
import { isUniqueViolation } from '../db/database.ts';

/** The installation a partner's token speaks for. */
export interface PartnerInstallation {
  installationId: string;
  teamId: string;
  integrationId: string;
  /** The token's own id (never its value): what the audit log names when a partner rotates or revokes. */
  tokenId: string;
}

export type MarketplaceEvent =
  | { type: 'resource.updated'; resourceId: string; productId?: string }
  | { type: 'installation.updated'; billingPlanId?: string };

export interface ResourceChange {
  name?: string;
  ownership?: 'owned' | 'linked' | 'sandbox';
  status?: ResourceStatus;
  metadata?: Record<string, unknown>;
  notification?: { level: 'info' | 'warn' | 'error'; title: string; message?: string; href?: string } | string | null;
  secrets?: Secret[] | { secrets: Secret[]; partial?: boolean };
}

export interface ResourceImport {
  productId: string;
  name: string;
  status: ResourceStatus;
  ownership?: 'owned' | 'linked' | 'sandbox';
  metadata?: Record<string, unknown>;
  billingPlan?: PartnerPlan;
  notification?: ResourceChange['notification'];
  extras?: Record<string, unknown>;
  secrets?: Secret[];
}

export class MarketplaceApi {
  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
    private readonly stores: StoreService,
    private readonly connections: StoreConnections,
    private readonly urls: { publicUrl(): string },
    private readonly catalog: () => Catalog,
    feed: ChangeFeed,
  ) {
    this.tokens = new ReadCache(feed);
  }

  private readonly tokens: ReadCache<PartnerInstallation>;

  private productSlug(productId: string): string {
    return this.catalog().productById(productId).slug;
  }

  /**
   * Whether a partner server serves the product (its binding is `http`). The others (the built-in
   * `postgres` and `redis`) are Storehouse's own: no partner created their resources or can delete
   * them, so the marketplace API neither imports nor shows them. An imported one was a store no
   * one could delete: its delete asks a provider that holds no such resource.
   */
  private servedByPartner(productId: string): boolean {
    return this.catalog().productById(productId).provider.type === 'http';
  }

  /** The token's installation; 401 for an unknown token, 403 when it is another installation's. */
  async authenticate(authorization: string | undefined, installationId: string): Promise<PartnerInstallation> {
    const value = bearerToken(authorization);
    // From memory between changes: an installation (and so its tokens) removed anywhere drops it.
    const found = await this.tokens.get(hashToken(value), async () => {
      const installation = await installationOfToken(this.db, value);
      if (!installation) throw unauthorized("The access token is not valid (it is not an installation's, or the installation was removed)");
      return installation;
    });
    if (found.installationId !== installationId) throw forbidden(`The access token is not one of the installation ${installationId}`);
    return found;
  }

  async account(installation: PartnerInstallation) {
    const { name, url, contact } = await installationAccount(this.db, installation.installationId, this.urls.publicUrl());
    return { name, url, contact };
  }

  /** A member of the installation's team, with the role partners see: ADMIN may manage the installation, USER only reads. */
  async member(installation: PartnerInstallation, memberId: string) {
    const { rows } = await this.db.query<{ id: string; email: string; role: TeamRole; installed_by: string | null }>(
      `SELECT u.id, u.email, m.role, i.installed_by FROM installations i
         JOIN memberships m ON m.team_id = i.team_id JOIN users u ON u.id = m.user_id
        WHERE i.id = $1 AND u.id = $2`,
      [installation.installationId, memberId],
    );
    const row = rows[0];
    if (!row) throw notFound('member', memberId);
    const admin = isInstallationAdmin({ installedBy: row.installed_by }, row.id, row.role);
    return { id: row.id, role: admin ? 'ADMIN' : 'USER', globalUserId: row.id, userEmail: row.email };
  }

  /** `resource.updated`: the resource is read again from the partner; `installation.updated` is recorded. */
  async event(installation: PartnerInstallation, event: MarketplaceEvent): Promise<void> {
    if (event.type === 'resource.updated') {
      const store = await this.store(this.db, installation, event.resourceId);
      try {
        await this.stores.refresh(store);
      } catch (error) {
        // The event is taken; the poller asks again if the store is still pending.
        if (error instanceof AppError && error.status >= 500) {
          throw new AppError(
            502,
            'provider_error',
            `Storehouse could not read the resource ${event.resourceId} back from the partner server: ${error.message}`,
          );
        }
        throw error;
      }
      return;
    }
    await audit(this.db, {
      teamId: installation.teamId,
      actorId: null,
      action: 'installation.updated',
      targetType: 'installation',
      targetId: installation.installationId,
      details: { by: 'provider', ...(event.billingPlanId !== undefined && { billingPlanId: event.billingPlanId }) },
    });
  }

  async listResources(installation: PartnerInstallation) {
    const { rows } = await this.db.query(
      `SELECT ${STORE_COLUMNS} FROM stores WHERE installation_id = $1 AND external_resource_id IS NOT NULL ORDER BY seq`,
      [installation.installationId],
    );
    return {
      resources: rows
        .map(toStore)
        .filter((store) => this.servedByPartner(store.productId))
        .map((store) => ({ ...this.resourceOf(store), partnerId: store.externalResourceId! })),
    };
  }

  async getResource(installation: PartnerInstallation, resourceId: string) {
    const store = await this.store(this.db, installation, resourceId);
    return { ...this.resourceOf(store), id: store.externalResourceId! };
  }

  /** The partner changed the resource on its side: status, name, metadata, notification or secrets. */
  async updateResource(installation: PartnerInstallation, resourceId: string, change: ResourceChange): Promise<{ name: string }> {
    const answer = await this.db.transaction(async (tx) => {
      const store = await this.store(tx, installation, resourceId, true);
      const sets: string[] = [];
      const values: unknown[] = [store.id];
      const set = (column: string, value: unknown) => sets.push(`${column} = $${values.push(value)}`);
      const applied: string[] = [];
      if (change.name !== undefined && change.name !== store.name) {
        set('name', change.name);
        applied.push('name');
      }
      // A store being deleted stays `deleting`, as refresh() keeps it: turned back to another status,
      // the delete under way (which removes only a `deleting` store) left it behind, its resource gone.
      if (change.status !== undefined && store.status !== 'deleting') {
        set('status', STORE_STATUS[change.status]);
        set('external_resource_status', change.status);
        if (change.status !== 'pending') sets.push('next_check_at = NULL');
        applied.push('status');
      }
      if (change.metadata !== undefined) {
        set('metadata', JSON.stringify(change.metadata));
        applied.push('metadata');
      }
      if (change.ownership !== undefined) {
        set('ownership', change.ownership);
        applied.push('ownership');
      }
      if (change.notification !== undefined) {
        // An empty string (what the SDK sends to clear it) or null clears the notification.
        set(
          'notification',
          typeof change.notification === 'object' && change.notification !== null ? JSON.stringify(change.notification) : null,
        );
        applied.push('notification');
      }
      try {
        if (sets.length > 0) await tx.query(`UPDATE stores SET ${sets.join(', ')}, updated_at = now() WHERE id = $1`, values);
      } catch (error) {
        if (isNameTaken(error)) throw nameTaken(change.name!);
        throw error;
      }
      // Pending again (the partner is reworking it): asked about until it is ready, or its deadline.
      if (change.status === 'pending' && store.status !== 'deleting') await this.stores.schedulePending(tx, store.id);
      if (change.secrets !== undefined) {
        const { secrets, partial } = Array.isArray(change.secrets) ? { secrets: change.secrets, partial: false } : change.secrets;
        await this.writeSecrets(tx, store, secrets, partial ?? false);
        applied.push('secrets');
      }
      // What was applied (billingPlan and extras are accepted, as the SDK sends them, and kept by the partner).
      await audit(tx, {
        teamId: store.teamId,
        actorId: null,
        action: 'store.updated',
        targetType: 'store',
        targetId: store.id,
        details: { by: 'provider', fields: applied },
      });
      return { name: change.name ?? store.name };
    });
    if (change.status === 'pending') this.stores.pendingChanged();
    return answer;
  }

  /**
   * Import (upsert) a resource the partner created on its side: a new store, or the one the
   * installation already has for it, updated.
   */
  async importResource(installation: PartnerInstallation, resourceId: string, input: ResourceImport): Promise<{ name: string }> {
    assertUniqueNames(input.secrets ?? []);
    const product = this.catalog().findProduct(installation.integrationId, input.productId);
    if (!this.servedByPartner(product.id)) {
      throw validationError(
        [
          {
            key: 'productId',
            message: `is ${product.slug}, which Storehouse serves itself: only a partner server's products are imported`,
          },
        ],
        `The product ${product.slug} is served by Storehouse itself, not by a partner server: its resources cannot be imported`,
      );
    }
    for (let attempt = 0; ; attempt++) {
      const { rows } = await this.db.query<{ product_id: string }>(
        'SELECT product_id FROM stores WHERE installation_id = $1 AND external_resource_id = $2',
        [installation.installationId, resourceId],
      );
      if (rows[0]) {
        // The body's product is checked on an update too (it was ignored: an unknown one answered
        // 200): unknown is a 404, as for a new import; another of the integration's is a 400.
        const current = this.catalog().productById(rows[0].product_id);
        if (input.productId !== current.id && input.productId !== current.slug) {
          this.catalog().findProduct(installation.integrationId, input.productId);
          throw validationError([
            { key: 'productId', message: `must be the resource's product (${current.slug}): a resource cannot change its product` },
          ]);
        }
        const { productId: _product, ownership: _ownership, billingPlan: _plan, extras: _extras, ...change } = input;
        return this.updateResource(installation, resourceId, change);
      }
      try {
        const store = await this.stores.importResource(installation, resourceId, input);
        return { name: store.name };
      } catch (error) {
        // Imported by a concurrent call a moment ago: update that one.
        if (attempt > 0 || !isUniqueViolation(error)) throw error;
      }
    }
  }

  /** The partner deleted the resource on its side: the store goes (the partner is not called back). */
  async deleteResource(installation: PartnerInstallation, resourceId: string): Promise<void> {
    const store = await this.store(this.db, installation, resourceId);
    await this.stores.forget(store, 'deleted by the provider');
  }

  /** New secrets for the resource: the store's, and its connected projects' variables. */
  async updateSecrets(installation: PartnerInstallation, resourceId: string, secrets: Secret[], partial: boolean): Promise<void> {
    await this.db.transaction(async (tx) => {
      const store = await this.store(tx, installation, resourceId, true);
      await this.writeSecrets(tx, store, secrets, partial);
      await audit(tx, {
        teamId: store.teamId,
        actorId: null,
        action: 'store.secrets_updated',
        targetType: 'store',
        targetId: store.id,
        details: { by: 'provider', names: secrets.map((s) => s.name), partial },
      });
    });
  }

  private async writeSecrets(tx: Queryable, store: Store, secrets: Secret[], partial: boolean): Promise<void> {
    assertUniqueNames(secrets);
    let next = secrets;
    if (partial) {
      const replaced = new Set(secrets.map((s) => s.name));
      next = [...(await readSecrets(tx, this.box, store.id)).filter((s) => !replaced.has(s.name)), ...secrets];
    }
    const { sealed, summary } = sealSecrets(this.box, store.id, next);
    await tx.query('UPDATE stores SET secrets = $2, secret_summary = $3, updated_at = now() WHERE id = $1', [store.id, sealed, summary]);
    await this.connections.rewriteVariables(tx, store, next);
  }

  private resourceOf(store: Store) {
    return {
      internalId: store.id,
      name: store.name,
      // The partner API names products by slug (docs/partner-api.md §0.3).
      productId: this.productSlug(store.productId),
      billingPlanId: store.billingPlanId,
      metadata: store.metadata,
      status: store.externalResourceStatus ?? 'pending',
      ...(store.notification && { notification: store.notification }),
      ...(store.protocolSettings && { protocolSettings: store.protocolSettings }),
    };
  }

  /** The installation's store with this partner resource id, of a product a partner serves; 404 for any other. */
  private async store(db: Queryable, installation: PartnerInstallation, resourceId: string, lock = false): Promise<Store> {
    const { rows } = await db.query(
      `SELECT ${STORE_COLUMNS} FROM stores WHERE installation_id = $1 AND external_resource_id = $2${lock ? ' FOR UPDATE' : ''}`,
      [installation.installationId, resourceId],
    );
    const store = rows[0] ? toStore(rows[0]) : undefined;
    if (!store || !this.servedByPartner(store.productId)) throw notFound('resource', resourceId);
    return store;
  }
}

/**
 * Secrets of one name at most once: twice, both were kept and each connected project got the
 * variable twice for the same environments (the clash check only sees variables already there).
 */
function assertUniqueNames(secrets: Secret[]): void {
  const seen = new Set<string>();
  for (const [index, secret] of secrets.entries()) {
    if (seen.has(secret.name))
      throw validationError([{ key: `secrets[${index}].name`, message: `${secret.name} is named more than once` }]);
    seen.add(secret.name);
  }
}
