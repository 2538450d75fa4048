/**
 * The HTTP provider: a partner server, called the way Vercel's marketplace calls integration
 * providers (docs/partner-api.md §1), so a provider can develop against Storehouse
 * and a platform team can plug any such server into its marketplace.
 *
 * The installation is announced to the partner (install upsert, with the access token it calls
 * the marketplace API back with) before the first call that needs it, as Vercel does when a team
 * first accepts the provider's terms; it is remembered, so it is sent once per installation.
 */
import { billingPlanOf, type BillingPlan, type Integration, type Product } from '../catalog/catalog.ts';
import type { Queryable } from '../db/database.ts';
import { notFound } from '../errors.ts';
import { dropInstallationToken, mintInstallationToken } from '../partners/installation-tokens.ts';
import { installationAccount } from '../tenancy/installations.ts';
import { PartnerError, type CallIdentity, type PartnerClient } from '../partners/partner-client.ts';
import type { Caller, Provider, ProviderResource, ProvisionRequest, ResourceStatus, ResourceUpdate, Secret } from './provider.ts';

/** A billing plan as a partner server sends it (§1.1). */
export interface PartnerPlan {
  id: string;
  type: 'prepayment' | 'subscription';
  name: string;
  description?: string;
  scope?: 'installation' | 'resource';
  paymentMethodRequired?: boolean;
  preauthorizationAmount?: number;
  initialCharge?: string;
  minimumAmount?: string;
  maximumAmount?: string;
  cost?: string;
  details?: Array<{ label: string; value?: string }>;
  highlightedDetails?: Array<{ label: string; value?: string }>;
  disabled?: boolean;
}

/** A resource as a partner server sends it (§1.1); only `id` and `status` are required of it. */
export interface PartnerResource {
  id: string;
  productId?: string;
  name?: string;
  metadata?: Record<string, unknown>;
  status: ResourceStatus;
  billingPlan?: PartnerPlan;
  notification?: ProviderResource['notification'];
}

export interface PartnerSettings {
  /** Storehouse's public base URL: installation links in the upsert are made from it. */
  publicUrl(): string;
  /** The catalog's integration (its scopes go into the upsert). */
  integration(id: string): Integration | undefined;
}

const segment = encodeURIComponent;

/** A partner's plan in the catalog's terms (amounts in cents), for the product it was asked for. */

export class HttpProvider implements Provider {
  /** Upserts under way in this process, so concurrent first provisions send one. */
  private readonly installing = new Map<string, Promise<void>>();

  constructor(
    private readonly state: Queryable,
    private readonly integrationId: string,
    private readonly client: PartnerClient,
    private readonly settings: PartnerSettings,
  ) {}

  async availability() {
    return { available: true } as const;
  }

  /** The partner validates metadata itself (a 400 with `fields` from it reaches the caller). */
  checkMetadata(): void {}

  async listPlans(
    product: Product,
    metadata: Record<string, unknown>,
    asker?: { teamId: string; installationId?: string | undefined },
  ): Promise<BillingPlan[]> {
    const answer = await this.client.call<{ plans: PartnerPlan[] }>({
      method: 'GET',
      path: `/v1/products/${segment(product.slug)}/plans`,
      query: { metadata: JSON.stringify(metadata) },
      identity: { accountId: asker?.teamId ?? null, installationId: asker?.installationId ?? null },
      answer: 'plans',
    });
    return answer.plans.map((plan) => billingPlanOf(product.id, plan));
  }

  /** The partner's resource plans; its product plans when it does not serve them (the endpoint is optional). */
  async listResourcePlans(
    installationId: string,
    resourceId: string,
    product: Product,
    metadata: Record<string, unknown>,
  ): Promise<BillingPlan[]> {
    const identity = await this.identity(installationId);
    try {
      const answer = await this.client.call<{ plans: PartnerPlan[] }>({
        method: 'GET',
        path: `/v1/installations/${segment(installationId)}/resources/${segment(resourceId)}/plans`,
        query: { metadata: JSON.stringify(metadata) },
        identity,
        answer: 'plans',
      });
      return answer.plans.map((plan) => billingPlanOf(product.id, plan));
    } catch (error) {
      if (!(error instanceof PartnerError && (error.partnerStatus === 404 || error.partnerStatus === 405))) throw error;
      return this.listPlans(product, metadata, { teamId: identity.accountId!, installationId });
    }
  }

  async provision(request: ProvisionRequest): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    return this.provisionAs(request, await this.identity(request.installationId, request.caller));
  }

  private async provisionAs(
    request: ProvisionRequest,
    identity: CallIdentity & { installed: boolean },
  ): Promise<{ resource: ProviderResource; secrets: Secret[] }> {
    if (!identity.installed) await this.ensureInstalled(request.installationId, identity);
    const answer = await this.client.call<PartnerResource & { secrets: Secret[] }>({
      method: 'POST',
      path: `/v1/installations/${segment(request.installationId)}/resources`,
      body: {
        productId: request.product.slug,
        name: request.name,
        metadata: request.metadata,
        billingPlanId: request.billingPlanId,
        ...(request.externalId !== undefined && { externalId: request.externalId }),
        ...(request.protocolSettings && { protocolSettings: request.protocolSettings }),
      },
      idempotencyKey: request.idempotencyKey,
      identity,
      answer: 'provisioned',
    });
    return { resource: this.toResource(answer, request.product.slug, request.billingPlanId), secrets: answer.secrets };
  }

  async get(installationId: string, resourceId: string): Promise<ProviderResource> {
    const answer = await this.client.call<PartnerResource>({
      method: 'GET',
      path: `/v1/installations/${segment(installationId)}/resources/${segment(resourceId)}`,
      identity: await this.identity(installationId),
      answer: 'resource',
    });
    return this.toResource(answer);
  }

  async update(
    installationId: string,
    resourceId: string,
    update: ResourceUpdate,
    idempotencyKey: string,
    caller?: Caller,
  ): Promise<ProviderResource> {
    const answer = await this.client.call<PartnerResource>({
      method: 'PATCH',
      path: `/v1/installations/${segment(installationId)}/resources/${segment(resourceId)}`,
      body: update,
      idempotencyKey,
      identity: await this.identity(installationId, caller),
      answer: 'resource',
    });
    return this.toResource(answer);
  }

  async delete(installationId: string, resourceId: string, idempotencyKey: string, caller?: Caller): Promise<void> {
    try {
      await this.client.call({
        method: 'DELETE',
        path: `/v1/installations/${segment(installationId)}/resources/${segment(resourceId)}`,
        idempotencyKey,
        identity: await this.identity(installationId, caller),
      });
    } catch (error) {
      if (!(error instanceof PartnerError && error.partnerStatus === 404)) throw error;
    }
  }

  /**
   * The partner API has no "abandon": the provision is asked for again with the same
   * idempotency key, so a partner that made the resource names it (and one that did not makes it
   * now), and that resource is deleted. A partner that refuses the repeat with a 4xx other than
   * 409 has nothing for the key; a 409 (the first call still running) is retried later. So is a
   * redirect (Storehouse follows none, src/outbound/outbound-http.ts): a 3xx to the repeat says
   * nothing about the first call, which may still be making the resource, so it is no proof that
   * nothing exists, and the store stays being rolled back until the partner answers.
   */
  async abandon(request: ProvisionRequest): Promise<void> {
    const { installationId, idempotencyKey } = request;
    // No provision is sent before the installation's upsert succeeded and was recorded: one the
    // partner never heard of has nothing for the key, whatever the first call's fate (a refused or
    // redirected upsert), so there is nothing to ask it.
    const identity = await this.identity(installationId, request.caller);
    if (!identity.installed) return;
    let resourceId: string;
    try {
      resourceId = (await this.provisionAs(request, identity)).resource.id;
    } catch (error) {
      if (error instanceof PartnerError && error.partnerStatus >= 400 && error.partnerStatus < 500 && error.partnerStatus !== 409) return;
      throw error;
    }
    await this.delete(installationId, resourceId, `${idempotencyKey}.abandon`, request.caller);
  }

  async rotateSecrets(installationId: string, resourceId: string, idempotencyKey: string): Promise<Secret[]> {
    const answer = await this.client.call<{ sync: boolean; secrets?: Secret[] }>({
      method: 'POST',
      path: `/v1/installations/${segment(installationId)}/resources/${segment(resourceId)}/secrets/rotate`,
      body: { reason: 'Requested through Storehouse' },
      idempotencyKey,
      identity: await this.identity(installationId),
      answer: 'rotation',
    });
    // An asynchronous rotation arrives later through PUT .../secrets.
    return answer.sync ? answer.secrets! : [];
  }

  /** Tells the partner an installation is gone (it must have no stores left). */
  async uninstall(installationId: string, caller?: Caller): Promise<void> {
    const identity = await this.identity(installationId, caller);
    if (!identity.installed) return; // the partner never heard of it
    try {
      await this.client.call({
        method: 'DELETE',
        path: `/v1/installations/${segment(installationId)}`,
        // GrowthBook's strict validator takes nothing else.
        body: { cascadeResourceDeletion: false },
        idempotencyKey: `${installationId}.uninstall`,
        identity,
      });
    } catch (error) {
      if (!(error instanceof PartnerError && error.partnerStatus === 404)) throw error;
    }
    // Should the local removal fail after this, the next call announces the installation again.
    await this.state.query('UPDATE installations SET partner_installed_at = NULL WHERE id = $1', [installationId]);
  }

  private toResource(answer: PartnerResource, productSlug?: string, billingPlanId?: string): ProviderResource {
    return {
      id: answer.id,
      productId: answer.productId ?? productSlug ?? '',
      name: answer.name ?? '',
      metadata: answer.metadata ?? {},
      status: answer.status,
      billingPlanId: answer.billingPlan?.id ?? billingPlanId ?? '',
      ...(answer.notification !== undefined && { notification: answer.notification }),
    };
  }

  /**
   * The claims of a call about an installation (its team, and the user behind it when there is
   * one), and whether the partner has accepted the installation: one read, from the database,
   * so every node agrees.
   */
  private async identity(installationId: string, caller?: Caller): Promise<CallIdentity & { installed: boolean }> {
    const { rows } = await this.state.query<{ team_id: string; installed: boolean; email: string | null; name: string | null }>(
      `SELECT i.team_id, i.partner_installed_at IS NOT NULL AS installed, u.email, u.name
         FROM installations i LEFT JOIN users u ON u.id = $2 WHERE i.id = $1`,
      [installationId, caller?.userId ?? null],
    );
    const row = rows[0];
    if (!row) throw notFound('configuration', installationId);
    const user = caller && { id: caller.userId, role: caller.role, email: row.email ?? undefined, name: row.name ?? undefined };
    return { accountId: row.team_id, installationId, installed: row.installed, ...(user && { user }) };
  }

  /** Announces the installation to the partner (install upsert, §1.2) with a fresh access token; one upsert at a time per process. */
  private ensureInstalled(installationId: string, identity: CallIdentity): Promise<void> {
    let pending = this.installing.get(installationId);
    if (!pending) {
      pending = this.install(installationId, identity).finally(() => this.installing.delete(installationId));
      this.installing.set(installationId, pending);
    }
    return pending;
  }

  private async install(installationId: string, identity: CallIdentity): Promise<void> {
    const account = await installationAccount(this.state, installationId, this.settings.publicUrl());
    const token = await mintInstallationToken(this.state, installationId);
    try {
      await this.client.call({
        method: 'PUT',
        path: `/v1/installations/${segment(installationId)}`,
        body: {
          scopes: this.settings.integration(this.integrationId)?.scopes ?? [],
          acceptedPolicies: { toc: account.createdAt.toISOString() },
          credentials: { access_token: token.value, token_type: 'Bearer' },
          account: { name: account.name, url: account.url, contact: account.contact ?? { email: '' } },
        },
        idempotencyKey: `${installationId}.install.${token.id}`,
        identity,
        answer: 'installation',
      });
    } catch (error) {
      await dropInstallationToken(this.state, token.id).catch(() => {});
      throw error;
    }
    await this.state.query('UPDATE installations SET partner_installed_at = now() WHERE id = $1', [installationId]);
  }
}
