-- The web dashboard's sign-ins (src/tenancy/dashboard-sessions.ts). A session is a row here; the
-- browser holds only its secret, in an HttpOnly cookie, and only the secret's hash is stored, as
-- for access tokens. `id` is the session's public name (the principal's token id: rate limits,
-- the actor cache); the CSRF token is sent back to the signed-in page, which echoes it on writes.
-- A session made from an access token lasts no longer than that token: revoked or expired, it
-- takes the session with it (`token_id`; NULL for a session made from a one-time link).
CREATE TABLE dashboard_sessions (
  id            text PRIMARY KEY,
  secret_hash   text NOT NULL UNIQUE,
  user_id       text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  team_id       text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  token_id      text REFERENCES access_tokens (id) ON DELETE CASCADE,
  csrf_token    text NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  expires_at    timestamptz NOT NULL
);
CREATE INDEX dashboard_sessions_expires_idx ON dashboard_sessions (expires_at);

-- One-time sign-in codes (`/dashboard/#code=...`): stored hashed, used once, short-lived.
CREATE TABLE dashboard_link_codes (
  code_hash   text PRIMARY KEY,
  user_id     text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  team_id     text NOT NULL REFERENCES teams (id) ON DELETE CASCADE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL
);
CREATE INDEX dashboard_link_codes_expires_idx ON dashboard_link_codes (expires_at);
