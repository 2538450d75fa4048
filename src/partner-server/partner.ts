/**
 * What the reference partner does, apart from HTTP: it sells one product, a Postgres database,
 * made by Storehouse's own built-in Postgres provider (the provider keeps the database, its name,
 * metadata, plan and credential, and is idempotent per key), and keeps beside it what a partner
 * adds: installations and their access tokens, the status it reports (pending resources that
 * become ready later and say so with a resource.updated event), and its billing submissions.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import type { Product } from '../catalog/catalog.ts';
import { conflict, notFound, validationError } from '../errors.ts';
import { randomBase62 } from '../ids.ts';
import type { PartnerPlan } from '../providers/http.ts';
import type { Provider, ProviderResource, ResourceStatus, ResourceUpdate, Secret } from '../providers/provider.ts';
import type { MarketplaceAnswer, MarketplaceClient } from './marketplace.ts';
import { monthlyPrice, planForResource, PLANS, PRODUCT_SLUG } from './plans.ts';
import { isResourceStatus, type InstallationUpsert, type PartnerState, type ResourceRow } from './state.ts';

/** A resource as the partner API answers with it (docs/partner-api.md §1.1). */
export interface PartnerResource {
  id: string;
  productId: string;
  name: string;
  metadata: Record<string, unknown>;
  status: ResourceStatus;
  billingPlan: PartnerPlan;
  protocolSettings?: Record<string, unknown>;
}

/** A provision request's body (§1.3), checked. */
export interface ProvisionBody {
  productId: string;
  name: string;
  metadata: Record<string, unknown>;
  billingPlanId: string;
  externalId?: string;
  protocolSettings?: Record<string, unknown>;
}

export interface UpdateBody extends ResourceUpdate {
  protocolSettings?: Record<string, unknown>;
}

export class Partner {
  /** Pending resources' timers, by resource id. */
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Work started by timers, awaited on close so nothing touches a closed database. */
  private readonly inFlight = new Set<Promise<unknown>>();

  constructor(
    private readonly state: PartnerState,
    private readonly provider: Provider,
    private readonly product: Product,
    private readonly marketplace: MarketplaceClient,
    private readonly logger: Logger | undefined,
  ) {}

  // Installations (§1.2)

  async install(installationId: string, upsert: InstallationUpsert): Promise<void> {
    await this.state.upsertInstallation(installationId, upsert);
  }

  /** 404 unless the installation is known and not deleted (as the example does). */
  async installation(installationId: string): Promise<void> {
    if ((await this.state.installationState(installationId)) !== 'live') throw notFound('installation', installationId);
  }

  /**
   * Marks the installation deleted, deleting its resources first when asked to cascade. Always
   * finalized: the partner sends no final invoices, so the marketplace need not wait for them.
   * Deleting it again is the same success.
   */
  async uninstall(installationId: string, cascade: boolean): Promise<{ finalized: true }> {
    if (!(await this.state.installationState(installationId))) throw notFound('installation', installationId);
    if (cascade) {
      for (const row of await this.state.liveResources(installationId)) {
        await this.delete(installationId, row.id, `${installationId}.uninstall.${row.id}`);
      }
    }
    await this.state.markInstallationDeleted(installationId);
    return { finalized: true };
  }

  // Resources (§1.3)

  /**
   * Provisions through the wrapped provider under the request's idempotency key: a repeat (a
   * retry, or a restart in between) gets the same resource and its current secrets, never a
   * second database. `pending` (a fault) makes a new resource report `pending` and become ready
   * after that many ms, or never; `metadata.testing_initial_status` sets the status it starts in
   * (as the official example does) and keeps it until `/_partner/resources/:id/ready`.
   */
  async provision(
    installationId: string,
    key: string,
    body: ProvisionBody,
    pending?: 'forever' | number,
  ): Promise<PartnerResource & { secrets: Secret[] }> {
    const testingStatus = body.metadata.testing_initial_status;
    if (testingStatus !== undefined && !isResourceStatus(testingStatus)) {
      throw validationError([
        { key: 'metadata.testing_initial_status', message: 'must be a resource status (ready, pending, error, ...)' },
      ]);
    }
    if ((await this.state.installationState(installationId)) !== 'live') {
      throw notFound('installation', `${installationId} (it must be upserted first: PUT /v1/installations/${installationId})`);
    }
    const known = await this.state.keyed(installationId, key);
    if (known && !isDeepStrictEqual(known.request, body)) {
      // Liberal: the key decides. The first request's resource is the answer, as the provider's records say.
      this.logger?.warn(
        { installationId, key, resourceId: known.resourceId },
        'a provision repeats an Idempotency-Key with a different body; answering with the resource the key made',
      );
    }
    const { resource, secrets } = await this.provider.provision({
      idempotencyKey: key,
      installationId,
      product: this.product,
      name: body.name,
      metadata: body.metadata,
      billingPlanId: body.billingPlanId,
      ...(body.externalId !== undefined && { externalId: body.externalId }),
      ...(body.protocolSettings && { protocolSettings: body.protocolSettings }),
    });
    const status: ResourceStatus = pending !== undefined ? 'pending' : (testingStatus ?? 'ready');
    const readyAt = typeof pending === 'number' ? new Date(Date.now() + pending) : null;
    const { row, fresh } = await this.state.recordProvision(key, body, {
      id: resource.id,
      installationId,
      status,
      readyAt,
      externalId: body.externalId ?? null,
      protocolSettings: body.protocolSettings ?? null,
    });
    if (fresh && readyAt) this.schedule(row);
    return { ...this.toPartnerResource(resource, row), secrets };
  }

  async get(installationId: string, resourceId: string): Promise<PartnerResource> {
    const row = await this.liveRow(installationId, resourceId);
    return this.toPartnerResource(await this.provider.get(installationId, resourceId), row);
  }

  async update(installationId: string, resourceId: string, update: UpdateBody, key: string): Promise<PartnerResource> {
    const row = await this.liveRow(installationId, resourceId);
    const { protocolSettings, ...fields } = update;
    const resource = await this.provider.update(installationId, resourceId, fields, key);
    if (protocolSettings) await this.state.setProtocolSettings(resourceId, protocolSettings);
    return this.toPartnerResource(resource, { ...row, protocolSettings: protocolSettings ?? row.protocolSettings });
  }

  /**
   * Deletes the database and forgets the resource. Deleting one already deleted is a success
   * (204): the marketplace may retry a delete whose answer it lost. One this installation never
   * had is a 404.
   */
  async delete(installationId: string, resourceId: string, key: string): Promise<void> {
    const row = await this.state.resource(installationId, resourceId);
    if (!row) throw notFound('resource', resourceId);
    if (row.deleted) return;
    this.cancelTimer(resourceId);
    await this.provider.delete(installationId, resourceId, key);
    await this.state.markResourceDeleted(resourceId);
  }

  /**
   * Rotates synchronously: the provider replaces the credential at once (the old one stops
   * working; `delayOldSecretsExpirationHours` is not honoured) and the new secrets are answered.
   */
  async rotate(installationId: string, resourceId: string, key: string): Promise<Secret[]> {
    await this.liveRow(installationId, resourceId);
    return this.provider.rotateSecrets(installationId, resourceId, key);
  }

  /** The plans a resource may change to: the product's, whatever the metadata (404 for an unknown resource). */
  async resourcePlans(installationId: string, resourceId: string): Promise<PartnerPlan[]> {
    await this.liveRow(installationId, resourceId);
    return PLANS;
  }

  // The partner's own actions (`/_partner/...`), each answering what the marketplace said.

  /** Makes a resource ready now, whatever it was, and tells the marketplace (one attempt). */
  async finish(resourceId: string): Promise<MarketplaceAnswer> {
    const row = await this.rowById(resourceId);
    this.cancelTimer(resourceId);
    await this.state.setStatus(resourceId, 'ready');
    return this.marketplace.call(row.installationId, 'POST', `/v1/installations/${encodeURIComponent(row.installationId)}/events`, {
      event: { type: 'resource.updated', resourceId, productId: PRODUCT_SLUG },
    });
  }

  /** A rotation on the partner's side, pushed to the marketplace (PUT .../secrets, §5). */
  async rotateAndPush(resourceId: string): Promise<MarketplaceAnswer & { secrets: Secret[] }> {
    const row = await this.rowById(resourceId);
    const secrets = await this.provider.rotateSecrets(row.installationId, resourceId, `partner-rotation-${randomBase62(16)}`);
    const path = `/v1/installations/${encodeURIComponent(row.installationId)}/resources/${encodeURIComponent(resourceId)}/secrets`;
    return { ...(await this.marketplace.call(row.installationId, 'PUT', path, { secrets, partial: false })), secrets };
  }

  /**
   * Sends the installation's billing and usage data (POST .../billing, §3): one line per live
   * resource at its plan's monthly price, and a usage metric each, for the current calendar
   * month. `override` replaces top-level fields of the body, so a test can send a bad one.
   */
  async sendBilling(installationId: string, override: Record<string, unknown> = {}): Promise<MarketplaceAnswer & { sent: unknown }> {
    if (!(await this.state.installationState(installationId))) throw notFound('installation', installationId);
    const now = new Date();
    const [year, month, day] = [now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()];
    const items = [];
    const usage = [];
    for (const row of await this.state.liveResources(installationId)) {
      const resource = await this.provider.get(installationId, row.id).catch(() => undefined);
      if (!resource) continue;
      const plan = planForResource(resource.billingPlanId);
      const price = monthlyPrice(plan.id);
      items.push({
        billingPlanId: plan.id,
        resourceId: row.id,
        name: `${plan.name}: ${resource.name}`,
        price,
        quantity: 1,
        units: 'month',
        total: price,
      });
      usage.push({ resourceId: row.id, name: 'Databases', type: 'total', units: 'databases', dayValue: 1, periodValue: 1 });
    }
    const body = {
      timestamp: now.toISOString(),
      // The end of the usage day being reported: today so far, which is inside the period.
      eod: new Date(Date.UTC(year, month, day)).toISOString(),
      period: { start: new Date(Date.UTC(year, month, 1)).toISOString(), end: new Date(Date.UTC(year, month + 1, 1)).toISOString() },
      billing: { items },
      usage,
      ...override,
    };
    const answer = await this.marketplace.call(
      installationId,
      'POST',
      `/v1/installations/${encodeURIComponent(installationId)}/billing`,
      body,
    );
    await this.state.recordBilling(installationId, body, answer.status, answer.body);
    return { ...answer, sent: body };
  }

  // Pending resources

  /** Sets the timers of pending resources again after a restart (late ones fire at once). */
  async resumeScheduled(): Promise<void> {
    for (const row of await this.state.scheduledPending()) this.schedule(row);
  }

  private schedule(row: ResourceRow): void {
    const delay = Math.max(0, (row.readyAt?.getTime() ?? Date.now()) - Date.now());
    this.cancelTimer(row.id);
    const timer = setTimeout(() => {
      this.timers.delete(row.id);
      const work = this.becomeReady(row).catch((error: Error) =>
        this.logger?.error({ err: error, resourceId: row.id }, 'could not make a pending resource ready'),
      );
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    }, delay);
    this.timers.set(row.id, timer);
  }

  /** Pending → ready, then the event, retried: the marketplace must hear it to read the resource again. */
  private async becomeReady(row: ResourceRow): Promise<void> {
    if (!(await this.state.setStatus(row.id, 'ready', 'pending'))) return; // deleted or finished meanwhile
    await this.marketplace.resourceUpdated(row.installationId, row.id, PRODUCT_SLUG);
  }

  private cancelTimer(resourceId: string): void {
    clearTimeout(this.timers.get(resourceId));
    this.timers.delete(resourceId);
  }

  async close(): Promise<void> {
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    await Promise.allSettled([...this.inFlight]);
  }

  // Helpers

  /** A resource of this installation that is not deleted; 404 otherwise. */
  private async liveRow(installationId: string, resourceId: string): Promise<ResourceRow> {
    const row = await this.state.resource(installationId, resourceId);
    if (!row || row.deleted) throw notFound('resource', resourceId);
    return row;
  }

  private async rowById(resourceId: string): Promise<ResourceRow> {
    const row = await this.state.resourceById(resourceId);
    if (!row) throw notFound('resource', resourceId);
    if (row.deleted) throw conflict('resource_deleted', `The resource ${resourceId} has been deleted`);
    return row;
  }

  /**
   * The provider's resource as the partner reports it: the partner's status, except that a
   * resource it calls ready is whatever the provider finds (an `error` when its database is gone).
   */
  private toPartnerResource(resource: ProviderResource, row: ResourceRow): PartnerResource {
    return {
      id: resource.id,
      productId: PRODUCT_SLUG,
      name: resource.name,
      metadata: resource.metadata,
      status: row.status === 'ready' ? resource.status : row.status,
      billingPlan: planForResource(resource.billingPlanId),
      ...(row.protocolSettings && { protocolSettings: row.protocolSettings }),
    };
  }
}
