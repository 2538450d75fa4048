-- Prepayment balance thresholds (`vercel integration resource create-threshold`): when a
-- prepaid store's balance falls below the minimum, buy `purchase` more, at most `maximum` per
-- billing period. One per store; it goes with the store. Kept and shown by
-- GET /v1/integrations/installations/{id}/billing/balance.
CREATE TABLE prepayment_thresholds (
  store_id                         text PRIMARY KEY REFERENCES stores (id) ON DELETE CASCADE,
  installation_id                  text NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
  billing_plan_id                  text NOT NULL,
  minimum_amount_cents             bigint NOT NULL CHECK (minimum_amount_cents >= 0),
  purchase_amount_cents            bigint NOT NULL CHECK (purchase_amount_cents >= minimum_amount_cents),
  maximum_amount_per_period_cents  bigint CHECK (maximum_amount_per_period_cents >= purchase_amount_cents),
  metadata                         text,
  created_by                       text REFERENCES users (id) ON DELETE SET NULL,
  created_at                       timestamptz NOT NULL DEFAULT now(),
  updated_at                       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX prepayment_thresholds_installation_idx ON prepayment_thresholds (installation_id);
