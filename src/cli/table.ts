// Aligned plain-text tables for terminal output (queue, log). Columns are padded
// to their widest cell and separated by two spaces; numbers may be right-aligned.
// Callers truncate long cells themselves, because only they know what may be cut.

export interface Column {
  readonly header: string;
  readonly align?: 'left' | 'right';
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
