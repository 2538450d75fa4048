/**
 * The audit log: who changed what, when, for every store, billing and access change. Events are
 * written in the same transaction as the change they describe, so the log never claims a change
 * that was rolled back nor misses one that was made.
 */
import { withLoggedWrite, type MappedRow, type Queryable } from '../db/database.ts';

export interface AuditEvent {
  /** Random (`aud_...`): nothing about other teams' activity can be read from it. */
  id: string;
  teamId: string;
  /** The user who made the change; null for the system (the CLI, a background job). */
  actorId: string | null;
  /** `store.created`, `payment_method.added`, `member.role_changed`, ... */
  action: string;
  targetType: string;
  targetId: string;
  details: Record<string, unknown>;
  createdAt: Date;
}

export type AuditEntry = Omit<AuditEvent, 'id' | 'createdAt' | 'details'> & { details?: Record<string, unknown> };

export async function audit(db: Queryable, entry: AuditEntry): Promise<void> {
  await db.query('INSERT INTO audit_events (team_id, actor_id, action, target_type, target_id, details) VALUES ($1, $2, $3, $4, $5, $6)', [
    entry.teamId,
    entry.actorId,
    entry.action,
    entry.targetType,
    entry.targetId,
    JSON.stringify(entry.details ?? {}),
  ]);
}

/**
 * Runs one data-modifying statement (with RETURNING) and records its audit event in the same
 * statement: atomic without a transaction, and one round trip instead of two. The event is
 * recorded only if the statement changed a row.
 */
export async function audited<R extends Record<string, unknown>>(db: Queryable, sql: string, params: unknown[], entry: AuditEntry) {
  const n = params.length;
  return db.query<R>(
    withLoggedWrite(
      sql,
      `INSERT INTO audit_events (team_id, actor_id, action, target_type, target_id, details)
       SELECT $${n + 1}, $${n + 2}, $${n + 3}, $${n + 4}, $${n + 5}, $${n + 6} WHERE EXISTS (SELECT 1 FROM changed)`,
    ),
    [...params, entry.teamId, entry.actorId, entry.action, entry.targetType, entry.targetId, JSON.stringify(entry.details ?? {})],
  );
}

/**
 * The team's events, newest first; `before` (one of the team's event ids) pages further back.
 * Undefined when `before` names no event of the team's.
 */
export async function listAuditEvents(
  db: Queryable,
  teamId: string,
  options: { limit: number; before?: string | undefined },
): Promise<AuditEvent[] | undefined> {
  let before: string | null = null;
  if (options.before !== undefined) {
    const { rows } = await db.query<{ seq: string }>('SELECT seq FROM audit_events WHERE team_id = $1 AND id = $2', [
      teamId,
      options.before,
    ]);
    if (!rows[0]) return undefined;
    before = rows[0].seq;
  }
  const { rows } = await db.query<MappedRow>(
    'SELECT * FROM audit_events WHERE team_id = $1 AND ($2::bigint IS NULL OR seq < $2) ORDER BY seq DESC LIMIT $3',
    [teamId, before, options.limit],
  );
  return rows.map((row) => ({
    id: row.id,
    teamId: row.team_id,
    actorId: row.actor_id,
    action: row.action,
    targetType: row.target_type,
    targetId: row.target_id,
    details: row.details,
    createdAt: row.created_at,
  }));
}
