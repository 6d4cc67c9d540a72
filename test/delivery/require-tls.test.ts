// require-tls.ts as tables: when a REQUIRETLS message may go over a session, what
// the message's own TLS demands make of a decision, and when a REQUIRETLS message
// bounces instead of waiting (RFC 8689). End to end: test/e2e/requiretls.test.ts.
import { describe, expect, it } from 'vitest';
import type { MtaStsState } from '../../src/domains/mta-sts-cache.ts';
import type { TlsFacts } from '../../src/delivery/record.ts';
import {
  afterRequireTlsFailures,
  asksTlsOptional,
  requireTlsUnreachable,
  requireTlsVerdict,
  withTlsDemands,
  type MessageTlsDemands,
  type RequireTlsFacts,
} from '../../src/delivery/require-tls.ts';
import { makeDecision, type Decision } from '../../src/policy/decision.ts';

const TLS: TlsFacts = { protocol: 'TLSv1.3', cipher: 'TLS_AES_256_GCM_SHA384', bits: 256, authorized: true, authorizationError: null, peerCertSubject: 'CN=mx', peerCertFingerprint256: null };
const UNVERIFIED: TlsFacts = { ...TLS, authorized: false, authorizationError: 'DEPTH_ZERO_SELF_SIGNED_CERT' };

const facts = (over: Partial<RequireTlsFacts> = {}): RequireTlsFacts => ({
  host: 'mx.example.test',
  tls: TLS,
  requiretlsOffered: true,
  mtaSts: { mode: 'enforce', id: '1', result: 'pass' },
  dane: null,
  ...over,
});

describe('requireTlsVerdict: may a REQUIRETLS message go over this session (§4.2.1)', () => {
  it.each<[string, Partial<RequireTlsFacts>, { ok: true; via: string } | RegExp]>([
    ['MTA-STS enforce pass, REQUIRETLS advertised', {}, { ok: true, via: 'mta-sts' }],
    ['MTA-STS testing pass counts as enforce', { mtaSts: { mode: 'testing', id: '1', result: 'pass' } }, { ok: true, via: 'mta-sts' }],
    ['DANE matched, no MTA-STS, self-signed certificate', { mtaSts: null, tls: UNVERIFIED, dane: { status: 'matched' } }, { ok: true, via: 'dane' }],
    ['no TLS', { tls: null }, /^no TLS with mx\.example\.test$/],
    ['MTA-STS testing would fail', { tls: UNVERIFIED, mtaSts: { mode: 'testing', id: '1', result: 'would fail: certificate not valid' } }, /not verified by MTA-STS or DANE \(MTA-STS testing: would fail/],
    ['MTA-STS pass but the chain did not verify', { tls: UNVERIFIED }, /not verified by MTA-STS or DANE/],
    ['neither MTA-STS nor DANE', { mtaSts: null }, /neither MTA-STS nor DANE covers it/],
    ['DANE without a match', { mtaSts: null, dane: { status: 'no-usable-tlsa' } }, /DANE: no-usable-tlsa/],
    ['verified, but REQUIRETLS not advertised', { requiretlsOffered: false }, /^mx\.example\.test does not advertise REQUIRETLS$/],
    ['DANE matched, REQUIRETLS not advertised', { mtaSts: null, dane: { status: 'matched' }, requiretlsOffered: false }, /does not advertise REQUIRETLS/],
  ])('%s', (_name, over, expected) => {
    const verdict = requireTlsVerdict(facts(over));
    if (expected instanceof RegExp) {
      expect(verdict.ok).toBe(false);
      expect(!verdict.ok && verdict.reason).toMatch(expected);
    } else expect(verdict).toEqual(expected);
  });
});

describe('afterRequireTlsFailures: bounce or wait', () => {
  const unmet = { kind: 'requiretls', reason: 'x' } as const;
  const down = { kind: 'unreachable', reason: 'y' } as const;
  it('every host failed for a REQUIRETLS reason → bounce (5.7.30)', () => expect(afterRequireTlsFailures([unmet, unmet])).toBe('bounce'));
  it('a host that could not be reached might have had it → defer', () => expect(afterRequireTlsFailures([unmet, down])).toBe('defer'));
  it('no host at all → defer', () => expect(afterRequireTlsFailures([])).toBe('defer'));
});

describe('requireTlsUnreachable: can anything authenticate the MX', () => {
  const sts = (mode: MtaStsState['mode']): MtaStsState => ({ mode, mx: ['mx.example.test'], source: 'cache' });
  it('an MTA-STS policy in enforce or testing mode can', () => {
    expect(requireTlsUnreachable('example.test', sts('enforce'), 'none', false)).toBeNull();
    expect(requireTlsUnreachable('example.test', sts('testing'), 'none', false)).toBeNull();
  });
  it('DANE can, where the verification asks for it', () => {
    for (const v of ['dane', 'dane-only', 'auto'] as const) expect(requireTlsUnreachable('example.test', null, v, false)).toBeNull();
  });
  it('a policy in mode none, or no policy, with CA verification cannot', () => {
    expect(requireTlsUnreachable('example.test', sts('none'), 'ca', false)).toMatch(/no MTA-STS policy and DANE is not asked for/);
    expect(requireTlsUnreachable('example.test', null, 'mta-sts', true)).toMatch(/static route/);
  });
});

describe('asksTlsOptional: the TLS-Required header field', () => {
  const h = (...v: string[]) => new Map([['tls-required', v]]);
  it('"No" in any case, with spaces', () => {
    expect(asksTlsOptional(h(' no '))).toBe(true);
    expect(asksTlsOptional(h('NO'))).toBe(true);
  });
  it('any other value, or none, is not it', () => {
    expect(asksTlsOptional(h('yes'))).toBe(false);
    expect(asksTlsOptional(h('No thanks'))).toBe(false);
    expect(asksTlsOptional(new Map())).toBe(false);
  });
});

describe("withTlsDemands: what the message's own demands make of a decision", () => {
  const decision = (over: Partial<Decision> = {}): Decision =>
    makeDecision({
      mode: 'forced',
      verification: 'none',
      floor: { minVersion: 'TLSv1.2', minCipherBits: 128 },
      fallbackChain: ['pgp', 'smime', 'portal'],
      portal: { expiryDays: 30, keyInLink: false, showSubject: false, passphrase: null },
      tlsExpected: false,
      rule: 'rule:partner',
      reasons: ['rule partner'],
      ...over,
    });
  const demands = (over: Partial<MessageTlsDemands> = {}): MessageTlsDemands => ({ requireTls: false, tlsOptional: false, authUser: 'app1', allowedBy: 'partner', sts: null, ...over });
  const last = (d: Decision) => d.reasons.at(-1);

  it('no demands: the decision as it was', () => {
    const d = decision();
    expect(withTlsDemands(d, demands())).toBe(d);
  });

  it('REQUIRETLS: no fallback chain, TLS expected, flagged; MTA-STS verification where a policy (even testing) is in force', () => {
    const withSts = withTlsDemands(decision(), demands({ requireTls: true, sts: { mode: 'testing', mx: ['mx.example.test'], source: 'fetch' } }));
    expect(withSts).toMatchObject({ mode: 'forced', fallbackChain: [], tlsExpected: true, requireTls: true, verification: 'mta-sts' });
    expect(last(withSts)).toMatch(/^REQUIRETLS \(RFC 8689\)/);
    expect(withTlsDemands(decision({ verification: 'dane' }), demands({ requireTls: true })).verification).toBe('dane');
  });

  it('REQUIRETLS with TLS-Required: No: REQUIRETLS wins, the header is recorded as ignored', () => {
    const d = withTlsDemands(decision(), demands({ requireTls: true, tlsOptional: true }));
    expect(d).toMatchObject({ requireTls: true, mode: 'forced' });
    expect(d.tlsRequiredNo).toBeUndefined();
    expect(last(d)).toMatch(/TLS-Required: No ignored: the message came with REQUIRETLS/);
  });

  it('TLS-Required: No, authenticated and allowed: TLS policy set aside, recorded', () => {
    const d = withTlsDemands(decision({ verification: 'mta-sts', tlsExpected: true }), demands({ tlsOptional: true }));
    expect(d).toMatchObject({ mode: 'opportunistic', verification: 'none', tlsExpected: false, fallbackChain: [], tlsRequiredNo: true });
    expect(last(d)).toMatch(/TLS-Required: No from app1 honoured \(rule partner allows it\)/);
  });

  it('TLS-Required: No keeps an encryption mode and its chain (content protection is not TLS policy)', () => {
    const d = withTlsDemands(decision({ mode: 'pgp', fallbackChain: ['portal'] }), demands({ tlsOptional: true }));
    expect(d).toMatchObject({ mode: 'pgp', fallbackChain: ['portal'], verification: 'none', tlsRequiredNo: true });
  });

  it('TLS-Required: No from an unauthenticated sender, or where no rule allows it: ignored, recorded', () => {
    const anon = withTlsDemands(decision(), demands({ tlsOptional: true, authUser: null }));
    expect(anon).toMatchObject({ mode: 'forced', fallbackChain: ['pgp', 'smime', 'portal'] });
    expect(anon.tlsRequiredNo).toBeUndefined();
    expect(last(anon)).toMatch(/ignored: only an authenticated sender/);
    const denied = withTlsDemands(decision(), demands({ tlsOptional: true, allowedBy: null }));
    expect(denied.mode).toBe('forced');
    expect(last(denied)).toMatch(/ignored: no rule for this recipient allows it/);
  });
});
