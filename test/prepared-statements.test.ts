/**
 * Statements used often go to PostgreSQL as named prepared statements (src/db/prepared-statements.ts):
 * what the server holds prepared, on one connection, shows it. SQL made with values in it never
 * gets a name; a table changed under a prepared statement answers with its new columns, in a
 * transaction too; and STOREHOUSE_PREPARED_STATEMENTS=false sends every statement unnamed.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import type { Database } from '../src/db/database.ts';
import { openDatabase } from '../src/db/open.ts';
import { BACKENDS, freshDataDir, POSTGRES_URL } from './helpers.ts';

for (const backend of BACKENDS) {
  describe(`prepared statements (${backend})`, () => {
    const table = `prepared_${process.pid}_${backend}`;
    const dataDirs: string[] = [];
    const opened: Database[] = [];
    /** A database of one connection, so what is prepared on it is what this test prepared (embedded: a cluster of its own). */
    const open = async (preparedStatements?: boolean) => {
      const dataDir = await freshDataDir();
      dataDirs.push(dataDir);
      const db = await openDatabase({
        dataDir,
        poolMax: 1,
        ...(backend === 'postgres' && { databaseUrl: POSTGRES_URL }),
        ...(preparedStatements !== undefined && { preparedStatements }),
      });
      opened.push(db);
      return db;
    };
    const prepared = async (db: Database) =>
      (await db.query<{ statement: string }>('SELECT statement FROM pg_prepared_statements')).rows.map((row) => row.statement);

    let db: Database;
    before(async () => {
      db = await open();
      await db.query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text)`);
      await db.query(`INSERT INTO ${table} VALUES (1, 'one'), (2, 'two')`);
    });
    after(async () => {
      await db.query(`DROP TABLE IF EXISTS ${table}`);
      for (const each of opened.reverse()) await each.close();
      for (const dir of dataDirs) fs.rmSync(dir, { recursive: true, force: true });
    });

    test('a statement gets its name at its third use, and keeps answering', async () => {
      const sql = `SELECT name FROM ${table} WHERE id = $1`;
      for (let use = 1; use <= 2; use++) assert.equal((await db.query(sql, [1])).rows[0]!.name, 'one');
      assert.ok(!(await prepared(db)).includes(sql), 'not prepared after two uses');
      assert.equal((await db.query(sql, [2])).rows[0]!.name, 'two');
      assert.ok((await prepared(db)).includes(sql), 'prepared at the third');
      assert.equal((await db.query(sql, [1])).rows[0]!.name, 'one');
      // In a transaction too, on the same connection.
      assert.equal(await db.transaction(async (tx) => (await tx.query(sql, [2])).rows[0]!.name), 'two');
    });

    test('SQL with its values written in never gets a name, and neither does a statement without parameters', async () => {
      for (let i = 0; i < 5; i++) await db.query(`SELECT name FROM ${table} WHERE id = ${i} AND $1::int = 1`, [1]);
      for (let i = 0; i < 5; i++) await db.query(`SELECT count(*) FROM ${table}`);
      const statements = await prepared(db);
      assert.ok(!statements.some((sql) => sql.includes(' AND $1::int = 1')), statements.join('\n'));
      assert.ok(!statements.includes(`SELECT count(*) FROM ${table}`));
    });

    test('a table changed under a prepared statement: it answers with the new columns, on its own and in a transaction', async () => {
      const own = `SELECT * FROM ${table} WHERE id = $1`;
      const inTransaction = `SELECT * FROM ${table} WHERE id = $1 OR id = $1`;
      for (let use = 1; use <= 3; use++) {
        await db.query(own, [1]);
        await db.transaction((tx) => tx.query(inTransaction, [1]));
      }
      assert.ok((await prepared(db)).includes(own));
      await db.query(`ALTER TABLE ${table} ADD COLUMN extra text DEFAULT 'new'`);
      assert.equal((await db.query(own, [1])).rows[0]!.extra, 'new');
      assert.equal((await db.transaction((tx) => tx.query(inTransaction, [1]))).rows[0]!.extra, 'new');
      // And from then on, unnamed.
      assert.equal((await db.query(own, [2])).rows[0]!.extra, 'new');
    });

    test('off (STOREHOUSE_PREPARED_STATEMENTS=false): no statement gets a name', async () => {
      const unprepared = await open(false);
      const sql = 'SELECT $1::text AS name';
      for (let use = 1; use <= 5; use++) assert.equal((await unprepared.query(sql, ['one'])).rows[0]!.name, 'one');
      assert.deepEqual(await prepared(unprepared), []);
    });
  });
}
