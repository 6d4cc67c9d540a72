// Times on the command line: `--since 1h` / `--since 2024-05-01T08:00Z`, and the
// short human ages and relative times shown in tables ("5m", "in 2h", "3d ago").

const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60 * 1000,
  h: 60 * 60 * 1000,
  d: 24 * 60 * 60 * 1000,
  w: 7 * 24 * 60 * 60 * 1000,
};

const DURATION = /^(?:\d+[smhdw])+$/;
/** Date, or date and time with optional seconds, fraction and zone (no zone = local time). */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** "90s", "30m", "1h30m", "2d", "1w" → milliseconds; null when it is not a duration. */
export function parseDuration(text: string): number | null {
  const t = text.trim().toLowerCase();
  if (!DURATION.test(t)) return null;
  let ms = 0;
  for (const [, n, unit] of t.matchAll(/(\d+)([smhdw])/g)) ms += Number(n) * (UNIT_MS[unit as string] ?? 0);
  return ms;
}

/** `--since`: a duration back from `now`, or an ISO 8601 date; ms since the epoch. Throws RangeError. */
export function parseSince(text: string, now = Date.now()): number {
  const duration = parseDuration(text);
  if (duration !== null) return now - duration;
  if (ISO_DATE.test(text.trim())) {
    const at = Date.parse(text.trim().replace(' ', 'T'));
    if (!Number.isNaN(at)) return at;
  }
  throw new RangeError(`expected a duration like 30m, 1h, 2d or an ISO date like 2024-05-01T08:00:00Z, got "${text}"`);
}

/** The largest whole unit: "45s", "5m", "2h", "3d". Negative values count as 0. */
export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/** "now" (within a second), "in 5m" or "5m ago". */
export function formatRelative(at: number, now = Date.now()): string {
  const delta = at - now;
  if (Math.abs(delta) < 1000) return 'now';
  return delta > 0 ? `in ${formatDuration(delta)}` : `${formatDuration(-delta)} ago`;
}

/** ISO 8601 in UTC to the second: 2024-05-01T08:00:00Z. Unparseable input is returned as is. */
export function isoSeconds(at: number | string): string {
  const ms = typeof at === 'number' ? at : Date.parse(at);
  return Number.isNaN(ms) ? String(at) : new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}
