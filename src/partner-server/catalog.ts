/**
 * The catalog entry that sells the reference partner's product through Storehouse: an
 * integration (its id is the client id the partner expects as the tokens' audience) whose
 * Postgres product names the partner's base URL as its provider. Add it to a catalog file (see
 * catalogWithPartner) to try the partner flows end to end.
 */
import fs from 'node:fs';
import { parse } from 'yaml';
import { DEFAULT_CATALOG_PATH } from '../config.ts';
import { PLANS } from './plans.ts';

export interface PartnerEntryOptions {
  /** The partner server's base URL, e.g. http://127.0.0.1:4000. */
  url: string;
  /** The integration's id: the partner's PARTNER_CLIENT_ID. */
  clientId?: string;
  slug?: string;
  /** More products the same partner serves (an integration has one partner server). */
  extraProducts?: Array<{ slug: string }>;
  /** The partner's plans the catalog lists (all by default); the partner offers every one anyway. */
  catalogPlans?: string[];
}

/** The default catalog with each partner's integration added. */
// biome-ignore lint/suspicious/noExplicitAny: the catalog file's JSON, validated when a server loads it
type CatalogJson = Record<string, any>;

export function catalogWithPartner(...partners: PartnerEntryOptions[]): CatalogJson {
  const catalog = parse(fs.readFileSync(DEFAULT_CATALOG_PATH, 'utf8'));
  for (const options of partners) addPartner(catalog, options);
  return catalog;
}

function addPartner(catalog: CatalogJson, options: PartnerEntryOptions): void {
  const builtIn = catalog.integrations[0];
  // The partner wraps the built-in Postgres provider: it takes the same metadata.
  const metadataSchema = builtIn.products.find((p: { slug: string }) => p.slug === 'postgres').metadataSchema;
  const slug = options.slug ?? 'acme';
  const product = (productSlug: string, url: string) => ({
    id: `iap_${slug}_${productSlug}`.replaceAll('-', '_'),
    slug: productSlug,
    name: `${slug[0]!.toUpperCase()}${slug.slice(1)} ${productSlug}`,
    primaryProtocol: 'storage',
    protocols: { storage: { status: 'enabled' } },
    tags: ['postgres', 'storage'],
    metadataSchema,
    provider: { type: 'http', url },
    // What Storehouse knows of the plans before asking; the partner's answer decides what is offered.
    plans: PLANS.filter((plan) => !options.catalogPlans || options.catalogPlans.includes(plan.id)).map(
      ({ id, type, name, description, paymentMethodRequired, preauthorizationAmount }) => ({
        id,
        type,
        scope: 'resource',
        name,
        description,
        paymentMethodRequired,
        ...(preauthorizationAmount !== undefined && { preauthorizationAmount }),
      }),
    ),
  });
  catalog.integrations.push({
    id: options.clientId ?? 'oac_partner',
    slug,
    name: `${slug[0]!.toUpperCase()}${slug.slice(1)}`,
    icon: builtIn.icon,
    scopes: ['read-write:integration-resource'],
    products: [product('postgres', options.url), ...(options.extraProducts ?? []).map((p) => product(p.slug, options.url))],
  });
}
