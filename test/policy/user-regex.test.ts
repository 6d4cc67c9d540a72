// Operators' regular expressions run on RE2, in time linear in the text: a rule's
// header regex or a DLP pattern that JavaScript's engine would backtrack on for
// hours ((a+)+$ against "aaa…a!") is decided at once (delivery: user-regex-delivery.test.ts).
// None of these tests time anything: with the native engine they would not end
// within the test timeout.
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/load.ts';
import { createPolicy } from '../../src/policy/decide.ts';
import { buildDetectors } from '../../src/policy/dlp/detectors.ts';
import { messageContext } from '../../src/policy/message-context.ts';
import { addressMatcher } from '../../src/policy/rules.ts';
import { compileUserRegex, MAX_PATTERN_CHARS, UserRegexError } from '../../src/policy/user-regex.ts';

/** 40 a's then "!": (a+)+$ tries 2^40 ways to split the a's before giving up, in a backtracking engine. */
const HOSTILE = `${'a'.repeat(40)}!`;
const base = 'ingress:\n  listeners:\n    starttls:\n      port: 2525\n';

describe('compileUserRegex', () => {
  it('matches in linear time where a backtracking engine would not finish', () => {
    expect(compileUserRegex('(a+)+$').test(HOSTILE)).toBe(false);
    expect(compileUserRegex('(a+)+$').test('aaaa')).toBe(true);
    expect(compileUserRegex('(a|aa)+$').test(`${'a'.repeat(100_000)}!`)).toBe(false);
    expect(compileUserRegex('^(\\w+\\s?)*$').test(`${'word '.repeat(5000)}!`)).toBe(false);
  });

  it.each([
    ['(a)\\1', /invalid escape sequence: `\\1`/],
    ['(?<t>a)\\k<t>', /invalid escape sequence: `\\k`/],
    ['a(?=b)', /`\(\?=`/],
    ['a(?!b)', /`\(\?!`/],
    ['(?<=a)b', /invalid named capture/],
    ['(a', /missing closing \)/],
  ])('refuses %s, saying RE2 syntax is required and why', (source, detail) => {
    const err = (() => {
      try {
        compileUserRegex(source);
      } catch (e) {
        return e as Error;
      }
      throw new Error('expected a UserRegexError');
    })();
    expect(err).toBeInstanceOf(UserRegexError);
    expect(err.message).toMatch(/^invalid regular expression: it must be RE2 syntax \(no backreferences like \\1, no lookahead or lookbehind\): /);
    expect(err.message).toMatch(detail);
  });

  it('refuses unknown or repeated flags and over-long patterns', () => {
    expect(() => compileUserRegex('a', 'g')).toThrow(/flags "g" not allowed/);
    expect(() => compileUserRegex('a', 'ii')).toThrow(/flags "ii" not allowed/);
    expect(() => compileUserRegex('a'.repeat(MAX_PATTERN_CHARS + 1))).toThrow(/longer than 2000 characters/);
  });

  it('flags and \\u escapes mean what they mean in JavaScript; "\\\\u" stays a backslash and a u', () => {
    expect(compileUserRegex('^b', 'm').test('a\nb')).toBe(true);
    expect(compileUserRegex('^b').test('a\nb')).toBe(false);
    expect(compileUserRegex('SECRET', 'i').test('a secret')).toBe(true);
    expect(compileUserRegex('\\u00e9\\u{1F600}').test('é😀')).toBe(true);
    expect(compileUserRegex('\\\\u00e9').test('\\u00e9')).toBe(true);
  });

  it('search finds successive matches from a position, seeing the text before it', () => {
    const s = compileUserRegex('\\bb+').search('abb bb b');
    expect(s.find(0)).toMatchObject({ index: 4, end: 6 });
    expect(s.find(6)).toMatchObject({ index: 7, end: 8 });
    expect(s.find(8)).toBeNull();
    const g = compileUserRegex('x(\\d+)?').search('x12');
    expect(g.find(0)?.groupEnd(1)).toBe(3);
  });
});

describe('address patterns in rules run on RE2 too', () => {
  it('many "*" against a long address that does not match', () => {
    const m = addressMatcher('*a*a*a*a*a*a*a*a*@b.example');
    expect(m.test(`${'a'.repeat(3000)}@c.example`)).toBe(false);
    expect(m.test('aaaaaaaa@b.example')).toBe(true);
  });
});

describe('a header regex and a DLP pattern of the shape (a+)+$', () => {
  const config = parseConfig(
    `${base}policies:\n  rules:\n    - name: tagged\n      match: { header: { name: X-Tag, regex: "(a+)+$" } }\n      mode: forced\ndlp:\n  custom:\n    - { id: tag, pattern: "(a+)+$" }\n`,
    'test.yaml',
  );

  it('load, and a message with a hostile header is decided', () => {
    const policy = createPolicy(config);
    const ctx = (tag: string) => messageContext({ sender: 'app@clinic.example', authUser: null, headerBlock: `Subject: hi\r\nX-Tag: ${tag}` });
    expect(policy.decide('pat@example.org', ctx(HOSTILE))).toMatchObject({ mode: 'opportunistic', rule: 'default' });
    expect(policy.decide('pat@example.org', ctx('aaaa'))).toMatchObject({ mode: 'forced', rule: 'rule:tagged' });
  });

  it('the DLP pattern scans hostile text', () => {
    const [tag] = buildDetectors({ builtins: [], custom: config.dlp.custom });
    expect(tag?.scan(HOSTILE)).toBe(0);
    expect(tag?.scan(`${HOSTILE} aaaa`)).toBe(1);
  });
});
