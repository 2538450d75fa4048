/**
 * What the `vercel` CLI's marketplace commands need beyond the SDK's operations: an integration
 * looked up by slug with its products, a team installing an integration after accepting its
 * terms (`vercel integration accept-terms`, `POST .../marketplace/install`), and the one-call
 * create of `vercel integration add` (`POST .../marketplace/auto-provision/{product}`).
 *
 * The auto-provision is a front for the store service: the store is created by
 * StoreService.create exactly as `POST /v1/storage/stores/integration/direct` creates one, so
 * every rule of that endpoint holds (metadata checked against the product's schema, the plan
 * chosen or checked, billing authorised for a paid plan, prepayment, quotas, the idempotency
 * key). What is added here is only what the CLI's call leaves to the server: which installation,
 * and an installation made on the spot when the caller accepted the terms in the same call.
 *
 * The CLI retries every 5xx answer several times, so nothing a request gets wrong is a 5xx: a
 * product no provider serves on this node is a 400 naming why (the store service's 503 for it is
 * meant for SDK callers, which do not retry), and the CLI's invocation id keys the create so its
 * retries of a create that failed on the provider's side get the first answer, not a second store.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { audit } from '../audit/audit-log.ts';
import type { BillingPlan, Catalog, Integration, Product } from '../catalog/catalog.ts';
import type { Database } from '../db/database.ts';
import { AppError, badRequest, conflict, forbidden, notFound } from '../errors.ts';
import type { Providers } from '../providers/registry.ts';
import type { StoreService, StoreView } from '../stores/store-service.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertInstallationAdmin, getInstallation, install, listInstallations, type Installation } from '../tenancy/installations.ts';
import { permissionUpgraded } from '../webhooks/events.ts';
import type { Discovery } from './discovery.ts';

/** The body of POST /v1/integrations/integration/{slug}/marketplace/auto-provision/{product}, as the CLI sends it. */
export interface AutoProvisionInput {
  name: string;
  metadata?: Record<string, unknown> | undefined;
  acceptedPolicies?: Record<string, string> | undefined;
  source?: string | undefined;
  billingPlanId?: string | undefined;
  installationId?: string | undefined;
  installationMetadata?: Record<string, unknown> | undefined;
}

/** The 200 answer of an auto-provision, as the CLI reads it (`kind: "provisioned"`). */
export interface Provisioned {
  kind: 'provisioned';
  integration: { id: string; slug: string; name: string; icon: string; policies: Record<string, string> };
  product: { id: string; slug: string; name: string; icon: string; metadataSchema: Product['metadataSchema'] };
  installation: { id: string };
  resource: { id: string; externalResourceId: string | null; name: string; status: string; secretKeys: string[] };
  billingPlan: BillingPlan | null;
}

/** Roles that only read: they may not install an integration (as they may not create stores). */
const READ_ONLY = new Set(['VIEWER', 'BILLING']);

/** How often an installation undone with its store looks again whether the store's rollback is done. */
const ROLLBACK_POLL_MS = 250;

export class CliInstalls {
  constructor(
    private readonly db: Database,
    private readonly catalog: () => Catalog,
    private readonly providers: Providers,
    private readonly stores: StoreService,
    private readonly discovery: Discovery,
    /** A provider call's bound, which bounds a refused store's rollback too. */
    private readonly provisionTimeoutMs: number,
    /** Where the dashboard is served: an ambiguous create's `url` is its marketplace page. */
    private readonly publicUrl: () => string,
  ) {}

  /** An integration on offer, by id or slug, with its products as discovery lists them (one unavailable here says why). */
  describe(idOrSlug: string): { integration: Integration; products: Array<Product & { unavailableReason?: string }> } {
    const catalog = this.catalog();
    const integration = catalog.findIntegration(idOrSlug);
    const products = catalog.productsOf(integration.id).map((product) => this.discovery.withAvailability(product));
    return { integration, products };
  }

  /** Every integration on offer, with its products. */
  list(): Array<ReturnType<CliInstalls['describe']>> {
    return this.catalog()
      .listIntegrations()
      .map((integration) => this.describe(integration.id));
  }

  /**
   * Installs an integration for the team, the terms accepted (`acceptedPolicies.toc`, a time);
   * 409 `already_installed` when the team has it (the CLI reads that as installed), unless
   * `another` asks for one more installation of it: the team then holds several, and a create
   * that names none is ambiguous (`multiple_installations`).
   */
  async install(
    actor: Actor,
    integrationIdOrSlug: string,
    acceptedPolicies: Record<string, string> | undefined,
    options: { source?: string; another?: boolean } = {},
  ) {
    const integration = this.catalog().findIntegration(integrationIdOrSlug);
    assertMayInstall(actor, integration);
    assertTermsAccepted(integration, acceptedPolicies);
    const { source = 'cli', another = false } = options;
    return this.db.transaction(async (tx) => {
      const installation = await install(tx, {
        teamId: actor.team.id,
        integrationId: integration.id,
        installedBy: actor.userId,
        source,
        another,
      });
      await audit(tx, {
        teamId: actor.team.id,
        actorId: actor.userId,
        action: 'installation.created',
        targetType: 'installation',
        targetId: installation.id,
        details: {
          integration: integration.slug,
          installedBy: actor.userId,
          acceptedPolicies: acceptedPolicies ?? {},
          ...(another && { another: true }),
        },
      });
      return { installation, integration };
    });
  }

  /**
   * Removes an installation made for a store that was refused, as DELETE
   * /v1/integrations/configuration/{id} removes one (a partner server told), saying why in the
   * audit log. The refused store may still be rolling back: its create answers after a moment
   * while a slow undo goes on (store-creation.ts). The installation then goes once the store has,
   * from the background; a store made on it meanwhile (a teammate's) keeps it.
   */
  private async undoInstall(actor: Actor, installation: Installation, cause: unknown): Promise<void> {
    const reason = `the store it was made for was refused: ${cause instanceof Error ? cause.message : String(cause)}`;
    /** True when done: removed, or kept by a store that is not being rolled back. */
    const removed = async (): Promise<boolean> => {
      try {
        await this.discovery.deleteConfiguration(actor, installation.id, { reason });
        return true;
      } catch (error) {
        if (!(error instanceof AppError && error.code === 'configuration_has_stores')) throw error;
        const { rows } = await this.db.query<{ rolling: boolean | null }>(
          "SELECT bool_and(status = 'deleting' AND rolling_back) AS rolling FROM stores WHERE installation_id = $1",
          [installation.id],
        );
        return rows[0]?.rolling === false;
      }
    };
    if (await removed()) return;
    // As long as the store service lets a rollback run before it takes it for stale (store-service.ts).
    const deadline = Date.now() + 2 * this.provisionTimeoutMs;
    void (async () => {
      while (Date.now() < deadline) {
        await sleep(ROLLBACK_POLL_MS, undefined, { ref: false });
        if (await removed()) return;
      }
    })().catch(() => {}); // the server closing meanwhile; or the partner refusing, as it may refuse a DELETE
  }

  /**
   * `vercel integration add`: the store created through the store service, on the installation
   * named (`installationId`), else the team's only one of the integration, else one made now if
   * the caller accepted the terms in this call. Two or more and none named: 422
   * `multiple_installations` with the list, which the CLI prints with `--installation-id`.
   */
  async autoProvision(
    actor: Actor,
    integrationSlug: string,
    productSlug: string,
    input: AutoProvisionInput,
    options: { idempotencyKey?: string | undefined },
  ): Promise<Provisioned> {
    const catalog = this.catalog();
    const integration = catalog.findIntegration(integrationSlug);
    const product = catalog.findProduct(integration.id, productSlug);
    const settings = Object.keys(input.installationMetadata ?? {});
    if (settings.length > 0) {
      throw badRequest(
        `${integration.name} takes no installation settings: ${settings.join(', ')} ${settings.length === 1 ? 'is not one' : 'are not'}`,
      );
    }
    const unavailable = this.providers.unavailableReason(product);
    if (unavailable !== undefined) {
      throw new AppError(400, 'product_unavailable', `${product.name} cannot be created on this server: ${unavailable}`);
    }
    let installation: Installation;
    let madeNow = false;
    const ofIntegration = (await listInstallations(this.db, actor.team.id)).filter((i) => i.integrationId === integration.id);
    if (input.installationId !== undefined) {
      const named = ofIntegration.find((i) => i.id === input.installationId);
      if (!named) throw notFound(`installation of ${integration.slug}`, input.installationId);
      installation = named;
    } else if (ofIntegration.length === 1) {
      installation = ofIntegration[0]!;
    } else if (ofIntegration.length > 1) {
      throw multipleInstallations(integration, product, ofIntegration, this.publicUrl());
    } else {
      if (!input.acceptedPolicies?.toc) {
        throw new AppError(
          403,
          'terms_not_accepted',
          `The team has not installed ${integration.name}: accept its terms first (vercel integration accept-terms ${integration.slug})`,
        );
      }
      installation = (await this.install(actor, integration.id, input.acceptedPolicies)).installation;
      madeNow = true;
    }

    try {
      return await this.stores.create(
        actor,
        {
          name: input.name,
          integrationConfigurationId: installation.id,
          integrationProductIdOrSlug: product.id,
          metadata: input.metadata,
          source: input.source ?? 'cli',
          billingPlanId: input.billingPlanId,
          prepaymentAmountCents: initialPrepayment(product, input.billingPlanId),
        },
        { idempotencyKey: options.idempotencyKey, render: provisioned, answer: 'auto-provision' },
      );
    } catch (error) {
      // The installation this request made for its store goes with the refused store: a refused
      // request leaves nothing behind. Only when it still has no store (a retry may have made one).
      if (madeNow) await this.undoInstall(actor, installation, error).catch(() => {});
      throw error;
    }
  }
}

/** PATCH /v1/integrations/configuration/{id} as `vercel integration update` sends it. */
export interface ConfigurationUpdate {
  billingPlanId?: string | undefined;
  authorizationId?: string | undefined;
  projects?: 'all' | string[] | undefined;
}

/** Which projects an installation may connect its stores to: `all`, or the ids of those selected. */
export type ProjectSelection = { projectSelection: 'all' } | { projectSelection: 'selected'; projects: string[] };

/** The project selection of each of the team's installations, by installation id. */
export async function projectSelections(db: Database, teamId: string): Promise<Map<string, ProjectSelection>> {
  const { rows } = await db.query<{ id: string; project_ids: string[] | null }>(
    'SELECT id, project_ids FROM installations WHERE team_id = $1',
    [teamId],
  );
  return new Map(
    rows.map((row) => [
      row.id,
      row.project_ids === null ? { projectSelection: 'all' } : { projectSelection: 'selected', projects: row.project_ids },
    ]),
  );
}

/**
 * `vercel integration update`: which projects the installation may connect its stores to
 * (`projects`: "all" or project ids; a project already connected to one of its stores must stay
 * selected: 409 naming it), by its admins. `billingPlanId` is refused with a 400 saying why:
 * Storehouse's plans are each store's own (PATCH /v1/storage/stores/{id}), never an installation's.
 */
export async function updateConfiguration(
  db: Database,
  catalog: Catalog,
  actor: Actor,
  id: string,
  update: ConfigurationUpdate,
): Promise<{ installation: Installation; integration: Integration; selection: ProjectSelection }> {
  const installation = await getInstallation(db, actor.team.id, id);
  const integration = catalog.integrationById(installation.integrationId)!;
  assertInstallationAdmin(installation, actor, integration.name, 'change its configuration');
  if (update.billingPlanId !== undefined) {
    const plans = catalog.productsOf(integration.id).flatMap((product) => product.plans.filter((plan) => !plan.retired));
    const plan = plans.find((p) => p.id === update.billingPlanId);
    throw new AppError(
      400,
      plan ? 'plan_per_store' : 'invalid_billing_plan',
      plan
        ? `${plan.id} is a plan of each ${integration.name} store, not of the installation: change a store's plan with PATCH /v1/storage/stores/{id}`
        : `${integration.name} has no installation plan ${update.billingPlanId}: its plans are each store's own (${plans.map((p) => p.id).join(', ')}), changed with PATCH /v1/storage/stores/{id}`,
    );
  }
  if (update.projects === undefined) throw badRequest('Nothing to update: pass projects ("all" or project ids)');
  const wanted = update.projects;
  return db.transaction(async (tx) => {
    // Held until the change commits: a connect reads the selection FOR SHARE (connections.ts), so the
    // two take turns and a store cannot be connected to a project being left out meanwhile.
    const { rows: held } = await tx.query<{ project_ids: string[] | null }>(
      'SELECT project_ids FROM installations WHERE id = $1 FOR UPDATE',
      [installation.id],
    );
    const before = held[0]?.project_ids ?? null;
    let ids: string[] | null = null;
    if (wanted !== 'all') {
      if (wanted.length === 0) throw badRequest('projects must be "all" or at least one project id');
      const { rows } = await tx.query<{ id: string }>('SELECT id FROM projects WHERE team_id = $1 AND id = ANY($2::text[])', [
        actor.team.id,
        wanted,
      ]);
      const found = new Set(rows.map((row) => row.id));
      const missing = wanted.find((projectId) => !found.has(projectId));
      if (missing !== undefined) throw notFound('project', missing);
      ids = [...found].sort();
      const { rows: outside } = await tx.query<{ name: string; store: string }>(
        `SELECT DISTINCT p.name, s.name AS store FROM store_connections c JOIN stores s ON s.id = c.store_id JOIN projects p ON p.id = c.project_id
          WHERE s.installation_id = $1 AND NOT (c.project_id = ANY($2::text[])) ORDER BY p.name, s.name`,
        [installation.id, ids],
      );
      if (outside.length > 0) {
        throw conflict(
          'projects_connected',
          `Stores of ${integration.name} are connected to projects left out: ${outside.map((o) => `${o.store} to ${o.name}`).join(', ')}; disconnect them first or keep those projects`,
        );
      }
    }
    await tx.query('UPDATE installations SET project_ids = $2, updated_at = now() WHERE id = $1', [installation.id, ids]);
    // The integration is told the projects it may use changed (in this transaction: the outbox).
    await permissionUpgraded(tx, installation.id, before, ids, actor.userId);
    await audit(tx, {
      teamId: actor.team.id,
      actorId: actor.userId,
      action: 'installation.updated',
      targetType: 'installation',
      targetId: installation.id,
      details: { projects: ids ?? 'all' },
    });
    const selection: ProjectSelection = ids === null ? { projectSelection: 'all' } : { projectSelection: 'selected', projects: ids };
    return { installation, integration, selection };
  });
}

/** The answer the CLI reads for a store just made. */
function provisioned(view: StoreView): Provisioned {
  const { store, product, integration, plan } = view;
  return {
    kind: 'provisioned',
    integration: { id: integration.id, slug: integration.slug, name: integration.name, icon: integration.icon, policies: {} },
    product: { id: product.id, slug: product.slug, name: product.name, icon: integration.icon, metadataSchema: product.metadataSchema },
    installation: { id: store.installationId },
    resource: {
      id: store.id,
      externalResourceId: store.externalResourceId,
      name: store.name,
      status: store.status,
      secretKeys: store.secretSummary.map((secret) => secret.name),
    },
    billingPlan: plan ?? null,
  };
}

/**
 * The 422 of an auto-provision whose installation is ambiguous, with the fields the CLI 58.10.0
 * reads (`kind: "unknown"`, `reason`, `url`, `integration`, `product`, and `installations` as
 * `id`, `type`, `externalId`, `status`, which it lists, telling the user to re-run with
 * `--installation-id`; it never retries on its own). Vercel answers them at the body's top level;
 * the CLI takes an error's fields from `error` when the body has one, so they are in both, beside
 * Vercel's error `code` and `message`. `url` is the dashboard's marketplace page, where each
 * installation has its own section.
 */
function multipleInstallations(integration: Integration, product: Product, installations: Installation[], publicUrl: string): AppError {
  const fallback = {
    kind: 'unknown',
    reason: 'multiple_installations',
    installations: installations.map((i) => ({
      id: i.id,
      type: 'marketplace',
      status: i.status,
      ...(i.externalId !== null && { externalId: i.externalId }),
    })),
    url: `${publicUrl.replace(/\/+$/, '')}/dashboard/`,
    integration: { id: integration.id, slug: integration.slug, name: integration.name, icon: integration.icon, policies: {} },
    product: { id: product.id, slug: product.slug, name: product.name, icon: integration.icon, metadataSchema: product.metadataSchema },
  };
  const message = `The team has ${installations.length} installations of ${integration.slug}: name one with installationId (--installation-id)`;
  return new AppError(422, 'multiple_installations', message, fallback, fallback);
}

/**
 * The CLI has no flag for a prepayment's amount: a prepayment plan of the catalog is bought at its
 * minimum (what its `initialCharge` says), and topped up later. Other plans, and plans a partner
 * server offers (it checks the amount itself), are left to the store service.
 */
function initialPrepayment(product: Product, billingPlanId: string | undefined): number | undefined {
  const plan = billingPlanId === undefined ? undefined : product.plans.find((p) => p.id === billingPlanId && !p.retired);
  if (plan?.type !== 'prepayment') return undefined;
  return plan.minimumAmountCents ?? undefined;
}

function assertMayInstall(actor: Actor, integration: Integration): void {
  if (READ_ONLY.has(actor.role)) {
    throw forbidden(`A ${actor.role.toLowerCase()} of the team may not install ${integration.name}: ask an owner or a member`);
  }
}

function assertTermsAccepted(integration: Integration, acceptedPolicies: Record<string, string> | undefined): void {
  const toc = acceptedPolicies?.toc;
  if (typeof toc !== 'string' || Number.isNaN(Date.parse(toc))) {
    throw badRequest(`Installing ${integration.name} needs its terms accepted: acceptedPolicies.toc, the time they were accepted`);
  }
}
