-- Which of the team's projects an installation may connect its stores to
-- (`vercel integration update <slug> --projects`, PATCH /v1/integrations/configuration/{id}):
-- NULL for all of them (the default), else those projects' ids. A project removed from the team
-- drops out of the selection by itself: only ids of the team's projects are ever matched.
ALTER TABLE installations ADD COLUMN project_ids text[];

-- Nodes serve installations from memory between changes: the selection is what they show too.
DROP TRIGGER installations_changed ON installations;
CREATE TRIGGER installations_changed
  AFTER INSERT OR DELETE OR UPDATE OF id, team_id, integration_id, installed_by, source, status, external_id, billing_plan, notification,
                                      project_ids
  ON installations FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
