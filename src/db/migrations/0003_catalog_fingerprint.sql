-- The fingerprint of the catalog file last validated and synced (its bytes, the catalog schema
-- and the Storehouse version), so a start with an unchanged file can skip both.
CREATE TABLE catalog_state (
  singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  fingerprint text NOT NULL,
  file        text NOT NULL,
  synced_at   timestamptz NOT NULL DEFAULT now()
);
