/**
 * The access tokens partner servers call the marketplace API back with (docs/partner-api.md §2.2):
 * one is handed over in each install upsert (and each credential rotation), is scoped to its
 * installation, and does not expire; only its hash is stored. They die with the installation,
 * or when the partner revokes them.
 */
import type { Queryable } from '../db/database.ts';
import { hashToken, newId, newTokenValue } from '../ids.ts';

/** A new token for the installation; its value is seen once, here. */
export async function mintInstallationToken(db: Queryable, installationId: string): Promise<{ id: string; value: string }> {
  const value = newTokenValue('shi');
  const id = newId('itok');
  await db.query('INSERT INTO installation_tokens (id, token_hash, installation_id) VALUES ($1, $2, $3)', [
    id,
    hashToken(value),
    installationId,
  ]);
  return { id, value };
}

/** Forgets a token that was never handed over (its upsert failed). */
export async function dropInstallationToken(db: Queryable, id: string): Promise<void> {
  await db.query('DELETE FROM installation_tokens WHERE id = $1', [id]);
}

/** The installation a live token speaks for, with its team and the token's id; undefined for any other value. */
export async function installationOfToken(
  db: Queryable,
  value: string,
): Promise<{ installationId: string; teamId: string; integrationId: string; tokenId: string } | undefined> {
  const { rows } = await db.query<{ id: string; installation_id: string; team_id: string; integration_id: string }>(
    `SELECT t.id, t.installation_id, i.team_id, i.integration_id FROM installation_tokens t JOIN installations i ON i.id = t.installation_id
      WHERE t.token_hash = $1`,
    [hashToken(value)],
  );
  const row = rows[0];
  return row && { installationId: row.installation_id, teamId: row.team_id, integrationId: row.integration_id, tokenId: row.id };
}

/**
 * Revokes one of the installation's tokens: its row goes, and with it the token, on every node
 * (the delete notifies them, and they drop the tokens they remember). `gone`: no live token of
 * this installation has that value (revoked already, never made, or another installation's,
 * which is left alone). `last`: it is the installation's only live token, which is kept: without
 * it the partner could not reach the installation again short of a reinstall. Run it in a
 * transaction: the installation's row is locked, so two revokes cannot each leave the other's
 * token as the last and remove both.
 */
export async function revokeInstallationToken(
  tx: Queryable,
  installationId: string,
  value: string,
): Promise<{ revoked: string } | { gone: true } | { last: string }> {
  await tx.query('SELECT 1 FROM installations WHERE id = $1 FOR NO KEY UPDATE', [installationId]);
  const { rows } = await tx.query<{ id: string; live: number }>(
    `SELECT id, (SELECT count(*)::int FROM installation_tokens WHERE installation_id = $1) AS live
       FROM installation_tokens WHERE installation_id = $1 AND token_hash = $2`,
    [installationId, hashToken(value)],
  );
  const token = rows[0];
  if (!token) return { gone: true };
  if (token.live <= 1) return { last: token.id };
  await tx.query('DELETE FROM installation_tokens WHERE id = $1', [token.id]);
  return { revoked: token.id };
}
