/**
 * The operator's commands (the `storehouse` CLI): tenancy administration that the Vercel API
 * does not cover. Each takes JSON arguments and returns a JSON result, so the CLI can run it
 * on the database directly or hand it to the running server over the control socket.
 */
import type { Catalog } from '../catalog/catalog.ts';
import type { Database } from '../db/database.ts';
import { migrate } from '../db/migrate.ts';
import { badRequest } from '../errors.ts';
import { install, listInstallations } from '../tenancy/installations.ts';
import { createTeam, getTeam, listMembers, listTeams, parseRole, removeMember, setMember, setStoreQuota } from '../tenancy/teams.ts';
import { addPaymentMethod, listPaymentMethods, removePaymentMethod, setDefaultPaymentMethod } from '../billing/payment-methods.ts';
import { audit, listAuditEvents } from '../audit/audit-log.ts';
import type { SigningKeys } from '../partners/signing-keys.ts';
import { createToken, listTokens, revokeToken } from '../tenancy/tokens.ts';
import { createUser, getUser } from '../tenancy/users.ts';
import { DELIVERY_STATUSES, type DeliveryStatus, getDelivery, listDeliveries, redeliver } from '../webhooks/deliveries.ts';
import { DashboardSessions, dashboardLinkUrl } from '../tenancy/dashboard-sessions.ts';
import type { Config } from '../config.ts';
import type { PublicUrls } from '../runtime.ts';

/** Operator changes are audited with no user: they come from the CLI, not from a token. */
const OPERATOR = null;

export interface AdminContext {
  db: Database;
  catalog: Catalog;
  /** The keys partner calls are signed with (made on use: only the keys commands need the secret key). */
  signingKeys(): SigningKeys;
  config: Config;
  /** Where the dashboard's sign-in links point. */
  urls: PublicUrls;
}

type Args = Record<string, string | undefined>;

function required(args: Args, name: string): string {
  const value = args[name];
  if (value === undefined || value === '') throw badRequest(`Missing ${name}`);
  return value;
}

function days(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 3650) throw badRequest('--expires-in-days must be a whole number of days from 1 to 3650');
  return new Date(Date.now() + n * 86_400_000);
}

export const adminCommands = {
  migrate: async ({ db }: AdminContext) => ({ applied: await migrate(db) }),

  /** A new signing key for partner calls; the old one stays published until its tokens expire. */
  'keys.rotate': async (context: AdminContext) => context.signingKeys().rotate(),
  'keys.list': async (context: AdminContext) =>
    (await context.signingKeys().published()).map((key) => ({ kid: key.kid, alg: key.jwk.alg })),

  'teams.create': async ({ db }: AdminContext, args: Args) => createTeam(db, { slug: required(args, 'slug'), name: args.name }),
  'teams.list': async ({ db }: AdminContext) => listTeams(db),
  /** A team's store quota: a number, or "default" for the configured default. */
  'teams.quota': async ({ db }: AdminContext, args: Args) => {
    const raw = required(args, 'quota');
    const quota = raw === 'default' ? null : Number(raw);
    return db.transaction(async (tx) => {
      const team = await setStoreQuota(tx, required(args, 'team'), quota);
      await audit(tx, {
        teamId: team.id,
        actorId: OPERATOR,
        action: 'team.quota_set',
        targetType: 'team',
        targetId: team.id,
        details: { quota },
      });
      return { team: team.slug, quota };
    });
  },

  'payment-methods.add': async ({ db }: AdminContext, args: Args) => {
    const team = await getTeam(db, required(args, 'team'));
    return addPaymentMethod(
      db,
      { teamId: team.id, actorId: OPERATOR },
      { cardNumber: required(args, 'card'), makeDefault: args.default !== undefined },
    );
  },
  'payment-methods.list': async ({ db }: AdminContext, args: Args) =>
    listPaymentMethods(db, (await getTeam(db, required(args, 'team'))).id),
  'payment-methods.default': async ({ db }: AdminContext, args: Args) => {
    const team = await getTeam(db, required(args, 'team'));
    return setDefaultPaymentMethod(db, { teamId: team.id, actorId: OPERATOR }, required(args, 'id'));
  },
  'payment-methods.remove': async ({ db }: AdminContext, args: Args) => {
    const team = await getTeam(db, required(args, 'team'));
    await removePaymentMethod(db, { teamId: team.id, actorId: OPERATOR }, required(args, 'id'));
    return { id: args.id };
  },

  'audit.list': async ({ db }: AdminContext, args: Args) => {
    const limit = Number(args.limit ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('--limit must be a whole number from 1 to 1000');
    return listAuditEvents(db, (await getTeam(db, required(args, 'team'))).id, { limit });
  },

  'users.create': async ({ db }: AdminContext, args: Args) =>
    createUser(db, { email: required(args, 'email'), name: args.name, username: args.username }),

  /** Adds a user to a team with a role (or changes their role); creates the user when given an unknown email. */
  'members.add': async ({ db }: AdminContext, args: Args) =>
    db.transaction(async (tx) => {
      const team = await getTeam(tx, required(args, 'team'));
      const ref = required(args, 'user');
      const role = parseRole(args.role ?? 'MEMBER');
      const user = ref.includes('@')
        ? ((await getUser(tx, ref).catch(() => undefined)) ?? (await createUser(tx, { email: ref })))
        : await getUser(tx, ref);
      await setMember(tx, team.id, user.id, role);
      await audit(tx, {
        teamId: team.id,
        actorId: OPERATOR,
        action: 'member.role_set',
        targetType: 'user',
        targetId: user.id,
        details: { role },
      });
      return { team: team.slug, user: user.email, userId: user.id, role };
    }),
  'members.list': async ({ db }: AdminContext, args: Args) => listMembers(db, (await getTeam(db, required(args, 'team'))).id),
  'members.remove': async ({ db }: AdminContext, args: Args) =>
    db.transaction(async (tx) => {
      const team = await getTeam(tx, required(args, 'team'));
      const user = await getUser(tx, required(args, 'user'));
      await removeMember(tx, team.id, user.id);
      await audit(tx, { teamId: team.id, actorId: OPERATOR, action: 'member.removed', targetType: 'user', targetId: user.id });
      return { team: team.slug, user: user.email, removed: true };
    }),

  /** Creates a token; its value is in this result and nowhere else, ever. */
  'tokens.create': async ({ db }: AdminContext, args: Args) =>
    db.transaction(async (tx) => {
      const user = await getUser(tx, required(args, 'user'));
      const team = await getTeam(tx, required(args, 'team'));
      const { token, value } = await createToken(tx, {
        userId: user.id,
        teamId: team.id,
        name: args.name || 'cli',
        expiresAt: days(args.expiresInDays),
      });
      await audit(tx, {
        teamId: team.id,
        actorId: OPERATOR,
        action: 'token.created',
        targetType: 'token',
        targetId: token.id,
        details: { userId: user.id, name: token.name, expiresAt: token.expiresAt },
      });
      return { ...token, user: user.email, team: team.slug, value };
    }),
  'tokens.list': async ({ db }: AdminContext, args: Args) => listTokens(db, args.user ? (await getUser(db, args.user)).id : undefined),
  'tokens.revoke': async ({ db }: AdminContext, args: Args) =>
    db.transaction(async (tx) => {
      const revoked = await revokeToken(tx, required(args, 'id'));
      await audit(tx, {
        teamId: revoked.defaultTeamId,
        actorId: OPERATOR,
        action: 'token.revoked',
        targetType: 'token',
        targetId: revoked.id,
        details: { userId: revoked.userId },
      });
      return revoked;
    }),

  /**
   * A one-time dashboard sign-in link for a member of a team (by default the first owner of the
   * oldest team, whom the first start's link was for). Its code is in this result and nowhere
   * else: only its hash is stored.
   */
  'dashboard.link': async ({ db, config, urls }: AdminContext, args: Args) => {
    const team = args.team ? await getTeam(db, args.team) : undefined;
    const user = args.user ? await getUser(db, args.user) : undefined;
    const params: unknown[] = [];
    const { rows } = await db.query<{ user_id: string; team_id: string }>(
      `SELECT m.user_id, m.team_id FROM memberships m JOIN teams t ON t.id = m.team_id
        WHERE ${team ? `m.team_id = $${params.push(team.id)}` : 'true'} AND ${user ? `m.user_id = $${params.push(user.id)}` : "m.role = 'OWNER'"}
        ORDER BY t.created_at, m.created_at LIMIT 1`,
      params,
    );
    const member = rows[0];
    if (!member) throw badRequest(user ? `${args.user} is not a member of ${team ? args.team : 'any team'}` : 'No team has an owner yet');
    const sessions = new DashboardSessions(db, { idleMs: config.dashboardSessionIdleMs, linkTtlMs: config.dashboardLinkTtlMs });
    const { code, expiresAt } = await sessions.createLinkCode(member.user_id, member.team_id);
    const [who, where] = [await getUser(db, member.user_id), await getTeam(db, member.team_id)];
    await audit(db, {
      teamId: where.id,
      actorId: OPERATOR,
      action: 'dashboard.link_created',
      targetType: 'user',
      targetId: who.id,
      details: { expiresAt },
    });
    return { url: dashboardLinkUrl(urls.publicUrl(), code), user: who.email, team: where.slug, expiresAt };
  },

  'installations.create': async ({ db, catalog }: AdminContext, args: Args) =>
    db.transaction(async (tx) => {
      const team = await getTeam(tx, required(args, 'team'));
      const integration = catalog.findIntegration(required(args, 'integration'));
      const by = args.by ? await getUser(tx, args.by) : undefined;
      const installation = await install(tx, {
        teamId: team.id,
        integrationId: integration.id,
        installedBy: by?.id ?? null,
        source: 'cli',
        // One more installation when the team has one already (else 409 already_installed).
        another: Boolean(args.another),
      });
      await audit(tx, {
        teamId: team.id,
        actorId: OPERATOR,
        action: 'installation.created',
        targetType: 'installation',
        targetId: installation.id,
        details: { integration: integration.slug, installedBy: by?.id ?? null, ...(args.another && { another: true }) },
      });
      return { ...installation, team: team.slug, integration: integration.slug };
    }),
  'installations.list': async ({ db, catalog }: AdminContext, args: Args) =>
    (await listInstallations(db, (await getTeam(db, required(args, 'team'))).id)).map((installation) => ({
      ...installation,
      integration: catalog.integrationById(installation.integrationId)?.slug,
    })),

  /** Every team's webhook deliveries, newest first (the operator's view; team owners have /_storehouse/webhooks/deliveries). */
  'webhooks.list': async ({ db, catalog }: AdminContext, args: Args) => {
    const limit = Number(args.limit ?? 20);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) throw badRequest('--limit must be a whole number from 1 to 1000');
    const until = args.until === undefined ? undefined : Number(args.until);
    if (until !== undefined && !Number.isInteger(until)) throw badRequest("--until must be a page's `next`, a whole number");
    const status = args.status;
    if (status !== undefined && !(DELIVERY_STATUSES as readonly string[]).includes(status)) {
      throw badRequest(`--status must be one of ${DELIVERY_STATUSES.join(', ')}`);
    }
    const integrationId =
      args.integration === undefined
        ? undefined
        : (catalog.integrationById(args.integration)?.id ?? catalog.findIntegration(args.integration).id);
    return listDeliveries(db, { operator: true }, { integrationId, status: status as DeliveryStatus | undefined, limit, until });
  },
  'webhooks.show': async ({ db }: AdminContext, args: Args) => getDelivery(db, { operator: true }, required(args, 'id')),
  /** Sends a delivered or failed event again (same id and body); the running servers are woken to send it. */
  'webhooks.redeliver': async ({ db }: AdminContext, args: Args) => redeliver(db, { operator: true }, required(args, 'id')),
} satisfies Record<string, (context: AdminContext, args: Args) => Promise<unknown>>;

export type AdminCommand = keyof typeof adminCommands;

export const isAdminCommand = (name: string): name is AdminCommand => Object.hasOwn(adminCommands, name);

export function runAdminCommand(context: AdminContext, command: AdminCommand, args: Args): Promise<unknown> {
  return adminCommands[command](context, args);
}
