// US Social Security numbers. The dashed form NNN-NN-NNNN counts anywhere; the
// bare (123456789) and spaced (123 45 6789) forms only within a few words of a
// keyword such as "SSN", because nine-digit numbers are common (order ids, ZIP+4
// without a dash, routing numbers). Every form must pass the SSA's structural
// rules: area not 000, 666 or 900–999; group not 00; serial not 0000. Numbers
// that are structurally valid but famous (078-05-1120, the Woolworth wallet
// card) still count: someone who writes one in mail is leaking the pattern.
import { keywordNear, regexDetector, type Detector } from '../detector.ts';

/** How far before (after) a bare or spaced number a keyword may stand, in characters. */
const KEYWORD_BEFORE_CHARS = 40;
const KEYWORD_AFTER_CHARS = 16;

const KEYWORD = /\b(?:SSNs?|SSAN|SS#|social\s+security(?:\s+(?:numbers?|nos?\.?|#))?|soc\.?\s*sec\.?)(?![a-z])/i;

// One pass for all forms: the separator ("-", " " or none) is captured and must
// repeat. Not part of a longer number, date, phone or version string.
const CANDIDATE = /(?<![\w+\-/.]|\d[ ])(\d{3})([- ]?)(\d{2})\2(\d{4})(?![\w]|[-/.]\d|[ ]\d)/g;

export function isValidSsn(area: number, group: number, serial: number): boolean {
  return area !== 0 && area !== 666 && area < 900 && group !== 0 && serial !== 0;
}

export const ssnDetector: Detector = regexDetector('ssn', 'US Social Security number', CANDIDATE, (m, text) => {
  if (!isValidSsn(Number(m[1]), Number(m[3]), Number(m[4]))) return false;
  if (m[2] === '-') return true;
  return keywordNear(KEYWORD, text, m.index, m.index + m[0].length, KEYWORD_BEFORE_CHARS, KEYWORD_AFTER_CHARS);
});
