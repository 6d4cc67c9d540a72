// Aligned plain-text tables for terminal output (queue, log). Columns are padded
// to their widest cell and separated by two spaces; numbers may be right-aligned.
// Callers truncate long cells themselves, because only they know what may be cut.

export interface Column {
  readonly header: string;
  readonly align?: 'left' | 'right';
  /** fitWidths may narrow this column down to `min` characters first; the others only if that is not enough. */
  readonly min?: number;
}

const GAP = '  ';

/** Each column's width: its widest cell or header, and never narrower than `atLeast` (a table that grows as rows arrive). */
export function columnWidths(columns: readonly Column[], rows: readonly (readonly string[])[], atLeast: readonly number[] = []): number[] {
  return columns.map((c, i) => Math.max(c.header.length, atLeast[i] ?? 0, ...rows.map((r) => (r[i] ?? '').length)));
}

/** The table as text; `header: false` and `widths` print more rows of a table already on screen. */
export function renderTable(
  columns: readonly Column[],
  rows: readonly (readonly string[])[],
  opts: { header?: boolean; widths?: readonly number[] } = {},
): string {
  const widths = opts.widths ?? columnWidths(columns, rows);
  const line = (cells: readonly string[]) =>
    columns
      .map((c, i) => {
        const cell = cells[i] ?? '';
        const width = widths[i] ?? 0;
        return c.align === 'right' ? cell.padStart(width) : cell.padEnd(width);
      })
      .join(GAP)
      .trimEnd();
  return [...(opts.header === false ? [] : [line(columns.map((c) => c.header))]), ...rows.map(line)].join('\n');
}

/** Shortens to `max` characters, marking the cut with an ellipsis; newlines become spaces. */
export function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, Math.max(0, max - 1)).trimEnd()}…`;
}

/**
 * Widths (from columnWidths) narrowed until a line, gaps included, is at most `maxWidth`:
 * the widest of the columns with a `min` loses a character at a time, down to its min;
 * if that is not enough, down to its header's width; only then the other columns too.
 */
export function fitWidths(columns: readonly Column[], widths: readonly number[], maxWidth: number): number[] {
  const fitted = [...widths];
  const total = () => fitted.reduce((a, b) => a + b, 0) + GAP.length * (columns.length - 1);
  const header = (c: Column) => Math.max(1, c.header.length);
  for (const floor of [(c: Column) => c.min ?? Infinity, (c: Column) => (c.min === undefined ? Infinity : header(c)), header]) {
    while (total() > maxWidth) {
      let widest = -1;
      columns.forEach((c, i) => {
        if (fitted[i]! > floor(c) && (widest < 0 || fitted[i]! > fitted[widest]!)) widest = i;
      });
      if (widest < 0) break;
      fitted[widest]! -= 1;
    }
  }
  return fitted;
}

/** Each cell cut to its column's width (from fitWidths), the cut marked with an ellipsis. */
export function fitCells(rows: readonly (readonly string[])[], widths: readonly number[]): string[][] {
  return rows.map((r) => r.map((cell, i) => (cell.length > (widths[i] ?? Infinity) ? truncate(cell, widths[i]!) : cell)));
}
