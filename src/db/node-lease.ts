/**
 * A node's lease: proof, renewed every few seconds, that this process is alive. Work that touches
 * the outside world (a store's create or delete) records the node doing it; when that node's
 * lease runs out, the node is taken for dead and whoever comes next (another node's sweep, or a
 * retry of the same request) finishes or undoes the work at once, instead of waiting until the
 * work is old.
 *
 * One row per node, not per piece of work, so a node pays one UPDATE per renewal however much it
 * has under way. A node that cannot renew (its database is down) loses its lease like a dead one:
 * its work may then be taken over, and every takeover is a conditional update that the original
 * node's late answer loses to, so the work is never done twice.
 */
import type { Queryable } from './database.ts';
import { randomBase62 } from '../ids.ts';

export interface NodeLeaseOptions {
  /** How long a lease lasts without renewal; it is renewed every third of that. */
  leaseMs: number;
  onError?: (error: Error) => void;
}

/** SQL: true when the node named by the column `owner` holds no live lease (it died, or stopped renewing). */
export const ownerGone = (owner: string) => `NOT EXISTS (SELECT 1 FROM node_leases l WHERE l.node_id = ${owner} AND l.expires_at > now())`;

export class NodeLease {
  /** This process's node id: new at every start, so a restarted node never inherits its old lease. */
  readonly nodeId = `node_${randomBase62(12)}`;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly options: NodeLeaseOptions,
  ) {}

  get leaseMs(): number {
    return this.options.leaseMs;
  }

  /**
   * Takes the lease and keeps renewing it. `alone` (the embedded database, which one process holds
   * locked) also ends every other node's lease: they are earlier runs of this one, certainly dead.
   */
  async start(options: { alone?: boolean } = {}): Promise<void> {
    await this.renew();
    if (options.alone) await this.db.query('DELETE FROM node_leases WHERE node_id <> $1', [this.nodeId]);
    this.schedule();
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.renewing = this.renew()
        .catch((error: Error) => this.options.onError?.(error))
        .finally(() => {
          this.renewing = undefined;
          if (this.timer) this.schedule();
        });
    }, this.options.leaseMs / 3);
    this.timer.unref();
  }

  private async renew(): Promise<void> {
    await this.db.query(
      `INSERT INTO node_leases (node_id, expires_at) VALUES ($1, now() + make_interval(secs => $2))
       ON CONFLICT (node_id) DO UPDATE SET expires_at = EXCLUDED.expires_at`,
      [this.nodeId, this.options.leaseMs / 1000],
    );
    // Leases long dead are forgotten now and then (a node's row is small, but nodes come and go).
    if (Math.random() < 0.01) await this.db.query("DELETE FROM node_leases WHERE expires_at < now() - interval '1 day'");
  }

  /** Stops renewing and gives the lease up: this node's unfinished work is anyone's at once. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.renewing;
    await this.db.query('DELETE FROM node_leases WHERE node_id = $1', [this.nodeId]).catch(() => {});
  }
}
