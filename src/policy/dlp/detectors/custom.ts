// Custom detectors from configuration: an id, a regex and its flags. The regex is
// compiled once at load (safe-regex.ts rejects what could hang the scanner) and
// counts every non-overlapping match. The id must not clash with a built-in one.
import type { Detector } from '../detector.ts';
import { DlpConfigError, regexDetector } from '../detector.ts';
import { compileSafeRegex } from '../safe-regex.ts';

export interface CustomDetectorSpec {
  /** Letters, digits, ".", "_" and "-"; what rules name in `match.dlp`. */
  readonly id: string;
  /** JavaScript regex source, e.g. "\\bPROJ-\\d{4}\\b". */
  readonly pattern: string;
  /** Any of i, m, s, u; g is always added. */
  readonly flags?: string;
  readonly description?: string;
}

export const DETECTOR_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function customDetector(spec: CustomDetectorSpec): Detector {
  if (!DETECTOR_ID.test(spec.id)) {
    throw new DlpConfigError(`dlp.custom: detector id "${spec.id}" must be 1–64 letters, digits, ".", "_" or "-"`);
  }
  const re = compileSafeRegex(spec.pattern, spec.flags ?? '', `dlp.custom "${spec.id}"`);
  return regexDetector(spec.id, spec.description ?? `custom pattern ${spec.id}`, re);
}
