-- Tenancy: users, teams, memberships with Vercel's roles, and access tokens (hash only).
CREATE TABLE users (
  id          text PRIMARY KEY,
  email       text NOT NULL UNIQUE,
  username    text NOT NULL UNIQUE,
  name        text,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE teams (
  id          text PRIMARY KEY,
  slug        text NOT NULL UNIQUE,
  name        text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE memberships (
  team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  role        text NOT NULL CHECK (role IN ('OWNER', 'MEMBER', 'DEVELOPER', 'BILLING', 'VIEWER')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (team_id, user_id)
);
CREATE INDEX memberships_user_idx ON memberships (user_id);

CREATE TABLE access_tokens (
  id               text PRIMARY KEY,
  token_hash       text NOT NULL UNIQUE,
  user_id          text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  default_team_id  text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  name             text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz,
  last_used_at     timestamptz,
  revoked_at       timestamptz
);
CREATE INDEX access_tokens_user_idx ON access_tokens (user_id);

-- Catalog, synced from the catalog file at start. Rows still in use are never deleted:
-- when the file drops them they are kept with retired = true.
CREATE TABLE integrations (
  id          text PRIMARY KEY,
  slug        text NOT NULL,
  name        text NOT NULL,
  icon        text NOT NULL,
  scopes      jsonb NOT NULL,
  retired     boolean NOT NULL DEFAULT false,
  updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX integrations_slug_idx ON integrations (slug) WHERE NOT retired;

CREATE TABLE products (
  id                 text PRIMARY KEY,
  integration_id     text NOT NULL REFERENCES integrations (id),
  slug               text NOT NULL,
  position           integer NOT NULL,
  name               text NOT NULL,
  description        text,
  short_description  text,
  primary_protocol   text,
  protocols          jsonb NOT NULL,
  tags               jsonb NOT NULL,
  capabilities       jsonb NOT NULL,
  metadata_schema    json NOT NULL,   -- json, not jsonb: keeps the author's property order
  provider           jsonb NOT NULL,
  retired            boolean NOT NULL DEFAULT false,
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX products_slug_idx ON products (integration_id, slug) WHERE NOT retired;

CREATE TABLE billing_plans (
  product_id                    text NOT NULL REFERENCES products (id),
  id                            text NOT NULL,
  position                      integer NOT NULL,
  type                          text NOT NULL CHECK (type IN ('subscription', 'prepayment')),
  scope                         text NOT NULL CHECK (scope IN ('installation', 'resource')),
  name                          text NOT NULL,
  description                   text NOT NULL,
  cost                          text,
  payment_method_required       boolean NOT NULL,
  preauthorization_amount_cents bigint,
  initial_charge                text,
  minimum_amount_cents          bigint,
  maximum_amount_cents          bigint,
  details                       jsonb NOT NULL,
  highlighted_details           jsonb NOT NULL,
  resource_limit                integer,
  disabled                      boolean NOT NULL DEFAULT false,
  retired                       boolean NOT NULL DEFAULT false,
  updated_at                    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (product_id, id)
);

-- Installations are Vercel's integration configurations: one per team per integration.
CREATE TABLE installations (
  id              text PRIMARY KEY,
  team_id         text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  integration_id  text NOT NULL REFERENCES integrations (id),
  installed_by    text REFERENCES users (id) ON DELETE SET NULL,
  source          text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  UNIQUE (team_id, integration_id)
);

-- Stores (integration resources). The store lifecycle adds to this table; the foundation needs
-- it to keep installations, products and plans that stores still use.
CREATE TABLE stores (
  id               text PRIMARY KEY,
  team_id          text NOT NULL REFERENCES teams (id),
  installation_id  text NOT NULL REFERENCES installations (id),
  product_id       text NOT NULL REFERENCES products (id),
  billing_plan_id  text NOT NULL,
  name             text NOT NULL,
  status           text NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (product_id, billing_plan_id) REFERENCES billing_plans (product_id, id),
  UNIQUE (team_id, name)
);
CREATE INDEX stores_installation_idx ON stores (installation_id);
