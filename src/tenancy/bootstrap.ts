import type { Catalog } from '../catalog/catalog.ts';
import type { Database } from '../db/database.ts';
import { install } from './installations.ts';
import { createTeam, setMember, type Team } from './teams.ts';
import { createToken } from './tokens.ts';
import { createUser, type User } from './users.ts';

export const BOOTSTRAP_TEAM_SLUG = 'my-team';
const BOOTSTRAP_LOCK = 7_391_003;

export interface Bootstrapped {
  team: Team;
  user: User;
  installations: string[];
  /** The owner token's value: shown once, never stored. */
  token: string;
}

/**
 * On the first start on empty state: the team `my-team`, its owner, an installation of every
 * catalog integration and an owner token. Does nothing when any team exists. Concurrent starts
 * against one PostgreSQL serialize on an advisory lock, so exactly one node bootstraps.
 */
export async function bootstrap(db: Database, catalog: Catalog, tokenValue?: string): Promise<Bootstrapped | undefined> {
  return db.transaction(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock($1)', [BOOTSTRAP_LOCK]);
    const { rows } = await tx.query('SELECT 1 FROM teams LIMIT 1');
    if (rows.length > 0) return undefined;
    const user = await createUser(tx, { email: 'owner@storehouse.local', username: 'owner', name: 'Storehouse owner' });
    const team = await createTeam(tx, { slug: BOOTSTRAP_TEAM_SLUG, name: 'My Team' });
    await setMember(tx, team.id, user.id, 'OWNER');
    const installations: string[] = [];
    for (const integration of catalog.listIntegrations()) {
      installations.push((await install(tx, { teamId: team.id, integrationId: integration.id, installedBy: user.id })).id);
    }
    const { value } = await createToken(tx, { userId: user.id, teamId: team.id, name: 'bootstrap', value: tokenValue });
    return { team, user, installations, token: value };
  });
}
