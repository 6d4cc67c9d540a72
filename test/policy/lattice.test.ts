// The escalation lattice: no combination of rules and escalations lowers protection.
import { describe, expect, it } from 'vitest';
import { MODES, VERIFICATIONS, type Mode, type Verification } from '../../src/config/schema.ts';
import { makeDecision, type Decision, type PortalTerms } from '../../src/policy/decision.ts';
import { atLeast, joinDecisions, joinMode, joinVerification, MODE_RANK } from '../../src/policy/lattice.ts';

const TERMS: PortalTerms = { expiryDays: 30, keyInLink: false, showSubject: false, passphrase: null };
const d = (mode: Mode, verification: Verification = 'none', minVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.2', minCipherBits = 128, tlsExpected = false): Decision =>
  makeDecision({ mode, verification, floor: { minVersion, minCipherBits }, fallbackChain: mode === 'forced' ? ['pgp'] : [], portal: TERMS, tlsExpected, rule: `r-${mode}`, reasons: [mode] });

const all: Decision[] = [];
for (const mode of MODES) for (const v of VERIFICATIONS) for (const version of ['TLSv1.2', 'TLSv1.3'] as const) for (const bits of [128, 256]) for (const te of [false, true]) all.push(d(mode, v, version, bits, te));

describe('escalation lattice', () => {
  it.each([
    ['none', 'opportunistic', 'opportunistic'],
    ['opportunistic', 'forced', 'forced'],
    ['forced', 'tls-exclusive', 'forced'],
    ['tls-exclusive', 'forced', 'forced'],
    ['tls-exclusive', 'opportunistic', 'tls-exclusive'],
    ['forced', 'pgp', 'pgp'],
    ['smime', 'pgp', 'smime'],
    ['pgp', 'portal', 'portal'],
    ['portal', 'none', 'portal'],
  ] as const)('%s ⊔ %s = %s', (a, b, want) => {
    expect(joinMode(a, b)).toBe(want);
  });

  it(`never lowers anything: every pair of ${all.length} decisions, both orders`, () => {
    for (const a of all) {
      for (const b of all) {
        const j = joinDecisions(a, b);
        expect(atLeast(j, a) && atLeast(j, b), `${JSON.stringify(a)} ⊔ ${JSON.stringify(b)}`).toBe(true);
        expect(MODE_RANK[j.mode]).toBe(Math.max(MODE_RANK[a.mode], MODE_RANK[b.mode]));
      }
    }
  });

  it.each([
    ['auto', 'none', 'auto'],
    ['auto', 'ca', 'dane'],
    ['mta-sts', 'auto', 'dane'],
    ['auto', 'dane', 'dane'],
    ['dane-only', 'auto', 'dane-only'],
    ['dane', 'mta-sts', 'dane'],
    ['dane', 'dane-only', 'dane-only'],
  ] as const)('verification %s ⊔ %s = %s (auto is DANE where published, else none: with ca, DANE where published, else ca)', (a, b, want) => {
    expect(joinVerification(a, b)).toBe(want);
    expect(joinVerification(b, a)).toBe(want);
  });

  it('is idempotent and the reasons of both sides are kept; tls-exclusive never gains a fallback', () => {
    const a = d('forced', 'ca');
    expect(joinDecisions(a, a)).toMatchObject({ mode: 'forced', verification: 'ca' });
    const j = joinDecisions(d('tls-exclusive'), d('opportunistic'));
    expect(j.fallbackChain).toEqual([]);
    expect(joinDecisions(d('opportunistic'), d('forced', 'ca', 'TLSv1.3', 256)).reasons).toEqual(['opportunistic', 'forced']);
  });

  it('the stronger mode brings its own chain; equal modes pool theirs, stronger first', () => {
    const chain = (mode: Mode, fallbackChain: ('pgp' | 'smime')[]) => makeDecision({ ...d(mode), fallbackChain });
    // A pgp rule without fallback stays without one, whatever forced would have allowed.
    expect(joinDecisions(chain('forced', ['pgp', 'smime']), chain('pgp', [])).fallbackChain).toEqual([]);
    expect(joinDecisions(chain('pgp', ['smime']), chain('forced', ['pgp'])).fallbackChain).toEqual(['smime']);
    expect(joinDecisions(chain('forced', ['smime']), chain('forced', ['pgp', 'smime'])).fallbackChain).toEqual(['smime', 'pgp']);
    expect(joinDecisions(chain('tls-exclusive', []), chain('forced', ['pgp'])).fallbackChain).toEqual(['pgp']);
  });

  it('portal terms join to the stricter: shorter expiry, key in link if either asks, the subject shown only if both allow, a passphrase kept', () => {
    const with_ = (portal: Partial<PortalTerms>) => makeDecision({ ...d('portal'), portal: { ...TERMS, ...portal } });
    const a = with_({ expiryDays: 7, keyInLink: false, showSubject: true, passphrase: null });
    const b = with_({ expiryDays: 30, keyInLink: true, showSubject: false, passphrase: 'horse-battery' });
    for (const j of [joinDecisions(a, b), joinDecisions(b, a)]) {
      expect(j.portal).toEqual({ expiryDays: 7, keyInLink: true, showSubject: false, passphrase: 'horse-battery' });
    }
    expect(joinDecisions(with_({ showSubject: true }), with_({ showSubject: true })).portal.showSubject).toBe(true);
  });
});
