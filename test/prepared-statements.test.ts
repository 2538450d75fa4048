/**
 * Statements used often go to PostgreSQL as named prepared statements (src/db/prepared-statements.ts):
 * what the server holds prepared, on one connection, shows it. SQL made with values in it never
 * gets a name; a table changed under prepared statements answers with its new columns, alone,
 * in a transaction and to several requests at once; a connection that lost them (as behind a
 * pooler) is answered too; and STOREHOUSE_PREPARED_STATEMENTS=false sends every statement unnamed.
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
    const open = async (preparedStatements?: boolean, poolMax = 1) => {
      const dataDir = await freshDataDir();
      dataDirs.push(dataDir);
      const db = await openDatabase({
        dataDir,
        poolMax,
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

    test('a transaction whose every statement was prepared before the change is run again, once, unnamed', async () => {
      const statements = Array.from({ length: 6 }, (_, i) => `SELECT *, ${i} AS k FROM ${table} WHERE id = $1`);
      const run = () => db.transaction(async (tx) => Promise.all(statements.map((sql) => tx.query(sql, [1]))));
      for (let use = 1; use <= 3; use++) await run();
      await db.query(`ALTER TABLE ${table} ADD COLUMN more text DEFAULT 'more'`);
      const answers = await run();
      assert.deepEqual(
        answers.map((answer) => answer.rows[0]!.more),
        statements.map(() => 'more'),
      );
    });

    test('several requests at once on a statement whose table changed: every one is answered', async () => {
      const wide = await open(undefined, 4);
      const other = `${table}_wide`;
      await wide.query(`CREATE TABLE IF NOT EXISTS ${other} (id int PRIMARY KEY)`);
      await wide.query(`INSERT INTO ${other} VALUES (1) ON CONFLICT DO NOTHING`);
      const sql = `SELECT * FROM ${other} WHERE id = $1`;
      // Prepared on each of the four connections.
      for (let round = 0; round < 4; round++) await Promise.all(Array.from({ length: 4 }, () => wide.query(sql, [1])));
      await wide.query(`ALTER TABLE ${other} ADD COLUMN b int DEFAULT 7`);
      const answers = await Promise.all(Array.from({ length: 4 }, () => wide.query(sql, [1])));
      assert.deepEqual(
        answers.map((answer) => answer.rows[0]!.b),
        [7, 7, 7, 7],
      );
      await wide.query(`DROP TABLE ${other}`);
    });

    test("a connection without the statement (a pooler's): answered unnamed, and no statement is named again", async () => {
      const pooled = await open();
      const sql = 'SELECT $1::text AS name, 1 AS pooled';
      for (let use = 1; use <= 3; use++) await pooled.query(sql, ['one']);
      assert.ok((await prepared(pooled)).includes(sql));
      await pooled.query('DEALLOCATE ALL'); // as a pooler's next server connection: it never prepared it
      assert.equal((await pooled.query(sql, ['two'])).rows[0]!.name, 'two');
      for (let use = 1; use <= 5; use++) await pooled.query('SELECT $1::text AS name, 2 AS pooled', ['three']);
      assert.deepEqual(await prepared(pooled), []);
    });

    test('off (STOREHOUSE_PREPARED_STATEMENTS=false): no statement gets a name', async () => {
      const unprepared = await open(false);
      const sql = 'SELECT $1::text AS name';
      for (let use = 1; use <= 5; use++) assert.equal((await unprepared.query(sql, ['one'])).rows[0]!.name, 'one');
      assert.deepEqual(await prepared(unprepared), []);
    });
  });
}
