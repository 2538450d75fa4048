/**
 * Whose notifications on the change channel to believe. NOTIFY needs no privilege: any role that
 * can connect to the state database can send `storehouse_changes` anything, and each message
 * makes every node drop its caches (and, for a catalog table, reload the catalog). pg_notify
 * could be revoked from PUBLIC, but the NOTIFY statement cannot, so the check is on the sender.
 *
 * Each notification carries its sender's backend pid; pg_stat_activity names the pid's session
 * role to every role. A sender is believed when that role is Storehouse's own (the session role
 * of its state connections), has its privileges (a member of it, or a superuser: who could
 * write Storehouse's tables as it could), since the triggers of migration 0002 notify from the
 * session of whoever writes. Store roles are members of nothing, so they are refused.
 *
 * The questions go on a connection of their own, never through the state pool: with every pool
 * connection busy (a burst of requests, a slow database) a verdict would wait its turn behind
 * them, and every node would serve stale caches meanwhile. A question unanswered within
 * SENDER_CHECK_TIMEOUT_MS is given up and its notification believed (at a bounded rate, below):
 * dropping caches needlessly only costs reads, keeping stale ones serves revoked access.
 */
import type pg from 'pg';
import type { Queryable } from './database.ts';

/**
 * `gone`: the sender ended before it could be asked about. `unanswered`: the question failed, or
 * took over its bound. Both are believed at a bounded rate (UnverifiedChanges).
 */
export type Verdict = 'trusted' | 'refused' | 'gone' | 'unanswered';

/** How long a pid's verdict is kept: a session's role never changes, but pids are reused once it ends. */
const VERDICT_TTL_MS = 30_000;
const MAX_VERDICTS = 1000;

/** How long a sender question may take (connecting included) before its notification is believed unchecked. */
export const SENDER_CHECK_TIMEOUT_MS = 2000;

/** The checks connection's application_name, so an operator can tell it in pg_stat_activity. */
export const SENDER_CHECK_APPLICATION = 'storehouse sender checks';

const SENDERS_SQL = `SELECT a.pid, a.usename = $2 OR COALESCE(pg_has_role(a.usesysid, $2::name, 'USAGE'), false) AS trusted
  FROM pg_stat_activity a WHERE (a.pid = $1 OR a.usename = $2) AND a.usesysid IS NOT NULL`;

type Logger = { debug(details: object, message: string): void };

export class NotificationSenders {
  private readonly verdicts = new Map<number, { verdict: 'trusted' | 'refused'; expiresAt: number }>();
  private readonly asking = new Map<number, Promise<Verdict>>();
  private readonly connection: CheckConnection;
  private readonly timeoutMs: number;

  constructor(
    /** A new, unconnected client with the state's connection settings (Database.dedicatedClient). */
    open: () => pg.Client,
    /** Storehouse's own role: the session role of its state connections. */
    private readonly ownRole: string,
    private readonly options: { timeoutMs?: number; logger?: Logger | undefined } = {},
  ) {
    this.connection = new CheckConnection(open);
    this.timeoutMs = options.timeoutMs ?? SENDER_CHECK_TIMEOUT_MS;
  }

  /** The session role of the state connections: whose notifications are Storehouse's. */
  static async ownRoleOf(db: Queryable): Promise<string> {
    const { rows } = await db.query<{ role: string }>('SELECT session_user AS role');
    return rows[0]!.role;
  }

  /**
   * Whether the backend `pid` may move the feed: at once when its verdict is known, else after
   * asking pg_stat_activity once (concurrent asks for one pid share the answer), within the
   * bound: 'unanswered' past it.
   */
  judge(pid: number): Verdict | Promise<Verdict> {
    const known = this.verdicts.get(pid);
    if (known && known.expiresAt > Date.now()) return known.verdict;
    let asking = this.asking.get(pid);
    if (!asking) {
      asking = this.ask(pid).finally(() => this.asking.delete(pid));
      this.asking.set(pid, asking);
    }
    return asking;
  }

  /** Ends the checks connection; questions still open are 'unanswered'. */
  close(): Promise<void> {
    return this.connection.close();
  }

  private async ask(pid: number): Promise<Verdict> {
    // Every session of Storehouse's own role comes with the answer: the other nodes' new
    // connections are known before they notify, so their changes need no question of their own.
    let rows: Array<{ pid: number; trusted: boolean }>;
    try {
      ({ rows } = await this.connection.query<{ pid: number; trusted: boolean }>(SENDERS_SQL, [pid, this.ownRole], this.timeoutMs));
    } catch (error) {
      this.options.logger?.debug({ pid, err: error }, 'could not ask who sent a change notification');
      return 'unanswered';
    }
    const expiresAt = Date.now() + VERDICT_TTL_MS;
    for (const row of rows) {
      this.verdicts.delete(row.pid);
      if (this.verdicts.size >= MAX_VERDICTS) this.verdicts.delete(this.verdicts.keys().next().value!);
      this.verdicts.set(row.pid, { verdict: row.trusted ? 'trusted' : 'refused', expiresAt });
    }
    const asked = rows.find((row) => row.pid === pid);
    return asked === undefined ? 'gone' : asked.trusted ? 'trusted' : 'refused';
  }
}

class Unanswered extends Error {}

/** `promise`, or an Unanswered error once `deadline` (a Date.now() time) has passed. */
function byDeadline<T>(promise: Promise<T>, deadline: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Unanswered(`${what} took over its bound`)), Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** One opening of the checks connection: `ready` once connected and named. */
interface Opened {
  client: pg.Client;
  ready: Promise<pg.Client>;
  ended?: Promise<void>;
}

/**
 * The sender checks' one connection, opened on the first question and again after it breaks.
 * A question that fails is asked once more on a new connection (the old one may just have been
 * terminated) while its bound allows. A question left unanswered past its bound drops the
 * connection too, since every later question would queue behind it on a half-open one; a
 * connection still being opened is left to finish (or fail by its own connect timeout), so a slow
 * server still gets one.
 */
class CheckConnection {
  private current: Opened | undefined;
  private closed = false;
  /** Questions take turns on the one connection (node-postgres deprecates sending one while another runs). */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(private readonly open: () => pg.Client) {}

  async query<R extends pg.QueryResultRow>(sql: string, params: unknown[], timeoutMs: number): Promise<pg.QueryResult<R>> {
    const deadline = Date.now() + timeoutMs;
    for (let attempt = 1; ; attempt++) {
      const opened = this.connection();
      let client: pg.Client;
      try {
        client = await byDeadline(opened.ready, deadline, 'connecting for a sender check');
      } catch (error) {
        if (error instanceof Unanswered || attempt >= 2 || this.closed) throw error;
        this.drop(opened);
        continue; // it failed to open: once more on a new one
      }
      try {
        const answer = this.turn.then(() => client.query<R>(sql, params));
        this.turn = answer.catch(() => {});
        return await byDeadline(answer, deadline, 'a sender check');
      } catch (error) {
        this.drop(opened);
        if (error instanceof Unanswered || attempt >= 2 || this.closed) throw error;
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.current) await this.drop(this.current);
  }

  private connection(): Opened {
    if (this.closed) throw new Error('the sender checks are closed');
    if (this.current) return this.current;
    const client = this.open();
    const ready = (async () => {
      await client.connect();
      await client.query(`SET application_name = '${SENDER_CHECK_APPLICATION}'`);
      return client;
    })();
    const opened: Opened = { client, ready };
    // Broken (terminated, the server gone): the next question opens another. 'end' follows 'error'.
    client.on('error', () => {});
    client.on('end', () => this.drop(opened));
    ready.catch(() => this.drop(opened));
    this.current = opened;
    return opened;
  }

  /** Ends `opened` (once, however often it is dropped); resolves when it has ended. */
  private drop(opened: Opened): Promise<void> {
    if (this.current === opened) this.current = undefined;
    if (!opened.ended) {
      opened.ended = opened.client.end().catch(() => {});
      // end() waits for the server's goodbye, which a half-open connection never sends.
      const stream = () => (opened.client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream;
      setTimeout(() => stream()?.destroy(), 1000).unref();
    }
    return opened.ended;
  }
}

/** At most one change from senders that could not be checked per this long. */
export const UNVERIFIED_INTERVAL_MS = 1000;

/**
 * Changes whose sender ended before it could be checked, or could not be asked about in time.
 * They are believed, since ignoring a real change (a CLI command that wrote and exited at once,
 * a node that stopped, a write while the database was slow) would leave nodes serving stale
 * access for up to a cache's lifetime, while a needless drop only costs reads. But a store role
 * that connects, notifies and disconnects could win that race every time (and any role's
 * notifications pass while questions go unanswered), so they are applied at most once per
 * UNVERIFIED_INTERVAL_MS: the first at once, the rest folded into one at the interval's end
 * (named by their table, or ANYTHING for several).
 */
export class UnverifiedChanges {
  private last = 0;
  private folded: Set<string> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly apply: (table: string) => void,
    private readonly anything: string,
  ) {}

  add(table: string): void {
    if (this.folded) {
      this.folded.add(table);
      return;
    }
    const now = Date.now();
    if (now - this.last >= UNVERIFIED_INTERVAL_MS) {
      this.last = now;
      this.apply(table);
      return;
    }
    this.folded = new Set([table]);
    this.timer = setTimeout(
      () => {
        const tables = [...this.folded!];
        this.folded = undefined;
        this.last = Date.now();
        this.apply(tables.length === 1 ? tables[0]! : this.anything);
      },
      this.last + UNVERIFIED_INTERVAL_MS - now,
    );
    this.timer.unref();
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}
