// Regular expressions written by operators (rule header regex, address globs,
// DLP custom detectors, the MRN id pattern) run on text that senders control, so
// they go through RE2 (re2js, pure JavaScript): matching takes time linear in the
// input whatever the pattern, where JavaScript's backtracking engine can take
// hours on a 40-character header against (a+)+$. The price is RE2 syntax: no
// backreferences and no lookaround, which is what makes linear time possible.
// Every user pattern is compiled here and nowhere else.
import { RE2JS, type Matcher } from 're2js';

/** Longer patterns are refused: nobody writes one by hand, and RE2's program grows with it. */
export const MAX_PATTERN_CHARS = 2000;
/** Flags a user pattern may carry, as in JavaScript: i (case), m (^ $ per line), s (. matches newline), u (accepted; RE2 is always Unicode-aware). */
const FLAG_BITS: Readonly<Record<string, number>> = { i: RE2JS.CASE_INSENSITIVE, m: RE2JS.MULTILINE, s: RE2JS.DOTALL, u: 0 };

const RE2_SYNTAX = 'it must be RE2 syntax (no backreferences like \\1, no lookahead or lookbehind)';

/** A pattern RE2 cannot compile, or flags it does not know; the message says why. */
export class UserRegexError extends Error {
  override readonly name = 'UserRegexError';
}

/** One match: where it starts and ends (UTF-16 offsets, as String indices), and its groups' ends. */
export interface UserMatch {
  readonly index: number;
  readonly end: number;
  /** End of capture group `n`, or -1 when the group took no part in the match; valid until the next find. */
  groupEnd(n: number): number;
}

/** Successive searches over one text (like a global RegExp's exec loop, but you say where each starts). */
export interface UserSearch {
  /** The leftmost match starting at or after `from`; text before `from` is still seen by ^, \b and the like. */
  find(from: number): UserMatch | null;
}

export interface UserRegex {
  readonly source: string;
  readonly flags: string;
  /** Whether the pattern matches anywhere in `text`. */
  test(text: string): boolean;
  search(text: string): UserSearch;
  /** The match that starts where `text` starts (anchored there), or null. */
  matchStart(text: string): UserMatch | null;
}

/**
 * Compiles an operator's pattern for linear-time matching, or throws a UserRegexError.
 * `\uXXXX` and `\u{X…}` (JavaScript escapes) are accepted and mean what they mean there.
 */
export function compileUserRegex(source: string, flags = ''): UserRegex {
  if (source.length > MAX_PATTERN_CHARS) throw new UserRegexError(`the pattern is longer than ${MAX_PATTERN_CHARS} characters`);
  let bits = 0;
  for (const [i, f] of [...flags].entries()) {
    const bit = FLAG_BITS[f];
    if (bit === undefined || flags.indexOf(f) !== i) throw new UserRegexError(`flags "${flags}" not allowed (use any of i, m, s, u once)`);
    bits |= bit;
  }
  let re: RE2JS;
  try {
    re = RE2JS.compile(unicodeEscapes(source), bits);
  } catch (err) {
    const why = (err as Error).message.replace(/^error parsing regexp: /, '');
    throw new UserRegexError(`invalid regular expression: ${RE2_SYNTAX}: ${why}`);
  }
  return {
    source,
    flags,
    test: (text) => re.test(text),
    search(text) {
      const m: Matcher = re.matcher(text);
      const groupEnd = (n: number): number => m.end(n);
      return { find: (from) => (m.find(from) ? { index: m.start(), end: m.end(), groupEnd } : null) };
    },
    matchStart(text) {
      const m: Matcher = re.matcher(text);
      return m.lookingAt() ? { index: 0, end: m.end(), groupEnd: (n) => m.end(n) } : null;
    },
  };
}

/** Rewrites JavaScript's \uXXXX and \u{X…} as RE2's \x{…}; everything else is left for RE2 to judge. */
function unicodeEscapes(source: string): string {
  if (!source.includes('\\u')) return source;
  let out = '';
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const m = /^u(?:([0-9A-Fa-f]{4})|\{([0-9A-Fa-f]{1,6})\})/.exec(source.slice(i + 1, i + 11));
    if (m) {
      out += `\\x{${m[1] ?? m[2]}}`;
      i += m[0].length;
    } else {
      out += source.slice(i, i + 2); // an escape pair stays a pair, so "\\u" is a backslash then "u"
      i++;
    }
  }
  return out;
}
