// Custom detectors from configuration: an id, a regex and its flags. The regex is
// compiled once at load, for RE2 (linear time on any text, see user-regex.ts), and
// counts every non-overlapping match. The id must not clash with a built-in one.
import type { Detector } from '../detector.ts';
import { DlpConfigError, userRegexDetector } from '../detector.ts';
import { compileDetectorRegex } from '../safe-regex.ts';

export interface CustomDetectorSpec {
  /** Letters, digits, ".", "_" and "-"; what rules name in `match.dlp`. */
  readonly id: string;
  /** RE2 regex source (no backreferences or lookaround), e.g. "\\bPROJ-\\d{4}\\b". */
  readonly pattern: string;
  /** Any of i, m, s, u. */
  readonly flags?: string;
  readonly description?: string;
}

export const DETECTOR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function customDetector(spec: CustomDetectorSpec): Detector {
  if (!DETECTOR_ID.test(spec.id)) {
    throw new DlpConfigError(`dlp.custom: detector id "${spec.id}" must be 1–64 letters, digits, ".", "_" or "-"`);
  }
  const re = compileDetectorRegex(spec.pattern, spec.flags ?? '', `dlp.custom "${spec.id}"`);
  return userRegexDetector(spec.id, spec.description ?? `custom pattern ${spec.id}`, re);
}
