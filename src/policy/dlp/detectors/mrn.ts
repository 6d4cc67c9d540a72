// Medical record numbers. MRN formats differ per hospital, so the detector is
// keyword-anchored: a keyword ("MRN", "medical record number", …) followed, after
// a few separator characters, by an id matching the configured pattern (default:
// an optional 1–3 letter prefix and 6–10 digits). A bare number without its
// keyword is never an MRN here. Keywords are literal phrases, found with a
// JavaScript regex; the id pattern is an operator's regex, so what follows each
// keyword is matched with RE2 (linear time, see user-regex.ts).
import { regexDetector, type Detector } from '../detector.ts';
import { compileDetectorRegex } from '../safe-regex.ts';

export interface MrnOptions {
  /** Literal phrases that announce an MRN; whitespace in them matches any run of whitespace. */
  readonly keywords?: readonly string[];
  /** Regex source for the id itself (case-insensitive), e.g. "\\d{8}" or "[A-Z]{2}\\d{6}". */
  readonly idPattern?: string;
}

export const DEFAULT_MRN_KEYWORDS: readonly string[] = [
  'MRN',
  'medical record number',
  'medical record no',
  'medical record #',
  'medical record',
  'med rec no',
  'med rec #',
  'med rec',
];
export const DEFAULT_MRN_ID_PATTERN = '(?:[A-Z]{1,3}-?)?\\d{6,10}';

const escapeRegex = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

export function mrnDetector(options: MrnOptions = {}): Detector {
  const keywords = [...(options.keywords ?? DEFAULT_MRN_KEYWORDS)]
    .map((k) => k.trim())
    .filter((k) => k.length > 0)
    .sort((a, b) => b.length - a.length) // longest first, so "medical record number" wins over "medical record"
    .map((k) => escapeRegex(k).replace(/\s+/g, '\\s+'));
  const idSource = options.idPattern ?? DEFAULT_MRN_ID_PATTERN;
  compileDetectorRegex(idSource, 'i', 'dlp.mrn.id_pattern'); // validates the pattern alone, with a clear error
  if (keywords.length === 0) return regexDetector('mrn', 'medical record number (no keywords configured)', /(?!)/g);
  const keyword = `(?:${keywords.join('|')})`;
  // Where a keyword starts, not glued to a letter or digit before it: our own pattern (escaped
  // phrases), so JavaScript's fast engine, and keywords are rare, so the next step runs seldom.
  const keywordAt = new RegExp(`(?<![A-Za-z0-9])${keyword}`, 'gi');
  // From there: the keyword, up to 6 separators (": ", " #", " (", …), an optional "is"/"was", the
  // id (group 1), then a character that is not a letter or digit, or the end — the lookahead
  // (?![A-Za-z0-9]) RE2 lacks; leftmost-first matching picks the same id as the lookahead would.
  // RE2, because the id pattern is the operator's.
  const fromKeyword = compileDetectorRegex(`${keyword}[\\s:#=.(-]{0,6}(?:(?:is|was)\\s+)?(${idSource})(?:[^A-Za-z0-9]|$)`, 'i', 'dlp.mrn');
  return {
    id: 'mrn',
    description: 'medical record number after an MRN keyword',
    scan(text, from = 0, to = text.length) {
      let count = 0;
      keywordAt.lastIndex = from;
      for (let k = keywordAt.exec(text); k !== null && k.index < to; k = keywordAt.exec(text)) {
        const m = fromKeyword.matchStart(text.slice(k.index));
        // No id after it: look for a keyword from the next character on (as a regex would). After an
        // id, from its end: the boundary character after it is left for the next match, as a lookahead leaves it.
        keywordAt.lastIndex = k.index + (m === null ? 1 : m.groupEnd(1));
        if (m !== null) count++;
      }
      return count;
    },
  };
}
