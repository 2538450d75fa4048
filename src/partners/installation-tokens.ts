/**
 * The access tokens partner servers call the marketplace API back with (partner-api.md §2.2):
 * one is handed over in each install upsert, is scoped to its installation, and does not expire;
 * only its hash is stored. They die with the installation.
 */
import type { Queryable } from '../db/database.ts';
import { hashToken, newId, randomBase62 } from '../ids.ts';

/** A new token for the installation; its value is seen once, here. */
export async function mintInstallationToken(db: Queryable, installationId: string): Promise<{ id: string; value: string }> {
  const value = `shi_${randomBase62(43)}`;
  const id = newId('itok');
  await db.query('INSERT INTO installation_tokens (id, token_hash, installation_id) VALUES ($1, $2, $3)', [id, hashToken(value), installationId]);
  return { id, value };
}

/** Forgets a token that was never handed over (its upsert failed). */
export async function dropInstallationToken(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM installation_tokens WHERE id = $1', [id]);
}

/** The installation a live token speaks for, with its team; undefined for any other value. */
export async function installationOfToken(db: Queryable, value: string): Promise<{ installationId: string; teamId: string; integrationId: string } | undefined> {
  const { rows } = await db.query<{ installation_id: string; team_id: string; integration_id: string }>(
    `SELECT t.installation_id, i.team_id, i.integration_id FROM installation_tokens t JOIN installations i ON i.id = t.installation_id
      WHERE t.token_hash = $1`,
    [hashToken(value)],
  );
  const row = rows[0];
  return row && { installationId: row.installation_id, teamId: row.team_id, integrationId: row.integration_id };
}
