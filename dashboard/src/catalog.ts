/** The marketplace as the API lists it for a team: its installed integrations' products and their plans. */
import { api } from './api.ts';
import type { BillingPlan, Configuration, Product } from './types.ts';

export interface Offering {
  configuration: Configuration;
  integration: { id: string; name: string; slug: string };
  products: Product[];
}

export async function loadOfferings(): Promise<Offering[]> {
  const configurations = await api.get<Configuration[]>('/v1/integrations/configurations', { query: { view: 'account' } });
  return Promise.all(
    configurations.map(async (configuration) => {
      const listed = await api.get<{ integration: Offering['integration']; products: Product[] }>(
        `/v1/integrations/configuration/${encodeURIComponent(configuration.id)}/products`,
      );
      return { configuration, integration: listed.integration, products: listed.products };
    }),
  );
}

export const loadPlans = (integrationId: string, productId: string, configurationId: string, metadata?: Record<string, unknown>) =>
  api
    .get<{ plans: BillingPlan[] }>(
      `/v1/integrations/integration/${encodeURIComponent(integrationId)}/products/${encodeURIComponent(productId)}/plans`,
      { query: { integrationConfigurationId: configurationId, metadata: metadata && JSON.stringify(metadata) } },
    )
    .then((body) => body.plans);

/** The protocols a product offers, enabled or not. */
export const protocolsOf = (product: Product) =>
  Object.entries(product.protocols)
    .filter(([, settings]) => settings !== undefined)
    .map(([name, settings]) => ({ name, enabled: settings!.status !== 'disabled' }));

/** Why a plan cannot be chosen, when it cannot. */
export const planUnavailable = (plan: BillingPlan, product?: Product) =>
  plan.disabled ? (product?.unavailableReason ?? 'This plan is not offered for new stores.') : undefined;
