/**
 * Reading a store's secrets back (Storehouse's own API, for the dashboard's store page; Vercel's
 * public API has no such call): the same people who may read them through a connected project's
 * environment variables, by the same rules (src/stores/credential-access.ts).
 */
import type { Database } from '../db/database.ts';
import { assertCanChangeProjects } from '../projects/projects.ts';
import type { SecretBox } from '../secrets/secret-box.ts';
import type { Actor } from '../tenancy/access.ts';
import { assertMayReadCredentials, storeGuard } from './credential-access.ts';
import { readSecrets } from './stores.ts';

export interface RevealedSecret {
  name: string;
  value: string;
  environmentOverrides?: Partial<Record<'development' | 'preview' | 'production', string>>;
}

export class StoreSecrets {
  constructor(
    private readonly db: Database,
    private readonly box: SecretBox,
  ) {}

  /** The team's store's secrets, opened: 404 for a store of another team, 403 for who may not read credentials. */
  async read(actor: Actor, storeId: string): Promise<RevealedSecret[]> {
    assertCanChangeProjects(actor);
    const guard = await storeGuard(this.db, actor.team.id, storeId);
    assertMayReadCredentials(actor, guard, 'read its secrets');
    return (await readSecrets(this.db, this.box, storeId)).map(({ name, value, environmentOverrides }) => ({
      name,
      value,
      ...(environmentOverrides && { environmentOverrides }),
    }));
  }
}
