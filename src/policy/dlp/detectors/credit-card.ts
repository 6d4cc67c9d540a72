// Payment card numbers (PAN): 13–19 digits, optionally grouped by single spaces
// or dashes, that pass the Luhn check and start with an issuer prefix (IIN) of a
// known scheme at a length that scheme issues. Guards against false positives:
// not part of a longer number; when grouped, one separator kind throughout, a
// first group of four digits and none under three (how every scheme prints
// them); a short number just before or a group just after (a quantity, a CVV)
// is tried off before giving up on the candidate.
import { regexDetector, type Detector } from '../detector.ts';

interface Scheme {
  /** Lowest and highest prefix of the range, same number of digits. */
  readonly from: string;
  readonly to: string;
  readonly lengths: readonly number[];
}

const range = (min: number, max: number): number[] => Array.from({ length: max - min + 1 }, (_, i) => min + i);

// Sources: the schemes' published IIN ranges (ISO/IEC 7812 registrations).
const SCHEMES: readonly Scheme[] = [
  { from: '4', to: '4', lengths: [13, 16, 19] }, // Visa
  { from: '51', to: '55', lengths: [16] }, // Mastercard
  { from: '2221', to: '2720', lengths: [16] }, // Mastercard 2-series
  { from: '34', to: '34', lengths: [15] }, // American Express
  { from: '37', to: '37', lengths: [15] },
  { from: '6011', to: '6011', lengths: range(16, 19) }, // Discover
  { from: '644', to: '649', lengths: range(16, 19) },
  { from: '65', to: '65', lengths: range(16, 19) },
  { from: '3528', to: '3589', lengths: range(16, 19) }, // JCB
  { from: '300', to: '305', lengths: range(14, 19) }, // Diners Club
  { from: '36', to: '36', lengths: range(14, 19) },
  { from: '38', to: '39', lengths: range(16, 19) },
  { from: '62', to: '62', lengths: range(16, 19) }, // UnionPay
  { from: '2200', to: '2204', lengths: range(16, 19) }, // Mir
  { from: '6759', to: '6759', lengths: range(13, 19) }, // Maestro (UK)
  { from: '6761', to: '6763', lengths: range(13, 19) }, // Maestro
  { from: '5018', to: '5018', lengths: range(13, 19) },
  { from: '5020', to: '5020', lengths: range(13, 19) },
  { from: '5038', to: '5038', lengths: range(13, 19) },
  { from: '6304', to: '6304', lengths: range(13, 19) },
];

export function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = digits.length - 1, double = false; i >= 0; i--, double = !double) {
    let d = digits.charCodeAt(i) - 48;
    if (double && (d *= 2) > 9) d -= 9;
    sum += d;
  }
  return sum % 10 === 0;
}

export function knownIssuer(digits: string): boolean {
  return SCHEMES.some((s) => {
    const prefix = digits.slice(0, s.from.length);
    return prefix >= s.from && prefix <= s.to && s.lengths.includes(digits.length);
  });
}

export function isCardNumber(digits: string): boolean {
  return digits.length >= 13 && digits.length <= 19 && knownIssuer(digits) && luhnValid(digits);
}

// Up to 19 digits (+ one trailing group tolerated), each optionally preceded by a
// single space or dash; never starting or ending inside a longer digit run or
// glued to letters (UPS "1Z…" tracking ids, serial numbers).
const CANDIDATE = /(?<![\w\-.,/]|\d[ -])\d(?:[ -]?\d){11,22}(?![\w]|[ \-.,/]\d)/g;

function acceptCandidate(m: RegExpExecArray): boolean {
  const seps = m[0].replace(/\d/g, '');
  if (seps === '') return isCardNumber(m[0]);
  if (seps.replaceAll(seps[0]!, '') !== '') return false;
  const groups = m[0].split(seps[0]!);
  // A short number just before ("qty 2 4111 …") is not part of the card; an extra group after it (CVV) neither.
  const first = groups[0]!.length === 4 ? 0 : 1;
  for (let end = groups.length; end > first; end--) {
    const card = groups.slice(first, end);
    if ((card.length === 1 || card[0]!.length === 4) && card.every((g) => g.length >= 3) && isCardNumber(card.join(''))) return true;
  }
  return false;
}

export const creditCardDetector: Detector = regexDetector('credit-card', 'payment card number (Luhn-valid, known issuer)', CANDIDATE, acceptCandidate);
