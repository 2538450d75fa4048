-- Installation credentials (rotate and revoke) and what a partner server says of its installation.

-- The integration's client secret (the catalog's `clientSecret`), which a partner server proves
-- to rotate or revoke its installations' access tokens: a salted scrypt hash, never the secret.
-- NULL: the catalog gives the integration none, so its credentials cannot be rotated.
ALTER TABLE integrations ADD COLUMN client_secret_hash text;

-- What the partner server reports of the installation (PATCH /v1/installations/{id}), shown with
-- the configuration:
--   status        the partner's status of the installation (Vercel's statuses; 'ready' until told otherwise)
--   external_id   the partner's own id for it
--   billing_plan  the installation-level plan, as the partner sent it
--   notification  {level, title, message?, href?} shown to the team; NULL: none
ALTER TABLE installations
  ADD COLUMN status        text NOT NULL DEFAULT 'ready'
                           CHECK (status IN ('ready', 'pending', 'onboarding', 'suspended', 'resumed', 'uninstalled', 'error')),
  ADD COLUMN external_id   text,
  ADD COLUMN billing_plan  jsonb,
  ADD COLUMN notification  jsonb;

-- Nodes serve installations from memory between changes: a change to what they show must reach
-- them too (recording the partner's acceptance, partner_installed_at, still does not).
DROP TRIGGER installations_changed ON installations;
CREATE TRIGGER installations_changed
  AFTER INSERT OR DELETE OR UPDATE OF id, team_id, integration_id, installed_by, source, status, external_id, billing_plan, notification
  ON installations FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
