-- A team may hold several installations of one integration, as on Vercel, where
-- `vercel integration add` then answers `multiple_installations` and `--installation-id` chooses
-- (the vercel CLI's packages/cli/src/commands/integration/add-auto-provision.ts). A call that
-- names an installation uses that one; where only the team and the integration are known, one
-- installation is unambiguous and several are that call's ambiguity answer
-- (src/marketplace/cli-installs.ts). Another installation is made only when asked for: `install`
-- (src/tenancy/installations.ts) serializes its "is there one already" check per team and
-- integration with an advisory lock, now that no constraint does.
ALTER TABLE installations DROP CONSTRAINT installations_team_id_integration_id_key;

-- What the constraint's index served: a team's installations, and those of one integration.
CREATE INDEX installations_team_integration_idx ON installations (team_id, integration_id);
