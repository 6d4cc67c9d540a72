// Rules → Decision, as tables: what matches, what wins, what the trace says.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.ts';
import { createPolicy } from '../../src/policy/decide.ts';
import { messageContext } from '../../src/policy/message-context.ts';

const domainsFile = join(mkdtempSync(join(tmpdir(), 'sealrelay-rules-')), 'banks.txt');
writeFileSync(domainsFile, '# banks that demand TLS\nbank.example\n*.banks.example  # all of them\n');

const policy = createPolicy(
  configSchema.parse({
    ingress: { listeners: {} },
    policies: {
      default: { mode: 'opportunistic' },
      domains: { 'legacy.example': { mode: 'none' } },
      rules: [
        { name: 'banks', match: { recipient_domains_file: domainsFile }, mode: 'forced', verification: 'ca' },
        { name: 'marketing', match: { sender_domain: 'news.clinic.example', header: { name: 'X-Campaign', regex: '^spring' } }, mode: 'tls-exclusive' },
        { name: 'partner', match: { recipient: '*@partner.example' }, mode: 'forced', floor: { min_version: 'TLSv1.3' } },
        { name: 'billing-app', match: { auth_user: ['billing'], subject_tag: '[phi]' }, mode: 'forced' },
        { name: 'phi-dlp', match: { dlp: ['ssn', 'mrn'] }, mode: 'forced' },
        { name: 'no-lowering', match: { recipient_domain: 'bank.example' }, mode: 'none' },
      ],
      escalation: { subject_tag: { tag: '[secure]', mode: 'forced' }, header: { name: 'X-SealRelay-Mode' } },
    },
  }),
);

const ctx = (over: { sender?: string; authUser?: string | null; head?: string; dlpHits?: string[] } = {}) =>
  messageContext({ sender: over.sender ?? 'app@clinic.example', authUser: over.authUser ?? null, headerBlock: over.head ?? 'Subject: hello', dlpHits: over.dlpHits });

describe('policy decide', () => {
  it.each([
    ['default', 'pat@example.org', ctx(), 'opportunistic', 'default'],
    ['domain entry may name none', 'pat@legacy.example', ctx(), 'none', 'domain:legacy.example'],
    ['domains file, exact', 'pat@bank.example', ctx(), 'forced', 'rule:banks'],
    ['domains file, wildcard subdomain', 'pat@east.banks.example', ctx(), 'forced', 'rule:banks'],
    ['wildcard does not match the parent', 'pat@banks.example', ctx(), 'opportunistic', 'default'],
    ['all-of: sender domain and header regex', 'x@example.org', ctx({ sender: 'a@news.clinic.example', head: 'X-Campaign: spring-24' }), 'tls-exclusive', 'rule:marketing'],
    ['all-of: header alone is not enough', 'x@example.org', ctx({ head: 'X-Campaign: spring-24' }), 'opportunistic', 'default'],
    ['address pattern', 'bob@partner.example', ctx(), 'forced', 'rule:partner'],
    ['auth user and subject tag', 'x@example.org', ctx({ authUser: 'billing', head: 'Subject: [PHI] invoice' }), 'forced', 'rule:billing-app'],
    ['DLP hit', 'x@example.org', ctx({ dlpHits: ['mrn'] }), 'forced', 'rule:phi-dlp'],
    ['subject tag escalation', 'x@example.org', ctx({ head: 'Subject: [Secure] results' }), 'forced', 'escalation:subject-tag'],
    ['subject tag inside an encoded-word', 'x@example.org', ctx({ head: 'Subject: =?UTF-8?Q?=5Bsecure=5D_r=C3=A9sultats?=' }), 'forced', 'escalation:subject-tag'],
    ['header escalation from an authenticated submitter', 'x@example.org', ctx({ authUser: 'app1', head: 'X-SealRelay-Mode: tls-exclusive' }), 'tls-exclusive', 'escalation:header'],
    ['header escalation ignored without AUTH', 'x@example.org', ctx({ head: 'X-SealRelay-Mode: forced' }), 'opportunistic', 'default'],
    ['a rule with mode none cannot lower', 'pat@bank.example', ctx(), 'forced', 'rule:banks'],
    ['header asking for none cannot lower', 'pat@bank.example', ctx({ authUser: 'app1', head: 'X-SealRelay-Mode: none' }), 'forced', 'rule:banks'],
    ['escalation raises even a domain named none', 'pat@legacy.example', ctx({ head: 'Subject: [secure] x' }), 'forced', 'escalation:subject-tag'],
  ])('%s', (_name, rcpt, c, mode, rule) => {
    expect(policy.decide(rcpt, c)).toMatchObject({ mode, rule });
  });

  it('the strictest floor and verification win, and the trace names every step', () => {
    const { decision, trace } = policy.explain('bob@partner.example', ctx({ head: 'Subject: [secure] hi' }));
    expect(decision).toMatchObject({ mode: 'forced', floor: { minVersion: 'TLSv1.3' } });
    expect(trace.map((t) => [t.source, t.name, t.raised])).toEqual([
      ['default', 'default', false],
      ['rule', 'partner', true],
      ['subject-tag', '[secure]', false],
    ]);
    const bank = policy.explain('pat@bank.example', ctx()).decision;
    expect(bank.verification).toBe('ca');
    expect(bank.reasons.some((r) => /rule banks: recipient domain bank\.example matches bank\.example/.test(r))).toBe(true);
  });

  it('rejects bad rules with the key that is wrong', () => {
    const bad = (rules: unknown) => configSchema.safeParse({ ingress: { listeners: {} }, policies: { rules } });
    expect(bad([{ name: 'x', match: {}, mode: 'forced' }]).success).toBe(false);
    expect(bad([{ name: 'x', match: { header: { name: 'A', regex: '(' } }, mode: 'forced' }]).error?.issues[0]?.path).toEqual(['policies', 'rules', 0, 'match', 'header', 'regex']);
    expect(bad([{ name: 'x', match: { recipient: 'a@b' }, mode: 'forced' }, { name: 'x', match: { recipient: 'c@d' }, mode: 'forced' }]).error?.issues[0]?.message).toMatch(/duplicate rule name/);
    expect(bad([{ name: 'x', match: { recipient: 'a@b' }, mode: 'portal' }]).success).toBe(false);
    expect(bad([{ name: 'x', match: { recipent: 'a@b' }, mode: 'forced' }]).error?.issues[0]?.code).toBe('unrecognized_keys');
  });
});

describe('DLP in the policy', () => {
  const dlpPolicy = createPolicy(
    configSchema.parse({
      ingress: { listeners: {} },
      dlp: { escalate_to: 'forced' },
      policies: { rules: [{ name: 'ssn-strict', match: { dlp: 'ssn' }, mode: 'forced', verification: 'ca' }] },
    }),
  );
  it.each([
    ['no hit', [], 'opportunistic', 'default'],
    ['a detector a rule names', ['ssn'], 'forced', 'rule:ssn-strict'],
    ['any detector, through escalate_to', ['icd10'], 'forced', 'escalation:dlp'],
    ['a scan cut short counts as a hit', ['incomplete'], 'forced', 'escalation:dlp'],
  ])('%s', (_n, hits, mode, rule) => {
    expect(dlpPolicy.decide('x@example.org', ctx({ dlpHits: hits }))).toMatchObject({ mode, rule });
  });

  it('a bad custom pattern is a config error naming its key', () => {
    const r = configSchema.safeParse({ ingress: { listeners: {} }, dlp: { custom: [{ id: 'bad', pattern: '(a)\\1' }] } });
    expect(r.success).toBe(false);
    expect(r.error?.issues[0]?.path).toEqual(['dlp', 'custom', 0, 'pattern']);
  });
});

describe('fallback chains in decisions', () => {
  const chainPolicy = createPolicy(
    configSchema.parse({
      ingress: { listeners: {} },
      policies: {
        default: { mode: 'forced' },
        domains: { 'smime-only.example': { mode: 'forced', fallback: ['smime'] }, 'no-chain.example': { mode: 'forced', fallback: [] } },
        rules: [
          { name: 'lab-pgp', match: { sender: 'lab@clinic.example' }, mode: 'pgp' },
          { name: 'lab-pgp-or-smime', match: { sender: 'lab2@clinic.example' }, mode: 'pgp', fallback: ['smime'] },
        ],
        escalation: { header: { name: 'X-SealRelay-Mode' } },
      },
    }),
  );
  it.each([
    ['forced without a chain named: pgp, smime, then the portal', 'a@example.org', ctx(), 'forced', ['pgp', 'smime', 'portal']],
    ['a domain entry names its own chain', 'a@smime-only.example', ctx(), 'forced', ['smime']],
    ['an empty chain means none: defer, then bounce', 'a@no-chain.example', ctx(), 'forced', []],
    ['a pgp rule without fallback has none, whatever forced allows', 'a@example.org', ctx({ sender: 'lab@clinic.example' }), 'pgp', []],
    ['a pgp rule with fallback smime', 'a@example.org', ctx({ sender: 'lab2@clinic.example' }), 'pgp', ['smime']],
    ['an authenticated submitter may ask for smime', 'a@example.org', ctx({ authUser: 'app', head: 'X-SealRelay-Mode: smime' }), 'smime', []],
  ] as const)('%s', (_n, rcpt, c, mode, chain) => {
    const decision = chainPolicy.decide(rcpt, c);
    expect(decision.mode).toBe(mode);
    expect(decision.fallbackChain).toEqual(chain);
  });
});

describe('mail the portal makes', () => {
  const portalPolicy = createPolicy(
    configSchema.parse({
      ingress: { listeners: {} },
      portal: { master_keys: [{ id: 'k1', env: 'K1' }], current_key: 'k1', listen: 8443 },
      policies: {
        default: { mode: 'opportunistic' },
        rules: [
          { name: 'patients', match: { recipient_domain: 'patient.example' }, mode: 'portal', portal: { expiry_days: 7, key_in_link: true } },
          { name: 'tls-only', match: { recipient_domain: 'strict.example' }, mode: 'tls-exclusive' },
        ],
        escalation: { header: { name: 'X-SealRelay-Mode' } },
      },
    }),
  );
  const made = (origin: 'portal-notice' | 'portal-code' | 'portal-reply') => messageContext({ sender: 'lab@clinic.example', authUser: null, headerBlock: 'Subject: x', origin });

  it.each(['portal-notice', 'portal-code'] as const)('a %s goes with opportunistic TLS, whatever the rules say of its recipient (never to the portal again)', (origin) => {
    for (const rcpt of ['pat@patient.example', 'a@strict.example', 'a@example.org']) {
      expect(portalPolicy.decide(rcpt, made(origin))).toMatchObject({ mode: 'opportunistic', rule: 'portal:notice', fallbackChain: [] });
    }
  });

  it('a secure reply goes with at least forced, falling back to the portal; stronger rules still apply', () => {
    expect(portalPolicy.decide('lab@clinic.example', made('portal-reply'))).toMatchObject({ mode: 'forced', rule: 'portal:reply', fallbackChain: ['portal'] });
    expect(portalPolicy.decide('pat@patient.example', made('portal-reply'))).toMatchObject({ mode: 'portal', rule: 'rule:patients' });
  });

  it('the rule\'s portal terms travel in the decision; the mode header may ask for the portal only where one is configured', () => {
    expect(portalPolicy.decide('pat@patient.example', ctx()).portal).toEqual({ expiryDays: 7, keyInLink: true, showSubject: false, passphrase: null });
    const asks = messageContext({ sender: 'app@clinic.example', authUser: 'billing', headerBlock: 'Subject: x\r\nX-SealRelay-Mode: portal' });
    expect(portalPolicy.decide('a@example.org', asks).mode).toBe('portal');
    expect(policy.decide('a@example.org', asks).mode).toBe('opportunistic');
  });
});
