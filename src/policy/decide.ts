// Recipient + message → Decision.
//
// Policy: the base is the recipient domain's entry in `policies.domains` when
// there is one (the only way to name `none` for a domain), else
// `policies.default`. Every matching rule, in order, and every escalation (subject
// tag, an authenticated submitter's mode header, DLP hits) is then joined onto it
// through the lattice (lattice.ts), which only ever raises protection. The trace
// says what applied and why; `sealrelay policy explain` prints it.
//
// Mail the portal makes is decided apart (MessageContext.origin): a notification
// or a code carries no content, so it goes with opportunistic TLS whatever the
// rules say for its recipient (a rule sending that recipient to the portal would
// otherwise notify them about their notification, forever); a secure reply goes
// to the original sender with at least `forced`, falling back to the portal.
import type { Config, RuleConfig } from '../config/schema.ts';
import { domainOf } from '../store/store.ts';
import { makeDecision, type Decision, type FallbackStep, type Floor, type PortalTerms } from './decision.ts';
import { joinDecisions } from './lattice.ts';
import type { MessageContext } from './message-context.ts';
import { compileRules } from './rules.ts';
import { configuredVerification } from './verification.ts';

export interface TraceStep {
  /** default | domain | portal | rule | subject-tag | header | dlp */
  readonly source: string;
  readonly name: string;
  readonly mode: Decision['mode'];
  /** Did it change the decision (raise anything)? */
  readonly raised: boolean;
  readonly why: string;
}

export interface Explanation {
  readonly decision: Decision;
  readonly trace: readonly TraceStep[];
}

export interface Policy {
  decide(recipient: string, ctx: MessageContext): Decision;
  explain(recipient: string, ctx: MessageContext): Explanation;
  /** The subject tag to strip from delivered mail, when configured to. */
  readonly stripSubjectTag: string | null;
  /** The mode header to remove from delivered mail, when that escalation is on. */
  readonly modeHeader: string | null;
  /** The first matching rule with allow_tls_required_no (RFC 8689 §4.2.2; the header is honoured only where a rule allows it), or null. */
  tlsRequiredNoRule(recipient: string, ctx: MessageContext): string | null;
}

const MODE_VALUES: readonly string[] = ['none', 'opportunistic', 'forced', 'tls-exclusive', 'pgp', 'smime'];

/** The chain a mode gets when its entry names none: forced tries PGP, then S/MIME, then the portal. */
function defaultFallback(mode: Decision['mode']): FallbackStep[] {
  return mode === 'forced' ? ['pgp', 'smime', 'portal'] : [];
}

type PortalSettings = NonNullable<RuleConfig['portal']>;

/** Whether the portal can take items: master keys to seal with and an address for the links. */
export function portalConfigured(config: Pick<Config, 'portal'>): boolean {
  return config.portal.master_keys.length > 0 && (config.portal.listen !== null || config.portal.public_url !== null);
}

export function createPolicy(config: Pick<Config, 'policies' | 'tls' | 'dlp' | 'portal'> & { readonly delivery?: { readonly dns: { readonly dnssec: boolean } } }): Policy {
  const floor: Floor = { minVersion: config.tls.min_version, minCipherBits: config.tls.min_cipher_bits };
  // `auto` means DANE only with a validating resolver; without one it is `none`, as before DANE.
  const dnssec = config.delivery?.dns.dnssec ?? false;
  const p = config.policies;
  const terms = (s: PortalSettings | undefined): PortalTerms => ({
    expiryDays: s?.expiry_days ?? config.portal.expiry_days,
    keyInLink: s?.key_in_link ?? false,
    showSubject: s?.show_subject ?? config.portal.show_subject,
    passphrase: s?.passphrase ?? null,
  });
  const make = (
    mode: Decision['mode'],
    rule: string,
    why: string,
    extra: { verification?: Decision['verification'] | undefined; floor?: Floor; fallback?: readonly FallbackStep[] | undefined; portal?: PortalSettings | undefined; tracking?: RuleConfig['tracking']; transactional?: boolean | undefined } = {},
  ) =>
    makeDecision({
      mode,
      verification: configuredVerification(extra.verification ?? 'none', dnssec),
      floor: extra.floor ?? floor,
      fallbackChain: extra.fallback ?? defaultFallback(mode),
      portal: terms(extra.portal),
      tracking: extra.tracking,
      transactional: extra.transactional,
      tlsExpected: false,
      rule,
      reasons: [why],
    });
  const portalMail = make('opportunistic', 'portal:notice', 'mail from the portal (a notification or a code) carries no content: opportunistic TLS', { fallback: [] });
  const portalReply = make('forced', 'portal:reply', 'a secure reply from the portal: forced TLS, else the portal', { fallback: ['portal'] });

  const base = make(p.default.mode, 'default', `policies.default: mode ${p.default.mode}`, p.default);
  const byDomain = new Map(
    Object.entries(p.domains).map(([d, e]) => [d.toLowerCase(), make(e.mode, `domain:${d.toLowerCase()}`, `policies.domains.${d}: mode ${e.mode}`, e)]),
  );
  const rules = compileRules(p.rules);
  const ruleDecision = (r: RuleConfig, why: string[]) =>
    make(r.mode, `rule:${r.name}`, `rule ${r.name}: ${why.join('; ')} → mode ${r.mode}`, {
      verification: r.verification,
      fallback: r.fallback,
      portal: r.portal,
      tracking: r.tracking,
      transactional: r.transactional,
      floor: { minVersion: r.floor?.min_version ?? floor.minVersion, minCipherBits: r.floor?.min_cipher_bits ?? floor.minCipherBits },
    });
  const tag = p.escalation.subject_tag;
  const header = p.escalation.header;
  // A submitter may ask for the portal only where there is one to take the message.
  const askable: ReadonlySet<string> = new Set(portalConfigured(config) ? [...MODE_VALUES, 'portal'] : MODE_VALUES);

  function explain(recipient: string, ctx: MessageContext): Explanation {
    if (ctx.origin === 'portal-notice' || ctx.origin === 'portal-code') {
      return { decision: portalMail, trace: [{ source: 'portal', name: portalMail.rule, mode: portalMail.mode, raised: false, why: portalMail.reasons[0]! }] };
    }
    const domain = domainOf(recipient);
    const domainEntry = byDomain.get(domain);
    let decision = domainEntry ?? base;
    const trace: TraceStep[] = [
      domainEntry
        ? { source: 'domain', name: domainEntry.rule, mode: domainEntry.mode, raised: false, why: `policies.domains has ${domain}` }
        : { source: 'default', name: 'default', mode: base.mode, raised: false, why: 'no policies.domains entry' },
    ];
    const raise = (source: string, name: string, next: Decision, why: string) => {
      const joined = joinDecisions(decision, next);
      const raised = joined.mode !== decision.mode || joined.verification !== decision.verification || joined.floor.minVersion !== decision.floor.minVersion || joined.floor.minCipherBits !== decision.floor.minCipherBits;
      trace.push({ source, name, mode: next.mode, raised, why });
      decision = joined;
    };

    if (ctx.origin === 'portal-reply') raise('portal', portalReply.rule, portalReply, 'a recipient\'s secure reply from the portal');
    for (const rule of rules) {
      const why = rule.match(recipient, ctx);
      if (why) raise('rule', rule.config.name, ruleDecision(rule.config, why), why.join('; '));
    }
    if (tag && ctx.subject?.toLowerCase().includes(tag.tag.toLowerCase())) {
      raise('subject-tag', tag.tag, make(tag.mode, 'escalation:subject-tag', `subject tag ${tag.tag} → mode ${tag.mode}`), `subject carries ${tag.tag}`);
    }
    const escalateTo = config.dlp.escalate_to;
    if (escalateTo && ctx.dlpHits.length) {
      const why = `DLP: ${ctx.dlpHits.join(', ')}`;
      raise('dlp', ctx.dlpHits.join(','), make(escalateTo, 'escalation:dlp', `${why} → mode ${escalateTo}`), why);
    }
    if (header) {
      const asked = ctx.headers.get(header.name.toLowerCase())?.[0]?.trim().toLowerCase();
      if (asked !== undefined) {
        if (ctx.authUser === null) {
          trace.push({ source: 'header', name: header.name, mode: decision.mode, raised: false, why: `${header.name} ignored: only authenticated submitters may escalate` });
        } else if (!askable.has(asked)) {
          trace.push({ source: 'header', name: header.name, mode: decision.mode, raised: false, why: `${header.name}: ${asked} ignored: not a mode this relay delivers` });
        } else {
          const mode = asked as Decision['mode'];
          raise('header', header.name, make(mode, 'escalation:header', `${header.name}: ${mode} from ${ctx.authUser}`), `${ctx.authUser} asked for ${mode}`);
        }
      }
    }
    return { decision, trace };
  }

  return {
    explain,
    decide: (recipient, ctx) => explain(recipient, ctx).decision,
    stripSubjectTag: tag?.strip ? tag.tag : null,
    modeHeader: header?.name ?? null,
    tlsRequiredNoRule: (recipient, ctx) => rules.find((r) => r.config.allow_tls_required_no && r.match(recipient, ctx))?.config.name ?? null,
  };
}
