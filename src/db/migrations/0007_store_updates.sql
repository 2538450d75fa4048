-- A change to a store (rename, metadata, plan) is recorded before its provider is told, so a
-- node that dies mid-call, a timeout or an unreachable provider never leaves Storehouse's record
-- and the provider's disagreeing: the change is sent again, with the same idempotency key, until
-- the provider answers it.
--   update_key       the Idempotency-Key the provider is sent; NULL when no change is under way
--   update_request   what is being changed: the provider's body, the plan and the charge it took,
--                    and the values to go back to if the provider refuses
--   update_retry_at  when the change may be sent again (by any node): after the call's own
--                    deadline while a node works on it, sooner after a failure it may retry
--   update_attempts  sends so far, for the backoff between them
ALTER TABLE stores ADD COLUMN update_key text;
ALTER TABLE stores ADD COLUMN update_request jsonb;
ALTER TABLE stores ADD COLUMN update_retry_at timestamptz;
ALTER TABLE stores ADD COLUMN update_attempts integer NOT NULL DEFAULT 0;

CREATE INDEX stores_updating_idx ON stores (update_retry_at) WHERE update_key IS NOT NULL;
