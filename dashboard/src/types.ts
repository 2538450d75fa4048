/** The API's shapes, as far as the dashboard reads them (src/http/*-shapes.ts, src/http/routes/*.ts). */
import type { MetadataSchema } from './metadata-form/metadata.ts';

export type Role = 'OWNER' | 'MEMBER' | 'DEVELOPER' | 'BILLING' | 'VIEWER';

export interface Team {
  id: string;
  slug: string;
  name: string;
  membership?: { role: Role };
}

export interface User {
  id: string;
  email: string;
  username: string;
  name: string | null;
}

export interface Session {
  user: User;
  team: Team & { role: Role };
  csrfToken: string;
}

export interface Detail {
  label: string;
  value?: string;
}

export interface BillingPlan {
  id: string;
  type: 'subscription' | 'prepayment';
  scope: string;
  name: string;
  description: string;
  paymentMethodRequired: boolean;
  cost?: string;
  preauthorizationAmount?: number;
  initialCharge?: string;
  minimumAmount?: string;
  maximumAmount?: string;
  details?: Detail[];
  highlightedDetails?: Detail[];
  disabled?: boolean;
}

export interface Product {
  id: string;
  slug: string;
  name: string;
  shortDescription?: string;
  description?: string;
  primaryProtocol?: string;
  protocols: Record<string, { status?: string } | undefined>;
  unavailableReason?: string;
  tags?: string[];
  metadataSchema: MetadataSchema;
}

export interface Configuration {
  id: string;
  integrationId: string;
  slug: string;
  integration: { name: string; icon: string };
}

export interface ProjectMetadata {
  id: string;
  projectId: string;
  name: string;
  environments: string[];
  environmentVariables: string[];
  envVarPrefix: string | null;
}

export interface Store {
  id: string;
  name: string;
  status: string;
  projectsMetadata: ProjectMetadata[];
  secrets: Array<{ name: string; length: number }>;
  metadata?: Record<string, unknown>;
  billingPlan?: BillingPlan;
  prepaidBalanceCents?: number;
  notification?: { level: string; title: string; message?: string };
  product: {
    id?: string;
    slug?: string;
    name?: string;
    iconUrl?: string;
    integrationConfigurationId?: string;
    metadataSchema?: MetadataSchema;
    integration: { id: string; slug: string; name: string; icon: string };
  };
  createdAt?: number;
}

export interface PaymentMethod {
  id: string;
  brand: string;
  last4: string;
  default: boolean;
  behavior: 'succeed' | 'decline';
  createdAt: number;
}

export interface Project {
  id: string;
  name: string;
}

export interface EnvVar {
  id: string;
  key: string;
  value?: string;
  type: string;
  target?: string[] | string;
  decrypted?: boolean;
}

/** Who may do what, as the API decides it (src/projects/projects.ts, src/billing/payment-methods.ts). */
export const mayChange = (role: Role) => role !== 'VIEWER' && role !== 'BILLING';
export const mayBill = (role: Role) => role === 'OWNER' || role === 'BILLING';
