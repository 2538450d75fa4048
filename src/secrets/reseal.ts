/**
 * The start's one-off step for the v2 format: every value still sealed as v1 (no additional
 * data) is opened and sealed again as v2, bound to its row and column.
 *
 * Each value is replaced by a compare-and-set (`WHERE <column> = <the v1 value read>`), so a
 * write that lands between the read and the update wins and is never overwritten; rows are
 * visited by id, so a value that does not open (logged, left as it is) is not retried in a loop.
 * It is safe to stop at any point: what is left is still v1 and the next start carries on, and
 * two nodes starting together only race to write the same thing. Once it has run, the box
 * refuses v1: a v1 value that appears later was not written by this version.
 */
import type { Queryable } from '../db/database.ts';
import type { SealedColumn } from './sealed-columns.ts';
import type { SealContext, SecretBox, SecretBoxLogger } from './secret-box.ts';

const BATCH = 200;

export interface ResealLogger extends SecretBoxLogger {
  info(details: Record<string, unknown>, message: string): void;
}

export interface ResealSummary {
  resealed: number;
  /** v1 values that do not open with this key; left in place. */
  unopenable: number;
}

/** Re-seals every v1 value of `columns` as v2, then retires v1 in `box`. */
export async function resealLegacySecrets(
  db: Queryable,
  box: SecretBox,
  columns: readonly SealedColumn[],
  logger?: ResealLogger,
): Promise<ResealSummary> {
  const summary: ResealSummary = { resealed: 0, unopenable: 0 };
  for (const column of columns) await resealColumn(db, box, column, summary);
  box.retireLegacy();
  if (summary.resealed > 0 || summary.unopenable > 0) logger?.info({ ...summary }, 're-sealed v1 secrets in the v2 format');
  return summary;
}

async function resealColumn(db: Queryable, box: SecretBox, sealedColumn: SealedColumn, summary: ResealSummary): Promise<void> {
  // Names from the fixed list in sealed-columns.ts, never from input.
  const { table, idColumn, column } = sealedColumn;
  let after = '';
  for (;;) {
    const { rows } = await db.query<{ id: string; sealed: string }>(
      `SELECT ${idColumn} AS id, ${column} AS sealed FROM ${table}
        WHERE ${column} LIKE 'v1:%' AND ${idColumn} > $1 ORDER BY ${idColumn} LIMIT ${BATCH}`,
      [after],
    );
    for (const row of rows) {
      const context = { table, id: row.id, column } as SealContext;
      let resealed: string;
      try {
        resealed = box.reseal(row.sealed, context);
      } catch {
        summary.unopenable += 1; // the box logged it
        continue;
      }
      const { rowCount } = await db.query(`UPDATE ${table} SET ${column} = $1 WHERE ${idColumn} = $2 AND ${column} = $3`, [
        resealed,
        row.id,
        row.sealed,
      ]);
      if (rowCount) summary.resealed += 1;
    }
    if (rows.length < BATCH) return;
    after = rows.at(-1)!.id;
  }
}
