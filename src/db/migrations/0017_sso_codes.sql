-- SSO, "Open in provider" (src/partners/sso.ts): where an integration logs users in (the
-- catalog's `redirectLoginUrl`, Vercel's Redirect Login URL), and the one-time codes Storehouse
-- hands the partner there, which its server exchanges for an id_token.
ALTER TABLE integrations ADD COLUMN redirect_login_url text;

-- A code is kept only as its hash (it is a credential until used), bound to the integration whose
-- client may exchange it, the user it signs in, the installation, the `state` sent beside it and
-- the context the user opened. `used_at` is set by the one exchange that wins (an UPDATE ... WHERE
-- used_at IS NULL), so a code works once even when two exchanges race; a used or expired row is
-- kept a while so a second use can be told apart from a code that never was, then deleted.
-- `secret_checks` counts the client secrets tried with it: each costs a slow hash (scrypt), so a
-- code takes only a few (src/partners/sso.ts), and whoever holds one cannot make a node hash forever.
CREATE TABLE sso_codes (
  code_hash        text PRIMARY KEY,
  integration_id   text NOT NULL REFERENCES integrations (id) ON DELETE CASCADE,
  installation_id  text NOT NULL REFERENCES installations (id) ON DELETE CASCADE,
  user_id          text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  state            text NOT NULL,
  context          jsonb NOT NULL,
  created_at       timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz NOT NULL,
  used_at          timestamptz,
  secret_checks    integer NOT NULL DEFAULT 0
);
-- The clean-up of spent codes deletes by expiry; deleting an installation or a user deletes its
-- codes, which without these would read the whole table.
CREATE INDEX sso_codes_expires_idx ON sso_codes (expires_at);
CREATE INDEX sso_codes_installation_idx ON sso_codes (installation_id);
CREATE INDEX sso_codes_user_idx ON sso_codes (user_id);
