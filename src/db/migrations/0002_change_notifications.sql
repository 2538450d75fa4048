-- Every committed write to a table that authorization or the catalog reads notifies the
-- channel storehouse_changes with the table's name, so every node can drop what it cached.
-- Statement-level triggers: one notification per statement, and PostgreSQL folds identical
-- notifications of one transaction into one.
CREATE FUNCTION storehouse_notify_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('storehouse_changes', TG_TABLE_NAME);
  RETURN NULL;
END
$$;

CREATE TRIGGER teams_changed AFTER INSERT OR UPDATE OR DELETE ON teams
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER memberships_changed AFTER INSERT OR UPDATE OR DELETE ON memberships
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
-- Not on last_used_at: bookkeeping that changes nobody's access.
CREATE TRIGGER access_tokens_changed AFTER INSERT OR DELETE OR UPDATE OF token_hash, user_id, default_team_id, expires_at, revoked_at
  ON access_tokens FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER installations_changed AFTER INSERT OR UPDATE OR DELETE ON installations
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER integrations_changed AFTER INSERT OR UPDATE OR DELETE ON integrations
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER products_changed AFTER INSERT OR UPDATE OR DELETE ON products
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER billing_plans_changed AFTER INSERT OR UPDATE OR DELETE ON billing_plans
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
