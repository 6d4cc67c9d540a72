// Compiling the regexes of DLP settings (custom detectors, the MRN id pattern).
// Linear-time matching comes from user-regex.ts (RE2), as for every pattern an
// operator writes; what is left here is what only a detector needs: a pattern
// must not be empty and must not match the empty string, or it would count a
// hit at every position of every message.
import { compileUserRegex, UserRegexError, type UserRegex } from '../user-regex.ts';
import { DlpConfigError } from './detector.ts';

/** Compiles a detector's `pattern` with `flags` (any of i, m, s, u), or throws a UserRegexError saying why. */
export function checkDetectorRegex(pattern: string, flags: string): UserRegex {
  if (pattern.length === 0) throw new UserRegexError('the pattern is empty');
  const re = compileUserRegex(pattern, flags);
  for (const probe of ['', 'x 1']) {
    const m = re.search(probe).find(0);
    if (m !== null && m.end === m.index) throw new UserRegexError('the pattern matches the empty string');
  }
  return re;
}

/** As checkDetectorRegex, but a problem is a DlpConfigError naming `what` (e.g. `dlp.custom "x"`). */
export function compileDetectorRegex(pattern: string, flags: string, what: string): UserRegex {
  try {
    return checkDetectorRegex(pattern, flags);
  } catch (err) {
    if (err instanceof UserRegexError) throw new DlpConfigError(`${what}: ${err.message}`);
    throw err;
  }
}
