/**
 * The web dashboard's sign-ins (issue 15). Signing in (with an access token, or a one-time link
 * code) makes a session: a row in `dashboard_sessions` whose secret the browser holds in an
 * HttpOnly cookie, stored here only as its hash. A request that brings the cookie acts as the
 * session's user, with exactly that user's rights (the principal an access token of theirs gives,
 * its default team the session's); its writes must also carry the session's CSRF token, which a
 * page of another site cannot read. Ending a session deletes its row, so the cookie stops working
 * on every node at once.
 */
import { timingSafeEqual } from 'node:crypto';
import type { Database, Queryable } from '../db/database.ts';
import { AppError, badRequest, forbidden, unauthorized } from '../errors.ts';
import { hashToken, newId, randomBase62 } from '../ids.ts';
import { type Team, getTeam, roleIn } from './teams.ts';
import type { Principal } from './tokens.ts';
import { type User, getUser } from './users.ts';

/** The cookie a session's secret travels in. */
export const SESSION_COOKIE = 'storehouse_session';
/**
 * Its name over https: a `__Host-` cookie is one the browser takes only from this very host, with
 * Secure and Path=/ and no Domain, so a page of a sibling subdomain cannot plant a session of
 * its own choosing (signing the victim in as someone else) under the name the server reads.
 */
export const SECURE_SESSION_COOKIE = `__Host-${SESSION_COOKIE}`;
/** The session cookie's name for a request that came over https or not. */
export const sessionCookieName = (secure: boolean) => (secure ? SECURE_SESSION_COOKIE : SESSION_COOKIE);
/** The header a cookie-authenticated write carries its session's CSRF token in. */
export const CSRF_HEADER = 'x-storehouse-csrf';

/** The dashboard's address with a one-time sign-in code in its fragment (browsers never send a fragment, so no log keeps it). */
export const dashboardLinkUrl = (publicUrl: string, code: string) => `${publicUrl.replace(/\/+$/, '')}/dashboard/#code=${code}`;

/** A session's last use is written at most this often: a read per request, not a write. */
const TOUCH_EVERY_MS = 60_000;

export interface DashboardSession {
  principal: Principal;
  csrfToken: string;
  /** Set when this request extended the session: its cookie should be given the new lifetime too. */
  renewedFor?: number;
}

export interface SignedIn {
  /** The cookie's value: shown to this one response, stored only hashed. */
  secret: string;
  csrfToken: string;
  user: User;
  team: Team;
  expiresAt: Date;
}

export interface DashboardSessionOptions {
  /** How long a session lasts after its last use. */
  idleMs: number;
  /** How long a one-time link code can be used. */
  linkTtlMs: number;
}

/** Compares two strings in time that does not depend on where they differ. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** The session secret in a Cookie header, if there is one: over https only in the `__Host-` cookie. */
export function sessionCookie(header: string | undefined, secure = false): string | undefined {
  if (!header) return undefined;
  const name = sessionCookieName(secure);
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) {
      const value = part.slice(eq + 1).trim();
      return value === '' ? undefined : value;
    }
  }
  return undefined;
}

/**
 * Ends a member's sessions in a team they left or were removed from (removeMember calls it, in
 * the transaction that removes them): a session whose team is gone would only answer 403. Sessions made from a token
 * end already, with the tokens the removal revokes; these are the one-time links' ones.
 */
export async function endMemberSessions(db: Queryable, teamId: string, userId: string): Promise<void> {
  await db.query('DELETE FROM dashboard_sessions WHERE team_id = $1 AND user_id = $2', [teamId, userId]);
}

export class DashboardSessions {
  constructor(
    private readonly db: Database,
    private readonly options: DashboardSessionOptions,
  ) {}

  /** A new one-time sign-in code for this user in this team (a member of it): its value, shown only to the caller. */
  async createLinkCode(userId: string, teamId: string): Promise<{ code: string; expiresAt: Date }> {
    if (!(await roleIn(this.db, teamId, userId))) throw badRequest('A sign-in link is made for a member of the team');
    const code = randomBase62(32);
    const expiresAt = new Date(Date.now() + this.options.linkTtlMs);
    await this.db.query('INSERT INTO dashboard_link_codes (code_hash, user_id, team_id, expires_at) VALUES ($1, $2, $3, $4)', [
      hashToken(code),
      userId,
      teamId,
      expiresAt,
    ]);
    // Used and expired codes are of no use to anyone: swept whenever a new one is made.
    await this.db.query('DELETE FROM dashboard_link_codes WHERE expires_at < now()');
    return { code, expiresAt };
  }

  /** Signs in with a one-time code: the code is used up by this call (whether or not the rest succeeds). */
  async signInWithCode(code: string): Promise<SignedIn> {
    // DELETE ... RETURNING takes the code exactly once, however many requests race for it.
    const { rows } = await this.db.query<{ user_id: string; team_id: string; expires_at: Date }>(
      'DELETE FROM dashboard_link_codes WHERE code_hash = $1 RETURNING user_id, team_id, expires_at',
      [hashToken(code)],
    );
    const row = rows[0];
    if (!row || row.expires_at.getTime() <= Date.now()) {
      throw unauthorized(
        'This sign-in link is not valid: it was used already or has expired. Ask for a new one (storehouse dashboard-link).',
      );
    }
    return this.signIn(row.user_id, row.team_id);
  }

  /** Signs in as a live access token's user, in its default team, for no longer than the token lives. */
  async signInWithToken(principal: Principal): Promise<SignedIn> {
    return this.signIn(principal.userId, principal.defaultTeamId, principal.tokenId);
  }

  private async signIn(userId: string, teamId: string, tokenId: string | null = null): Promise<SignedIn> {
    if (!(await roleIn(this.db, teamId, userId))) throw forbidden('You are no longer a member of this team.');
    const secret = `shd_${randomBase62(43)}`;
    const csrfToken = randomBase62(32);
    const expiresAt = new Date(Date.now() + this.options.idleMs);
    await this.db.query(
      `INSERT INTO dashboard_sessions (id, secret_hash, user_id, team_id, token_id, csrf_token, expires_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [newId('dss'), hashToken(secret), userId, teamId, tokenId, csrfToken, expiresAt],
    );
    await this.db.query('DELETE FROM dashboard_sessions WHERE expires_at < now()');
    return { secret, csrfToken, user: await getUser(this.db, userId), team: await getTeam(this.db, teamId), expiresAt };
  }

  /** The live session this cookie secret opens; 401 when there is none (ended, expired, never made). */
  async session(secret: string): Promise<DashboardSession> {
    const { rows } = await this.db.query<{ id: string; user_id: string; team_id: string; csrf_token: string; last_seen_at: Date }>(
      `SELECT s.id, s.user_id, s.team_id, s.csrf_token, s.last_seen_at
         FROM dashboard_sessions s LEFT JOIN access_tokens t ON t.id = s.token_id
        WHERE s.secret_hash = $1 AND s.expires_at > now()
          AND (s.token_id IS NULL OR (t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > now())))`,
      [hashToken(secret)],
    );
    const row = rows[0];
    if (!row) throw unauthorized('The dashboard session has ended: sign in again');
    const session: DashboardSession = {
      principal: { tokenId: row.id, userId: row.user_id, defaultTeamId: row.team_id },
      csrfToken: row.csrf_token,
    };
    if (Date.now() - row.last_seen_at.getTime() > TOUCH_EVERY_MS) {
      await this.db.query(
        "UPDATE dashboard_sessions SET last_seen_at = now(), expires_at = now() + $2 * interval '1 millisecond' WHERE id = $1",
        [row.id, this.options.idleMs],
      );
      session.renewedFor = this.options.idleMs;
    }
    return session;
  }

  /** 403 unless `given` is the session's CSRF token. */
  checkCsrf(session: DashboardSession, given: string | string[] | undefined): void {
    if (typeof given !== 'string' || !sameSecret(given, session.csrfToken)) {
      throw new AppError(403, 'forbidden', `A dashboard write must carry its session's CSRF token in the ${CSRF_HEADER} header`);
    }
  }

  /** Ends the session with this id (its cookie is refused from now on, on every node). */
  async end(sessionId: string): Promise<void> {
    await this.db.query('DELETE FROM dashboard_sessions WHERE id = $1', [sessionId]);
  }

  /** Ends the session this cookie secret opens, if there is one. */
  async endBySecret(secret: string): Promise<void> {
    await this.db.query('DELETE FROM dashboard_sessions WHERE secret_hash = $1', [hashToken(secret)]);
  }
}
