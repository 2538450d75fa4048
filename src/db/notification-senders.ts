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
 */
import type { Queryable } from './database.ts';

export type Verdict = 'trusted' | 'refused' | 'gone';

/** How long a pid's verdict is kept: a session's role never changes, but pids are reused once it ends. */
const VERDICT_TTL_MS = 30_000;
const MAX_VERDICTS = 1000;

export class NotificationSenders {
  private readonly verdicts = new Map<number, { verdict: 'trusted' | 'refused'; expiresAt: number }>();
  private readonly asking = new Map<number, Promise<Verdict>>();

  constructor(
    private readonly db: Queryable,
    /** Storehouse's own role: the session role of its state connections. */
    private readonly ownRole: string,
  ) {}

  /** The session role of the state connections: whose notifications are Storehouse's. */
  static async ownRoleOf(db: Queryable): Promise<string> {
    const { rows } = await db.query<{ role: string }>('SELECT session_user AS role');
    return rows[0]!.role;
  }

  /**
   * Whether the backend `pid` may move the feed: at once when its verdict is known, else after
   * asking pg_stat_activity once (concurrent asks for one pid share the answer). `gone` is a
   * sender that ended before it could be asked about, or a question that failed.
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

  private async ask(pid: number): Promise<Verdict> {
    // Every session of Storehouse's own role comes with the answer: the other nodes' new
    // connections are known before they notify, so their changes need no question of their own.
    let rows: Array<{ pid: number; trusted: boolean }>;
    try {
      ({ rows } = await this.db.query<{ pid: number; trusted: boolean }>(
        `SELECT a.pid, a.usename = $2 OR COALESCE(pg_has_role(a.usesysid, $2::name, 'USAGE'), false) AS trusted
           FROM pg_stat_activity a WHERE (a.pid = $1 OR a.usename = $2) AND a.usesysid IS NOT NULL`,
        [pid, this.ownRole],
      ));
    } catch {
      return 'gone';
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

/** At most one change from senders that could not be checked per this long. */
export const UNVERIFIED_INTERVAL_MS = 1000;

/**
 * Changes whose sender ended before it could be checked. They are believed, since ignoring a
 * real change (a CLI command that wrote and exited at once, a node that stopped) would leave
 * nodes serving stale access for up to a cache's lifetime, while a needless drop only costs
 * reads. But a store role that connects, notifies and disconnects could win that race every
 * time, so they are applied at most once per UNVERIFIED_INTERVAL_MS: the first at once, the
 * rest folded into one at the interval's end (named by their table, or ANYTHING for several).
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
