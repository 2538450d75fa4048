/**
 * Idempotency keys (`Idempotency-Key` header) of create requests. The first request with a key
 * records it, with a hash of its body, in the same transaction that records what it creates; a
 * repeat with the same body gets the first one's response once it is done (waiting for it while
 * it runs); a repeat with another body is a 409. A request that fails gives its key back, so a
 * retry runs again; one whose store could not be rolled back yet keeps it with that store, and a
 * retry finishes the rollback (or answers why it cannot yet) before it runs again. Keys are kept
 * at least 24 hours.
 */
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Queryable } from '../db/database.ts';
import { AppError, badRequest, conflict } from '../errors.ts';
import { rollbackIdle, takeoverDue } from './interrupted-work.ts';

const KEY_LIFETIME_HOURS = 24;
const KEY = /^[\x21-\x7e]{1,255}$/;

/** Checks an `Idempotency-Key` header: 1 to 255 visible ASCII characters. */
export function parseIdempotencyKey(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  if (Array.isArray(header) || !KEY.test(header)) {
    throw badRequest('The Idempotency-Key header must be one value of 1 to 255 visible ASCII characters');
  }
  return header;
}

/** A hash of a JSON value that does not depend on the order of object keys. */
export function requestHash(value: unknown): string {
  const canonical = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(canonical)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.keys(v)
              .sort()
              .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
          )
        : v;
  return createHash('sha256')
    .update(JSON.stringify(canonical(value) ?? null))
    .digest('base64url');
}

export interface IdempotentRequest {
  teamId: string;
  operation: string;
  key: string;
  hash: string;
}

/** Thrown inside the recording transaction when another request recorded the key first. */
export class KeyTaken extends Error {}

const reused = () =>
  conflict('idempotency_key_reused', 'This Idempotency-Key was used with a different request body: use a new key for a new request');

export interface IdempotencyOptions {
  /** How long a repeat waits for the request holding its key. */
  waitMs: number;
  /** The age (seconds) at which work under way is taken for interrupted, whoever does it. */
  staleSecs: number;
  /**
   * Finishes or undoes the create of `storeId`, whose node died or whose rollback waits to be tried
   * again: its key is then given back. Throws the answer when the rollback cannot be done yet.
   */
  recover(storeId: string): Promise<void>;
}

export class IdempotencyKeys {
  constructor(
    private readonly db: Queryable,
    private readonly options: IdempotencyOptions,
  ) {}

  /**
   * The response recorded for this key, waiting while the request that holds it runs; undefined
   * when the key is free (never used, expired, or given back by a request that failed). When the
   * request holding it died with its node (its lease ran out), or failed and left its store to be
   * rolled back later (its provider unreachable), that work is finished here and now, so the
   * repeat runs again at once instead of waiting for a sweep; a rollback that still cannot be done
   * throws its failure, the answer the first request got.
   */
  async recorded(request: IdempotentRequest): Promise<unknown | undefined> {
    const deadline = Date.now() + this.options.waitMs;
    for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
      const { rows } = await this.db.query<{ request_hash: string; response: unknown; store_id: string | null; abandoned: boolean | null }>(
        `SELECT k.request_hash, k.response, k.store_id, (${takeoverDue('s', '$4')} OR ${rollbackIdle('s')}) AS abandoned
           FROM idempotency_keys k LEFT JOIN stores s ON s.id = k.store_id AND s.team_id = k.team_id
          WHERE k.team_id = $1 AND k.operation = $2 AND k.key = $3 AND k.expires_at > now()`,
        [request.teamId, request.operation, request.key, this.options.staleSecs],
      );
      const row = rows[0];
      if (!row) return undefined;
      if (row.request_hash !== request.hash) throw reused();
      if (row.response !== null) return row.response;
      // Recovering gives the key back; looked at again after the wait (another node may be at it).
      if (row.abandoned && row.store_id) await this.options.recover(row.store_id);
      if (Date.now() > deadline) {
        throw new AppError(409, 'idempotency_key_in_use', 'A request with this Idempotency-Key is still in progress: retry later');
      }
      await sleep(delay);
    }
  }

  /** Records the key as taken by this request (in its transaction); KeyTaken when another has it. */
  async take(tx: Queryable, request: IdempotentRequest, storeId: string): Promise<void> {
    // An expired key is taken over; a live one is another request's.
    const { rowCount } = await tx.query(
      `INSERT INTO idempotency_keys (team_id, operation, key, request_hash, store_id, expires_at)
       VALUES ($1, $2, $3, $4, $5, now() + make_interval(hours => $6))
       ON CONFLICT (team_id, operation, key) DO UPDATE
         SET request_hash = EXCLUDED.request_hash, store_id = EXCLUDED.store_id, response = NULL, created_at = now(), expires_at = EXCLUDED.expires_at
         WHERE idempotency_keys.expires_at <= now()`,
      [request.teamId, request.operation, request.key, request.hash, storeId, KEY_LIFETIME_HOURS],
    );
    if (rowCount === 0) throw new KeyTaken();
  }

  /** Records the response a repeat of the request gets. */
  async complete(tx: Queryable, request: IdempotentRequest, response: unknown): Promise<void> {
    await tx.query('UPDATE idempotency_keys SET response = $4 WHERE team_id = $1 AND operation = $2 AND key = $3', [
      request.teamId,
      request.operation,
      request.key,
      JSON.stringify(response),
    ]);
  }

  /** Gives the key back: the request failed and changed nothing, so a retry runs again. */
  async release(tx: Queryable, request: IdempotentRequest): Promise<void> {
    await tx.query('DELETE FROM idempotency_keys WHERE team_id = $1 AND operation = $2 AND key = $3', [
      request.teamId,
      request.operation,
      request.key,
    ]);
  }

  /**
   * Gives back a key whose create never answered (its node died), with the store it was taken
   * for. Within the team, so the primary key finds it.
   */
  async releaseFor(tx: Queryable, teamId: string, storeId: string): Promise<void> {
    await tx.query('DELETE FROM idempotency_keys WHERE team_id = $1 AND store_id = $2 AND response IS NULL', [teamId, storeId]);
  }

  /** Forgets expired keys (run now and then). */
  async purge(): Promise<number> {
    const { rowCount } = await this.db.query('DELETE FROM idempotency_keys WHERE expires_at <= now()');
    return rowCount ?? 0;
  }
}
