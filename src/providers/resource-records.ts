/**
 * The built-in providers' records of the resources they create (table provider_resources):
 * written before the outside world is touched and updated after, so retries are idempotent and
 * no created resource goes unrecorded. The credential is kept sealed.
 */
import { UNFLUSHED, type MappedRow, type Queryable } from '../db/database.ts';
import { conflict, notFound } from '../errors.ts';
import { randomBase62 } from '../ids.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { ProviderResource, ProvisionRequest, ResourceStatus, ResourceUpdate } from './provider.ts';

export type RecordState = 'provisioning' | 'ready' | 'deleting' | 'deleted';

export interface ResourceRecord<Details> {
  id: string;
  provider: string;
  installationId: string;
  productSlug: string;
  name: string;
  metadata: Record<string, unknown>;
  billingPlanId: string;
  state: RecordState;
  details: Details;
  /** The current credential, opened; undefined once deleted. In a rotation's record: the credential to apply. */
  secret: string | undefined;
  /** A rotation's credential not yet confirmed applied to the server. */
  pendingSecret: string | undefined;
  provisionKey: string;
  rotationKey: string | null;
}

/** Where a record's credential is sealed: bound to its row and column. */
const sealedAt = (id: string, column: 'secret' | 'pending_secret') => ({ table: 'provider_resources', id, column }) as const;

const STATUS: Record<RecordState, ResourceStatus> = {
  provisioning: 'pending',
  ready: 'ready',
  deleting: 'uninstalled',
  deleted: 'uninstalled',
};

export class ResourceRecords<Details> {
  constructor(
    private readonly db: Queryable,
    private readonly box: SecretBox,
    readonly provider: string,
  ) {}

  private toRecord(row: MappedRow): ResourceRecord<Details> {
    return {
      id: row.id,
      provider: row.provider,
      installationId: row.installation_id,
      productSlug: row.product_slug,
      name: row.name,
      metadata: row.metadata,
      billingPlanId: row.billing_plan_id,
      state: row.state,
      details: row.details,
      secret: row.secret === null ? undefined : this.box.open(row.secret, sealedAt(row.id, 'secret')),
      pendingSecret: row.pending_secret === null ? undefined : this.box.open(row.pending_secret, sealedAt(row.id, 'pending_secret')),
      provisionKey: row.provision_key,
      rotationKey: row.rotation_key,
    };
  }

  /** The installation's resource; any other installation's is a 404, like a missing one. */
  async get(installationId: string, id: string): Promise<ResourceRecord<Details>> {
    const { rows } = await this.db.query('SELECT * FROM provider_resources WHERE id = $1 AND installation_id = $2 AND provider = $3', [
      id,
      installationId,
      this.provider,
    ]);
    if (!rows[0]) throw notFound('resource', id);
    return this.toRecord(rows[0]);
  }

  /**
   * The record of a provision: a new one (fresh id and credential) for a new key, recorded before
   * anything is created; the existing one for a retry, perhaps concurrent. A key whose resource was
   * deleted is a 409: a late retry must not revive it.
   *
   * `secret` is the new record's credential when given (the caller may start work on it
   * meanwhile); a retry's record keeps its own. `flushed: false` commits the record without
   * waiting for its flush to disk: for a provider whose resources live on the server that holds
   * this table, where their own commits come later in the same WAL (Provider.onStateServer).
   */
  async claimFor(
    request: ProvisionRequest,
    details: (id: string) => Details,
    options: { secret?: string; flushed?: boolean } = {},
  ): Promise<ResourceRecord<Details> & { fresh: boolean }> {
    const id = `sh_${randomBase62(20).toLowerCase()}`;
    // One round trip: the no-op update on conflict makes RETURNING give the existing row. Unflushed,
    // synchronous_commit is turned off for this statement's own transaction, in the statement.
    const unflushed = options.flushed === false;
    const { rows } = await this.db.query(
      `${unflushed ? `WITH ${UNFLUSHED} ` : ''}INSERT INTO provider_resources (id, provider, installation_id, product_slug, name, metadata, billing_plan_id, state, details, secret, provision_key)
       SELECT $1, $2, $3, $4, $5, $6, $7, 'provisioning', $8, $9, $10${unflushed ? ' FROM unflushed' : ''}
       ON CONFLICT (provider, installation_id, provision_key) DO UPDATE SET provision_key = EXCLUDED.provision_key
       RETURNING *`,
      [
        id,
        this.provider,
        request.installationId,
        request.product.slug,
        request.name,
        JSON.stringify(request.metadata),
        request.billingPlanId,
        JSON.stringify(details(id)),
        this.box.seal(options.secret ?? randomBase62(32), sealedAt(id, 'secret')),
        request.idempotencyKey,
      ],
    );
    const record = this.toRecord(rows[0]!);
    if (record.state === 'deleted' || record.state === 'deleting') {
      throw conflict('resource_deleted', `The resource provisioned with this idempotency key (${record.id}) has been deleted`);
    }
    // Fresh: this call made the record, so nobody else knows its id yet (nothing can be deleting it).
    return { ...record, fresh: record.id === id };
  }

  /**
   * Marks a provision key as abandoned: a record in state `deleted` when there was none, so a
   * provision with the key still in flight or retried later is refused by claimFor. Returns the
   * id of the resource the key did create, which the caller must delete; undefined when none.
   */
  async tombstone(installationId: string, provisionKey: string): Promise<string | undefined> {
    const id = `sh_${randomBase62(20).toLowerCase()}`;
    const { rows } = await this.db.query<{ id: string; state: RecordState }>(
      `INSERT INTO provider_resources (id, provider, installation_id, product_slug, name, metadata, billing_plan_id, state, details, provision_key, deleted_at)
       VALUES ($1, $2, $3, '', '', '{}', '', 'deleted', '{}', $4, now())
       ON CONFLICT (provider, installation_id, provision_key) DO UPDATE SET provision_key = EXCLUDED.provision_key
       RETURNING id, state`,
      [id, this.provider, installationId, provisionKey],
    );
    const row = rows[0]!;
    return row.id === id || row.state === 'deleted' ? undefined : row.id;
  }

  /**
   * A provider's `abandon`: tombstones the key and removes, through `remove` (the provider's
   * delete), the resource the key did create, if any.
   */
  async abandon(installationId: string, provisionKey: string, remove: (id: string) => Promise<void>): Promise<void> {
    const created = await this.tombstone(installationId, provisionKey);
    if (created) await remove(created);
  }

  /**
   * Records that the outside world now matches the record, in one conditional update: a delete
   * that began meanwhile is never turned back into `ready`, and the caller hears 409 (and must
   * undo what it just did to the server). `flushed: false`: see Provider.onStateServer.
   */
  async markReady(record: ResourceRecord<Details>, options: { flushed?: boolean } = {}): Promise<ResourceRecord<Details>> {
    const unflushed = options.flushed === false;
    const { rowCount } = await this.db.query(
      `${unflushed ? `WITH ${UNFLUSHED} ` : ''}UPDATE provider_resources SET state = 'ready', updated_at = now()${unflushed ? ' FROM unflushed' : ''}
        WHERE id = $1 AND state IN ('provisioning', 'ready')`,
      [record.id],
    );
    if (rowCount === 0) throw conflict('resource_deleted', `The resource ${record.id} has been deleted`);
    return { ...record, state: 'ready' };
  }

  /** 409 unless the record (read again) is in one of these states; a delete racing this call wins. */
  async expectState(record: ResourceRecord<Details>, states: RecordState[]): Promise<void> {
    const current = await this.get(record.installationId, record.id);
    if (!states.includes(current.state)) {
      throw conflict('resource_deleted', `The resource ${record.id} is ${current.state}`);
    }
  }

  /**
   * Starts (or, with the same key, resumes) a rotation: the new credential is kept pending, and
   * the record returned carries it as `secret` for the caller to apply to the server and then
   * `promote`. Until promoted, the stored credential stays the one that works, so a crash between
   * the steps loses nothing; a retry with the same key applies and promotes the same credential.
   */
  async rotation(installationId: string, id: string, rotationKey: string): Promise<ResourceRecord<Details>> {
    const record = await this.get(installationId, id);
    if (record.state !== 'ready') throw conflict('resource_not_ready', `The resource ${id} is ${record.state}`);
    if (record.rotationKey === rotationKey) return { ...record, secret: record.pendingSecret ?? record.secret };
    const fresh = randomBase62(32);
    await this.db.query('UPDATE provider_resources SET pending_secret = $2, rotation_key = $3, updated_at = now() WHERE id = $1', [
      record.id,
      this.box.seal(fresh, sealedAt(record.id, 'pending_secret')),
      rotationKey,
    ]);
    return { ...record, rotationKey, secret: fresh, pendingSecret: fresh };
  }

  /**
   * The server now has the rotation's credential `credential`: it becomes the current one. Only
   * that one: false when another rotation (another key) replaced it as the pending credential
   * meanwhile, which its caller promotes (the caller of this one answers 409, never a password the
   * record will not keep). True as well when it is current already (a retry's second promote).
   * Sealed values are bound to their column, so it is opened and sealed again as `secret` (not
   * copied in SQL); the update is conditional on the pending value read.
   */
  async promote(id: string, credential: string): Promise<boolean> {
    for (;;) {
      const { rows } = await this.db.query<{ pending_secret: string | null; secret: string }>(
        'SELECT pending_secret, secret FROM provider_resources WHERE id = $1',
        [id],
      );
      const row = rows[0];
      if (!row) return false;
      if (row.pending_secret === null) return this.box.open(row.secret, sealedAt(id, 'secret')) === credential;
      if (this.box.open(row.pending_secret, sealedAt(id, 'pending_secret')) !== credential) return false;
      const { rowCount } = await this.db.query(
        'UPDATE provider_resources SET secret = $2, pending_secret = NULL, updated_at = now() WHERE id = $1 AND pending_secret = $3',
        [id, this.box.seal(credential, sealedAt(id, 'secret')), row.pending_secret],
      );
      if (rowCount) return true;
    }
  }

  /** The record an update applies to, and the record as the update leaves it; 409 once deleted. */
  async forUpdate(installationId: string, id: string, update: ResourceUpdate) {
    const record = await this.get(installationId, id);
    if (record.state === 'deleted' || record.state === 'deleting')
      throw conflict('resource_deleted', `The resource ${id} has been deleted`);
    const next: ResourceRecord<Details> = { ...record, ...update, metadata: update.metadata ?? record.metadata };
    return { record, next };
  }

  /** Marks a resource as being deleted (before the server is touched); undefined when it is gone already. */
  async beginDelete(installationId: string, id: string): Promise<ResourceRecord<Details> | undefined> {
    const record = await this.get(installationId, id);
    if (record.state === 'deleted') return undefined;
    await this.setState(record.id, 'deleting');
    return record;
  }

  async setState(id: string, state: RecordState): Promise<void> {
    const gone = state === 'deleted';
    await this.db.query(
      `UPDATE provider_resources SET state = $2, updated_at = now(),
         secret = CASE WHEN $3 THEN NULL ELSE secret END, pending_secret = CASE WHEN $3 THEN NULL ELSE pending_secret END, deleted_at = CASE WHEN $3 THEN now() ELSE deleted_at END
       WHERE id = $1`,
      [id, state, gone],
    );
  }

  async update(id: string, fields: ResourceUpdate): Promise<void> {
    await this.db.query(
      `UPDATE provider_resources SET name = coalesce($2, name), metadata = coalesce($3, metadata),
         billing_plan_id = coalesce($4, billing_plan_id), updated_at = now() WHERE id = $1`,
      [id, fields.name ?? null, fields.metadata ? JSON.stringify(fields.metadata) : null, fields.billingPlanId ?? null],
    );
  }

  /** The ids and details of live records, without opening any secret. */
  async liveDetails(): Promise<Array<{ id: string; details: Details }>> {
    const { rows } = await this.db.query<{ id: string; details: Details }>(
      "SELECT id, details FROM provider_resources WHERE provider = $1 AND state IN ('provisioning', 'ready')",
      [this.provider],
    );
    return rows;
  }

  /** These records as they are now, in one query, by id; one that does not exist is left out. */
  async byIds(ids: string[]): Promise<Map<string, ResourceRecord<Details>>> {
    const { rows } = await this.db.query('SELECT * FROM provider_resources WHERE id = ANY($1) AND provider = $2', [ids, this.provider]);
    return new Map(rows.map((row) => [row.id as string, this.toRecord(row)]));
  }

  static asResource(record: ResourceRecord<unknown>): ProviderResource {
    return {
      id: record.id,
      productId: record.productSlug,
      name: record.name,
      metadata: record.metadata,
      status: STATUS[record.state],
      billingPlanId: record.billingPlanId,
    };
  }
}
