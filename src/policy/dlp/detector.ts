// A DLP detector: an id that rules and records name, and a scan that counts its
// matches in a window of text. Policy: a detector reports how often it fired,
// never what it matched — no matched text leaves this folder, in results or logs.
import type { UserRegex } from '../user-regex.ts';

export interface Detector {
  /** Stable id used by rules (`match.dlp`), records and `policy explain`. */
  readonly id: string;
  readonly description: string;
  /**
   * Counts matches that start in [from, to) (default: the whole text). Text
   * outside that range is context only: it lets keywords and boundaries be seen
   * across the edges of overlapping windows without counting a match twice.
   */
  scan(text: string, from?: number, to?: number): number;
}

/** A DLP setting that cannot be used (bad regex, unknown detector id, …); the message says which and why. */
export class DlpConfigError extends Error {
  override readonly name = 'DlpConfigError';
}

/** Counts matches of a global regex that start in [from, to) and that `accept` keeps. */
export function countMatches(
  re: RegExp,
  text: string,
  from: number,
  to: number,
  accept?: (m: RegExpExecArray, text: string) => boolean,
): number {
  let count = 0;
  re.lastIndex = from;
  for (let m = re.exec(text); m !== null && m.index < to; m = re.exec(text)) {
    if (m[0].length === 0) re.lastIndex++;
    if (!accept || accept(m, text)) count++;
  }
  return count;
}

/** Whether `keyword` occurs within `before` characters before [start, end) or `after` characters after it. */
export function keywordNear(keyword: RegExp, text: string, start: number, end: number, before: number, after = 0): boolean {
  if (keyword.test(text.slice(Math.max(0, start - before), start))) return true;
  return after > 0 && keyword.test(text.slice(end, end + after));
}

/** Builds a detector from a global regex and an optional validator of each candidate. */
export function regexDetector(
  id: string,
  description: string,
  re: RegExp,
  accept?: (m: RegExpExecArray, text: string) => boolean,
): Detector {
  if (!re.global) throw new Error(`detector ${id}: its regex must be global`);
  return { id, description, scan: (text, from = 0, to = text.length) => countMatches(re, text, from, to, accept) };
}

/** Counts matches of an operator's pattern (RE2, linear time) that start in [from, to). */
export function countUserMatches(re: UserRegex, text: string, from: number, to: number): number {
  // Finding where matches are takes RE2's slower engines; whether there is one, its DFA: most
  // windows of most messages hold none, and are passed over at DFA speed.
  if (!re.test(text)) return 0;
  const search = re.search(text);
  let count = 0;
  for (let pos = from; pos <= text.length; ) {
    const m = search.find(pos);
    if (m === null || m.index >= to) break;
    count++;
    pos = m.end > m.index ? m.end : m.index + 1; // after an empty match, move on one, as a RegExp exec loop does
  }
  return count;
}

/** Builds a detector from an operator's pattern (custom detectors). */
export function userRegexDetector(id: string, description: string, re: UserRegex): Detector {
  return { id, description, scan: (text, from = 0, to = text.length) => countUserMatches(re, text, from, to) };
}
