// Time zone arithmetic for report buckets, with nothing but Intl: the zone's
// offset at an instant, where it changes inside a window (DST), and local
// labels. Offsets are whole quarter hours in every zone in use today (India
// +05:30, Nepal +05:45, Chatham +12:45), so a change falls on a quarter-hour
// slot boundary (counts.ts SLOT_MS) and local hours and days are whole slots.
import { SLOT_MS } from './counts.ts';

/** One zone offset in force from `fromSlot` on (slot = ms / SLOT_MS), until the next one. */
export interface ZoneOffset {
  readonly fromSlot: number;
  /** Local time minus UTC, in ms. */
  readonly offsetMs: number;
}

const MINUTE_MS = 60_000;
const HOUR_MS = 60 * MINUTE_MS;
const DAY_MS = 24 * HOUR_MS;
/** How far apart the offset is sampled when looking for changes: no zone changes twice within it. */
const SAMPLE_MS = 6 * HOUR_MS;

const formatters = new Map<string, Intl.DateTimeFormat>();

/** `name` when Intl knows it as a time zone (kept as given: Intl would make Asia/Kolkata "Asia/Calcutta"); else a TypeError naming it. */
export function checkTimeZone(name: string): string {
  try {
    formatter(name);
    return name;
  } catch {
    throw new TypeError(`report: unknown time zone "${name}" (expected an IANA name like Europe/Berlin or UTC)`);
  }
}

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone, hourCycle: 'h23', year: 'numeric', month: 'numeric', day: 'numeric', hour: 'numeric', minute: 'numeric', second: 'numeric' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Local time minus UTC at `at` (ms), to the minute. */
export function offsetAt(timeZone: string, at: number): number {
  const part: Record<string, number> = {};
  for (const p of formatter(timeZone).formatToParts(at)) if (p.type !== 'literal') part[p.type] = Number(p.value);
  const local = Date.UTC(part.year!, part.month! - 1, part.day!, part.hour!, part.minute!, part.second!);
  return Math.round((local - Math.floor(at / 1000) * 1000) / MINUTE_MS) * MINUTE_MS;
}

/** The zone's offsets over slots [fromSlot, toSlot): the first from fromSlot, then one per change. */
export function zoneOffsets(timeZone: string, fromSlot: number, toSlot: number): ZoneOffset[] {
  const offsets: ZoneOffset[] = [{ fromSlot, offsetMs: offsetAt(timeZone, fromSlot * SLOT_MS) }];
  const stepSlots = SAMPLE_MS / SLOT_MS;
  for (let slot = fromSlot; slot < toSlot; slot += stepSlots) {
    const next = Math.min(slot + stepSlots, toSlot);
    const current = offsets[offsets.length - 1]!.offsetMs;
    if (offsetAt(timeZone, next * SLOT_MS) === current) continue;
    // The first slot after `slot` with the new offset.
    let [lo, hi] = [slot, next];
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      if (offsetAt(timeZone, mid * SLOT_MS) === current) lo = mid;
      else hi = mid;
    }
    if (hi < toSlot) offsets.push({ fromSlot: hi, offsetMs: offsetAt(timeZone, hi * SLOT_MS) });
  }
  return offsets;
}

/** "+05:30", "-04:00", "+00:00". */
function formatOffset(offsetMs: number): string {
  const minutes = Math.abs(offsetMs) / MINUTE_MS;
  return `${offsetMs < 0 ? '-' : '+'}${String(Math.floor(minutes / 60)).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** `at` as local ISO 8601 with the zone's offset: "2026-03-08T00:00:00-05:00". */
export function localIso(timeZone: string, at: number): string {
  const offset = offsetAt(timeZone, at);
  return `${new Date(at + offset).toISOString().slice(0, 19)}${formatOffset(offset)}`;
}

/** The instant local day `day` (days since 1970-01-01 on the local calendar) begins. */
export function localDayStart(timeZone: string, day: number): number {
  const midnight = day * DAY_MS;
  const guess = midnight - offsetAt(timeZone, midnight);
  return midnight - offsetAt(timeZone, guess);
}
