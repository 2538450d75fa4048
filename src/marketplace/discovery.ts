/**
 * The first half of the marketplace workflow: a team discovers its integration configurations,
 * the products each offers and their billing plans.
 */
import type { BillingPlan, Catalog, Integration, Product } from '../catalog/catalog.ts';
import { audit } from '../audit/audit-log.ts';
import { ReadCache, type ChangeFeed } from '../db/change-feed.ts';
import type { Database } from '../db/database.ts';
import type { Providers } from '../providers/registry.ts';
import { badRequest } from '../errors.ts';
import type { Actor } from '../tenancy/access.ts';
import { disableUsedUp } from '../stores/stores.ts';
import { configurationRemoved } from '../webhooks/events.ts';
import {
  assertInstallationAdmin,
  countStores,
  getInstallation,
  listInstallations,
  uninstall,
  type Installation,
} from '../tenancy/installations.ts';

export interface ConfigurationFilter {
  installationType?: 'marketplace' | 'external' | 'provisioning' | undefined;
  integrationIdOrSlug?: string | undefined;
}

export class Discovery {
  private readonly installations: ReadCache<Installation>;
  private readonly teamInstallations: ReadCache<Installation[]>;

  constructor(
    private readonly db: Database,
    private readonly catalogs: { current(): Catalog; reload(): Promise<Catalog> },
    feed: ChangeFeed,
    private readonly providers: Providers,
  ) {
    // An installation is its row (its team's deletion removes it, which its table's trigger tells).
    this.installations = new ReadCache(feed, { tables: ['installations'] });
    this.teamInstallations = new ReadCache(feed, { tables: ['installations'] });
  }

  private get catalog(): Catalog {
    return this.catalogs.current();
  }

  /**
   * The integration of an installation. Installations reference integrations by foreign key and
   * retired ones are kept, so it exists; when this node has not loaded it yet (another node synced
   * it a moment ago), the catalog is read again.
   */
  private async integrationOf(installation: Installation): Promise<Integration> {
    const id = installation.integrationId;
    const integration = this.catalog.integrationById(id) ?? (await this.catalogs.reload()).integrationById(id);
    if (!integration) throw new Error(`installation ${installation.id} names integration ${id}, which the database does not hold`);
    return integration;
  }

  /** The team's installation (from memory between changes); 404 for any other. */
  private installation(actor: Actor, id: string): Promise<Installation> {
    return this.installations.get(`${actor.team.id}\0${id}`, () => getInstallation(this.db, actor.team.id, id));
  }

  async listConfigurations(actor: Actor, filter: ConfigurationFilter) {
    // Every Storehouse installation is a marketplace installation.
    if (filter.installationType && filter.installationType !== 'marketplace') return [];
    const wanted = filter.integrationIdOrSlug;
    const installations = await this.teamInstallations.get(actor.team.id, () => listInstallations(this.db, actor.team.id));
    const found = await Promise.all(
      installations.map(async (installation) => ({ installation, integration: await this.integrationOf(installation) })),
    );
    return found.filter(({ integration }) => !wanted || integration.id === wanted || integration.slug === wanted);
  }

  async getConfiguration(actor: Actor, id: string) {
    const installation = await this.installation(actor, id);
    return { installation, integration: await this.integrationOf(installation) };
  }

  /**
   * Only the installation's admins may remove it; it is refused while it still has stores.
   * `reason`, when given, is kept in the audit log (an installation undone with its refused store).
   */
  async deleteConfiguration(actor: Actor, id: string, options: { reason?: string } = {}): Promise<void> {
    const installation = await getInstallation(this.db, actor.team.id, id);
    assertInstallationAdmin(installation, actor, 'the integration', 'remove its configuration');
    // A partner server hears of it first: should it refuse, nothing changes here.
    const partner = this.providers.partnerOf(this.catalog.productsOf(installation.integrationId));
    if (partner) {
      if ((await countStores(this.db, installation.id)) === 0)
        await partner.uninstall(installation.id, { userId: actor.userId, role: 'ADMIN' });
    }
    await this.db.transaction(async (tx) => {
      // Recorded first, while the installation's row can be read; the uninstall's refusal undoes it.
      await configurationRemoved(tx, installation.id, actor.userId);
      await uninstall(tx, installation);
      await audit(tx, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'installation.removed',
        targetType: 'installation',
        targetId: installation.id,
        ...(options.reason !== undefined && { details: { reason: options.reason } }),
      });
    });
  }

  async configurationProducts(
    actor: Actor,
    id: string,
  ): Promise<{ installation: Installation; integration: Integration; products: Product[]; catalog: Catalog }> {
    const { installation, integration } = await this.getConfiguration(actor, id);
    const catalog = this.catalog;
    return { installation, integration, products: catalog.productsOf(integration.id).map((p) => this.withAvailability(p)), catalog };
  }

  /**
   * A product as this node can offer it: one whose provider is not to be had here is listed with
   * every protocol `disabled` and the reason (`unavailableReason`), as Vercel lists a product a
   * team cannot use; creating on it is the 503 that says the same.
   */
  withAvailability(product: Product): Product & { unavailableReason?: string } {
    const reason = this.providers.unavailableReason(product);
    if (reason === undefined) return product;
    const protocols = Object.fromEntries(
      Object.entries(product.protocols).map(([name, settings]) => [name, { ...settings, status: 'disabled' as const }]),
    );
    return { ...product, protocols, unavailableReason: reason };
  }

  /**
   * A product's plans. `integrationConfigurationId`, when given, must be the team's installation
   * of this integration; `metadata`, when given, is the store's metadata as a JSON object.
   */
  async plans(
    actor: Actor,
    integrationIdOrSlug: string,
    productIdOrSlug: string,
    options: { integrationConfigurationId?: string | undefined; metadata?: string | undefined },
  ): Promise<BillingPlan[]> {
    const integration = this.catalog.findIntegration(integrationIdOrSlug);
    const product = this.catalog.findProduct(integration.id, productIdOrSlug);
    let installationId: string | undefined;
    if (options.integrationConfigurationId !== undefined) {
      const installation = await this.installation(actor, options.integrationConfigurationId);
      if (installation.integrationId !== integration.id) {
        throw badRequest(`The configuration ${installation.id} is not an installation of the integration ${integration.slug}`);
      }
      installationId = installation.id;
    }
    const metadata = options.metadata === undefined ? {} : parseMetadata(options.metadata);
    // A plan whose per-team limit the team has reached is shown, but not selectable; so is every
    // plan of a product no provider serves here (a create on one still answers 503, saying why).
    const plans = await this.providers.plansFor(product, metadata, { teamId: actor.team.id, installationId });
    const offered = this.providers.unavailableReason(product) === undefined ? plans : plans.map((plan) => ({ ...plan, disabled: true }));
    return disableUsedUp(this.db, actor.team.id, offered);
  }
}

/** The `metadata` query parameter: a JSON object of the store's metadata. */
export function parseMetadata(raw: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw badRequest('Invalid query parameter "metadata": must be a JSON object, e.g. {"region":"iad1"}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badRequest('Invalid query parameter "metadata": must be a JSON object, e.g. {"region":"iad1"}');
  }
  return value as Record<string, unknown>;
}
