// Compiling regexes that come from configuration (custom detectors, the MRN id
// pattern). Policy: reject at load time, with the detector named, anything that
// cannot be compiled, that matches the empty string, that uses flags we control
// (g, y), or that nests variable repetition inside repetition — the shape behind
// catastrophic backtracking, e.g. (a+)+ or (\w*\s?)*. Alternations that overlap,
// like (a|ab)*, are not caught here: the scanner bounds every regex's input to a
// window of WINDOW_CHARS (windows.ts) and checks its time budget between windows.

import { DlpConfigError } from './detector.ts';

const MAX_PATTERN_CHARS = 2000;
const ALLOWED_FLAGS = /^[imsu]*$/;

/** Compiles `pattern` with `flags` plus "g", or throws a DlpConfigError naming `what`. */
export function compileSafeRegex(pattern: string, flags: string, what: string): RegExp {
  if (pattern.length === 0) throw new DlpConfigError(`${what}: the pattern is empty`);
  if (pattern.length > MAX_PATTERN_CHARS) throw new DlpConfigError(`${what}: the pattern is longer than ${MAX_PATTERN_CHARS} characters`);
  if (!ALLOWED_FLAGS.test(flags) || new Set(flags).size !== flags.length) {
    throw new DlpConfigError(`${what}: flags "${flags}" not allowed (use any of i, m, s, u once; g is always added)`);
  }
  let re: RegExp;
  try {
    re = new RegExp(pattern, `${flags}g`);
  } catch (err) {
    throw new DlpConfigError(`${what}: invalid regular expression: ${(err as Error).message}`);
  }
  if (nestedRepetition(pattern)) {
    throw new DlpConfigError(`${what}: a repeated group contains a variable repetition (like (a+)+), which can backtrack catastrophically; rewrite it without the nesting`);
  }
  for (const probe of ['', 'x 1']) {
    re.lastIndex = 0;
    if (re.exec(probe)?.[0] === '') throw new DlpConfigError(`${what}: the pattern matches the empty string`);
  }
  return re;
}

interface Quantifier {
  readonly length: number;
  readonly min: number;
  readonly max: number;
}

/** The quantifier starting at pattern[i], if any (`*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each maybe lazy). */
function quantifierAt(pattern: string, i: number): Quantifier | null {
  const c = pattern[i];
  let q: Quantifier | null = null;
  if (c === '*') q = { length: 1, min: 0, max: Infinity };
  else if (c === '+') q = { length: 1, min: 1, max: Infinity };
  else if (c === '?') q = { length: 1, min: 0, max: 1 };
  else if (c === '{') {
    const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i, i + 24));
    if (m) {
      const min = Number(m[1]);
      q = { length: m[0].length, min, max: m[2] === undefined ? min : m[3] ? Number(m[3]) : Infinity };
    }
  }
  if (q && pattern[i + q.length] === '?') q = { ...q, length: q.length + 1 };
  return q;
}

/** Whether a group repeated more than once contains a repetition of variable count. */
export function nestedRepetition(pattern: string): boolean {
  const varies: boolean[] = [false]; // per open group: contains a variable repetition
  let closedVaries = false; // the group just closed did, and nothing followed it yet
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    const justClosed = closedVaries;
    closedVaries = false;
    if (c === '\\') {
      i++;
    } else if (c === '[') {
      for (i++; i < pattern.length && pattern[i] !== ']'; i++) if (pattern[i] === '\\') i++;
    } else if (c === '(') {
      varies.push(false);
    } else if (c === ')') {
      const inner = varies.length > 1 ? (varies.pop() ?? false) : false;
      if (inner) varies[varies.length - 1] = true;
      closedVaries = inner;
    } else {
      const q = quantifierAt(pattern, i);
      if (!q) continue;
      if (justClosed && q.max > 1) return true;
      if (q.min !== q.max) varies[varies.length - 1] = true;
      i += q.length - 1;
    }
  }
  return false;
}
