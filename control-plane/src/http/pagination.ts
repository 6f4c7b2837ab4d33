import { AppError } from '@wpcp/shared/errors';

/**
 * Cursors are opaque to clients: base64url of the keyset position (a row's `seq`). A cursor
 * that does not decode is a `validation_failed`, like any other bad parameter.
 */
export function encodeCursor(seq: string): string {
  return Buffer.from(`s:${seq}`).toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined) return undefined;
  const match = /^s:(\d{1,19})$/.exec(Buffer.from(cursor, 'base64url').toString());
  if (!match) {
    throw new AppError('validation_failed', 'cursor is not one returned by a previous page', {
      details: [{ path: 'cursor', message: 'unknown cursor' }],
    });
  }
  return match[1];
}

/** Takes `limit + 1` rows and answers one page plus the cursor of the next, if there is one. */
export function page<Row extends { seq: string }, Item>(
  rows: Row[],
  limit: number,
  toItem: (row: Row) => Item,
) {
  const items = rows.slice(0, limit);
  const last = items.at(-1);
  return {
    items: items.map(toItem),
    next_cursor: rows.length > limit && last ? encodeCursor(last.seq) : null,
  };
}
