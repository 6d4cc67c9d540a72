// The portal's secrets on their own: one-time codes (length, uniform digits, hash
// bound to the item, what a person may type) and passphrases (scrypt, salt first,
// constant-time check, a fresh salt each time).
import { describe, expect, it } from 'vitest';
import { hashCode, newCode, readCode } from '../../src/portal/codes.ts';
import { checkPassphrase, hashPassphrase } from '../../src/portal/passphrase.ts';

describe('one-time codes', () => {
  it('have at least 6 digits whatever is asked, and as many as asked above that', () => {
    expect(newCode(4)).toMatch(/^\d{6}$/);
    expect(newCode(6)).toMatch(/^\d{6}$/);
    expect(newCode(8)).toMatch(/^\d{8}$/);
    expect(newCode(10)).toMatch(/^\d{10}$/);
  });

  it('draw every digit at every position about equally often (chi-squared, 20 000 codes)', () => {
    const counts = Array.from({ length: 6 }, () => new Array<number>(10).fill(0));
    const n = 20_000;
    for (let i = 0; i < n; i++) [...newCode(6)].forEach((d, pos) => counts[pos]![Number(d)]!++);
    for (const row of counts) {
      const expected = n / 10;
      const chi = row.reduce((s, c) => s + (c - expected) ** 2 / expected, 0);
      // 9 degrees of freedom: 27.9 is the 0.1% critical value.
      expect(chi).toBeLessThan(27.9);
    }
  });

  it('hash per item: the same code for another item is another hash', () => {
    expect(hashCode('item1', '123456').equals(hashCode('item1', '123456'))).toBe(true);
    expect(hashCode('item1', '123456').equals(hashCode('item2', '123456'))).toBe(false);
    expect(hashCode('item1', '123456').equals(hashCode('item1', '123457'))).toBe(false);
  });

  it('are read forgiving spaces and dashes, and nothing else', () => {
    expect(readCode(' 123 456 ')).toBe('123456');
    expect(readCode('123-456')).toBe('123456');
    for (const bad of ['12345', '12345a', '１２３４５６', '', undefined, 123456, '1'.repeat(15), ['123456']]) expect(readCode(bad)).toBeNull();
  });
});

describe('passphrases', () => {
  it('hash with scrypt into salt (16) ‖ key (32), a fresh salt each time, and check only the right text', () => {
    const a = hashPassphrase('blue tractor 42');
    const b = hashPassphrase('blue tractor 42');
    expect(a.length).toBe(48);
    expect(a.subarray(0, 16).equals(b.subarray(0, 16))).toBe(false);
    expect(checkPassphrase('blue tractor 42', a)).toBe(true);
    expect(checkPassphrase('blue tractor 42', b)).toBe(true);
    expect(checkPassphrase('blue tractor 43', a)).toBe(false);
    expect(checkPassphrase('Blue tractor 42', a)).toBe(false);
    expect(checkPassphrase('', a)).toBe(false);
  });

  it('treat composed and decomposed forms of the same text alike, and refuse a malformed hash or huge input', () => {
    const h = hashPassphrase('café au lait');
    expect(checkPassphrase('cafe\u0301 au lait', h)).toBe(true);
    expect(checkPassphrase('café au lait', h.subarray(0, 40))).toBe(false);
    expect(checkPassphrase('x'.repeat(5000), h)).toBe(false);
  });
});
