// Date of birth: a calendar date within a few words of a birth keyword ("DOB",
// "date of birth", "born", …). Dates alone are everywhere in mail (appointments,
// invoices) and never count. Recognised dates: 03/14/1975, 14.03.75, 1975-03-14,
// March 14, 1975 and 14 Mar 1975; day and month must be possible in one of the
// two orders, and a four-digit year must lie between 1880 and this year.
// The search starts from the keywords, which are rare, and looks for dates only
// around them: a date regex run over all text would cost more than every other
// detector together.
import type { Detector } from '../detector.ts';

export interface DobOptions {
  /** How many characters before a date a birth keyword may stand (default 40). */
  readonly withinChars?: number;
}

const DEFAULT_WITHIN_CHARS = 40;
/** After the date only a short note like " (DOB)" counts. */
const KEYWORD_AFTER_CHARS = 12;
const OLDEST_YEAR = 1880;

const KEYWORD = /\b(?:DOB|D\.O\.B\.?|date\s+of\s+birth|birth\s*date|birthday|born(?:\s+on)?)(?![a-z])/gi;
/** The longest date the regex below accepts ("14th September, 1975"), in characters. */
const LONGEST_DATE_CHARS = 24;

const MONTH = '(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\\.?';
const ORDINAL = '(?:st|nd|rd|th)?';
const DATE = new RegExp(
  '(?<![\\d/.\\-])(?:' +
    '(\\d{1,2})([/.\\-])(\\d{1,2})\\2(\\d{4}|\\d{2})' + // 1 a, 2 sep, 3 b, 4 year
    '|(\\d{4})-(\\d{1,2})-(\\d{1,2})' + // 5 year, 6 month, 7 day
    `|${MONTH}\\s+(\\d{1,2})${ORDINAL},?\\s+(\\d{4})` + // 8 day, 9 year
    `|(\\d{1,2})${ORDINAL}\\s+${MONTH},?\\s+(\\d{4})` + // 10 day, 11 year
    ')(?![\\d]|[/.\\-]\\d)',
  'gi',
);

const between = (n: number, lo: number, hi: number): boolean => n >= lo && n <= hi;
const plausibleYear = (y: string): boolean => y.length === 2 || between(Number(y), OLDEST_YEAR, new Date().getFullYear());

function plausibleDate(m: RegExpExecArray): boolean {
  if (m[1] !== undefined) {
    const a = Number(m[1]);
    const b = Number(m[3]);
    const dayMonth = (between(a, 1, 12) && between(b, 1, 31)) || (between(a, 1, 31) && between(b, 1, 12));
    return dayMonth && plausibleYear(m[4]!);
  }
  if (m[5] !== undefined) return plausibleYear(m[5]) && between(Number(m[6]), 1, 12) && between(Number(m[7]), 1, 31);
  const day = Number(m[8] ?? m[10]);
  return between(day, 1, 31) && plausibleYear((m[9] ?? m[11])!);
}

export function dobDetector(options: DobOptions = {}): Detector {
  const within = options.withinChars ?? DEFAULT_WITHIN_CHARS;
  const keyword = new RegExp(KEYWORD.source, KEYWORD.flags);
  const date = new RegExp(DATE.source, DATE.flags);
  return {
    id: 'dob',
    description: 'date of birth (a date near a birth keyword)',
    scan(text, from = 0, to = text.length) {
      const found = new Set<number>(); // where each counted date starts: two keywords near one date count it once
      /** Dates starting in [lo, hi] whose end passes `endOk`; `region` stops the regex soon after hi. */
      const dates = (lo: number, hi: number, endOk: (end: number) => boolean): void => {
        const region = text.slice(0, hi + LONGEST_DATE_CHARS + 16);
        date.lastIndex = Math.max(0, lo);
        for (let m = date.exec(region); m !== null && m.index <= hi; m = date.exec(region)) {
          if (m.index >= from && m.index < to && endOk(m.index + m[0].length) && plausibleDate(m)) found.add(m.index);
        }
      };
      keyword.lastIndex = Math.max(0, from - within);
      for (let k = keyword.exec(text); k !== null && k.index < to + LONGEST_DATE_CHARS + KEYWORD_AFTER_CHARS; k = keyword.exec(text)) {
        const kEnd = k.index + k[0].length;
        // The keyword within `within` characters before the date…
        dates(kEnd, k.index + within, () => true);
        // …or within KEYWORD_AFTER_CHARS after it (" (DOB)").
        dates(kEnd - KEYWORD_AFTER_CHARS - LONGEST_DATE_CHARS, k.index - 1, (end) => end <= k.index && end + KEYWORD_AFTER_CHARS >= kEnd);
      }
      return found.size;
    },
  };
}
