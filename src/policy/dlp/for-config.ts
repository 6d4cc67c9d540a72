// DLP as the relay runs it: the configured detectors, a scan per message only
// when some policy can act on a hit (a rule naming detectors, or dlp.escalate_to),
// and the hits of recent messages remembered so a message going to several
// domains is scanned once. A scan cut short by its budget reports the hit
// `incomplete`: a message that could not be cleared is never treated as clean.
import type { Config } from '../../config/schema.ts';
import { buildDetectors } from './detectors.ts';
import { scanMessage } from './scan.ts';

/** The pseudo-detector a truncated scan reports. */
export const INCOMPLETE_SCAN = 'incomplete';
/** Messages whose hits are remembered (one per message in flight is plenty). */
const REMEMBERED_MESSAGES = 256;

export interface DlpScanner {
  /** Detector ids that fired in the message (never what they matched). */
  hits(queueId: string, message: Buffer): Promise<readonly string[]>;
}

export function dlpScannerFor(config: Pick<Config, 'dlp' | 'policies'>): DlpScanner {
  const needed = config.dlp.escalate_to !== null || config.policies.rules.some((r) => r.match.dlp?.length);
  if (!needed) return { hits: async () => [] };
  const d = config.dlp;
  const detectors = buildDetectors({
    builtins: d.detectors,
    custom: d.custom,
    mrn: d.mrn && { keywords: d.mrn.keywords, idPattern: d.mrn.id_pattern },
    dob: d.dob && { withinChars: d.dob.within_chars },
  });
  const remembered = new Map<string, Promise<readonly string[]>>();
  return {
    hits(queueId, message) {
      let hits = remembered.get(queueId);
      if (!hits) {
        hits = scanMessage(message, detectors, { maxBytes: d.max_bytes, maxMs: d.max_ms }).then((r) => {
          const ids = [...new Set(r.hits.map((h) => h.detector))];
          return r.truncated ? [...ids, INCOMPLETE_SCAN] : ids;
        });
        remembered.set(queueId, hits);
        if (remembered.size > REMEMBERED_MESSAGES) remembered.delete(remembered.keys().next().value as string);
      }
      return hits;
    },
  };
}
