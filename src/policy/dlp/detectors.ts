// The detector set a relay runs: the built-in detectors that are enabled, each
// with its options, plus the custom ones. Built once when the policy loads, so
// a bad setting fails the load (DlpConfigError) instead of a message.
import { DlpConfigError, type Detector } from './detector.ts';
import { creditCardDetector } from './detectors/credit-card.ts';
import { customDetector, type CustomDetectorSpec } from './detectors/custom.ts';
import { dobDetector, type DobOptions } from './detectors/dob.ts';
import { icd10Detector } from './detectors/icd10.ts';
import { mrnDetector, type MrnOptions } from './detectors/mrn.ts';
import { ssnDetector } from './detectors/ssn.ts';

export type { Detector } from './detector.ts';
export { DlpConfigError } from './detector.ts';
export type { CustomDetectorSpec } from './detectors/custom.ts';
export type { DobOptions } from './detectors/dob.ts';
export type { MrnOptions } from './detectors/mrn.ts';

export const BUILTIN_DETECTOR_IDS = ['ssn', 'credit-card', 'mrn', 'icd10', 'dob'] as const;
export type BuiltinDetectorId = (typeof BUILTIN_DETECTOR_IDS)[number];

export interface DetectorOptions {
  /** Built-in detectors to run (default: all of BUILTIN_DETECTOR_IDS). */
  readonly builtins?: readonly string[];
  readonly mrn?: MrnOptions;
  readonly dob?: DobOptions;
  readonly custom?: readonly CustomDetectorSpec[];
}

function builtin(id: BuiltinDetectorId, options: DetectorOptions): Detector {
  switch (id) {
    case 'ssn':
      return ssnDetector;
    case 'credit-card':
      return creditCardDetector;
    case 'mrn':
      return mrnDetector(options.mrn);
    case 'icd10':
      return icd10Detector;
    case 'dob':
      return dobDetector(options.dob);
  }
}

const isBuiltinId = (id: string): id is BuiltinDetectorId => (BUILTIN_DETECTOR_IDS as readonly string[]).includes(id);

/** The detectors to scan with; throws DlpConfigError on an unknown or duplicate id or an unusable pattern. */
export function buildDetectors(options: DetectorOptions = {}): Detector[] {
  const detectors: Detector[] = [];
  for (const id of options.builtins ?? BUILTIN_DETECTOR_IDS) {
    if (!isBuiltinId(id)) throw new DlpConfigError(`dlp.detectors: unknown detector "${id}" (built-in: ${BUILTIN_DETECTOR_IDS.join(', ')})`);
    detectors.push(builtin(id, options));
  }
  for (const spec of options.custom ?? []) {
    if (isBuiltinId(spec.id)) throw new DlpConfigError(`dlp.custom: "${spec.id}" is the id of a built-in detector; choose another`);
    detectors.push(customDetector(spec));
  }
  const seen = new Set<string>();
  for (const d of detectors) {
    if (seen.has(d.id)) throw new DlpConfigError(`dlp: detector "${d.id}" is listed twice`);
    seen.add(d.id);
  }
  return detectors;
}
