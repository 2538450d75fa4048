/**
 * A node's own writes and its read caches (src/db/watched-tables.ts): a write that could fire no
 * change trigger (a dashboard session's touch, the tokens' last use, the node's lease) leaves
 * the caches as they are, so GET /v2/user after it asks the database nothing; a write to what a
 * cache holds still empties them at once; and what cannot be read plainly counts as a change.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { UNFLUSHED, withLoggedWrite } from '../src/db/database.ts';
import { WatchedTables } from '../src/db/watched-tables.ts';
import { markTokensUsed } from '../src/tenancy/tokens.ts';
import { BACKENDS, eventually, queriesDuring, startServer, type TestServer } from './helpers.ts';

const json = { 'content-type': 'application/json' };

for (const backend of BACKENDS) {
  describe(`a node's own writes and its caches (${backend})`, () => {
    let server: TestServer;
    let tokenId: string;
    let userId: string;
    before(async () => {
      server = await startServer(backend);
      const { rows } = await server.runtime.db.query<{ id: string; user_id: string }>(
        "SELECT id, user_id FROM access_tokens WHERE name = 'bootstrap'",
      );
      tokenId = rows[0]!.id;
      userId = rows[0]!.user_id;
    });
    after(() => server.close());

    const user = async () => {
      const response = await server.request('/v2/user');
      assert.equal(response.status, 200);
      return ((await response.json()) as { user: { name: string | null } }).user;
    };

    test("the tokens' last use is written and GET /v2/user is still served from memory", async () => {
      const db = server.runtime.db;
      await eventually('a read from memory right after the last use is written', async () => {
        await user();
        let flushed = false;
        const sent = await queriesDuring(db, async () => {
          const before = (await db.query<{ at: Date | null }>('SELECT last_used_at AS at FROM access_tokens WHERE id = $1', [tokenId]))
            .rows[0]!.at;
          await markTokensUsed(db, [tokenId]); // the statement Access's flush sends
          const at = (await db.query<{ at: Date }>('SELECT last_used_at AS at FROM access_tokens WHERE id = $1', [tokenId])).rows[0]!.at;
          flushed = at.getTime() > (before?.getTime() ?? 0);
          await user();
        });
        assert.ok(flushed, 'last_used_at was written');
        return sent.length === 3; // the two reads of last_used_at and the flush: nothing for the user
      });
    });

    test('a dashboard request that renews its session leaves GET /v2/user served from memory', async () => {
      const db = server.runtime.db;
      const made = await server.request('/_storehouse/dashboard/session', {
        method: 'POST',
        token: null,
        headers: json,
        body: JSON.stringify({ token: server.token }),
      });
      assert.equal(made.status, 200);
      const cookie = (made.headers.get('set-cookie') ?? '').split(';')[0]!;
      const viaCookie = () => server.request('/v2/user', { token: null, headers: { cookie } });
      await eventually('a read from memory right after a session was renewed', async () => {
        // Its last use a while ago, so the next cookie request writes it (see TOUCH_EVERY_MS).
        await db.query("UPDATE dashboard_sessions SET last_seen_at = now() - interval '10 minutes' WHERE user_id = $1", [userId]);
        await user();
        const sent = await queriesDuring(db, async () => {
          const renewed = await viaCookie();
          assert.equal(renewed.status, 200);
          assert.match(renewed.headers.get('set-cookie') ?? '', /Max-Age=/, 'the session was renewed');
          await user();
        });
        assert.ok(
          sent.some((sql) => /^\s*UPDATE dashboard_sessions SET last_seen_at/.test(sql)),
          'the touch was written',
        );
        return sent.every((sql) => /\bdashboard_sessions\b/.test(sql)); // the session's read and touch only
      });
    });

    test('a write to what a cache holds empties it at once', async () => {
      const db = server.runtime.db;
      await user();
      await user();
      await db.query('UPDATE users SET name = $2 WHERE id = $1', [userId, 'Renamed Locally']);
      assert.equal((await user()).name, 'Renamed Locally');
      const sent = await queriesDuring(db, async () => {
        await db.transaction(async (tx) => {
          await tx.query('SELECT 1');
          await tx.query('UPDATE users SET name = $2 WHERE id = $1', [userId, 'Renamed In A Transaction']);
        });
        assert.equal((await user()).name, 'Renamed In A Transaction');
      });
      assert.ok(
        sent.some((sql) => /\bFROM users\b/i.test(sql)),
        `the user was read again: ${sent.join(' | ')}`,
      );
    });

    test('what the triggers say: plain writes to tables no trigger watches are no change, the rest are', async () => {
      const db = server.runtime.db;
      const suffix = `${process.pid}_${backend}`;
      // A table a watched one cascades from, and one with a trigger of another kind.
      await db.query(`CREATE TABLE lw_parent_${suffix} (id int PRIMARY KEY)`);
      await db.query(`CREATE TABLE lw_child_${suffix} (id int REFERENCES lw_parent_${suffix} (id) ON DELETE CASCADE)`);
      await db.query(`CREATE TRIGGER lw_child_changed AFTER INSERT OR UPDATE OR DELETE ON lw_child_${suffix}
        FOR EACH STATEMENT EXECUTE FUNCTION storehouse_notify_change()`);
      await db.query(`CREATE TABLE lw_other_${suffix} (id int)`);
      await db.query(`CREATE FUNCTION lw_noop_${suffix}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$`);
      await db.query(
        `CREATE TRIGGER lw_other_trigger AFTER UPDATE ON lw_other_${suffix} FOR EACH STATEMENT EXECUTE FUNCTION lw_noop_${suffix}()`,
      );
      await db.query(`CREATE TABLE lw_plain_${suffix} (id int)`);
      const watched = await WatchedTables.load(db);
      const cases: Array<[string, boolean]> = [
        // No trigger watches them, or not those columns.
        ["UPDATE dashboard_sessions SET last_seen_at = now(), expires_at = now() + $2 * interval '1 millisecond' WHERE id = $1", false],
        ['UPDATE access_tokens SET last_used_at = now() WHERE id = ANY($1)', false],
        [
          'INSERT INTO node_leases (node_id, expires_at) VALUES ($1, now()) ON CONFLICT (node_id) DO UPDATE SET expires_at = EXCLUDED.expires_at',
          false,
        ],
        ['DELETE FROM sso_codes WHERE expires_at < now()', false],
        ['UPDATE installations SET partner_installed_at = NULL WHERE partner_installed_at < now()', false],
        [`INSERT INTO lw_plain_${suffix} VALUES (1)`, false],
        [`UPDATE lw_parent_${suffix} SET id = 2`, false], // its key's foreign key has no ON UPDATE action
        // Watched: the table, the columns, a cascade into a watched table, a trigger of another kind.
        ['UPDATE access_tokens SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1', true],
        ['update  ONLY access_tokens set default_team_id = $2 where id = $1', true],
        // A watched column's name anywhere after the table (here in WHERE) counts, set or not.
        ['UPDATE access_tokens SET last_used_at = now() WHERE expires_at IS NULL', true],
        ['UPDATE installations SET partner_installed_at = now() WHERE id = $1', true],
        ['UPDATE installations SET project_ids = $2, updated_at = now() WHERE id = $1', true],
        ['INSERT INTO memberships (team_id, user_id, role) VALUES ($1, $2, $3)', true],
        ['DELETE FROM users WHERE id = $1', true],
        [`DELETE FROM lw_parent_${suffix} WHERE id = 1`, true],
        [`UPDATE lw_other_${suffix} SET id = 2`, true],
        // Not read plainly: counted.
        ['WITH gone AS (DELETE FROM memberships RETURNING 1) DELETE FROM sso_codes', true],
        ['DELETE FROM sso_codes; DELETE FROM memberships', true],
        ['/* note */ DELETE FROM sso_codes', true],
        ['DELETE FROM public.memberships', true],
        ['DELETE FROM "memberships"', true],
        ['TRUNCATE sso_codes', true],
        // UNFLUSHED's CTE (a create's records) sets a setting and writes nothing: the write after it is what counts.
        [`WITH ${UNFLUSHED} INSERT INTO sso_codes (code_hash) SELECT $1 FROM unflushed`, false],
        [`WITH ${UNFLUSHED} UPDATE access_tokens SET revoked_at = now() FROM unflushed WHERE id = $1`, true],
        ['CREATE TABLE x (id int)', true],
      ];
      // A write may change what a cache holds unless it plainly changes no table (undefined: any).
      const mayChange = (sql: string) => watched.changedBy(sql)?.size !== 0;
      const mayChangeAny = (statements: string[]) => watched.changedByAny(statements)?.size !== 0;
      for (const [sql, expected] of cases) assert.equal(mayChange(sql), expected, sql);
      assert.equal(mayChangeAny([cases[0]![0], cases[1]![0]]), false);
      assert.equal(mayChangeAny([cases[0]![0], 'DELETE FROM users WHERE id = $1']), true);

      // Which tables: a cache of others keeps what it holds. Undefined is any table.
      const audited = (write: string) =>
        withLoggedWrite(write, 'INSERT INTO audit_events (team_id, action) SELECT $9, $10 WHERE EXISTS (SELECT 1 FROM changed)');
      // (A write of stores is counted as reaching what their foreign keys' actions write, whatever it sets.)
      const ofStores = ['project_env', 'store_connections', 'stores'];
      const tables: Array<[string, string[] | undefined]> = [
        ["UPDATE stores SET status = $2 WHERE id = $1 AND status = 'initializing' RETURNING *", ofStores],
        [audited('INSERT INTO stores (id, team_id) VALUES ($1, $2) RETURNING *'), ofStores],
        [audited('UPDATE dashboard_sessions SET last_seen_at = now() WHERE id = $1 RETURNING *'), []],
        [audited('WITH x AS (SELECT 1) UPDATE stores SET name = $2 RETURNING *'), undefined],
        [withLoggedWrite('UPDATE stores SET name = $2 RETURNING *', 'DELETE FROM memberships; SELECT 1'), undefined],
        // Hand-made, not withLoggedWrite's: a CTE between the two is not read as part of the write.
        [
          'WITH changed AS (UPDATE stores SET name = $2 RETURNING *), gone AS (DELETE FROM teams RETURNING 1), logged AS (INSERT INTO audit_events (team_id) SELECT $1) SELECT * FROM changed',
          undefined,
        ],
        [`WITH ${UNFLUSHED} UPDATE provider_resources SET state = 'ready' FROM unflushed WHERE id = $1`, []],
        [`DELETE FROM lw_parent_${suffix} WHERE id = 1`, [`lw_child_${suffix}`, `lw_parent_${suffix}`]],
        [`UPDATE lw_other_${suffix} SET id = 2`, undefined],
        ['DELETE FROM sso_codes; DELETE FROM memberships', undefined],
      ];
      for (const [sql, expected] of tables) {
        const changed = watched.changedBy(sql);
        assert.deepEqual(changed && [...changed].sort(), expected, sql);
      }
      // A team's deletion reaches what its foreign keys cascade to: its members, tokens, installations.
      const team = [...(watched.changedBy('DELETE FROM teams WHERE id = $1') ?? [])];
      for (const table of ['teams', 'memberships', 'access_tokens', 'installations']) assert.ok(team.includes(table), table);
      assert.deepEqual(
        [
          ...(watched.changedByAny(['UPDATE stores SET name = $2 WHERE id = $1', 'INSERT INTO memberships (team_id) VALUES ($1)']) ?? []),
        ].sort(),
        ['memberships', ...ofStores].sort(),
      );
    });

    test("a store's creation leaves what its token, team and installation are cached as: the next create asks nothing of them", async () => {
      const db = server.runtime.db;
      const icfg = (await server.sdk().integrations.getConfigurations({ view: 'account' }))[0]!.id!;
      let n = 0;
      const create = async () => {
        const response = await server.request('/v1/storage/stores/integration/direct', {
          method: 'POST',
          headers: json,
          body: JSON.stringify({ name: `lw-${n++}`, integrationConfigurationId: icfg, integrationProductIdOrSlug: 'postgres' }),
        });
        assert.equal(response.status, 200, await response.clone().text());
      };
      const lookups = (sent: string[]) => sent.filter((sql) => /\b(access_tokens|memberships|installations)\b|\bFROM teams\b/.test(sql));
      await create();
      await eventually(
        'a create that reads no token, team or installation',
        async () => lookups(await queriesDuring(db, create)).length === 0,
      );
      // A write to what they hold still empties them at once.
      await db.query('UPDATE memberships SET role = role WHERE user_id = $1', [userId]);
      assert.ok(
        lookups(await queriesDuring(db, create)).some((sql) => /\bmemberships\b/.test(sql)),
        'the membership was read again',
      );
    });
  });
}
