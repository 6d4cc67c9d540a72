// The one-time code of the portal's proof of address: a number of `digits`
// decimal digits, drawn uniformly by the CSPRNG (crypto.randomInt rejects the
// biased tail, so every code is equally likely), sent to the recipient's address
// (code-email.ts) and kept by the store only as a hash bound to its item.
//
// Why a plain SHA-256 and not a slow hash: a code lives minutes (portal.code.
// lifetime_seconds), allows a handful of tries, and opens nothing alone — the link's
// token (stored hashed) and the master key are needed too. Binding the item id in
// makes one item's hash useless for another.
import { createHash, randomInt } from 'node:crypto';

/** The fewest digits a code may have, whatever the config says (issue 13: ≥ 6). */
export const MIN_CODE_DIGITS = 6;
/** randomInt's bound is below 2^48: 10^14 is the most digits it can draw at once. */
const MAX_CODE_DIGITS = 14;

/** A fresh code of `digits` (at least MIN_CODE_DIGITS) decimal digits, leading zeros kept. */
export function newCode(digits: number): string {
  const n = Math.max(MIN_CODE_DIGITS, Math.trunc(digits));
  if (n > MAX_CODE_DIGITS) throw new RangeError(`a code has at most ${MAX_CODE_DIGITS} digits`);
  return randomInt(0, 10 ** n).toString().padStart(n, '0');
}

/** What the store keeps of `code` for item `itemId`. */
export function hashCode(itemId: string, code: string): Buffer {
  return createHash('sha256').update(`sealrelay/portal/code/v1\0${itemId}\0${code}`, 'utf8').digest();
}

/**
 * The digits a person typed, or null when it is not a code (MIN_CODE_DIGITS to
 * MAX_CODE_DIGITS digits: a code sent before a change of portal.code.digits still reads).
 * Spaces and dashes are forgiven (people copy "123 456" or "123-456").
 */
export function readCode(typed: unknown): string | null {
  if (typeof typed !== 'string' || typed.length > 64) return null;
  const plain = typed.replace(/[\s-]/g, '');
  return new RegExp(`^[0-9]{${MIN_CODE_DIGITS},${MAX_CODE_DIGITS}}$`).test(plain) ? plain : null;
}
