import type { MappedRow, Queryable } from '../db/database.ts';
import { badRequest, notFound } from '../errors.ts';
import { hashToken, newId, newTokenValue } from '../ids.ts';
import { roleIn } from './teams.ts';

export interface TokenInfo {
  id: string;
  name: string;
  userId: string;
  defaultTeamId: string;
  createdAt: Date;
  expiresAt: Date | null;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

/** Who a valid bearer token speaks for. */
export interface Principal {
  tokenId: string;
  userId: string;
  defaultTeamId: string;
}

const toToken = (row: MappedRow): TokenInfo => ({
  id: row.id,
  name: row.name,
  userId: row.user_id,
  defaultTeamId: row.default_team_id,
  createdAt: row.created_at,
  expiresAt: row.expires_at,
  lastUsedAt: row.last_used_at,
  revokedAt: row.revoked_at,
});

/**
 * Creates an access token for a user, scoped by default to one of their teams. Only the hash is
 * stored: the value returned here is the only time anyone sees it.
 */
export async function createToken(
  db: Queryable,
  input: { userId: string; teamId: string; name: string; value?: string; expiresAt?: Date },
): Promise<{ token: TokenInfo; value: string }> {
  if (!(await roleIn(db, input.teamId, input.userId))) {
    throw badRequest('A token is created for a team its user is a member of');
  }
  const value = input.value ?? newTokenValue();
  const { rows } = await db.query(
    `INSERT INTO access_tokens (id, token_hash, user_id, default_team_id, name, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
    [newId('tok'), hashToken(value), input.userId, input.teamId, input.name, input.expiresAt ?? null],
  );
  return { token: toToken(rows[0]!), value };
}

export async function revokeToken(db: Queryable, id: string): Promise<TokenInfo> {
  const { rows } = await db.query('UPDATE access_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING *', [id]);
  if (!rows[0]) throw notFound('token', id);
  return toToken(rows[0]);
}

export async function listTokens(db: Queryable, userId?: string): Promise<TokenInfo[]> {
  const { rows } = userId
    ? await db.query('SELECT * FROM access_tokens WHERE user_id = $1 ORDER BY created_at', [userId])
    : await db.query('SELECT * FROM access_tokens ORDER BY created_at');
  return rows.map(toToken);
}

export interface LiveToken {
  principal: Principal;
  expiresAt: Date | null;
}

/** The live (neither revoked nor expired) token with this hash (`hashToken` of its value), if any. */
export async function findLiveToken(db: Queryable, hash: string): Promise<LiveToken | undefined> {
  const { rows } = await db.query<{ id: string; user_id: string; default_team_id: string; expires_at: Date | null }>(
    `SELECT id, user_id, default_team_id, expires_at FROM access_tokens
      WHERE token_hash = $1 AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())`,
    [hash],
  );
  const row = rows[0];
  if (!row) return undefined;
  return { principal: { tokenId: row.id, userId: row.user_id, defaultTeamId: row.default_team_id }, expiresAt: row.expires_at };
}

/** Records that these tokens were used just now (bookkeeping: it changes nobody's access). */
export async function markTokensUsed(db: Queryable, tokenIds: string[]): Promise<void> {
  if (tokenIds.length > 0) await db.query('UPDATE access_tokens SET last_used_at = now() WHERE id = ANY($1)', [tokenIds]);
}
