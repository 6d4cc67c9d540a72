// ICD-10-CM diagnosis codes: a letter, a digit, a digit or A/B (C4A, M1A, Z3A),
// then optionally a dot and 1–4 characters (E11.9, J45.909, S72.001A). A bare
// three-character category (E11) looks like too many other things — grid cells,
// part numbers, seat numbers — so it counts only within a few words of a keyword
// ("ICD", "diagnosis", "dx"). The dotted form counts on its own but must be
// upper-case and stand alone: not glued to letters, digits, "-", "/", "#" or
// "_" (SKU-E11.9, AB12.5), not followed by a unit or another dot group
// (E11.9mm, E11.9.2 firmware versions).
import { keywordNear, regexDetector, type Detector } from '../detector.ts';

/** How far before (after) a bare category a keyword may stand, in characters. */
const KEYWORD_BEFORE_CHARS = 40;
const KEYWORD_AFTER_CHARS = 20;

const KEYWORD = /\b(?:ICD(?:-?1[01](?:-?CM)?)?|diagnos[ie]s|diagnostic\s+codes?|dx)(?![a-z])/i;

const CANDIDATE = /(?<![A-Za-z0-9.\-/#_])([A-Z]\d[\dAB])(\.[0-9A-Z]{1,4})?(?![A-Za-z0-9_]|[.\-/][A-Za-z0-9])/g;

export const icd10Detector: Detector = regexDetector('icd10', 'ICD-10-CM diagnosis code', CANDIDATE, (m, text) => {
  if (m[2] !== undefined) return true;
  return keywordNear(KEYWORD, text, m.index, m.index + m[0].length, KEYWORD_BEFORE_CHARS, KEYWORD_AFTER_CHARS);
});
