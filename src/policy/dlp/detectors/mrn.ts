// Medical record numbers. MRN formats differ per hospital, so the detector is
// keyword-anchored: a keyword ("MRN", "medical record number", …) followed, after
// a few separator characters, by an id matching the configured pattern (default:
// an optional 1–3 letter prefix and 6–10 digits). A bare number without its
// keyword is never an MRN here. Keywords are literal phrases; the id pattern is a
// regex compiled under the same rules as custom detectors (safe-regex.ts).
import { regexDetector, type Detector } from '../detector.ts';
import { compileSafeRegex } from '../safe-regex.ts';

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
  compileSafeRegex(idSource, 'i', 'dlp.mrn.id_pattern'); // validates the pattern alone, with a clear error
  if (keywords.length === 0) return regexDetector('mrn', 'medical record number (no keywords configured)', /(?!)/g);
  // keyword, up to 6 separators (": ", " #", " (", …), an optional "is"/"was", then the id.
  const source = `(?<![A-Za-z0-9])(?:${keywords.join('|')})[\\s:#=.(-]{0,6}(?:(?:is|was)\\s+)?(?:${idSource})(?![A-Za-z0-9])`;
  return regexDetector('mrn', 'medical record number after an MRN keyword', compileSafeRegex(source, 'i', 'dlp.mrn'));
}
