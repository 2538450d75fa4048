/**
 * The change channel's sender checks do not depend on the state pool: they are asked on a
 * connection of their own, so a pool whose every connection is busy does not hold verdicts back
 * (caches would stay stale meanwhile), a question unanswered within its bound believes the
 * notification, and a checks connection that breaks is replaced.
 *
 * On the real PostgreSQL at STOREHOUSE_TEST_DATABASE_URL, as a superuser: the state role made here
 * is not one (as on an operator's server), and a stranger role stands in for a store role.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { CHANGES_CHANNEL, ChangeFeed } from '../src/db/change-feed.ts';
import type { Database } from '../src/db/database.ts';
import { SENDER_CHECK_APPLICATION } from '../src/db/notification-senders.ts';
import { openDatabase } from '../src/db/open.ts';
import { eventually, POSTGRES_URL } from './helpers.ts';
import { connect, urlWith } from './pg-clients.ts';

const POOL_MAX = 2;

const tag = () => randomBytes(5).toString('hex');

/** helpers' eventually, for checks that may answer at once, within a minute by default. */
const until = (what: string, check: () => Promise<boolean> | boolean, timeoutMs = 60_000) =>
  eventually(what, async () => check(), timeoutMs);

/** A feed's changes as it applied them. */
function watch(feed: ChangeFeed) {
  const seen: Array<string | undefined> = [];
  feed.onChange((table) => seen.push(table));
  return seen;
}

describe('sender checks', { skip: POSTGRES_URL ? false : 'STOREHOUSE_TEST_DATABASE_URL is not set' }, () => {
  const role = `storehouse_ns_${tag()}`;
  const stranger = `storehouse_ns_other_${tag()}`;
  const database = `storehouse_test_ns_${tag()}`;
  const password = randomBytes(18).toString('base64url');
  const stateUrl = urlWith(POSTGRES_URL ?? 'postgres://localhost/', { user: role, password, database });
  const strangerUrl = urlWith(POSTGRES_URL ?? 'postgres://localhost/', { user: stranger, password: 'other-pw', database });
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'storehouse-senders-'));
  const debug: Array<{ details: Record<string, unknown>; message: string }> = [];
  const logger = { debug: (details: object, message: string) => debug.push({ details: details as Record<string, unknown>, message }) };
  const sessions: pg.Client[] = [];
  let admin: pg.Client;
  let db: Database;
  let feed: ChangeFeed;
  let seen: Array<string | undefined>;
  let stopFeed: (() => Promise<void>) | undefined;

  /** A new session (so a pid of which nothing is known yet) sending `payload` on the change channel. */
  const notifyFrom = async (url: string, payload: string) => {
    const session = await connect(url);
    sessions.push(session);
    await session.query('SELECT pg_notify($1, $2)', [CHANGES_CHANNEL, payload]);
  };
  const checkSessions = async () =>
    (
      await admin.query<{ pid: number }>('SELECT pid FROM pg_stat_activity WHERE datname = $1 AND application_name = $2', [
        database,
        SENDER_CHECK_APPLICATION,
      ])
    ).rows.map((row) => row.pid);

  before(async () => {
    admin = await connect(POSTGRES_URL!);
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${password}'`);
    await admin.query(`CREATE ROLE ${stranger} LOGIN PASSWORD 'other-pw'`);
    await admin.query(`CREATE DATABASE ${database} OWNER ${role}`);
    // A wait for a pool connection outlasts every deadline below: what is answered was not waiting for one.
    db = await openDatabase({ databaseUrl: stateUrl, dataDir, poolMax: POOL_MAX, connectTimeoutMs: 120_000 });
    // No heartbeat: its notify goes through the pool, and a missed one would turn the feed deaf mid-test.
    ({ feed, stop: stopFeed } = await ChangeFeed.start(db, { heartbeatMs: 600_000, senderCheckTimeoutMs: 20_000, logger }));
    seen = watch(feed);
  });

  after(async () => {
    for (const session of sessions) await session.end().catch(() => {});
    await stopFeed?.();
    await db?.close();
    await admin.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`);
    await admin.query(`DROP ROLE IF EXISTS ${role}`);
    await admin.query(`DROP ROLE IF EXISTS ${stranger}`);
    await admin.end();
    fs.rmSync(dataDir, { recursive: true, force: true });
  });

  test("with every state pool connection held, Storehouse's notification moves the feed and a stranger's is refused", async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const holding: Array<Promise<void>> = [];
    const held: Array<Promise<void>> = [];
    for (let i = 0; i < POOL_MAX; i++) {
      let holds!: () => void;
      holding.push(new Promise<void>((resolve) => (holds = resolve)));
      held.push(
        db.transaction(async (tx) => {
          await tx.query('SELECT 1');
          holds();
          await gate;
        }),
      );
    }
    let probeSettled = false;
    let probe: Promise<unknown> | undefined;
    try {
      await Promise.all(holding);
      probe = db.query('SELECT 1').finally(() => (probeSettled = true));
      const before = { refused: feed.refused, unverified: feed.unverified, unanswered: feed.unanswered };

      const own = `own-${tag()}`;
      await notifyFrom(stateUrl, own);
      await until("the feed moving on Storehouse's notification", () => seen.includes(own));
      const forged = `forged-${tag()}`;
      await notifyFrom(strangerUrl, forged);
      await until("the stranger's notification refused", () => feed.refused > before.refused);

      assert.equal(probeSettled, false, 'the pool was still exhausted: a request was still waiting for a connection');
      assert.ok(!seen.includes(forged), "a stranger's notification moved nothing");
      assert.equal(feed.refused, before.refused + 1);
      assert.equal(feed.unanswered, before.unanswered, 'both were answered, not believed unchecked');
      assert.equal(feed.unverified, before.unverified);
      assert.equal((await checkSessions()).length, 1, 'they were asked on the one checks connection');
    } finally {
      release();
      await Promise.all(held);
      await probe;
    }
  });

  test('a checks connection that is terminated is replaced, and the next sender is judged on the new one', async () => {
    // A question first, so there is a checks connection to terminate (the test may run alone).
    const first = `own-${tag()}`;
    await notifyFrom(stateUrl, first);
    await until('the feed moving', () => seen.includes(first));
    const [old, ...more] = await checkSessions();
    assert.ok(old !== undefined && more.length === 0, 'one checks connection');
    const { rows } = await admin.query<{ ended: boolean }>('SELECT pg_terminate_backend($1) AS ended', [old]);
    assert.equal(rows[0]!.ended, true);
    const before = { refused: feed.refused, unverified: feed.unverified, unanswered: feed.unanswered };

    // Whether or not the client has noticed yet, the question is answered: on a new connection.
    const own = `own-${tag()}`;
    await notifyFrom(stateUrl, own);
    await until('the feed moving after the checks connection was terminated', () => seen.includes(own));
    assert.equal(feed.unanswered, before.unanswered, 'the sender was judged, not believed unchecked');
    assert.equal(feed.unverified, before.unverified);
    const forged = `forged-${tag()}`;
    await notifyFrom(strangerUrl, forged);
    await until("the stranger's notification refused", () => feed.refused > before.refused);
    assert.ok(!seen.includes(forged));
    await until('the terminated connection gone', async () => !(await checkSessions()).includes(old));
    const now = await checkSessions();
    assert.equal(now.length, 1, `one checks connection again, not ${now.length}`);
  });

  test('a question unanswered within its bound believes the notification, and says so at debug level', async () => {
    // A server that takes connections and never answers: the checks connection of a database that hangs.
    const sockets = new Set<net.Socket>();
    const hung = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const { port } = hung.address() as net.AddressInfo;
    const boundMs = 300;
    const started = await ChangeFeed.start(db, {
      heartbeatMs: 600_000,
      senderCheckTimeoutMs: boundMs,
      senderConnection: () => new pg.Client({ host: '127.0.0.1', port, user: role, database }),
      logger,
    });
    try {
      const hungSeen = watch(started.feed);
      const own = `own-${tag()}`;
      const sent = Date.now();
      await notifyFrom(stateUrl, own);
      await until('the unanswered notification believed', () => hungSeen.includes(own));
      assert.ok(Date.now() - sent >= boundMs - 5, 'believed once the bound had passed, not before');
      assert.ok(sockets.size >= 1, 'the question was asked on the checks connection');
      assert.equal(started.feed.unanswered, 1);
      assert.equal(started.feed.refused, 0);
      assert.ok(
        debug.some((line) => /could not be checked in time/.test(line.message) && line.details.table === own),
        'logged at debug level',
      );
      // A stranger cannot be told from Storehouse either while nothing answers: believed, at the bounded rate.
      const forged = `forged-${tag()}`;
      await notifyFrom(strangerUrl, forged);
      await until('the second unanswered notification counted', () => started.feed.unanswered === 2);
      await until('folded into the next interval, not lost', () => hungSeen.includes(forged), 30_000);
    } finally {
      await started.stop();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => hung.close(() => resolve()));
    }
  });
});
