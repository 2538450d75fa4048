-- The invoice lifecycle (partner-submitted invoices for subscription plans), the card processor's
-- own ledger that charges them, and the history of what partners report as billing data and
-- prepayment balances.

-- An invoice a partner submitted (POST /v1/installations/{id}/billing/invoices), as validated:
-- amounts in cents, the items and discounts as sent. No foreign key to the installation: an
-- invoice outlives it (Vercel charges final invoices after an uninstall), and the team keeps its
-- billing history. `pending` and `notpaid` invoices are charged when `next_attempt_at` is due; a
-- node charging one moves that on past its attempt (`charging_node`), so a node killed mid-charge
-- leaves it to whoever comes once that time, or the node's lease, has run out.
CREATE TABLE invoices (
  id                  text PRIMARY KEY,
  -- A human-readable number (`invoiceNumber`), in submission order.
  seq                 bigserial NOT NULL UNIQUE,
  team_id             text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  installation_id     text NOT NULL,
  integration_id      text NOT NULL,
  external_id         text,
  invoice_date        timestamptz NOT NULL,
  period_start        timestamptz NOT NULL,
  period_end          timestamptz NOT NULL CHECK (period_end > period_start),
  memo                text,
  items               jsonb NOT NULL,
  discounts           jsonb,
  final               boolean NOT NULL DEFAULT false,
  -- A test-mode invoice (`test.result`): its state is the one asked for, and nothing is charged.
  test                boolean NOT NULL DEFAULT false,
  total_cents         bigint NOT NULL CHECK (total_cents >= 0),
  refund_total_cents  bigint NOT NULL DEFAULT 0 CHECK (refund_total_cents >= 0 AND refund_total_cents <= total_cents),
  refund_reason       text,
  state               text NOT NULL CHECK (state IN ('pending', 'paid', 'notpaid', 'overdue', 'refunded')),
  -- Charge attempts made so far (invoice_charges numbers them from 1).
  attempts            integer NOT NULL DEFAULT 0,
  next_attempt_at     timestamptz,
  charging_node       text,
  paid_at             timestamptz,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX invoices_due_idx ON invoices (next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX invoices_installation_idx ON invoices (installation_id, seq);
CREATE INDEX invoices_team_idx ON invoices (team_id, seq DESC);
-- `externalId` is unique per installation (test invoices aside).
CREATE UNIQUE INDEX invoices_external_id_idx ON invoices (installation_id, external_id) WHERE external_id IS NOT NULL AND NOT test;

-- What each invoice bills a resource for: its plan over the item's stretch of time. One invoice
-- per resource per period per plan (Vercel's rule) is checked against these, under a lock on the
-- installation, for any overlap.
CREATE TABLE invoice_resource_periods (
  invoice_id       text NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  installation_id  text NOT NULL,
  resource_id      text NOT NULL,
  billing_plan_id  text NOT NULL,
  period_start     timestamptz NOT NULL,
  period_end       timestamptz NOT NULL,
  PRIMARY KEY (installation_id, resource_id, billing_plan_id, period_start, invoice_id)
);

-- Every attempt to charge an invoice: written (`started`) before the card processor is asked and
-- finished after, so a node that dies between the two leaves an attempt whoever comes next asks
-- the processor about again under the same key (`invoice id:attempt`), and never charges twice.
CREATE TABLE invoice_charges (
  invoice_id         text NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  attempt            integer NOT NULL CHECK (attempt >= 1),
  payment_method_id  text REFERENCES payment_methods (id),
  amount_cents       bigint NOT NULL,
  outcome            text NOT NULL CHECK (outcome IN ('started', 'succeeded', 'declined')),
  message            text,
  node_id            text NOT NULL,
  started_at         timestamptz NOT NULL DEFAULT now(),
  finished_at        timestamptz,
  PRIMARY KEY (invoice_id, attempt)
);

-- The test-mode card processor's ledger: what it charged, once per idempotency key (a charge asked
-- for again under its key answers what the first did). What a real processor keeps on its side.
CREATE TABLE card_charges (
  idempotency_key    text PRIMARY KEY,
  team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  payment_method_id  text NOT NULL REFERENCES payment_methods (id),
  amount_cents       bigint NOT NULL CHECK (amount_cents >= 0),
  outcome            text NOT NULL CHECK (outcome IN ('succeeded', 'declined')),
  created_at         timestamptz NOT NULL DEFAULT now()
);

-- Refunds of an invoice (POST .../invoices/{id}/actions), each with its amount and reason.
CREATE TABLE invoice_refunds (
  invoice_id    text NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  number        integer NOT NULL,
  amount_cents  bigint NOT NULL CHECK (amount_cents > 0),
  reason        text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (invoice_id, number)
);

-- Billing data and balances are a history: every report kept (partner_reports) with the time the
-- partner gave it (`timestamp`), not only the last balance on the store.
ALTER TABLE partner_reports ADD COLUMN reported_at timestamptz;
CREATE INDEX partner_reports_history_idx ON partner_reports (installation_id, kind, created_at);

-- Each balance of a balance report, one row per resource (or the installation's own, resource_id
-- null), so a resource's balance over time reads without unpacking every report.
CREATE TABLE balance_history (
  report_id               text NOT NULL REFERENCES partner_reports (id) ON DELETE CASCADE,
  installation_id         text NOT NULL,
  resource_id             text,
  store_id                text,
  currency_value_cents    bigint NOT NULL,
  credit                  text,
  name_label              text,
  reported_at             timestamptz NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX balance_history_installation_idx ON balance_history (installation_id, created_at);

-- A balance that fell below its threshold's minimum (prepayment_thresholds): the top-up it
-- triggered, once per crossing, charged to the team's default card (or why not: declined, no
-- card, or past the threshold's most per period).
CREATE TABLE balance_top_ups (
  id                 text PRIMARY KEY,
  team_id            text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  installation_id    text NOT NULL,
  store_id           text NOT NULL,
  report_id          text NOT NULL REFERENCES partner_reports (id) ON DELETE CASCADE,
  balance_cents      bigint NOT NULL,
  minimum_cents      bigint NOT NULL,
  amount_cents       bigint NOT NULL,
  payment_method_id  text REFERENCES payment_methods (id),
  outcome            text NOT NULL CHECK (outcome IN ('purchased', 'declined', 'no_payment_method', 'over_period_maximum')),
  created_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX balance_top_ups_store_idx ON balance_top_ups (store_id, created_at);
-- The team's view of its top-ups (GET /_storehouse/teams/{teamId}/billing/balances), newest first.
CREATE INDEX balance_top_ups_team_idx ON balance_top_ups (team_id, created_at DESC);
