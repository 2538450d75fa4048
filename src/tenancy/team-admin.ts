/**
 * What a team's people do for themselves through the API (the dashboard's Team page; the CLI's
 * `members` and `tokens` commands are the operator's, with no user): see the team's members,
 * change their roles and remove them (owners; anyone may leave), and make and revoke access
 * tokens of their own. Each change is audited with its user.
 */
import { audit } from '../audit/audit-log.ts';
import type { Database } from '../db/database.ts';
import { badRequest, forbidden, notFound } from '../errors.ts';
import type { Actor } from './access.ts';
import { listMembers, type Member, removeMember, roleIn, setMember, type TeamRole } from './teams.ts';
import { createToken, listTokens, type TokenInfo } from './tokens.ts';

const assertOwner = (actor: Actor, what: string) => {
  if (actor.role !== 'OWNER') throw forbidden(`Only a team OWNER may ${what}`);
};

/** What @vercel/sdk's teams.getTeamMembers may ask for: one role, a search of email, username and name, and how many. */
export interface MemberFilter {
  role?: string | undefined;
  search?: string | undefined;
  limit?: number | undefined;
}

/**
 * The team's members that match the filter, in the order they joined, and whether more matched
 * than `limit` let through. A role no one here can have (Vercel has more) matches no one.
 */
export async function teamMembers(db: Database, actor: Actor, filter: MemberFilter = {}): Promise<{ members: Member[]; more: boolean }> {
  const role = filter.role?.toUpperCase();
  const search = filter.search?.trim().toLowerCase();
  const matching = (await listMembers(db, actor.team.id)).filter(
    (member) =>
      (role === undefined || member.role === role) &&
      (!search || [member.email, member.username, member.name ?? ''].some((field) => field.toLowerCase().includes(search))),
  );
  const limit = filter.limit ?? matching.length;
  return { members: matching.slice(0, limit), more: matching.length > limit };
}

/** An owner changes a member's role (the team keeps at least one owner). */
export async function changeRole(db: Database, actor: Actor, userId: string, role: TeamRole): Promise<void> {
  assertOwner(actor, "change a member's role");
  await db.transaction(async (tx) => {
    if (!(await roleIn(tx, actor.team.id, userId))) throw notFound('member', userId);
    await setMember(tx, actor.team.id, userId, role);
    await audit(tx, {
      teamId: actor.team.id,
      actorId: actor.userId,
      action: 'member.role_set',
      targetType: 'user',
      targetId: userId,
      details: { role },
    });
  });
}

/** An owner removes a member, or a member leaves; their tokens for the team are revoked. */
export async function removeFromTeam(db: Database, actor: Actor, userId: string): Promise<void> {
  if (userId !== actor.userId) assertOwner(actor, 'remove another member');
  await db.transaction(async (tx) => {
    await removeMember(tx, actor.team.id, userId);
    await audit(tx, { teamId: actor.team.id, actorId: actor.userId, action: 'member.removed', targetType: 'user', targetId: userId });
  });
}

/** The caller's own tokens, newest first (revoked ones too, marked so). */
export async function ownTokens(db: Database, actor: Actor): Promise<TokenInfo[]> {
  return (await listTokens(db, actor.userId)).reverse();
}

/** A token of the caller's own, for the team the request acts on; its value is returned this once. */
export async function createOwnToken(
  db: Database,
  actor: Actor,
  input: { name: string; expiresAt?: number | undefined },
): Promise<{ token: TokenInfo; value: string }> {
  const name = input.name.trim();
  if (name === '' || name.length > 100) throw badRequest('A token name is 1 to 100 characters');
  let expiresAt: Date | undefined;
  if (input.expiresAt !== undefined) {
    expiresAt = new Date(input.expiresAt);
    if (!Number.isFinite(expiresAt.getTime()) || expiresAt.getTime() <= Date.now())
      throw badRequest('expiresAt must be a time in the future');
  }
  return db.transaction(async (tx) => {
    const created = await createToken(tx, { userId: actor.userId, teamId: actor.team.id, name, expiresAt });
    await audit(tx, {
      teamId: actor.team.id,
      actorId: actor.userId,
      action: 'token.created',
      targetType: 'token',
      targetId: created.token.id,
      details: { userId: actor.userId, name, expiresAt: created.token.expiresAt },
    });
    return created;
  });
}

/** Revokes a token of the caller's own (`current`: the one this request came with); another's is 404. */
export async function revokeOwnToken(db: Database, actor: Actor, tokenId: string): Promise<string> {
  const id = tokenId === 'current' ? actor.tokenId : tokenId;
  return db.transaction(async (tx) => {
    const { rows } = await tx.query<{ id: string; default_team_id: string }>(
      'UPDATE access_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 AND user_id = $2 RETURNING id, default_team_id',
      [id, actor.userId],
    );
    if (!rows[0]) throw notFound('token', tokenId);
    await audit(tx, {
      teamId: rows[0].default_team_id,
      actorId: actor.userId,
      action: 'token.revoked',
      targetType: 'token',
      targetId: id,
      details: { userId: actor.userId },
    });
    return id;
  });
}
