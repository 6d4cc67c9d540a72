// Scanning a part's text in overlapping windows. Each step hands the detectors
// WINDOW_CHARS of new text plus OVERLAP_CHARS of context on each side, and counts
// only matches that start in the new text: a number split across two chunks is
// found once, and a keyword just before a window edge is still seen. Memory per
// part stays at about one window; the time budget is checked after every window.
// Text is normalised first so look-alike characters cannot hide a match: Unicode
// dashes become "-", exotic spaces " ", full-width digits ASCII, and invisible
// characters (soft hyphen, zero-width space/joiners, BOM) are removed.
import type { Detector } from './detector.ts';

/** New text scanned per step; also bounds the input of any one regex run (with 2 × OVERLAP_CHARS). */
export const WINDOW_CHARS = 16 * 1024;
/** Context on each side of a window; the longest match or keyword reach a detector can rely on. */
export const OVERLAP_CHARS = 512;

export type StopReason = 'maxMs' | 'maxBytes' | 'structure';

/** Shared by every window of one scan: the deadline, and why the scan stopped early (null: it did not). */
export interface Budget {
  readonly deadline: number;
  stopped: StopReason | null;
}

export function overBudget(budget: Budget): boolean {
  if (budget.stopped === null && performance.now() > budget.deadline) budget.stopped = 'maxMs';
  return budget.stopped !== null;
}

const LOOKALIKE = /[\u00a0\u00ad\u1680\u2000-\u200f\u2010-\u2015\u2028-\u202f\u205f-\u2064\u2066-\u2069\u2212\u3000\ufe58\ufe63\ufeff\uff0d\uff10-\uff19]/g;

function plain(c: string): string {
  const cp = c.charCodeAt(0);
  if (cp >= 0xff10) return String.fromCharCode(cp - 0xff10 + 48); // full-width digits
  const invisible = cp === 0xad || cp === 0xfeff || (cp >= 0x200b && cp <= 0x200f) || (cp >= 0x202a && cp <= 0x202e) || (cp >= 0x2060 && cp <= 0x2069);
  if (invisible) return ''; // soft hyphen, zero-width and direction marks, BOM
  if ((cp >= 0x2010 && cp <= 0x2015) || cp === 0x2212 || cp === 0xfe58 || cp === 0xfe63 || cp === 0xff0d) return '-';
  return ' ';
}

export function normalizeText(text: string): string {
  return text.replace(LOOKALIKE, plain);
}

export class WindowScanner {
  private buffer = '';
  private start = 0; // where the text not yet scanned begins in buffer

  /** Adds each window's matches to counts[i] for detectors[i] as it goes, so a scan stopped midway keeps them. */
  constructor(
    private readonly detectors: readonly Detector[],
    private readonly counts: number[],
    private readonly budget: Budget,
  ) {}

  push(text: string): void {
    if (this.budget.stopped) return;
    this.buffer += normalizeText(text);
    while (this.buffer.length - this.start >= WINDOW_CHARS + OVERLAP_CHARS && !this.budget.stopped) {
      this.scan(this.start + WINDOW_CHARS, this.start + WINDOW_CHARS + OVERLAP_CHARS);
    }
  }

  /** Scans what is left (unless the budget is spent). */
  end(): void {
    if (!this.budget.stopped && this.buffer.length > this.start) this.scan(this.buffer.length, this.buffer.length);
    this.buffer = '';
  }

  private scan(to: number, contextEnd: number): void {
    const text = this.buffer.slice(0, contextEnd);
    this.detectors.forEach((d, i) => (this.counts[i]! += d.scan(text, this.start, to)));
    const keep = Math.max(0, to - OVERLAP_CHARS);
    this.buffer = this.buffer.slice(keep);
    this.start = to - keep;
    overBudget(this.budget);
  }
}
