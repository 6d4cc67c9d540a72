// DLP detectors as tables of true and false positives, per detector; then the
// options (MRN keywords/id pattern, DOB reach), custom regexes and their
// load-time rejections, and the window contract (from/to) the scanner relies on.
import { describe, expect, it } from 'vitest';
import { BUILTIN_DETECTOR_IDS, buildDetectors, DlpConfigError, type Detector } from '../../src/policy/dlp/detectors.ts';
import { creditCardDetector, isCardNumber, luhnValid } from '../../src/policy/dlp/detectors/credit-card.ts';
import { customDetector } from '../../src/policy/dlp/detectors/custom.ts';
import { dobDetector } from '../../src/policy/dlp/detectors/dob.ts';
import { icd10Detector } from '../../src/policy/dlp/detectors/icd10.ts';
import { mrnDetector } from '../../src/policy/dlp/detectors/mrn.ts';
import { ssnDetector } from '../../src/policy/dlp/detectors/ssn.ts';

type Row = [text: string, count: number];

function table(name: string, detector: Detector, rows: Row[]): void {
  describe(name, () => {
    it.each(rows)('%j → %i', (text, count) => {
      expect(detector.scan(text)).toBe(count);
    });
  });
}

table('ssn', ssnDetector, [
  // true positives
  ['SSN 123-45-6789', 1],
  ['the Woolworth card number 078-05-1120 is valid syntax', 1],
  ['ids: 219-09-9999, 457-55-5462.', 2],
  ['(123-45-6789)', 1],
  ['SSN: 123456789', 1],
  ['social security number is 123 45 6789', 1],
  ['Soc. Sec. #: 123456789', 1],
  ['123456789 (SSN)', 1],
  // SSA rules: area 000, 666, 9xx; group 00; serial 0000
  ['000-12-3456', 0],
  ['666-12-3456', 0],
  ['900-12-3456', 0],
  ['999-12-3456', 0],
  ['123-00-4567', 0],
  ['123-45-0000', 0],
  ['SSN 000123456', 0],
  // bare and spaced forms need a keyword
  ['order 123456789 shipped', 0],
  ['call 123 45 6789', 0],
  ['SSN on file; your order number, placed last week, is 123456789', 0],
  // phone numbers, longer numbers, dates, versions are not SSNs
  ['call 555-123-4567', 0],
  ['+1 212-555-0199', 0],
  ['SSN: 1234567890', 0],
  ['ref 1123-45-6789', 0],
  ['123-45-67890', 0],
  ['123-45-6789-1', 0],
  ['v1.123-45-6789', 0],
  ['2024-05-1234', 0],
  ['ID078-05-1120', 0],
  ['123-45-6789 in a multiline\n287-65-4321', 2],
]);

describe('credit card helpers', () => {
  it.each([
    ['4111111111111111', true],
    ['4111111111111112', false],
    ['79927398713', true],
    ['79927398710', false],
  ])('luhnValid(%s) is %s', (digits, valid) => expect(luhnValid(digits)).toBe(valid));

  it.each([
    ['4111111111111111', true], // Visa 16
    ['4222222222222', true], // Visa 13
    ['5555555555554444', true], // Mastercard
    ['2223003122003222', true], // Mastercard 2-series
    ['378282246310005', true], // Amex 15
    ['37828224631000', false], // Amex at 14 digits
    ['6011111111111117', true], // Discover
    ['3530111333300000', true], // JCB
    ['30569309025904', true], // Diners 14
    ['6200000000000005', true], // UnionPay
    ['1234567812345670', false], // Luhn-valid, no issuer starts with 1
    ['9111111111111111', false],
    ['0000000000000', false],
  ])('isCardNumber(%s) is %s', (digits, ok) => expect(isCardNumber(digits)).toBe(ok));
});

table('credit-card', creditCardDetector, [
  ['card 4111111111111111', 1],
  ['4111 1111 1111 1111', 1],
  ['4111-1111-1111-1111', 1],
  ['Amex 3782 822463 10005 exp 12/27', 1],
  ['5555 5555 5555 4444 12', 1], // an extra group (CVV) after the number
  ['pay with 6011111111111117.', 1],
  ['two: 4111111111111111, 5555555555554444', 2],
  // false positives
  ['4111111111111112', 0], // Luhn fails
  ['1234567812345670', 0], // unknown issuer
  ['4111 1111-1111 1111', 0], // mixed separators
  ['41 11 11 11 11 11 11 11', 0], // not grouped like a card
  ['41111111111111111111111', 0], // part of a longer number
  ['qty 1 4111111111111111', 1],
  ['qty 12 4111 1111 1111 1111', 1],
  ['ref 94111111111111111', 0],
  ['UPS 1Z4111111111111111', 0], // glued to letters: an identifier
  ['4111111111111111X', 0],
  ['tracking 4111 1111 1111 1111 2222 3333', 0], // longer grouped number
  ['tel 555 123 4567', 0],
  ['4111.1111.1111.1111', 0],
]);

table('mrn (defaults)', mrnDetector(), [
  ['MRN: 12345678', 1],
  ['MRN#12345678', 1],
  ['Medical Record Number 0012345', 1],
  ['medical record no. AB-1234567', 1],
  ['her MRN is 987654321', 1],
  ['Med Rec # 7654321', 1],
  ['MRN (12345678)', 1],
  // false positives
  ['MRN: pending', 0],
  ['MRN 2024', 0], // too short for an id
  ['account 12345678', 0], // no keyword
  ['MRNA vaccine lot 12345678', 0], // "MRNA" is not the keyword
  ['MRN: 123456789012345', 0], // too long
]);

table('icd10', icd10Detector, [
  ['Diabetes type 2 (E11.9) noted', 1],
  ['asthma J45.909 and fracture S72.001A', 2],
  ['Merkel cell C4A.9', 1],
  ['dx: E11', 1],
  ['Diagnosis codes: E11, I10, J45', 3],
  ['ICD-10 I10', 1],
  ['I10 (ICD-10)', 1],
  // false positives: plain words, grid cells, product codes, versions, units
  ['Take the E11 bus to B12', 0],
  ['seat A10, row C12', 0],
  ['SKU-E11.9', 0],
  ['part AB12.5', 0],
  ['firmware E11.9.2', 0],
  ['bolt M12.5mm', 0],
  ['model e11.9', 0],
  ['item #E11.9', 0],
  ['path a/E11.9', 0],
  ['E119 vs E1.9', 0],
]);

table('dob (within 40)', dobDetector(), [
  ['DOB: 03/14/1975', 1],
  ['Date of birth 14.03.1975', 1],
  ['born on 1975-03-14', 1],
  ['Birthdate: March 14, 1975', 1],
  ['D.O.B. 14 Mar 1975', 1],
  ['03/14/75 (DOB)', 1],
  ['Patient John Smith, DOB 3-4-1960, MRN …', 1],
  // false positives
  ['Appointment on 03/14/2025 at 10:00', 0],
  ['Invoice dated 1975-03-14', 0],
  ['DOB: 13/13/1975', 0], // no month 13 in either order
  ['DOB: 03/14/1820', 0], // too old
  ['DOB: 03/14/2999', 0], // in the future
  ['DOB on file. ' + 'x'.repeat(40) + ' Your visit is 03/14/2025', 0], // keyword too far
  ['DOB 1/2/3/2024', 0],
  ['DOB 03/14/19755', 0],
]);

describe('detector options', () => {
  it('MRN keywords and id pattern are configurable', () => {
    const d = mrnDetector({ keywords: ['patient id'], idPattern: 'P\\d{5}' });
    expect(d.scan('Patient  ID: P12345')).toBe(1);
    expect(d.scan('MRN: 12345678')).toBe(0);
    expect(d.scan('patient id: 12345')).toBe(0);
  });

  it('a bad MRN id pattern fails with the setting named', () => {
    expect(() => mrnDetector({ idPattern: '(\\d+' })).toThrow(/dlp\.mrn\.id_pattern: invalid regular expression/);
  });

  it('DOB reach is configurable', () => {
    const text = 'DOB recorded for the patient: 03/14/1975';
    expect(dobDetector({ withinChars: 40 }).scan(text)).toBe(1);
    expect(dobDetector({ withinChars: 10 }).scan(text)).toBe(0);
  });
});

describe('custom detectors', () => {
  it('counts every match of a configured regex, with flags', () => {
    const d = customDetector({ id: 'project-code', pattern: '\\bPROJ-\\d{4}\\b', flags: 'i' });
    expect(d.id).toBe('project-code');
    expect(d.scan('proj-1234 and PROJ-9999, not PROJ-12345')).toBe(2);
  });

  it.each([
    [{ id: 'x', pattern: '(\\d+' }, /dlp\.custom "x": invalid regular expression/],
    [{ id: 'x', pattern: '' }, /the pattern is empty/],
    [{ id: 'x', pattern: 'a*' }, /matches the empty string/],
    [{ id: 'x', pattern: '\\b' }, /matches the empty string/],
    [{ id: 'x', pattern: 'abc', flags: 'g' }, /flags "g" not allowed/],
    [{ id: 'x', pattern: 'abc', flags: 'ii' }, /flags "ii" not allowed/],
    // RE2 has no backreferences or lookaround (what lets it match in linear time); the error says so.
    [{ id: 'x', pattern: '(a)\\1' }, /dlp\.custom "x": invalid regular expression: it must be RE2 syntax \(no backreferences.*\\1/],
    [{ id: 'x', pattern: 'PROJ(?=-)' }, /must be RE2 syntax.*lookahead or lookbehind.*\(\?=/],
    [{ id: 'x', pattern: '(?<!x)PROJ' }, /must be RE2 syntax/],
    [{ id: 'bad id!', pattern: 'abc' }, /detector id "bad id!"/],
  ])('rejects %j', (spec, message) => {
    expect(() => customDetector(spec)).toThrow(DlpConfigError);
    expect(() => customDetector(spec)).toThrow(message);
  });

  // These hang JavaScript's backtracking engine (hours at 40 characters); RE2 runs them in linear time.
  it.each([
    ['(a+)+$', `${'a'.repeat(40)}!`, 0],
    ['(a+)+!', `${'a'.repeat(40)}!`, 1],
    ['(?:\\s*\\w+)+$', `${'word '.repeat(20)}!`, 0],
    ['(a|aa)+b', 'a'.repeat(5000), 0],
    ['(x+x+)+y', 'x'.repeat(5000), 0],
  ])('runs %s on hostile input in linear time', (pattern, text, count) => {
    expect(customDetector({ id: 'x', pattern }).scan(text)).toBe(count);
  });

  it('keeps JavaScript semantics an operator relies on: \\u escapes, flags, \\b and ^ at a window edge', () => {
    expect(customDetector({ id: 'x', pattern: 'caf\\u00e9' }).scan('café, CAFÉ')).toBe(1);
    expect(customDetector({ id: 'x', pattern: 'caf\\u00e9', flags: 'i' }).scan('café, CAFÉ')).toBe(2);
    expect(customDetector({ id: 'x', pattern: '^PROJ-\\d+', flags: 'm' }).scan('PROJ-1\nPROJ-2 PROJ-3')).toBe(2);
    expect(customDetector({ id: 'x', pattern: 'a.b', flags: 's' }).scan('a\nb')).toBe(1);
    expect(customDetector({ id: 'x', pattern: 'a.b' }).scan('a\nb')).toBe(0);
    // The text before `from` is context: no \b between "X" and "PROJ", and ^ is not at `from`.
    expect(customDetector({ id: 'x', pattern: '\\bPROJ' }).scan('XPROJ PROJ', 1)).toBe(1);
    expect(customDetector({ id: 'x', pattern: '^PROJ' }).scan('XPROJ', 1)).toBe(0);
  });
});

describe('buildDetectors', () => {
  it('runs every built-in by default, then the custom ones', () => {
    const ids = buildDetectors({ custom: [{ id: 'proj', pattern: 'PROJ-\\d+' }] }).map((d) => d.id);
    expect(ids).toEqual([...BUILTIN_DETECTOR_IDS, 'proj']);
  });

  it('runs only the built-ins listed', () => {
    expect(buildDetectors({ builtins: ['ssn', 'icd10'] }).map((d) => d.id)).toEqual(['ssn', 'icd10']);
  });

  it.each([
    [{ builtins: ['passport'] }, /unknown detector "passport"/],
    [{ custom: [{ id: 'ssn', pattern: 'x' }] }, /"ssn" is the id of a built-in detector/],
    [{ custom: [{ id: 'a', pattern: 'x' }, { id: 'a', pattern: 'y' }] }, /detector "a" is listed twice/],
  ])('rejects %j', (options, message) => {
    expect(() => buildDetectors(options)).toThrow(message);
  });
});

describe('the window contract', () => {
  // The scanner hands detectors a window with context on both sides and counts
  // only matches that start in [from, to).
  it.each(buildDetectors().map((d) => [d.id, d] as const))('%s counts only matches starting in [from, to)', (_, d) => {
    const samples: Record<string, string> = {
      ssn: 'SSN 078-05-1120',
      'credit-card': 'card 4111111111111111',
      mrn: 'MRN: 12345678',
      icd10: 'dx E11.9',
      dob: 'DOB 03/14/1975',
    };
    const hit = samples[d.id]!;
    const text = `${hit} ${'.'.repeat(50)} ${hit}`;
    expect(d.scan(text)).toBe(2);
    expect(d.scan(text, 0, 20)).toBe(1);
    expect(d.scan(text, 20)).toBe(1);
    expect(d.scan(text, text.length - 3)).toBe(0); // the match started before `from`
  });

  it('context before `from` still counts as context (keyword, boundary)', () => {
    const text = 'SSN: 123456789';
    expect(ssnDetector.scan(text, 5)).toBe(1); // the keyword sits before the window
    expect(ssnDetector.scan('9123-45-6789', 1)).toBe(0); // the digit before `from` still disqualifies
  });
});
