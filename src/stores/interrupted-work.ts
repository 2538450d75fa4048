/**
 * Which creates and deletes under way may be taken over, and when the next one may be: the rules
 * the recovery sweep and a keyed retry share (store-service.ts), in SQL.
 *
 * A create or delete is under way from the record made before its provider is called until the
 * record of the provider's answer. It is taken over (finished or undone by whoever comes next) when
 * - it failed and is due to be tried again (`retry_at`, set with a backoff when its provider could
 *   not be reached to undo or delete it), or
 * - the node doing it is gone: its lease ran out (node-lease.ts), or
 * - it is older than the stale age (twice the provision timeout), whoever does it: a node that is
 *   alive but stuck, or work recorded before nodes held leases.
 */
import { ownerGone } from '../db/node-lease.ts';

/** Creates and deletes under way (of the stores row `s`): their outside call not yet answered, or its answer not yet recorded. */
export const underWay = (s: string) => `((${s}.status = 'initializing' AND ${s}.external_resource_id IS NULL) OR ${s}.status = 'deleting')`;

/** SQL: the under-way work of row `s` may be taken over now; `staleSecs` names the parameter holding the stale age. */
export const takeoverDue = (s: string, staleSecs: string) =>
  `(${underWay(s)} AND CASE WHEN ${s}.retry_at IS NOT NULL THEN ${s}.retry_at <= now()
     ELSE ${s}.updated_at < now() - make_interval(secs => ${staleSecs})
          OR (${s}.owner_node IS NOT NULL AND ${ownerGone(`${s}.owner_node`)}) END)`;

/**
 * SQL: row `s` is a create being rolled back whose undo nobody is doing now (it failed and waits
 * for its retry, or its node is gone). A keyed retry of that create takes it over at once, whatever
 * the backoff says: a client retrying is the moment to try the undo again.
 */
export const rollbackIdle = (s: string) =>
  `(${s}.status = 'deleting' AND ${s}.rolling_back AND (${s}.owner_node IS NULL OR ${ownerGone(`${s}.owner_node`)}))`;

/** SQL: a node with a live lease is doing the under-way work of row `s` now (it is not due to be taken over). */
export const ownerAtWork = (s: string, staleSecs: string) => `(${s}.owner_node IS NOT NULL AND NOT ${takeoverDue(s, staleSecs)})`;

/**
 * SQL: when the under-way work of row `s` may be taken over: its retry time, else the earlier of
 * its stale age and its owner's lease running out (a live owner renews it, and the time moves on).
 * `self` names the parameter holding this node's id: its own work is never waited for that way.
 */
export const takeoverAt = (s: string, staleSecs: string, self: string) =>
  `CASE WHEN ${s}.retry_at IS NOT NULL THEN ${s}.retry_at
   ELSE least(${s}.updated_at + make_interval(secs => ${staleSecs}),
              CASE WHEN ${s}.owner_node IS NOT NULL AND ${s}.owner_node <> ${self}
                   THEN coalesce((SELECT l.expires_at FROM node_leases l WHERE l.node_id = ${s}.owner_node), now()) END) END`;

/**
 * The first retry of a failed undo or delete comes after 2 s; the wait doubles, with jitter, up to 5
 * minutes. The exponent is capped: power(2, n) overflows (22003) past n = 1023, and the attempts of
 * a long outage (or a client repeating its DELETE) count on.
 */
const FIRST_RETRY_SECS = 2;
const MAX_RETRY_SECS = 300;

/** SQL: the columns set on row `s` when its undo or delete failed and is left for a later try (by any node). */
export const retryLater = (s: string) =>
  `owner_node = NULL, retry_attempts = ${s}.retry_attempts + 1,
   retry_at = now() + make_interval(secs => least(${FIRST_RETRY_SECS} * power(2, least(${s}.retry_attempts, 20)), ${MAX_RETRY_SECS}) * (0.75 + random() / 2))`;
