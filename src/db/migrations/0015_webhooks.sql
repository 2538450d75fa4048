-- Webhooks to integrations' webhook URLs (Vercel's partner webhooks), sent from an outbox.

-- Where the integration receives its events (the catalog's `webhookUrl`), and its client secret
-- sealed (secret-box.ts), since signing needs it in plaintext. It lives in the database, not only
-- in a node's memory: whichever node claims an event signs it, and every node then signs with the
-- secret of the catalog last synced, not with the one its own file had when it started.
ALTER TABLE integrations ADD COLUMN webhook_url text;
ALTER TABLE integrations ADD COLUMN client_secret text;

-- One event, written in the transaction of the change that causes it. `body` is the envelope as
-- sent, byte for byte, so every attempt (and a redelivery) sends the same bytes under the same id.
-- A pending event is due at `next_attempt_at`; a node that claims it pushes that past its attempt
-- (`claimed_by`), so a node killed mid-send leaves it to whoever comes after the claim (or the
-- node's lease) runs out.
CREATE TABLE webhook_events (
  id               text PRIMARY KEY,
  seq              bigserial NOT NULL UNIQUE,
  -- No foreign keys: a removal's event outlives its installation, and an event (failed, say)
  -- must not keep the catalog's sync from deleting an integration nothing else uses.
  integration_id   text NOT NULL,
  -- The team and installation it is about.
  team_id          text,
  installation_id  text,
  type             text NOT NULL,
  body             text NOT NULL,
  status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  claimed_by       text,
  -- Retries stop this long (the configured STOREHOUSE_WEBHOOK_RETRY_FOR_MS) after it; a redelivery moves it.
  retry_from       timestamptz NOT NULL DEFAULT now(),
  last_status      integer,
  last_error       text,
  created_at       timestamptz NOT NULL DEFAULT now(),
  delivered_at     timestamptz
);
CREATE INDEX webhook_events_due_idx ON webhook_events (next_attempt_at) WHERE status = 'pending';
-- The events claimed right now (the few in flight), for taking over a dead node's claims.
CREATE INDEX webhook_events_claimed_idx ON webhook_events (claimed_by) WHERE status = 'pending' AND claimed_by IS NOT NULL;
CREATE INDEX webhook_events_integration_idx ON webhook_events (integration_id, seq);
CREATE INDEX webhook_events_team_idx ON webhook_events (team_id, seq);
-- Delivered events are pruned once STOREHOUSE_WEBHOOK_RETENTION_MS past their delivery, oldest first.
CREATE INDEX webhook_events_delivered_idx ON webhook_events (delivered_at) WHERE status = 'delivered';

-- Every attempt to send an event: what came back, or why nothing did.
CREATE TABLE webhook_attempts (
  event_id     text NOT NULL REFERENCES webhook_events (id) ON DELETE CASCADE,
  number       integer NOT NULL,
  node_id      text NOT NULL,
  started_at   timestamptz NOT NULL,
  duration_ms  integer NOT NULL,
  status       integer,
  error        text,
  PRIMARY KEY (event_id, number)
);

-- The catalog synced before this migration carried neither: the next start syncs its file again.
UPDATE catalog_state SET fingerprint = 'before-0015';
