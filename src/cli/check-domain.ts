// `sealrelay check-domain <domain>`: what delivery to a domain would meet right
// now — its MX hosts (or static route), per address reachability, STARTTLS, the
// negotiated TLS against the floor, the certificate with its expiry and verdict;
// with delivery.dns.dnssec, the DNSSEC status of the MX set, each host's TLSA records
// and whether its certificate matches them (DANE, RFC 7672); its MTA-STS policy; whether the relay already knows it as TLS-known; and the
// mode the current policy would pick for a recipient there (the same createPolicy +
// domain knowledge + MTA-STS steps as the delivery worker). Progress goes to
// stderr while probing, the report to stdout (or one JSON object with --json).
//
// Exit: 0 once probed, even when every MX failed (that is the answer); 1 when the
// domain has no MX to try (null MX, no such domain, DNS failure); 64 usage.
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import type { Config } from '../config/schema.ts';
import type { DaneFacts } from '../delivery/record.ts';
import type { MtaStsState } from '../domains/mta-sts-cache.ts';
import { floorOf, mxLabel, probeDomain, type DomainReport, type MtaStsReport, type MxProbe } from '../domains/probe.ts';
import { createPolicy, type Explanation } from '../policy/decide.ts';
import type { Decision } from '../policy/decision.ts';
import { informedBy, informedByMtaSts } from '../policy/domain-knowledge.ts';
import { messageContext } from '../policy/message-context.ts';
import type { DomainKnowledge } from '../store/store.ts';
import { readPolicyConfig, withStore, type CliContext } from './context.ts';
import { CliError, EXIT } from './exit.ts';
import { isoSeconds } from './time.ts';

/** A domain name as typed: labels of letters, digits, "-" and "_" (or U-labels), optional final dot. */
const DOMAIN = /^(?=.{1,253}\.?$)[\p{L}\p{N}_-]+(?:\.[\p{L}\p{N}_-]+)*\.?$/u;

/** What the store says about the domain; `store: false` when there is no store file to ask. */
export interface TlsKnownStatus {
  readonly store: boolean;
  readonly knowledge: DomainKnowledge | null;
}

export interface PolicyOutlook {
  readonly recipient: string;
  readonly decision: Decision;
  readonly trace: Explanation['trace'];
  /** Reasons added after the rules: domain knowledge and MTA-STS. */
  readonly informedBy: readonly string[];
}

export type CheckDomainReport = DomainReport & { readonly tlsKnown: TlsKnownStatus; readonly policy: PolicyOutlook };

export function registerCheckDomain(program: Command, context: () => CliContext): void {
  program
    .command('check-domain <domain>')
    .description('probe a recipient domain: MX hosts, STARTTLS, TLS, certificates, MTA-STS, and the mode policy would pick')
    .option('--json', 'the report as one JSON object')
    .action(async (domain: string, opts: { json?: boolean }) => {
      if (domain.includes('@')) throw new CliError(EXIT.USAGE, `check-domain wants a domain, not an address: ${domain}`);
      if (!DOMAIN.test(domain)) throw new CliError(EXIT.USAGE, `not a domain name: ${JSON.stringify(domain)}`);
      const config = readPolicyConfig(context());
      const report = await probeDomain(domain, { config, onProgress: (event) => console.error(event) });
      const tlsKnown = await tlsKnownStatus(config, report.domain);
      const full: CheckDomainReport = { ...report, tlsKnown, policy: outlook(config, report, tlsKnown.knowledge) };
      console.log(opts.json ? JSON.stringify(full) : render(full, config));
      if (!report.usable) throw new CliError(EXIT.FAILURE, `${report.domain} has no usable MX: ${report.destination.reason ?? report.destination.kind}`);
    });
}

async function tlsKnownStatus(config: Config, domain: string): Promise<TlsKnownStatus> {
  const { store } = config;
  if (store.driver === 'sqlite' && (store.path === ':memory:' || !existsSync(store.path))) return { store: false, knowledge: null };
  return { store: true, knowledge: await withStore(config, (s) => s.getDomain(domain)) };
}

/** The MTA-STS state the delivery worker would act on, from the policy just fetched. */
function stsState(sts: MtaStsReport): MtaStsState | null {
  if (!sts.applied || sts.status !== 'policy') return null;
  return { mode: sts.mode, mx: sts.mx, id: sts.id, expiresAt: Date.parse(sts.fetchedAt) + sts.maxAge * 1000, source: 'fetch' };
}

/** As the delivery worker decides (scheduler.ts): rules, then domain knowledge, then MTA-STS. */
function outlook(config: Config, report: DomainReport, knowledge: DomainKnowledge | null): PolicyOutlook {
  const recipient = `postmaster@${report.domain}`;
  // A message with no subject tag, mode header or DLP hit, from any sender: what the domain gets by default.
  const ctx = messageContext({ sender: '', authUser: null, headerBlock: '' });
  const explained = createPolicy(config).explain(recipient, ctx);
  const decision = informedByMtaSts(informedBy(explained.decision, report.domain, knowledge), report.domain, stsState(report.mtaSts));
  const before = new Set(explained.decision.reasons);
  return { recipient, decision, trace: explained.trace, informedBy: decision.reasons.filter((r) => !before.has(r)) };
}

// ---- text report ----

const LABEL_WIDTH = 13;
const field = (label: string, value: string, indent: string) => `${indent}${label.padEnd(LABEL_WIDTH)}${value}`;
/** Continuation lines line up under the first value. */
const more = (value: string, indent: string) => `${indent}${' '.repeat(LABEL_WIDTH)}${value}`;

function render(r: CheckDomainReport, config: Config): string {
  const out: string[] = [`${r.domain} (probed ${isoSeconds(r.probedAt)})`, ''];
  out.push(...dnssecLines(r), '');
  out.push(...destinationLines(r, config), '');
  out.push(...mtaStsLines(r.mtaSts), '');
  out.push(field('TLS-known:', tlsKnownText(r.tlsKnown, config), ''));
  out.push(...policyLines(r.policy));
  return out.join('\n');
}

function destinationLines(r: CheckDomainReport, config: Config): string[] {
  const d = r.destination;
  if (d.kind === 'null-mx' || d.kind === 'error') return [field('MX:', `none usable: ${d.reason}`, '')];
  const head =
    d.kind === 'route'
      ? `Route: ${d.route} (delivery.routes; no MX lookup)`
      : d.kind === 'implicit'
        ? 'MX: none published; the domain itself is the MX (implicit MX, RFC 5321 §5.1)'
        : 'MX (in the order delivery tries them):';
  const floor = floorOf(config);
  const floorText = `${floor.minVersion}, ${floor.minCipherBits} bits`;
  const stsMatches = r.mtaSts.status === 'policy' ? r.mtaSts.mxMatches : [];
  const lines = [head];
  for (const mx of r.mxs) {
    lines.push(`  ${mx.preference === null ? '-' : String(mx.preference)}  ${mxLabel(mx)}`);
    lines.push(...mxLines(mx, floorText, stsMatches.find((m) => m.host === mx.host) ?? null, r.mtaSts.status === 'policy' ? r.mtaSts.mode : null));
  }
  return lines;
}

function mxLines(mx: MxProbe, floorText: string, match: { ok: boolean; pattern: string | null } | null, stsMode: string | null): string[] {
  const indent = '      ';
  const lines = [field('reachable', mx.reachable ? `yes (${mx.durationMs} ms)` : 'no', indent)];
  if (mx.starttlsOffered !== null) lines.push(field('STARTTLS', mx.starttlsOffered ? 'offered' : 'not offered (plaintext only)', indent));
  if (mx.tls) {
    const verdict = mx.floor?.ok ? `meets the floor (${floorText})` : `BELOW the floor: ${mx.floor?.problem ?? 'unknown'}`;
    lines.push(field('TLS', `${mx.tls.protocol} ${mx.tls.cipher} ${mx.tls.bits} bits, ${verdict}`, indent));
  }
  const cert = mx.certificate;
  if (cert) {
    lines.push(field('certificate', cert.subject ?? '(no subject)', indent));
    if (cert.fingerprint256) lines.push(more(`SHA-256 ${cert.fingerprint256}`, indent));
    if (cert.notAfter) {
      const days = cert.daysLeft ?? 0;
      lines.push(more(`expires ${isoSeconds(cert.notAfter)} (${days < 0 ? `EXPIRED ${-days} days ago` : `in ${days} days`})`, indent));
    }
    lines.push(field('verdict', cert.authorized ? 'chain and name verified (verification ca would accept it)' : `not verified: ${cert.authorizationError} (verification ca would refuse it)`, indent));
  } else if (mx.tls) {
    lines.push(field('certificate', 'none presented', indent));
  }
  if (mx.dane) lines.push(...daneLines(mx.dane, indent));
  if (match && stsMode !== 'none') lines.push(field('MTA-STS', match.ok ? `listed (${match.pattern})` : 'NOT listed in the policy', indent));
  if (mx.error) lines.push(field('error', `${mx.error.stage}: ${mx.error.reason}`, indent));
  return lines;
}

function dnssecLines(r: CheckDomainReport): string[] {
  if (!r.dnssec.enabled) return [field('DNSSEC:', 'not checked (delivery.dns.dnssec is off: no DANE)', '')];
  if (r.dnssec.mxSecure === null) return [field('DNSSEC:', 'unknown (no MX answer to judge)', '')];
  return [field('DNSSEC:', r.dnssec.mxSecure ? 'MX records secure (validated): DANE applies where TLSA is published' : 'MX records INSECURE (not signed): DANE does not apply (RFC 7672 §2.2.1)', '')];
}

/** "DANE  matched 3 1 1 ab12…" and the usable TLSA records, one per line. */
function daneLines(d: DaneFacts, indent: string): string[] {
  const verdict: Record<DaneFacts['status'], string> = {
    matched: `certificate MATCHES TLSA ${d.matched ?? ''}`,
    mismatch: 'certificate does NOT match the TLSA records (delivery defers)',
    'no-usable-tlsa': 'no usable TLSA records: the other verification applies',
    insecure: 'does not apply',
    bogus: 'TLSA lookup BOGUS (failed validation: delivery defers)',
    indeterminate: 'TLSA lookup failed (delivery defers)',
  };
  const lines = [field('DANE', verdict[d.status], indent), more(d.reason, indent)];
  for (const t of d.tlsa) lines.push(field('TLSA', t, indent));
  return lines;
}

function mtaStsLines(s: MtaStsReport): string[] {
  const lines: string[] = [];
  if (s.status === 'policy') {
    lines.push(field('MTA-STS:', `record id ${s.id}`, ''));
    lines.push(more(`policy mode ${s.mode}, max_age ${s.maxAge} s, mx ${s.mx.join(', ') || '(none)'}`, ''));
    if (s.mode !== 'none' && s.mxMatches.length) {
      lines.push(more(`MX hosts: ${s.mxMatches.map((m) => `${m.host} ${m.ok ? 'listed' : 'NOT listed'}`).join('; ')}`, ''));
    }
  } else if (s.status === 'none') {
    lines.push(field('MTA-STS:', `no policy: ${s.reason}`, ''));
  } else {
    lines.push(field('MTA-STS:', `lookup failed (${s.temporary ? 'temporary' : 'the domain\'s setup is wrong'}): ${s.reason}`, ''));
  }
  if (!s.applied && s.status === 'policy') lines.push(more(`not applied by this relay: ${s.notAppliedBecause}`, ''));
  return lines;
}

function tlsKnownText(t: TlsKnownStatus, config: Config): string {
  if (!t.store) return `unknown (no store at ${config.store.path})`;
  const k = t.knowledge;
  if (!k) return 'no (the relay has never attempted delivery there)';
  if (k.tlsKnownSince === null) return `no (${k.attempts} attempts, none over TLS)`;
  return `yes, since ${isoSeconds(k.tlsKnownSince)} (a missing STARTTLS is treated as a possible downgrade)`;
}

function policyLines(p: PolicyOutlook): string[] {
  const d = p.decision;
  const lines = [
    field('Policy:', `${p.recipient} → mode ${d.mode}, verification ${d.verification}, floor ${d.floor.minVersion} ${d.floor.minCipherBits} bits${d.tlsExpected ? ', TLS expected' : ''} (rule ${d.rule})`, ''),
    more('(a message without subject tag, mode header or DLP hit)', ''),
  ];
  for (const t of p.trace) {
    const effect = t.source === 'default' || t.source === 'domain' ? ` → ${t.mode}` : t.raised ? ` → raised to ${t.mode}` : ` (${t.mode}, no change)`;
    lines.push(more(`${t.raised ? '↑' : '·'} ${t.source} ${t.name}: ${t.why}${effect}`, ''));
  }
  for (const why of p.informedBy) lines.push(more(`↑ ${why}`, ''));
  return lines;
}
