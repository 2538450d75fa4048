-- The tables GET /v2/user and GET /v1/storage/stores/{id} read notify their changes too (as
-- 0002's do), so every node can serve those views from memory between changes: a user's
-- name or email, a store, its connections, the names of the projects they are to, and the
-- names of the variables they hold. TRUNCATE as well: a view must never outlive its rows.
CREATE TRIGGER users_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON users
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER stores_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON stores
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER store_connections_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON store_connections
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER projects_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON projects
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
CREATE TRIGGER project_env_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON project_env
  FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change();
