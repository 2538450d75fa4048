/**
 * The reference partner's own books, beside the `provider_resources` of the Postgres provider it
 * wraps (which keeps each resource's name, metadata, plan and credential): the installations the
 * marketplace announced, with the access token to call it back with (sealed); what the partner
 * says of each resource (its status, which may be `pending` while the provider's database is
 * long ready); which resource each provision's Idempotency-Key made; and the billing data sent.
 * Tables are made with IF NOT EXISTS on every start: the partner is not a Storehouse and has no
 * migrations of its own.
 */
import type { Database } from '../db/database.ts';
import { RESOURCE_STATUSES, type ResourceStatus } from '../providers/provider.ts';
import type { SecretBox } from '../secrets/secret-box.ts';

export const PARTNER_SCHEMA = `
CREATE TABLE IF NOT EXISTS partner_installations (
  id                 text PRIMARY KEY,
  -- The installation's token for the marketplace API (credentials.access_token), sealed.
  access_token       text NOT NULL,
  token_type         text NOT NULL,
  scopes             jsonb NOT NULL,
  accepted_policies  jsonb NOT NULL,
  account            jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  deleted_at         timestamptz
);
CREATE TABLE IF NOT EXISTS partner_resources (
  -- The wrapped provider's id for the resource, which the partner answers with.
  id                 text PRIMARY KEY,
  installation_id    text NOT NULL,
  -- What the partner reports; 'ready' defers to the provider (which may say 'error').
  status             text NOT NULL,
  -- When a pending resource becomes ready by itself; null while it waits for /_partner/.../ready.
  ready_at           timestamptz,
  external_id        text,
  protocol_settings  jsonb,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  deleted_at         timestamptz
);
CREATE INDEX IF NOT EXISTS partner_resources_installation_idx ON partner_resources (installation_id);
-- The resource each provision's Idempotency-Key made: a repeat answers with it, across restarts.
CREATE TABLE IF NOT EXISTS partner_idempotency (
  installation_id    text NOT NULL,
  idempotency_key    text NOT NULL,
  resource_id        text NOT NULL,
  request            jsonb NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (installation_id, idempotency_key)
);
-- Every billing submission sent to the marketplace, with its answer.
CREATE TABLE IF NOT EXISTS partner_billing (
  id                 bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  installation_id    text NOT NULL,
  body               jsonb NOT NULL,
  answer_status      integer NOT NULL,
  answer             jsonb,
  sent_at            timestamptz NOT NULL DEFAULT now()
);
`;

export interface InstallationUpsert {
  accessToken: string;
  tokenType: string;
  scopes: string[];
  acceptedPolicies: Record<string, unknown>;
  account: Record<string, unknown> | null;
}

export interface ResourceRow {
  id: string;
  installationId: string;
  status: ResourceStatus;
  readyAt: Date | null;
  externalId: string | null;
  protocolSettings: Record<string, unknown> | null;
  deleted: boolean;
}

/** A resource as first recorded: never deleted. */
export type NewResource = Omit<ResourceRow, 'deleted'>;

export const isResourceStatus = (value: unknown): value is ResourceStatus => (RESOURCE_STATUSES as readonly unknown[]).includes(value);

function toResource(row: Record<string, unknown>): ResourceRow {
  return {
    id: row.id as string,
    installationId: row.installation_id as string,
    status: row.status as ResourceStatus,
    readyAt: (row.ready_at as Date | null) ?? null,
    externalId: (row.external_id as string | null) ?? null,
    protocolSettings: (row.protocol_settings as Record<string, unknown> | null) ?? null,
    deleted: row.deleted_at !== null,
  };
}

export class PartnerState {
  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {}

  async createTables(): Promise<void> {
    await this.db.query(PARTNER_SCHEMA);
  }

  /** Records (or, for a known id, replaces) an installation; an upsert of a deleted one revives it. */
  async upsertInstallation(id: string, upsert: InstallationUpsert): Promise<void> {
    await this.db.query(
      `INSERT INTO partner_installations (id, access_token, token_type, scopes, accepted_policies, account)
       VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (id) DO UPDATE SET access_token = EXCLUDED.access_token, token_type = EXCLUDED.token_type, scopes = EXCLUDED.scopes,
         accepted_policies = EXCLUDED.accepted_policies, account = EXCLUDED.account, updated_at = now(), deleted_at = NULL`,
      [
        id,
        this.box.seal(upsert.accessToken, { table: 'partner_installations', id, column: 'access_token' }),
        upsert.tokenType,
        JSON.stringify(upsert.scopes),
        JSON.stringify(upsert.acceptedPolicies),
        upsert.account && JSON.stringify(upsert.account),
      ],
    );
  }

  /** Whether the installation is known: `live`, `deleted`, or undefined for never heard of. */
  async installationState(id: string): Promise<'live' | 'deleted' | undefined> {
    const { rows } = await this.db.query<{ deleted: boolean }>(
      'SELECT deleted_at IS NOT NULL AS deleted FROM partner_installations WHERE id = $1',
      [id],
    );
    if (!rows[0]) return undefined;
    return rows[0].deleted ? 'deleted' : 'live';
  }

  async markInstallationDeleted(id: string): Promise<void> {
    await this.db.query('UPDATE partner_installations SET deleted_at = coalesce(deleted_at, now()), updated_at = now() WHERE id = $1', [
      id,
    ]);
  }

  /** The token the marketplace gave with the installation; undefined when there is none. */
  async accessToken(installationId: string): Promise<string | undefined> {
    const { rows } = await this.db.query<{ access_token: string }>('SELECT access_token FROM partner_installations WHERE id = $1', [
      installationId,
    ]);
    return rows[0]
      ? this.box.open(rows[0].access_token, { table: 'partner_installations', id: installationId, column: 'access_token' })
      : undefined;
  }

  /** The resource a provision key made, and the request it came with; undefined for a new key. */
  async keyed(installationId: string, key: string): Promise<{ resourceId: string; request: unknown } | undefined> {
    const { rows } = await this.db.query<{ resource_id: string; request: unknown }>(
      'SELECT resource_id, request FROM partner_idempotency WHERE installation_id = $1 AND idempotency_key = $2',
      [installationId, key],
    );
    return rows[0] && { resourceId: rows[0].resource_id, request: rows[0].request };
  }

  /**
   * Records a provisioned resource and the key that made it, in one transaction. Returns the row
   * and whether this call made it: a concurrent repeat with the same key finds the first one's.
   */
  async recordProvision(key: string, request: unknown, resource: NewResource): Promise<{ row: ResourceRow; fresh: boolean }> {
    return this.db.transaction(async (tx) => {
      await tx.query(
        `INSERT INTO partner_idempotency (installation_id, idempotency_key, resource_id, request) VALUES ($1, $2, $3, $4)
         ON CONFLICT DO NOTHING`,
        [resource.installationId, key, resource.id, JSON.stringify(request)],
      );
      const inserted = await tx.query(
        `INSERT INTO partner_resources (id, installation_id, status, ready_at, external_id, protocol_settings)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING RETURNING *`,
        [
          resource.id,
          resource.installationId,
          resource.status,
          resource.readyAt,
          resource.externalId,
          resource.protocolSettings && JSON.stringify(resource.protocolSettings),
        ],
      );
      if (inserted.rows[0]) return { row: toResource(inserted.rows[0]), fresh: true };
      const { rows } = await tx.query('SELECT * FROM partner_resources WHERE id = $1', [resource.id]);
      return { row: toResource(rows[0]!), fresh: false };
    });
  }

  /** A resource of this installation, deleted ones included; undefined when it never existed here. */
  async resource(installationId: string, id: string): Promise<ResourceRow | undefined> {
    const { rows } = await this.db.query('SELECT * FROM partner_resources WHERE id = $1 AND installation_id = $2', [id, installationId]);
    return rows[0] && toResource(rows[0]);
  }

  /** A resource by id alone, for the partner's own actions (`/_partner/...`). */
  async resourceById(id: string): Promise<ResourceRow | undefined> {
    const { rows } = await this.db.query('SELECT * FROM partner_resources WHERE id = $1', [id]);
    return rows[0] && toResource(rows[0]);
  }

  /** Resources not deleted, of one installation or (without one) of all. */
  async liveResources(installationId?: string): Promise<ResourceRow[]> {
    const { rows } = await this.db.query(
      'SELECT * FROM partner_resources WHERE ($1::text IS NULL OR installation_id = $1) AND deleted_at IS NULL ORDER BY created_at, id',
      [installationId ?? null],
    );
    return rows.map(toResource);
  }

  /** Pending resources that become ready by themselves (their timers are set again after a restart). */
  async scheduledPending(): Promise<ResourceRow[]> {
    const { rows } = await this.db.query(
      "SELECT * FROM partner_resources WHERE status = 'pending' AND ready_at IS NOT NULL AND deleted_at IS NULL",
    );
    return rows.map(toResource);
  }

  /** Sets a live resource's status, only if it is `from` (when given); whether it changed. */
  async setStatus(id: string, status: ResourceStatus, from?: ResourceStatus): Promise<boolean> {
    const { rowCount } = await this.db.query(
      `UPDATE partner_resources SET status = $2, ready_at = NULL, updated_at = now()
        WHERE id = $1 AND deleted_at IS NULL AND ($3::text IS NULL OR status = $3)`,
      [id, status, from ?? null],
    );
    return (rowCount ?? 0) > 0;
  }

  async setProtocolSettings(id: string, settings: Record<string, unknown>): Promise<void> {
    await this.db.query('UPDATE partner_resources SET protocol_settings = $2, updated_at = now() WHERE id = $1', [
      id,
      JSON.stringify(settings),
    ]);
  }

  async markResourceDeleted(id: string): Promise<void> {
    await this.db.query(
      "UPDATE partner_resources SET deleted_at = coalesce(deleted_at, now()), status = 'uninstalled', ready_at = NULL, updated_at = now() WHERE id = $1",
      [id],
    );
  }

  async recordBilling(installationId: string, body: unknown, status: number, answer: unknown): Promise<void> {
    await this.db.query('INSERT INTO partner_billing (installation_id, body, answer_status, answer) VALUES ($1, $2, $3, $4)', [
      installationId,
      JSON.stringify(body),
      status,
      answer === undefined ? null : JSON.stringify(answer),
    ]);
  }
}
