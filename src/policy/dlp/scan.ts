// DLP over a whole message: walks its MIME structure (mime-walker.ts), decodes
// each part that can hold readable text (parts.ts), and runs the detectors over
// it in overlapping windows (windows.ts). The result says which detector fired
// in which kind of part and how often — never what matched or where.
//
// Bounded: the scan reads at most `maxBytes` of the raw message and stops when
// `maxMs` have passed (checked after every window and every chunk); either sets
// `truncated`, which a caller must read as "could not clear the message", not as
// "clean". Hits found before the stop are kept. scanMessage yields to the event
// loop every YIELD_EVERY_MS, so a 20 MB message does not stall the relay.
import type { Detector } from './detector.ts';
import { charsetDecoder, transferDecoder } from './decode.ts';
import { HtmlText } from './html-text.ts';
import type { PartHeaders } from './mime-headers.ts';
import { MimeWalker, type BodySink } from './mime-walker.ts';
import { classifyPart, type DlpPart } from './parts.ts';
import { overBudget, WindowScanner, type Budget, type StopReason } from './windows.ts';

export type { DlpPart } from './parts.ts';

export interface DlpScanOptions {
  /** Raw message bytes read at most; past it the scan stops, truncated. */
  readonly maxBytes: number;
  /** Wall-clock time allowed; past it the scan stops, truncated. */
  readonly maxMs: number;
}

export interface DlpHit {
  readonly detector: string;
  readonly part: DlpPart;
  readonly count: number;
}

export interface DlpScanResult {
  /** One entry per detector and kind of part that fired: subject, text, html, attachment order, then detector order. */
  readonly hits: readonly DlpHit[];
  /** The message was not scanned to the end; hits may be missing. */
  readonly truncated: boolean;
  /** Why it was truncated: a limit of the options, or a structure too large to walk (header block, nesting). */
  readonly truncatedBy?: StopReason;
  readonly ms: number;
}

/** A scan fed chunk by chunk (e.g. while the message streams in); write returns false once it has stopped. */
export interface DlpScanner {
  write(chunk: Uint8Array): boolean;
  end(): DlpScanResult;
}

/** Raw bytes handed to the walker per step by scanMessage. */
const FEED_BYTES = 64 * 1024;
/** Longest stretch scanMessage runs without letting other work on the event loop. */
const YIELD_EVERY_MS = 10;
const PART_ORDER: readonly DlpPart[] = ['subject', 'text', 'html', 'attachment'];

export function createScanner(detectors: readonly Detector[], options: DlpScanOptions): DlpScanner {
  const started = performance.now();
  const budget: Budget = { deadline: started + options.maxMs, stopped: null };
  const counts = new Map<DlpPart, number[]>(PART_ORDER.map((p) => [p, detectors.map(() => 0)]));
  const scanText = (part: DlpPart, text: string): void => {
    const window = new WindowScanner(detectors, counts.get(part)!, budget);
    window.push(text);
    window.end();
  };
  const partSink = (headers: PartHeaders, embedded: boolean): BodySink | null => {
    const how = classifyPart(headers, embedded);
    if (!how) return null;
    const bytes = transferDecoder(headers.encoding);
    const chars = charsetDecoder(headers.params.get('charset'));
    const html = how.html ? new HtmlText() : null;
    const window = new WindowScanner(detectors, counts.get(how.part)!, budget);
    const push = (decoded: Buffer, final: boolean): void => {
      const text = chars.decode(decoded, { stream: !final });
      window.push(html ? html.write(text) + (final ? html.end() : '') : text);
    };
    return {
      write: (encoded) => {
        if (budget.stopped === null) push(bytes.write(encoded), false);
      },
      end: () => {
        if (budget.stopped === null) push(bytes.end(), true);
        window.end();
      },
    };
  };
  const walker = new MimeWalker({
    message: (headers, root) => headers.subject !== null && scanText(root ? 'subject' : 'attachment', headers.subject),
    part: partSink,
  });

  let read = 0;
  let cut = false; // maxBytes reached: what was read is still scanned to its end
  return {
    write(chunk) {
      if (cut || overBudget(budget)) return false;
      const room = options.maxBytes - read;
      read += chunk.byteLength;
      cut = read > options.maxBytes;
      walker.write(cut ? chunk.subarray(0, Math.max(0, room)) : chunk);
      if (walker.limited) budget.stopped ??= 'structure';
      return !cut && budget.stopped === null;
    },
    end() {
      if (budget.stopped === null) walker.end();
      const hits: DlpHit[] = [];
      for (const part of PART_ORDER) {
        counts.get(part)!.forEach((count, i) => count > 0 && hits.push({ detector: detectors[i]!.id, part, count }));
      }
      const truncatedBy = budget.stopped ?? (cut ? 'maxBytes' : undefined);
      const ms = Math.round((performance.now() - started) * 100) / 100;
      return truncatedBy ? { hits, truncated: true, truncatedBy, ms } : { hits, truncated: false, ms };
    },
  };
}

/** Scans a whole message held in memory; see the top of this file for the limits. */
export async function scanMessage(raw: Buffer, detectors: readonly Detector[], options: DlpScanOptions): Promise<DlpScanResult> {
  const scanner = createScanner(detectors, options);
  let lastYield = performance.now();
  for (let pos = 0; pos < raw.length; pos += FEED_BYTES) {
    if (!scanner.write(raw.subarray(pos, pos + FEED_BYTES))) break;
    if (performance.now() - lastYield >= YIELD_EVERY_MS) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
  }
  return scanner.end();
}
