import type { Queryable } from '../db/database.ts';
import { badRequest, forbidden, unauthorized } from '../errors.ts';
import type { Team, TeamRole } from './teams.ts';
import { authenticate, type Principal } from './tokens.ts';

/** Who is asking, and for which team, with what role there. */
export interface Actor extends Principal {
  team: Team;
  role: TeamRole;
}

export interface TeamSelector {
  teamId?: string | undefined;
  slug?: string | undefined;
}

/** Reads `Authorization: Bearer <token>`; 401 when it is missing, malformed or not a live token. */
export async function principalFor(db: Queryable, authorization: string | undefined): Promise<Principal> {
  const match = /^bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) throw unauthorized('Missing bearer token: send "Authorization: Bearer <token>"');
  const principal = await authenticate(db, match[1]!);
  if (!principal) throw unauthorized('The bearer token is not valid');
  return principal;
}

/**
 * The team a request acts on: `teamId` or `slug` when given (both must name the same team),
 * else the token's default team. A team the user is not in is 403, whether or not it exists.
 */
export async function actorFor(db: Queryable, principal: Principal, selector: TeamSelector): Promise<Actor> {
  const { teamId, slug } = selector;
  const conditions: string[] = [];
  const params: unknown[] = [principal.userId];
  if (teamId !== undefined) conditions.push(`t.id = $${params.push(teamId)}`);
  if (slug !== undefined) conditions.push(`t.slug = $${params.push(slug)}`);
  if (conditions.length === 0) conditions.push(`t.id = $${params.push(principal.defaultTeamId)}`);
  const { rows } = await db.query<{ id: string; slug: string; name: string; created_at: Date; role: TeamRole | null }>(
    `SELECT t.id, t.slug, t.name, t.created_at, m.role
       FROM teams t LEFT JOIN memberships m ON m.team_id = t.id AND m.user_id = $1
      WHERE ${conditions.join(' OR ')}`,
    params,
  );
  const row = rows.length === 1 ? rows[0]! : undefined;
  const sameTeam = row !== undefined && (teamId === undefined || row.id === teamId) && (slug === undefined || row.slug === slug);
  if (!sameTeam && rows.some((r) => r.role !== null)) {
    throw badRequest(`teamId "${teamId}" and slug "${slug}" name different teams: send one, or both of the same team`);
  }
  if (!row || !sameTeam || row.role === null) {
    throw forbidden('You do not have permission to access this team, or it does not exist.');
  }
  return {
    ...principal,
    team: { id: row.id, slug: row.slug, name: row.name, createdAt: row.created_at },
    role: row.role!,
  };
}
