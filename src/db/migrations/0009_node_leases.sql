-- Which node is doing a store's outside work right now, so that work a dead node left behind is
-- picked up as soon as its node's lease runs out, not when it is old.
--   node_leases       one row per running node, renewed every few seconds while it runs
--   stores.owner_node the node working on the store's create or delete now; NULL when none is
--                     (its work is then due at retry_at, or taken for interrupted by its age)
--   stores.update_node the node sending a store's change (store-updates) now; NULL when none is
--   stores.retry_at   when a delete or undo that could not finish (its provider unreachable) is
--                     tried again, by any node; retry_attempts counts the tries, for the backoff
CREATE TABLE node_leases (
  node_id    text PRIMARY KEY,
  expires_at timestamptz NOT NULL
);

ALTER TABLE stores ADD COLUMN owner_node text;
ALTER TABLE stores ADD COLUMN update_node text;
ALTER TABLE stores ADD COLUMN retry_at timestamptz;
ALTER TABLE stores ADD COLUMN retry_attempts integer NOT NULL DEFAULT 0;
