import { isUniqueViolation, type MappedRow, type Queryable } from '../db/database.ts';
import { AppError, badRequest, conflict, notFound } from '../errors.ts';
import { newId } from '../ids.ts';
import { toUser, type User } from './users.ts';
import { memberChanged } from '../webhooks/events.ts';
import { endMemberSessions } from './dashboard-sessions.ts';

/** Vercel's team roles. */
export const TEAM_ROLES = ['OWNER', 'MEMBER', 'DEVELOPER', 'BILLING', 'VIEWER'] as const;
export type TeamRole = (typeof TEAM_ROLES)[number];

export interface Team {
  id: string;
  slug: string;
  name: string;
  createdAt: Date;
}

export interface Member extends User {
  role: TeamRole;
}

const SLUG = /^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$/;

const toTeam = (row: MappedRow): Team => ({ id: row.id, slug: row.slug, name: row.name, createdAt: row.created_at });
export function parseRole(value: string): TeamRole {
  const role = value.toUpperCase();
  if (!(TEAM_ROLES as readonly string[]).includes(role)) {
    throw badRequest(`Unknown role "${value}": use one of ${TEAM_ROLES.join(', ')}`);
  }
  return role as TeamRole;
}

export async function createTeam(db: Queryable, input: { slug: string; name?: string }): Promise<Team> {
  if (!SLUG.test(input.slug)) {
    throw badRequest('A team slug is 1 to 48 lowercase letters, digits and dashes, starting and ending with a letter or digit');
  }
  try {
    const { rows } = await db.query('INSERT INTO teams (id, slug, name) VALUES ($1, $2, $3) RETURNING *', [
      newId('team'),
      input.slug,
      input.name || input.slug,
    ]);
    return toTeam(rows[0]!);
  } catch (error) {
    if (isUniqueViolation(error)) throw conflict('slug_taken', `The team slug "${input.slug}" is already taken`);
    throw error;
  }
}

export async function findTeam(db: Queryable, idOrSlug: string): Promise<Team | undefined> {
  const { rows } = await db.query('SELECT * FROM teams WHERE id = $1 OR slug = $1', [idOrSlug]);
  return rows[0] ? toTeam(rows[0]) : undefined;
}

export async function getTeam(db: Queryable, idOrSlug: string): Promise<Team> {
  const team = await findTeam(db, idOrSlug);
  if (!team) throw notFound('team', idOrSlug);
  return team;
}

export async function listTeams(db: Queryable): Promise<Team[]> {
  return (await db.query('SELECT * FROM teams ORDER BY created_at, slug')).rows.map(toTeam);
}

export async function roleIn(db: Queryable, teamId: string, userId: string): Promise<TeamRole | undefined> {
  const { rows } = await db.query<{ role: TeamRole }>('SELECT role FROM memberships WHERE team_id = $1 AND user_id = $2', [teamId, userId]);
  return rows[0]?.role;
}

async function ownerCount(db: Queryable, teamId: string): Promise<number> {
  // FOR UPDATE keeps two concurrent demotions from leaving the team with no owner.
  const { rows } = await db.query("SELECT user_id FROM memberships WHERE team_id = $1 AND role = 'OWNER' FOR UPDATE", [teamId]);
  return rows.length;
}

const lastOwner = () => new AppError(409, 'last_owner', 'A team needs at least one OWNER: add another owner first');

/**
 * Adds a member, or changes the role of one; the last owner cannot be demoted. The team's
 * installations hear of it (`marketplace.member.changed`) in the same transaction: `db` should be one.
 */
export async function setMember(db: Queryable, teamId: string, userId: string, role: TeamRole): Promise<void> {
  const current = await roleIn(db, teamId, userId);
  if (current === 'OWNER' && role !== 'OWNER' && (await ownerCount(db, teamId)) <= 1) throw lastOwner();
  await db.query(
    `INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)
     ON CONFLICT (team_id, user_id) DO UPDATE SET role = $3`,
    [teamId, userId, role],
  );
  if (current !== role) await memberChanged(db, teamId, { id: userId }, current, role);
}

export async function removeMember(db: Queryable, teamId: string, userId: string): Promise<void> {
  const current = await roleIn(db, teamId, userId);
  if (!current) throw notFound('member', userId);
  if (current === 'OWNER' && (await ownerCount(db, teamId)) <= 1) throw lastOwner();
  await db.query('DELETE FROM memberships WHERE team_id = $1 AND user_id = $2', [teamId, userId]);
  await memberChanged(db, teamId, { id: userId }, current, undefined);
  // A token whose default team the user left would only ever answer 403: revoke it.
  await db.query('UPDATE access_tokens SET revoked_at = now() WHERE user_id = $1 AND default_team_id = $2 AND revoked_at IS NULL', [
    userId,
    teamId,
  ]);
  // So would their dashboard sessions in it (a one-time link's; a token's end with the token).
  await endMemberSessions(db, teamId, userId);
}

export async function listMembers(db: Queryable, teamId: string): Promise<Member[]> {
  const { rows } = await db.query<MappedRow>(
    'SELECT u.*, m.role FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.team_id = $1 ORDER BY m.created_at, u.email',
    [teamId],
  );
  return rows.map((row) => ({ ...toUser(row), role: row.role }));
}

/** Gives the team a store quota of its own (null: the configured default again). */
export async function setStoreQuota(db: Queryable, idOrSlug: string, quota: number | null): Promise<Team> {
  if (quota !== null && (!Number.isInteger(quota) || quota < 0)) throw badRequest('A store quota is a whole number, 0 or more');
  const team = await getTeam(db, idOrSlug);
  await db.query('UPDATE teams SET store_quota = $2 WHERE id = $1', [team.id, quota]);
  return team;
}

/** The teams a user belongs to, with the user's role in each. */
export async function teamsOf(db: Queryable, userId: string): Promise<Array<Team & { role: TeamRole }>> {
  const { rows } = await db.query(
    'SELECT t.*, m.role FROM teams t JOIN memberships m ON m.team_id = t.id WHERE m.user_id = $1 ORDER BY t.created_at, t.id',
    [userId],
  );
  return rows.map((row) => ({ ...toTeam(row), role: row.role as TeamRole }));
}

/** Who made the team, as Vercel's `creatorId`: its first member (the bootstrap's or the creator's owner). */
export async function teamCreatorId(db: Queryable, teamId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ user_id: string }>(
    'SELECT user_id FROM memberships WHERE team_id = $1 ORDER BY created_at, user_id LIMIT 1',
    [teamId],
  );
  return rows[0]?.user_id;
}
