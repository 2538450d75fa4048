/**
 * Secrets at rest (issue 17): a sealed value is bound to its table, row and column (v2, AES-GCM
 * additional data), so one copied elsewhere does not open, and the API answers 409, never a 500
 * and never the value; v1 values are re-sealed as v2 at start, without overwriting a newer write;
 * and the env list answers what Vercel does per type, never Storehouse's sealed value, to a
 * VIEWER or an OWNER, with and without decrypt, through the real @vercel/sdk.
 */
import assert from 'node:assert/strict';
import { createCipheriv, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Queryable } from '../src/db/database.ts';
import { newId } from '../src/ids.ts';
import { resealLegacySecrets } from '../src/secrets/reseal.ts';
import { STOREHOUSE_SEALED_COLUMNS } from '../src/secrets/sealed-columns.ts';
import { SecretBox, type SealContext, UnopenableSecretError } from '../src/secrets/secret-box.ts';
import { setMember } from '../src/tenancy/teams.ts';
import { createToken } from '../src/tenancy/tokens.ts';
import { createUser } from '../src/tenancy/users.ts';
import {
  BACKENDS,
  type Backend,
  errorOf,
  eventually,
  freshDataDir,
  freshPostgresDatabase,
  sdkFailure,
  startServer,
  type TestServer,
} from './helpers.ts';

/** A value in the v1 format (no additional data), as Storehouse wrote them before v2. */
function sealV1(key: Buffer, plaintext: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return ['v1', iv.toString('base64'), cipher.getAuthTag().toString('base64'), body.toString('base64')].join(':');
}

const keyOf = (dataDir: string) => Buffer.from(fs.readFileSync(path.join(dataDir, 'secret.key'), 'utf8').trim(), 'base64');
const envAt = (id: string): SealContext => ({ table: 'project_env', id, column: 'value' });

describe('the secret box', () => {
  const key = randomBytes(32);
  const logged: Array<{ details: Record<string, unknown>; message: string }> = [];
  const box = SecretBox.fromKey(key, { logger: { error: (details, message) => logged.push({ details, message }) } });

  test('a value opens only where it was sealed: not in another row, column or table', () => {
    const sealed = box.seal('s3cret-value', envAt('env_a'));
    assert.match(sealed, /^v2:[^:]+:[^:]+:[^:]+$/);
    assert.ok(!sealed.includes('s3cret-value'));
    assert.equal(box.open(sealed, envAt('env_a')), 's3cret-value');
    const elsewhere: SealContext[] = [
      envAt('env_b'),
      { table: 'stores', id: 'env_a', column: 'secrets' },
      { table: 'provider_resources', id: 'env_a', column: 'pending_secret' },
    ];
    for (const context of elsewhere) {
      logged.length = 0;
      assert.throws(
        () => box.open(sealed, context),
        (error) =>
          error instanceof UnopenableSecretError &&
          error.status === 409 &&
          error.code === 'secret_unreadable' &&
          error.message.includes(context.id) &&
          !error.message.includes(sealed),
      );
      assert.equal(logged.length, 1, 'logged at error level');
      assert.deepEqual({ table: logged[0]!.details.table, id: logged[0]!.details.id, column: logged[0]!.details.column }, { ...context });
      assert.ok(!JSON.stringify(logged[0]).includes('s3cret-value') && !JSON.stringify(logged[0]).includes(sealed), 'without the value');
    }
    // Another key, or something that is not a sealed value, does not open either.
    assert.throws(() => SecretBox.fromKey(randomBytes(32)).open(sealed, envAt('env_a')), UnopenableSecretError);
    assert.throws(() => box.open('not-sealed', envAt('env_a')), UnopenableSecretError);
    assert.throws(() => box.open(`${sealed}:extra`, envAt('env_a')), UnopenableSecretError);
  });

  test('a v1 value opens until the re-seal retires v1; the re-seal opens it and binds it to its row', () => {
    const legacy = SecretBox.fromKey(key);
    const v1 = sealV1(key, 'old-value');
    assert.equal(legacy.open(v1, envAt('env_a')), 'old-value');
    const resealed = legacy.reseal(v1, envAt('env_a'));
    assert.match(resealed, /^v2:/);
    assert.equal(legacy.open(resealed, envAt('env_a')), 'old-value');
    assert.throws(() => legacy.open(resealed, envAt('env_b')), UnopenableSecretError);
    legacy.retireLegacy();
    assert.throws(
      () => legacy.open(v1, envAt('env_a')),
      (error) => error instanceof UnopenableSecretError && /v1 format/.test(error.message),
    );
    assert.match(legacy.reseal(v1, envAt('env_a')), /^v2:/, 'the re-seal still reads v1');
  });

  test('a context without a row id is a programming error, not a sealed value', () => {
    assert.throws(() => box.seal('x', envAt('')), /needs its table, row id and column/);
  });
});

for (const backend of BACKENDS) {
  describe(`sealed values through the API (${backend})`, () => {
    let server: TestServer;
    let box: SecretBox;
    let projectId: string;
    let viewerToken: string;
    const ids = { plain: newId('env'), encrypted: newId('env'), sensitive: newId('env'), other: newId('env') };
    const values = {
      plain: 'plain-value',
      encrypted: `postgres://u:${newId('pw')}@db/x`,
      sensitive: newId('sensitive'),
      other: newId('v'),
    };

    const insertEnv = (db: Queryable, id: string, key: string, type: string, sealed: string) =>
      db.query(`INSERT INTO project_env (id, project_id, key, value, type, targets) VALUES ($1, $2, $3, $4, $5, '["production"]')`, [
        id,
        projectId,
        key,
        sealed,
        type,
      ]);

    before(async () => {
      server = await startServer(backend);
      const db = server.runtime.db;
      box = SecretBox.load(server.config.secretKey, server.config.dataDir);
      projectId = (await server.sdk().projects.createProject({ requestBody: { name: `web-${backend}` } })).id;
      for (const type of ['plain', 'encrypted', 'sensitive'] as const) {
        await insertEnv(db, ids[type], type.toUpperCase(), type, box.seal(values[type], envAt(ids[type])));
      }
      await insertEnv(db, ids.other, 'OTHER', 'encrypted', box.seal(values.other, envAt(ids.other)));
      const teamId = (await db.query<{ id: string }>("SELECT id FROM teams WHERE slug = 'my-team'")).rows[0]!.id;
      const viewer = await createUser(db, { email: `viewer-${backend}@example.com` });
      await setMember(db, teamId, viewer.id, 'VIEWER');
      viewerToken = (await createToken(db, { userId: viewer.id, teamId, name: 't' })).value;
    });
    after(() => server?.close());

    const byKey = (envs: any[]) => Object.fromEntries(envs.map((e) => [e.key, e]));
    const sealedValues = async () =>
      (await server.runtime.db.query<{ value: string }>('SELECT value FROM project_env WHERE project_id = $1', [projectId])).rows.map(
        (row) => row.value,
      );

    test('the list without decrypt answers what Vercel does per type, never the sealed value, to a VIEWER and an OWNER', async () => {
      const sealed = await sealedValues();
      for (const token of [viewerToken, server.token]) {
        const answer = await server.sdk(token).projects.filterProjectEnvs({ idOrName: projectId });
        assert.ok('envs' in answer && 'pagination' in answer, 'the SDK parses the list');
        const envs = byKey(answer.envs);
        assert.deepEqual([envs.PLAIN.value, envs.PLAIN.type], [values.plain, 'plain']);
        assert.deepEqual([envs.ENCRYPTED.value, envs.ENCRYPTED.decrypted, envs.ENCRYPTED.type], ['', false, 'encrypted']);
        assert.deepEqual([envs.SENSITIVE.value, envs.SENSITIVE.decrypted, envs.SENSITIVE.type], ['', false, 'sensitive']);
        const raw = await (await server.request(`/v10/projects/${projectId}/env`, { token })).text();
        assert.ok(!raw.includes('"value":"v1:') && !raw.includes('"value":"v2:'), 'no sealed value on the wire');
        for (const value of sealed) assert.ok(!raw.includes(value));
        assert.ok(!raw.includes(values.encrypted) && !raw.includes(values.sensitive));
        assert.ok(!('value' in byKey(JSON.parse(raw).envs).SENSITIVE), 'a sensitive variable has no value at all');
      }
    });

    test('with decrypt an OWNER reads encrypted values (never sensitive ones); a VIEWER is refused', async () => {
      const answer = await server.sdk().projects.filterProjectEnvs({ idOrName: projectId, decrypt: 'true' });
      assert.ok('envs' in answer);
      const envs = byKey(answer.envs);
      assert.deepEqual([envs.ENCRYPTED.value, envs.ENCRYPTED.decrypted], [values.encrypted, true]);
      assert.deepEqual([envs.PLAIN.value, envs.SENSITIVE.value, envs.SENSITIVE.decrypted], [values.plain, '', false]);
      const one = await server.sdk().projects.getProjectEnv({ idOrName: projectId, id: ids.encrypted });
      assert.ok('value' in one && one.value === values.encrypted && one.decrypted === true);
      const sensitive = await server.sdk().projects.getProjectEnv({ idOrName: projectId, id: ids.sensitive });
      assert.equal(sensitive.decrypted, false);
      assert.ok(!('value' in sensitive) || !sensitive.value, 'a sensitive value is never read back');

      // One at a time: a refusal that came before its turn to be awaited would be an unhandled rejection.
      for (const call of [
        () => server.sdk(viewerToken).projects.filterProjectEnvs({ idOrName: projectId, decrypt: 'true' }),
        () => server.sdk(viewerToken).projects.getProjectEnv({ idOrName: projectId, id: ids.encrypted }),
      ]) {
        const refused = await sdkFailure(call());
        assert.deepEqual([refused.status, refused.code], [403, 'forbidden']);
      }
    });

    test('a sealed value copied to another row with SQL does not open: 409 secret_unreadable, logged, nothing leaked', async () => {
      const db = server.runtime.db;
      const stolen = ids.encrypted;
      const target = ids.other;
      await db.query('UPDATE project_env SET value = (SELECT value FROM project_env WHERE id = $1) WHERE id = $2', [stolen, target]);
      const copied = (await db.query<{ value: string }>('SELECT value FROM project_env WHERE id = $1', [target])).rows[0]!.value;
      const logsBefore = server.logs.length;

      const refused = await sdkFailure(server.sdk().projects.getProjectEnv({ idOrName: projectId, id: target }));
      assert.deepEqual([refused.status, refused.code], [409, 'secret_unreadable']);
      assert.match(refused.message, /OTHER/);
      const listed = await errorOf(await server.request(`/v10/projects/${projectId}/env?decrypt=true`));
      assert.deepEqual([listed.status, listed.code], [409, 'secret_unreadable']);
      const pulled = await errorOf(await server.request(`/v3/env/pull/${projectId}/production`));
      assert.deepEqual([pulled.status, pulled.code], [409, 'secret_unreadable']);
      for (const answer of [refused.body, listed.body, pulled.body]) {
        const text = JSON.stringify(answer);
        assert.ok(!text.includes(values.encrypted) && !text.includes(copied), 'neither the value nor the ciphertext');
      }
      // The list without decrypt opens nothing encrypted and still answers.
      const plainList = await server.sdk().projects.filterProjectEnvs({ idOrName: projectId });
      assert.ok('envs' in plainList && plainList.envs.length === 4);

      await eventually('the error is logged', async () =>
        server.logs.slice(logsBefore).some((line) => {
          const entry = JSON.parse(line);
          return entry.level === 50 && entry.id === target && entry.table === 'project_env' && entry.column === 'value';
        }),
      );
      const newLines = server.logs.slice(logsBefore).join('\n');
      assert.ok(!newLines.includes(values.encrypted) && !newLines.includes(copied), 'the log holds neither the value nor the ciphertext');
      assert.ok(!newLines.includes('"statusCode":500'), 'no 500');
      // The row it came from still opens.
      const original = await server.sdk().projects.getProjectEnv({ idOrName: projectId, id: stolen });
      assert.ok('value' in original && original.value === values.encrypted);
    });
  });

  describe(`v1 values are re-sealed as v2 at start (${backend})`, () => {
    let dataDir: string;
    let database: { url: string; drop: () => Promise<void> } | undefined;
    const serverOn = () =>
      startServer(backend as Backend, { dataDir, ...(database && { databaseUrl: database.url }), bootstrapToken: 'test-reseal-token' });

    before(async () => {
      dataDir = await freshDataDir();
      if (backend === 'postgres') database = await freshPostgresDatabase();
    });
    after(async () => {
      await database?.drop();
      fs.rmSync(dataDir, { recursive: true, force: true });
    });

    test('every v1 value opens after a restart, now as v2 bound to its row; one already re-sealed (a restart mid-way) is kept', async () => {
      let server = await serverOn();
      const ids = [newId('env'), newId('env'), newId('env')];
      const broken = newId('env');
      try {
        const projectId = (await server.sdk().projects.createProject({ requestBody: { name: 'legacy' } })).id;
        const key = keyOf(server.config.dataDir);
        const box = SecretBox.fromKey(key);
        const insert = (id: string, sealed: string) =>
          server.runtime.db.query(
            `INSERT INTO project_env (id, project_id, key, value, type, targets) VALUES ($1, $2, $3, $4, 'encrypted', '["production"]')`,
            [id, projectId, `K_${id}`, sealed],
          );
        await insert(ids[0]!, sealV1(key, 'value-0'));
        await insert(ids[1]!, sealV1(key, 'value-1'));
        await insert(ids[2]!, box.seal('value-2', envAt(ids[2]!))); // re-sealed by a start that was stopped
        await insert(broken, sealV1(randomBytes(32), 'value-x')); // sealed with a key this server does not have
        // A signing key in the v1 format, as an earlier version left it.
        const signingKey = `key_${newId('')}`;
        await server.runtime.db.query("INSERT INTO signing_keys (kid, private_key, public_jwk, retired_at) VALUES ($1, $2, '{}', now())", [
          signingKey,
          sealV1(key, 'pem'),
        ]);
        await server.close();

        server = await serverOn();
        const { rows } = await server.runtime.db.query<{ id: string; value: string }>(
          'SELECT id, value FROM project_env WHERE id = ANY($1) ORDER BY id',
          [[...ids, broken]],
        );
        const stored = Object.fromEntries(rows.map((row) => [row.id, row.value]));
        for (const [i, id] of ids.entries()) {
          assert.match(stored[id]!, /^v2:/, `${id} is v2`);
          assert.equal(box.open(stored[id]!, envAt(id)), `value-${i}`);
          const env = await server.sdk().projects.getProjectEnv({ idOrName: projectId, id });
          assert.ok('value' in env && env.value === `value-${i}`);
        }
        const key2 = (
          await server.runtime.db.query<{ private_key: string }>('SELECT private_key FROM signing_keys WHERE kid = $1', [signingKey])
        ).rows[0]!.private_key;
        assert.equal(box.open(key2, { table: 'signing_keys', id: signingKey, column: 'private_key' }), 'pem');
        // The value that does not open is left as it was, logged, and answered with a 409.
        assert.match(stored[broken]!, /^v1:/);
        assert.ok(server.logs.some((line) => JSON.parse(line).level === 50 && JSON.parse(line).id === broken));
        const refused = await sdkFailure(server.sdk().projects.getProjectEnv({ idOrName: projectId, id: broken }));
        assert.deepEqual([refused.status, refused.code], [409, 'secret_unreadable']);
      } finally {
        await server.close();
      }
    });

    test('a write that lands between the re-seal reading a value and replacing it is kept', async () => {
      const server = await serverOn();
      try {
        const db = server.runtime.db;
        const projectId = (await server.sdk().projects.createProject({ requestBody: { name: `race-${newId('')}`.toLowerCase() } })).id;
        const key = keyOf(server.config.dataDir);
        const box = SecretBox.fromKey(key);
        const id = newId('env');
        await db.query(
          `INSERT INTO project_env (id, project_id, key, value, type, targets) VALUES ($1, $2, 'RACED', $3, 'encrypted', '["production"]')`,
          [id, projectId, sealV1(key, 'old')],
        );
        const newer = box.seal('newer', envAt(id));
        // The database as the re-seal sees it: once it has read the v1 values, a client writes the row.
        const racing: Queryable = {
          async query(sql, params) {
            const result = await db.query(sql, params);
            if (/LIKE 'v1:%'/.test(sql) && /FROM project_env/.test(sql) && result.rows.length > 0) {
              await db.query('UPDATE project_env SET value = $2 WHERE id = $1', [id, newer]);
            }
            return result as any;
          },
        };
        const summary = await resealLegacySecrets(racing, box, STOREHOUSE_SEALED_COLUMNS);
        assert.equal(summary.resealed, 0, 'the re-seal did not overwrite the newer value');
        const stored = (await db.query<{ value: string }>('SELECT value FROM project_env WHERE id = $1', [id])).rows[0]!.value;
        assert.equal(stored, newer);
        assert.equal(box.open(stored, envAt(id)), 'newer');
      } finally {
        await server.close();
      }
    });
  });
}
