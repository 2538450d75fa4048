-- Store lifecycle: what a store was created with, what its provider answered, and its secrets.
-- A store row is written (status initializing) before the provider is called and updated after,
-- so a store whose provisioning was interrupted is never lost: its provision key lets the work
-- be finished or undone.
ALTER TABLE stores
  ADD COLUMN created_by                text REFERENCES users (id) ON DELETE SET NULL,
  ADD COLUMN source                    text NOT NULL DEFAULT 'marketplace',
  ADD COLUMN external_id               text,
  ADD COLUMN metadata                  jsonb NOT NULL DEFAULT '{}',
  ADD COLUMN protocol_settings         jsonb,
  ADD COLUMN provision_key             text NOT NULL DEFAULT '',
  ADD COLUMN external_resource_id      text,
  ADD COLUMN external_resource_status  text,
  -- The secrets as the provider gave them (a JSON array), sealed; their names and lengths in clear.
  ADD COLUMN secrets                   text,
  ADD COLUMN secret_summary            jsonb NOT NULL DEFAULT '[]',
  ADD COLUMN notification              jsonb,
  ADD COLUMN prepaid_balance_cents     bigint,
  -- Creation order, the cursor of store listings (unique, unlike creation times).
  ADD COLUMN seq                       bigint GENERATED ALWAYS AS IDENTITY,
  ADD CONSTRAINT stores_status_check CHECK (status IN (
    'initializing', 'available', 'error', 'onboarding', 'suspended', 'uninstalled', 'deleting'));
CREATE INDEX stores_team_listing_idx ON stores (team_id, seq DESC);

-- Payment methods: test cards that always succeed or always decline. Removed ones are kept
-- (authorizations point at them) but no longer usable.
CREATE TABLE payment_methods (
  id          text PRIMARY KEY,
  team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  brand       text NOT NULL,
  last4       text NOT NULL,
  behavior    text NOT NULL CHECK (behavior IN ('succeed', 'decline')),
  is_default  boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  removed_at  timestamptz
);
CREATE INDEX payment_methods_team_idx ON payment_methods (team_id);
CREATE UNIQUE INDEX payment_methods_one_default_idx ON payment_methods (team_id) WHERE is_default AND removed_at IS NULL;

-- Billing authorizations: a paid plan's pre-authorization, or a prepayment's payment, recorded
-- in the same transaction as the store it pays for, and released or refunded when the store
-- cannot be provisioned or is deleted.
CREATE TABLE billing_authorizations (
  id                 text PRIMARY KEY,
  team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  store_id           text NOT NULL,
  payment_method_id  text NOT NULL REFERENCES payment_methods (id),
  product_id         text NOT NULL,
  billing_plan_id    text NOT NULL,
  kind               text NOT NULL CHECK (kind IN ('preauthorization', 'prepayment')),
  amount_cents       bigint NOT NULL CHECK (amount_cents >= 0),
  state              text NOT NULL CHECK (state IN ('authorized', 'paid', 'released', 'refunded')),
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX billing_authorizations_team_idx ON billing_authorizations (team_id, created_at);
CREATE INDEX billing_authorizations_store_idx ON billing_authorizations (store_id);

-- Idempotency keys of create requests: the first request with a key records it with a hash of
-- its body; a repeat gets the recorded response. Kept at least 24 hours.
CREATE TABLE idempotency_keys (
  team_id       text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  operation     text NOT NULL,
  key           text NOT NULL,
  request_hash  text NOT NULL,
  store_id      text,
  response      json,           -- json, not jsonb: replayed byte for byte, key order included
  created_at    timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL,
  PRIMARY KEY (team_id, operation, key)
);
CREATE INDEX idempotency_keys_expiry_idx ON idempotency_keys (expires_at);

-- Projects, minimal but real: what stores connect to, and the environment variables they get.
CREATE TABLE projects (
  id          text PRIMARY KEY,
  team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  name        text NOT NULL,
  framework   text,
  created_by  text REFERENCES users (id) ON DELETE SET NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  -- Creation order, the cursor of project listings (unique, unlike times).
  seq         bigint GENERATED ALWAYS AS IDENTITY,
  UNIQUE (team_id, name)
);
CREATE INDEX projects_listing_idx ON projects (team_id, seq DESC);

CREATE TABLE store_connections (
  id              text NOT NULL UNIQUE,
  store_id        text NOT NULL REFERENCES stores (id) ON DELETE CASCADE,
  project_id      text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  environments    jsonb NOT NULL,
  sensitive       boolean NOT NULL DEFAULT false,
  env_var_prefix  text NOT NULL DEFAULT '',
  created_by      text REFERENCES users (id) ON DELETE SET NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (store_id, project_id)
);
CREATE INDEX store_connections_project_idx ON store_connections (project_id);

-- A project's environment variables; a store's are written when it is connected (store_id set)
-- and follow its secrets. Values are sealed.
CREATE TABLE project_env (
  id          text PRIMARY KEY,
  project_id  text NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
  key         text NOT NULL,
  value       text NOT NULL,
  type        text NOT NULL CHECK (type IN ('encrypted', 'sensitive', 'plain', 'secret', 'system')),
  targets     jsonb NOT NULL,
  store_id    text REFERENCES stores (id) ON DELETE CASCADE,
  created_by  text REFERENCES users (id) ON DELETE SET NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX project_env_project_idx ON project_env (project_id, key);
CREATE INDEX project_env_store_idx ON project_env (store_id);

-- Team quotas: the most stores a team may hold (null: the configured default).
ALTER TABLE teams ADD COLUMN store_quota integer CHECK (store_quota >= 0);

-- Who did what, when: every store, billing and access change. Readable by team owners.
CREATE TABLE audit_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  team_id      text NOT NULL,
  actor_id     text,
  action       text NOT NULL,
  target_type  text NOT NULL,
  target_id    text NOT NULL,
  details      jsonb NOT NULL DEFAULT '{}',
  created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_events_team_idx ON audit_events (team_id, id DESC);
