/**
 * Background work waits by the database's clock (issue 11, review): due times are the database's
 * `now()` plus something, so the wait until the next piece of work is measured in the query that
 * finds it, never against this node's clock, which may be off from the database's.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { openDatabase } from '../src/db/open.ts';
import type { Queryable } from '../src/db/database.ts';
import { msUntil, Schedule, untilDue } from '../src/stores/schedule.ts';
import { freshDataDir, POSTGRES_URL } from './helpers.ts';

async function checkMsUntil(db: Queryable) {
  const { rows } = await db.query<{ ms: number | null }>(`SELECT ${msUntil("now() + interval '2 seconds'")} AS ms`);
  assert.equal(typeof rows[0]!.ms, 'number');
  assert.ok(rows[0]!.ms! > 1_000 && rows[0]!.ms! <= 2_000, `${rows[0]!.ms} ms`);
  const none = await db.query<{ ms: number | null }>(`SELECT ${msUntil('min(x)')} AS ms FROM (SELECT now() AS x WHERE false) t`);
  assert.equal(untilDue(none.rows), undefined);
}

describe('the wait until due work', () => {
  test('is measured by the embedded database, as a number of milliseconds', async () => {
    const dataDir = await freshDataDir();
    const db = await openDatabase({ dataDir });
    try {
      await checkMsUntil(db);
    } finally {
      await db.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  describe('on PostgreSQL', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
    let client: pg.Client;
    before(async () => {
      client = new pg.Client({ connectionString: POSTGRES_URL });
      await client.connect();
    });
    after(() => client?.end());
    test('is measured by PostgreSQL, as a number of milliseconds', () => checkMsUntil(client));
  });

  test("a schedule runs its work again when the work says, whatever this node's clock reads", async () => {
    const realNow = Date.now;
    Date.now = () => realNow() + 3_600_000; // an hour ahead of everyone else
    let runs = 0;
    let secondRun: () => void = () => {};
    const ranTwice = new Promise<void>((resolve) => (secondRun = resolve));
    const schedule = new Schedule(
      async () => {
        runs++;
        if (runs === 2) secondRun();
        return runs === 1 ? 50 : undefined; // "due again in 50 ms", by the database's clock
      },
      3_600_000, // idle for an hour: only the work's own answer can bring the second run
      (error) => assert.fail(error),
    ).start(0);
    const alive = setInterval(() => {}, 1_000); // the schedule's timers do not keep a process up
    try {
      await ranTwice;
      assert.equal(runs, 2);
    } finally {
      Date.now = realNow;
      clearInterval(alive);
      await schedule.stop();
    }
  });
});
