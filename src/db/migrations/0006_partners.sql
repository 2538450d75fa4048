-- Partner servers (integrations whose products name an HTTP provider).

-- RS256 keys Storehouse signs partner calls with (OIDC JWTs). The private key is sealed with
-- the secret key; the public half is served at /.well-known/jwks. One key is current at a time
-- (the partial unique index makes two nodes that race to create the first key agree); a
-- retired key stays published until every token it signed has expired.
CREATE TABLE signing_keys (
  kid          text PRIMARY KEY,
  private_key  text NOT NULL,
  public_jwk   jsonb NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  retired_at   timestamptz
);
CREATE UNIQUE INDEX signing_keys_one_current ON signing_keys ((retired_at IS NULL)) WHERE retired_at IS NULL;
CREATE TRIGGER signing_keys_changed AFTER INSERT OR UPDATE OR DELETE ON signing_keys
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();

-- Access tokens a partner server calls the marketplace API back with, one installation each
-- (the `credentials.access_token` of the install upsert). Only the hash is kept. An installation
-- may hold several live tokens: two nodes that upsert it at once each hand over their own.
CREATE TABLE installation_tokens (
  id               text PRIMARY KEY,
  token_hash       text NOT NULL UNIQUE,
  installation_id  text NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX installation_tokens_installation_idx ON installation_tokens (installation_id);
-- Nodes keep valid tokens in memory between changes.
CREATE TRIGGER installation_tokens_changed AFTER INSERT OR UPDATE OR DELETE ON installation_tokens
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();

-- When the partner server last accepted the installation (its upsert), so it is sent once.
ALTER TABLE installations ADD COLUMN partner_installed_at timestamptz;
-- Recording it changes nobody's access: only changes to what access reads empty the nodes' caches.
DROP TRIGGER installations_changed ON installations;
CREATE TRIGGER installations_changed AFTER INSERT OR DELETE OR UPDATE OF id, team_id, integration_id, installed_by, source
  ON installations FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();

-- A store whose provider answered `pending`: when to ask the provider again, and when to give up.
ALTER TABLE stores ADD COLUMN next_check_at timestamptz;
ALTER TABLE stores ADD COLUMN ready_deadline timestamptz;
ALTER TABLE stores ADD COLUMN check_attempts integer NOT NULL DEFAULT 0;
-- How the resource relates to the marketplace (the partner API's `ownership`): `owned` resources
-- are billed through it and deprovisioned when their store is deleted; `linked` ones (imported
-- from the partner's side) are only forgotten.
ALTER TABLE stores ADD COLUMN ownership text NOT NULL DEFAULT 'owned' CHECK (ownership IN ('owned', 'linked', 'sandbox'));
-- A store the recovery sweep is rolling back (its create was interrupted), as opposed to one a
-- user is deleting: it stays so across sweeps, and shows as such.
ALTER TABLE stores ADD COLUMN rolling_back boolean NOT NULL DEFAULT false;

-- A partner's resource is one store of its installation (the import upsert relies on it).
CREATE UNIQUE INDEX stores_external_resource_idx ON stores (installation_id, external_resource_id) WHERE external_resource_id IS NOT NULL;
-- The recovery sweep's look for creates and deletes under way.
CREATE INDEX stores_under_way_idx ON stores (updated_at) WHERE status IN ('initializing', 'deleting');
CREATE INDEX stores_pending_idx ON stores (next_check_at) WHERE next_check_at IS NOT NULL;

-- What partner servers report through the marketplace API: billing and usage data, invoices and
-- prepayment balances, kept as sent (the partner's own ids), per installation.
CREATE TABLE partner_reports (
  id               text PRIMARY KEY,
  installation_id  text NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('billing', 'invoice', 'balance')),
  body             jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now()
);
-- For the cascade when an installation goes.
CREATE INDEX partner_reports_installation_idx ON partner_reports (installation_id);
