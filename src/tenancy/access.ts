import { ReadCache, type ChangeFeed } from '../db/change-feed.ts';
import type { Database, Queryable } from '../db/database.ts';
import { badRequest, forbidden, unauthorized } from '../errors.ts';
import { hashToken } from '../ids.ts';
import type { Team, TeamRole } from './teams.ts';
import { findLiveToken, markTokensUsed, type LiveToken, type Principal } from './tokens.ts';
import { getUser, type User } from './users.ts';

/** Who is asking, and for which team, with what role there. */
export interface Actor extends Principal {
  team: Team;
  role: TeamRole;
}

export interface TeamSelector {
  teamId?: string | undefined;
  slug?: string | undefined;
}

/** The token of an `Authorization: Bearer <token>` header; 401 when the header is missing or malformed. */
export function bearerToken(authorization: string | undefined): string {
  const match = /^bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
  if (!match) throw unauthorized('Missing bearer token: send "Authorization: Bearer <token>"');
  return match[1]!;
}

/** The token of an `Authorization: Bearer <token>` header, if it is one. */
function tokenIn(authorization: string | undefined): string | undefined {
  try {
    return bearerToken(authorization);
  } catch {
    return undefined;
  }
}

/**
 * A team selector's value in a cache key: "absent" stays apart from "empty" (`teamId=` names no
 * team), and a value that is not one string (a repeated parameter) is written out whole.
 */
const selectorPart = (value: unknown) => (value === undefined ? '' : typeof value === 'string' ? `=${value}` : `:${JSON.stringify(value)}`);

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

/** What a token's cached look-up is read from (tokens.ts's findLiveToken); users too, to be safe. */
const TOKEN_TABLES = ['access_tokens', 'users'];
/** What an actor is read from (actorFor): its token's default team, the team, the membership. */
const ACTOR_TABLES = [...TOKEN_TABLES, 'teams', 'memberships'];

/** How often the tokens used since the last time get their `last_used_at` written. */
const MARK_USED_EVERY_MS = 60_000;
/** How long a token that authenticated here counts as its holder's, for `recentlyAuthenticated`, and how many are kept. */
const KNOWN_TOKEN_MS = 15 * 60_000;
const MAX_KNOWN_TOKENS = 10_000;

/**
 * Authentication and team resolution for every request, served from memory between changes:
 * a token, membership, team or installation write anywhere invalidates it (see ChangeFeed), so
 * a revoked token or a removed member is refused from the next request on, on every node.
 */
export class Access {
  private readonly tokens: ReadCache<LiveToken>;
  private readonly actors: ReadCache<Actor>;
  /**
   * What a token hash's lookup found lately, misses included, so a bad token sent again costs no
   * query (issue 17): forgotten on every change (a token created on any node works at once) and
   * after 5 s, and kept apart from `tokens` so a flood of bad tokens cannot evict the good ones.
   */
  private readonly lookups: ReadCache<LiveToken | undefined>;
  /** Users by id, for GET /v2/user on every call of the CLI: only a change to `users` empties it. */
  private readonly users: ReadCache<User>;
  /**
   * Tokens that authenticated on this node lately, by value: their hash (`hashOf`), and until
   * when they count (see `recentlyAuthenticated`).
   */
  private readonly known = new Map<string, { hash: string; until: number }>();
  private readonly used = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly db: Database,
    feed: ChangeFeed,
  ) {
    // A token is its row (a user's deletion removes it, which its table's trigger tells); an actor
    // is its token's, its team's and its membership's. A store's write, say, leaves them as they are.
    this.tokens = new ReadCache(feed, { tables: TOKEN_TABLES });
    this.actors = new ReadCache(feed, { tables: ACTOR_TABLES });
    this.lookups = new ReadCache(feed, { ttlMs: 5_000, maxEntries: 10_000, tables: TOKEN_TABLES });
    this.users = new ReadCache(feed, { tables: ['users'] });
    this.timer = setInterval(() => void this.flushUsed().catch(() => {}), MARK_USED_EVERY_MS);
    this.timer.unref();
  }

  /**
   * Who the bearer token speaks for; 401 when it is missing, unknown, revoked or expired. A token
   * this node verified since the last change is answered at once, not as a promise: that is every
   * request's path, and a promise and its hashing cost it as much as the rest of its work.
   */
  principal(authorization: string | undefined): Principal | Promise<Principal> {
    const value = bearerToken(authorization);
    const hash = this.hashOf(value);
    const cached = this.tokens.peek(hash);
    if (cached) return this.accepted(value, hash, cached);
    return this.tokens
      .get(hash, async () => {
        const found = await this.lookups.get(hash, () => findLiveToken(this.db, hash));
        if (!found) {
          this.known.delete(value);
          throw unauthorized('The bearer token is not valid');
        }
        return found;
      })
      .then((token) => this.accepted(value, hash, token));
  }

  /** Whether this header's token is one this node verified since the last change (its next `principal` is answered at once). */
  verifiedLately(authorization: string | undefined): boolean {
    const value = tokenIn(authorization);
    return value !== undefined && this.tokens.peek(this.hashOf(value)) !== undefined;
  }

  /**
   * A token's hash: remembered for tokens that authenticated here, so a token sent again is not
   * hashed again. Only tokens found live go in (and leave when they stop working), so a flood of
   * bad tokens adds nothing; the cache of tokens still decides, so nothing here outlives a revocation.
   */
  private hashOf(value: string): string {
    return this.known.get(value)?.hash ?? hashToken(value);
  }

  private accepted(value: string, hash: string, token: LiveToken): Principal {
    const now = Date.now();
    if (token.expiresAt && token.expiresAt.getTime() <= now) {
      this.known.delete(value);
      throw unauthorized('The bearer token has expired');
    }
    this.used.add(token.principal.tokenId);
    const known = this.known.get(value);
    // Renewed at half its time, not on every request: this is every request's path.
    if (known === undefined || known.until - now < KNOWN_TOKEN_MS / 2) {
      this.known.delete(value);
      if (this.known.size >= MAX_KNOWN_TOKENS) this.known.delete(this.known.keys().next().value!);
      this.known.set(value, { hash, until: now + KNOWN_TOKEN_MS });
    }
    return token.principal;
  }

  /**
   * Whether this header's token authenticated on this node lately: a map lookup, no hash, no
   * query. An address past the failed-authentication limit is refused unless its token passes
   * this (the token is then checked as usual), so a holder sharing an address with an attacker
   * is not locked out while the attacker's guesses cost nothing.
   */
  recentlyAuthenticated(authorization: string | undefined): boolean {
    const value = tokenIn(authorization);
    if (value === undefined) return false;
    const until = this.known.get(value)?.until;
    return until !== undefined && until > Date.now();
  }

  /** The actor for this team selector: answered at once from memory between changes, else read (a promise). */
  actor(principal: Principal, selector: TeamSelector): Actor | Promise<Actor> {
    const key = `${principal.tokenId}\0${selectorPart(selector.teamId)}\0${selectorPart(selector.slug)}`;
    return this.actors.read(key, () => actorFor(this.db, principal, selector));
  }

  /** The principal's user (from memory between changes to `users`); 404 if it is gone. */
  user(principal: Principal): User | Promise<User> {
    return this.users.read(principal.userId, () => getUser(this.db, principal.userId));
  }

  private async flushUsed(): Promise<void> {
    const ids = [...this.used];
    this.used.clear();
    await markTokensUsed(this.db, ids);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flushUsed().catch(() => {});
  }
}
