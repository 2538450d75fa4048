/**
 * Every column that holds a sealed value, and so the contexts a value can be sealed for: a value
 * sealed for one (table, row, column) opens only there (AES-GCM additional data, secret-box.ts).
 * A column missing here cannot be sealed for (the type refuses it) and is not re-sealed at start.
 */

/** Storehouse's own state. */
export const STOREHOUSE_SEALED_COLUMNS = [
  // A store's secrets as its provider gave them (a JSON array).
  { table: 'stores', idColumn: 'id', column: 'secrets' },
  // A project's environment variable, a connected store's secret among them.
  { table: 'project_env', idColumn: 'id', column: 'value' },
  // A built-in provider's credential, and a rotation's until the server has it.
  { table: 'provider_resources', idColumn: 'id', column: 'secret' },
  { table: 'provider_resources', idColumn: 'id', column: 'pending_secret' },
  // The private half of a key partner calls are signed with.
  { table: 'signing_keys', idColumn: 'kid', column: 'private_key' },
  // An integration's client secret, which its webhooks are signed with (src/webhooks/).
  { table: 'integrations', idColumn: 'id', column: 'client_secret' },
] as const;

/** The reference partner server's state (src/partner-server/): the provider it wraps, and its installations' tokens. */
export const PARTNER_SEALED_COLUMNS = [
  { table: 'provider_resources', idColumn: 'id', column: 'secret' },
  { table: 'provider_resources', idColumn: 'id', column: 'pending_secret' },
  { table: 'partner_installations', idColumn: 'id', column: 'access_token' },
] as const;

export type SealedColumn = (typeof STOREHOUSE_SEALED_COLUMNS)[number] | (typeof PARTNER_SEALED_COLUMNS)[number];

/**
 * Where a sealed value lives: the table, the row's id and the column, one of the pairs above
 * (`{ table: 'project_env', id, column: 'value' }`).
 */
export type SealContext = SealedColumn extends infer C
  ? C extends SealedColumn
    ? { table: C['table']; id: string; column: C['column'] }
    : never
  : never;
