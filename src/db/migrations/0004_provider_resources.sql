-- The built-in providers' own books: one row per resource they created, written before the
-- outside world is touched and updated after, so a retry (same provision key) finishes or
-- repeats the work instead of creating a second database or user, and a crash leaves a record
-- of every resource that may exist.
CREATE TABLE provider_resources (
  id               text PRIMARY KEY,
  provider         text NOT NULL,
  installation_id  text NOT NULL,
  product_slug     text NOT NULL,
  name             text NOT NULL,
  metadata         jsonb NOT NULL,
  billing_plan_id  text NOT NULL,
  state            text NOT NULL CHECK (state IN ('provisioning', 'ready', 'deleting', 'deleted')),
  details          jsonb NOT NULL,
  -- The current credential, sealed (AES-256-GCM); null once the resource is deleted.
  secret           text,
  -- A rotation's new credential until the server has it (then it becomes `secret`), so a crash
  -- mid-rotation never loses the credential that works.
  pending_secret   text,
  provision_key    text NOT NULL,
  rotation_key     text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  deleted_at       timestamptz
);
-- An idempotency key is one installation's: another installation using the same key gets a
-- resource of its own, never this one.
CREATE UNIQUE INDEX provider_resources_key_idx ON provider_resources (provider, installation_id, provision_key);
CREATE INDEX provider_resources_installation_idx ON provider_resources (installation_id);
