import { metadataSchemaSchema } from './metadata-schema.ts';

/** The values @vercel/sdk accepts for `product.tags` (a closed enum there). */
export const PRODUCT_TAGS = [
  'ai',
  'authentication',
  'blob',
  'checks',
  'drains',
  'edge-config',
  'experimentation',
  'kv',
  'libsql',
  'logDrain',
  'mcp',
  'messaging',
  'mysql',
  'observability',
  'other',
  'postgres',
  'rds',
  'redis',
  'sqlite',
  'storage',
  'tag_agents',
  'tag_ai',
  'tag_analytics',
  'tag_authentication',
  'tag_checks',
  'tag_cms',
  'tag_code_repository',
  'tag_code_review',
  'tag_code_security',
  'tag_code_testing',
  'tag_commerce',
  'tag_databases',
  'tag_dev_tools',
  'tag_experimentation',
  'tag_flags',
  'tag_logDrain',
  'tag_logging',
  'tag_messaging',
  'tag_monitoring',
  'tag_observability',
  'tag_other',
  'tag_payments',
  'tag_performance',
  'tag_productivity',
  'tag_searching',
  'tag_security',
  'tag_storage',
  'tag_support_agent',
  'tag_testing',
  'tag_traceDrain',
  'tag_video',
  'tag_web_automation',
  'tag_workflow',
  'traceDrain',
  'vector',
  'video',
  'workflow',
] as const;

export const PROTOCOLS = [
  'ai',
  'authentication',
  'checks',
  'experimentation',
  'logDrain',
  'messaging',
  'observability',
  'other',
  'storage',
  'traceDrain',
  'video',
  'workflow',
] as const;

export const PROVIDER_TYPES = ['postgres', 'redis', 'http'] as const;

export type ProductTag = (typeof PRODUCT_TAGS)[number];
export type Protocol = (typeof PROTOCOLS)[number];

export interface PlanDetail {
  label: string;
  value?: string;
}

export interface CatalogPlan {
  id: string;
  type: 'subscription' | 'prepayment';
  scope?: 'installation' | 'resource';
  name: string;
  description: string;
  cost?: string;
  paymentMethodRequired: boolean;
  /** USD, e.g. 10.53: tested against the payment method before a paid plan is provisioned. */
  preauthorizationAmount?: number;
  initialCharge?: string;
  /** Decimal USD strings bounding one prepayment purchase. */
  minimumAmount?: string;
  maximumAmount?: string;
  details?: PlanDetail[];
  highlightedDetails?: PlanDetail[];
  /** Most resources one team may hold on this plan. */
  resourceLimit?: number;
  disabled?: boolean;
}

export interface MetadataSchema {
  type: 'object';
  properties: Record<string, Record<string, unknown>>;
  required?: string[];
  'ui:order'?: string[];
  additionalProperties?: boolean;
}

export interface ProviderBinding {
  type: (typeof PROVIDER_TYPES)[number];
  [setting: string]: unknown;
}

export interface CatalogProduct {
  id: string;
  slug: string;
  name: string;
  description?: string;
  shortDescription?: string;
  primaryProtocol?: Protocol;
  protocols: Partial<Record<Protocol, { status: 'enabled' | 'disabled'; [key: string]: unknown }>>;
  tags?: ProductTag[];
  capabilities?: Record<string, unknown>;
  metadataSchema: MetadataSchema;
  provider: ProviderBinding;
  plans: CatalogPlan[];
}

export interface CatalogIntegration {
  id: string;
  slug: string;
  name: string;
  icon: string;
  scopes?: string[];
  /**
   * The integration's client secret: its partner server proves it to rotate and revoke its
   * installations' access tokens. Only its hash is stored; without one, credentials cannot be rotated.
   * Webhooks are signed with it, so with a `webhookUrl` it is also kept sealed (src/secrets).
   */
  clientSecret?: string;
  /**
   * Vercel's Redirect Login URL: where "Open in provider" sends a user, with `mode=sso` and a one-time
   * code its server exchanges (with `clientSecret`, so it needs one) for the user's id_token (src/partners/sso.ts).
   */
  redirectLoginUrl?: string;
  /** Where the integration receives Vercel's webhooks (src/webhooks/), signed with `clientSecret`; none without one; no credentials in it. */
  webhookUrl?: string;
  products: CatalogProduct[];
}

export interface CatalogFile {
  integrations: CatalogIntegration[];
}

const text = (maxLength: number) => ({ type: 'string', minLength: 1, maxLength });
const decimalAmount = { type: 'string', pattern: '^\\d{1,9}(\\.\\d{1,2})?$' };
const detailList = {
  type: 'array',
  items: {
    type: 'object',
    required: ['label'],
    properties: { label: text(200), value: { type: 'string', maxLength: 200 } },
    additionalProperties: false,
  },
};
const protocolStatus = { enum: ['enabled', 'disabled'] };
const drain = (formats: string[]) => ({
  type: 'object',
  required: ['status', 'format'],
  properties: {
    status: protocolStatus,
    format: { enum: formats },
    endpoint: { type: 'string' },
    headers: { type: 'object', additionalProperties: { type: 'string' } },
  },
  additionalProperties: false,
});
const simpleProtocol = (extra: Record<string, unknown> = {}) => ({
  type: 'object',
  required: ['status'],
  properties: { status: protocolStatus, ...extra },
  additionalProperties: false,
});
const secretRotation = {
  anyOf: [
    { type: 'boolean' },
    {
      type: 'object',
      required: ['maxDelayHours'],
      properties: { maxDelayHours: { type: 'number', minimum: 0 }, customRotationWarning: { type: 'string' } },
      additionalProperties: false,
    },
  ],
};
const PRODUCT_CAPABILITIES = [
  'agentTools',
  'autoSensitive',
  'billable',
  'connectedImportResource',
  'databaseUI',
  'importResource',
  'linking',
  'mcp',
  'mcpReadonly',
  'nativeImportResource',
  'projects',
  'sandbox',
  'secretsSync',
  'sso',
  'transferable',
  'v0',
  'v0Flavors',
];

const planSchema = {
  type: 'object',
  required: ['id', 'type', 'name', 'description', 'paymentMethodRequired'],
  properties: {
    id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' },
    type: { enum: ['subscription', 'prepayment'] },
    scope: { enum: ['installation', 'resource'] },
    name: text(100),
    description: text(1000),
    cost: text(100),
    paymentMethodRequired: { type: 'boolean' },
    preauthorizationAmount: { type: 'number', minimum: 0, maximum: 1_000_000 },
    initialCharge: decimalAmount,
    minimumAmount: decimalAmount,
    maximumAmount: decimalAmount,
    details: detailList,
    highlightedDetails: detailList,
    resourceLimit: { type: 'integer', minimum: 1 },
    disabled: { type: 'boolean' },
  },
  additionalProperties: false,
};

const providerSchema = {
  type: 'object',
  required: ['type'],
  properties: { type: { enum: [...PROVIDER_TYPES] } },
  allOf: [
    {
      if: { properties: { type: { const: 'http' } } },
      then: {
        required: ['url'],
        properties: { type: true, url: { type: 'string', format: 'uri', pattern: '^https?://' } },
        additionalProperties: false,
      },
      else: { properties: { type: true }, additionalProperties: false },
    },
  ],
};

const productSchema = {
  type: 'object',
  required: ['id', 'slug', 'name', 'protocols', 'metadataSchema', 'provider', 'plans'],
  properties: {
    id: { type: 'string', pattern: '^iap_[a-zA-Z0-9_]+$', maxLength: 100 },
    slug: { type: 'string', pattern: '^[a-z0-9-]+$', maxLength: 100 },
    name: text(100),
    description: { type: 'string', maxLength: 2000 },
    shortDescription: { type: 'string', maxLength: 300 },
    primaryProtocol: { enum: [...PROTOCOLS] },
    protocols: {
      type: 'object',
      properties: {
        storage: simpleProtocol({
          repl: {
            type: 'object',
            required: ['enabled', 'supportsReadOnlyMode'],
            properties: {
              enabled: { type: 'boolean' },
              supportsReadOnlyMode: { type: 'boolean' },
              welcomeMessage: { type: 'string' },
            },
            additionalProperties: false,
          },
        }),
        logDrain: drain(['json', 'ndjson']),
        traceDrain: drain(['json', 'proto']),
        authentication: simpleProtocol({ appUrlRegistrationSupport: { type: 'boolean' } }),
        experimentation: simpleProtocol({ edgeConfigSyncingSupport: { type: 'boolean' } }),
        ...Object.fromEntries(
          ['ai', 'checks', 'messaging', 'observability', 'other', 'video', 'workflow'].map((name) => [name, simpleProtocol()]),
        ),
      },
      additionalProperties: false,
    },
    tags: { type: 'array', items: { enum: [...PRODUCT_TAGS] }, uniqueItems: true },
    capabilities: {
      type: 'object',
      properties: {
        ...Object.fromEntries(PRODUCT_CAPABILITIES.map((name) => [name, { type: 'boolean' }])),
        secretRotation,
      },
      additionalProperties: false,
    },
    metadataSchema: metadataSchemaSchema,
    provider: providerSchema,
    plans: { type: 'array', minItems: 1, items: planSchema },
  },
  additionalProperties: false,
};

/** The JSON Schema of a catalog file (YAML or JSON). */
export const catalogFileSchema = {
  $id: 'https://storehouse.dev/schemas/catalog.json',
  type: 'object',
  required: ['integrations'],
  properties: {
    $schema: { type: 'string' },
    integrations: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['id', 'slug', 'name', 'icon', 'products'],
        properties: {
          id: { type: 'string', pattern: '^oac_[A-Za-z0-9]+$', maxLength: 100 },
          slug: { type: 'string', pattern: '^[a-z0-9-]+$', maxLength: 100 },
          name: text(100),
          icon: { type: 'string', minLength: 1, maxLength: 100_000 },
          scopes: { type: 'array', items: { type: 'string', minLength: 1 }, uniqueItems: true },
          // Long enough not to be guessed (the hash is slow, but a short secret is still short).
          clientSecret: { type: 'string', minLength: 16, maxLength: 200 },
          redirectLoginUrl: { type: 'string', format: 'uri', pattern: '^https?://', maxLength: 2000 },
          // No user:password@ in it: fetch refuses such a URL, quoting it whole in the error every
          // attempt records, which the team's owners read (GET /_storehouse/webhooks/deliveries).
          webhookUrl: { type: 'string', format: 'uri', pattern: '^https?://[^/?#@]+([/?#].*)?$', maxLength: 2000 },
          products: { type: 'array', items: productSchema },
        },
        // A webhook is signed with the client secret: a URL without one could never be verified.
        dependencies: { webhookUrl: ['clientSecret'], redirectLoginUrl: ['clientSecret'] },
        additionalProperties: false,
      },
    },
  },
  additionalProperties: false,
};
